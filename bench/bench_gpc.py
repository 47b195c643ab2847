"""Benchmarks of the granule protection check, granule transitions and a 1 TiB platform.

Run as ``python bench/bench_gpc.py`` (a few seconds). Every throughput is printed beside
a plain-Python dict baseline measured in the same run, with the ratio (how many baseline
operations one modelled operation costs), so numbers compare across machines:

(a) GPC checks/s on the hot path (``pe.gpc.check`` on cached granules) and full
    ``host.read`` of 8 bytes/s (port, PE, GPC, memory), vs a dict lookup loop;
(b) delegate + undelegate round trips/s through the real SMC path (a Realm-state port
    issuing RMM_GTSI_DELEGATE / UNDELEGATE to EL3), vs two dict stores;
(c) a 1 TiB DRAM platform, each part in a fresh interpreter so RSS is not polluted: cold-boot
    time, and peak / current RSS after delegating 100,000 granules spread over ten GiB
    (ten level-0 blocks become level-1 tables). Targets: boot < 1 s, RSS < 200 MB.

Exits non-zero if a target fails. ``--child boot|memory`` runs one part of (c) and prints
JSON (used internally).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ccasim import Platform, PlatformConfig
from ccasim.arch.faults import AccessKind
from ccasim.arch.security import PhysicalAddressSpace, SecurityState

GRANULE = 0x1000
GiB = 1 << 30
MB = 1000 * 1000
RMM_GTSI_DELEGATE = 0xC400_01B0
RMM_GTSI_UNDELEGATE = 0xC400_01B1
GPI_NS = 0b1001
GPI_REALM = 0b1011

BOOT_TARGET_S = 1.0
RSS_TARGET_MB = 200.0
TIB_DRAM = 1 << 40
DELEGATIONS = 100_000
DELEGATION_GIBS = 10  # the granules are spread over this many 1 GiB level-0 regions
BOOT_REPS = 5


@dataclass
class Measured:
    """Median throughputs of an operation and of its baseline, and the median of the
    per-repetition ratios (baseline rate / operation rate)."""

    rate: float
    baseline: float
    ratio: float


def measure(
    run: Callable[[], float],
    ops: int,
    baseline: Callable[[], float],
    baseline_ops: int,
    reps: int,
) -> Measured:
    """Each callable performs its number of operations and returns the seconds they took.
    The two are run alternately (after one warm-up each), so load on the machine hits both
    alike; medians over ``reps`` repetitions."""
    run()
    baseline()
    rates, base_rates = [], []
    for _ in range(reps):
        base_rates.append(baseline_ops / baseline())
        rates.append(ops / run())
    ratios = [b / r for b, r in zip(base_rates, rates, strict=True)]
    return Measured(
        statistics.median(rates), statistics.median(base_rates), statistics.median(ratios)
    )


def row(name: str, m: Measured) -> None:
    print(
        f"  {name:<38} {m.rate:>12,.0f} /s | dict baseline {m.baseline:>13,.0f} /s"
        f" | ratio {m.ratio:>6.1f}x"
    )


# ---------------------------------------------------------------------------- (a) checks
def bench_checks(p: Platform, reps: int) -> dict[str, Measured]:
    pe = p.pes[0]
    gpc = pe.gpc
    base = p.region("ns_dram").base
    granules = [base + i * GRANULE for i in range(4096)]
    addrs = granules * 25  # 102,400 checks per run, all on cached granules
    ns_pas, ns_state, read = (
        PhysicalAddressSpace.NON_SECURE,
        SecurityState.NON_SECURE,
        AccessKind.READ,
    )
    for pa in granules:
        gpc.check(pa, 8, ns_pas, ns_state, read)
    assert all(gpc.cached(pa) == GPI_NS for pa in granules), "granules not cached"

    def run_check() -> float:
        check = gpc.check
        t0 = time.perf_counter()
        for pa in addrs:
            check(pa, 8, ns_pas, ns_state, read)
        return time.perf_counter() - t0

    table = {pa >> 12: (GPI_NS, 0) for pa in granules}

    def run_dict() -> float:
        t0 = time.perf_counter()
        for pa in addrs:
            table[pa >> 12]
        return time.perf_counter() - t0

    reads = addrs[: 20 * 1024]

    def run_read() -> float:
        host_read = p.host.read
        t0 = time.perf_counter()
        for pa in reads:
            host_read(pa, 8)
        return time.perf_counter() - t0

    return {
        "check": measure(run_check, len(addrs), run_dict, len(addrs), reps),
        "read": measure(run_read, len(reads), run_dict, len(addrs), reps),
    }


# ---------------------------------------------------------------------------- (b) GTSI
def bench_round_trips(p: Platform, reps: int) -> Measured:
    realm = p.cpus[0].probe(SecurityState.REALM)
    base = p.region("ns_dram").base + GiB // 2
    granules = [base + i * GRANULE for i in range(2000)]
    smc = realm.smc

    def run_gtsi() -> float:
        t0 = time.perf_counter()
        for pa in granules:
            if smc(RMM_GTSI_DELEGATE, pa)[0] or smc(RMM_GTSI_UNDELEGATE, pa)[0]:
                raise AssertionError(f"GTSI round trip failed at {pa:#x}")
        return time.perf_counter() - t0

    table = {pa >> 12: GPI_NS for pa in granules}
    many = granules * 50

    def run_dict() -> float:
        t0 = time.perf_counter()
        for pa in many:
            table[pa >> 12] = GPI_REALM
            table[pa >> 12] = GPI_NS
        return time.perf_counter() - t0

    result = measure(run_gtsi, len(granules), run_dict, len(many), reps)
    assert all(int(p.el3.gpi(pa)) == GPI_NS for pa in granules[:: len(granules) // 16])
    return result


# ---------------------------------------------------------------------------- (c) 1 TiB
def rss_now_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def child_boot() -> dict[str, Any]:
    times = []
    config = PlatformConfig(dram_size=TIB_DRAM)
    for _ in range(BOOT_REPS):
        gc.collect()
        t0 = time.perf_counter()
        p = Platform(config)
        times.append(time.perf_counter() - t0)
        assert p.el3.rmm_boot_status == 0
        del p
    return {"boot_s": times}


def child_memory() -> dict[str, Any]:
    rss_start = rss_now_bytes()
    t0 = time.perf_counter()
    p = Platform(PlatformConfig(dram_size=TIB_DRAM))
    boot_s = time.perf_counter() - t0
    rss_booted = rss_now_bytes()
    realm = p.cpus[0].probe(SecurityState.REALM)
    ns = p.region("ns_dram")
    per_gib = DELEGATIONS // DELEGATION_GIBS
    stride = (ns.size // GiB) // DELEGATION_GIBS * GiB  # regions spread over the whole TiB
    gpt = p.monitor.gpt
    tables_before = sum(
        1
        for i in range(gpt.geometry.l0_entries)
        if p.el3.read(gpt.l0_base + 8 * i, 8)[0] & 0xF == 0b0011
    )
    delegated: list[int] = []
    t0 = time.perf_counter()
    for k in range(DELEGATION_GIBS):
        region = ns.base + k * stride
        for i in range(per_gib):
            pa = region + 2 * i * GRANULE  # every other granule
            if realm.smc(RMM_GTSI_DELEGATE, pa)[0]:
                raise AssertionError(f"delegate {pa:#x} failed")
            delegated.append(pa)
    delegate_s = time.perf_counter() - t0
    sample = delegated[:: len(delegated) // 100]
    assert all(int(p.el3.gpi(pa)) == GPI_REALM for pa in sample)
    assert all(int(p.el3.gpi(pa + GRANULE)) == GPI_NS for pa in sample)
    tables_after = sum(
        1
        for i in range(gpt.geometry.l0_entries)
        if p.el3.read(gpt.l0_base + 8 * i, 8)[0] & 0xF == 0b0011
    )
    return {
        "boot_s": boot_s,
        "delegations": len(delegated),
        "delegate_s": delegate_s,
        "l1_tables_created": tables_after - tables_before,
        "rss_start": rss_start,
        "rss_booted": rss_booted,
        "rss_now": rss_now_bytes(),
        "rss_peak": peak_rss_bytes(),
    }


def run_child(kind: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", kind],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# ---------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=("boot", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=7, help="repetitions per measurement")
    args = parser.parse_args()
    if args.child:
        result = child_boot() if args.child == "boot" else child_memory()
        print(json.dumps(result))
        return 0

    started = time.perf_counter()
    p = Platform(PlatformConfig())
    print(f"ccasim benchmarks (Python {sys.version.split()[0]}, medians of {args.reps} runs)")
    print("(a) granule protection checks")
    checks = bench_checks(p, args.reps)
    row("pe.gpc.check, cached granule", checks["check"])
    row("host.read(pa, 8), full path", checks["read"])
    print("(b) granule transitions through the SMC path")
    trips = bench_round_trips(p, max(3, args.reps // 2))
    row("GTSI delegate+undelegate round trip", trips)

    print(f"(c) {TIB_DRAM >> 40} TiB DRAM platform (fresh interpreter per measurement)")
    boot = run_child("boot")
    boot_median = statistics.median(boot["boot_s"])
    mem = run_child("memory")
    now_mb = mem["rss_now"] / MB
    # ru_maxrss is a high-water mark the kernel updates lazily; never report it below now.
    peak_mb = max(mem["rss_peak"], mem["rss_now"]) / MB
    print(
        f"  cold boot: median {boot_median * 1000:.1f} ms, max {max(boot['boot_s']) * 1000:.1f} ms"
        f" over {len(boot['boot_s'])} boots"
    )
    print(
        f"  {mem['delegations']:,} GTSI delegations over {DELEGATION_GIBS} GiB in"
        f" {mem['delegate_s']:.2f} s ({mem['delegations'] / mem['delegate_s']:,.0f}/s),"
        f" {mem['l1_tables_created']} L1 tables created"
    )
    print(
        f"  RSS: {mem['rss_start'] / MB:.1f} MB after imports, {mem['rss_booted'] / MB:.1f} MB"
        f" after boot, {now_mb:.1f} MB after delegating (peak {peak_mb:.1f} MB)"
    )

    failures = 0
    for name, ok, detail in (
        ("boot < 1 s", boot_median < BOOT_TARGET_S, f"{boot_median * 1000:.1f} ms"),
        ("RSS < 200 MB", peak_mb < RSS_TARGET_MB, f"peak {peak_mb:.1f} MB"),
    ):
        print(f"  {'PASS' if ok else 'FAIL'}  {name:<14} ({detail})")
        failures += not ok
    print(f"total {time.perf_counter() - started:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
