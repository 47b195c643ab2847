"""Granule transitions by EL3: RMM GTSI (rmm-abi §12.4) and FIRME_GM_GPI_SET (rme-hardware
§6–§7), including the maintenance order of rme-hardware §6 and the L0-block -> L1-table
conversion the model performs on the first transition in a 1 GB region."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccasim import GranuleProtectionFault, Platform, PlatformConfig, SecurityState
from ccasim.arch.pe import MaintenanceOp
from ccasim.arch.security import PhysicalAddressSpace as Pas
from rme_helpers import (
    E_RMM_BAD_ADDR,
    E_RMM_BAD_PAS,
    E_RMM_OK,
    FIRME_GM_GPI_SET,
    GPI_ANY,
    GPI_NO_ACCESS,
    GPI_NS,
    GPI_REALM,
    GPI_ROOT,
    GPI_SECURE,
    GRANULE,
    RMM_GTSI_DELEGATE,
    RMM_GTSI_UNDELEGATE,
    SMC_UNKNOWN,
    GiB,
    MiB,
    bits,
    l0_entry_pa,
    l1_entry_pa,
    ns_granule,
    realm,
    root_read_u64,
    root_write_u64,
    secure,
    tlbi_paallos,
    u64,
)

# FIRME status codes (rme-hardware §7 / DEN0149 as the firmware reports them).
FIRME_SUCCESS = 0
FIRME_INVALID_PARAMETERS = u64(-2)
FIRME_INCOMPLETE = u64(-4)
FIRME_DENIED = u64(-5)


@pytest.fixture
def p() -> Platform:
    return Platform()


def delegate(platform: Platform, pa: int, cpu: int = 0) -> int:
    return realm(platform, cpu).smc(RMM_GTSI_DELEGATE, pa)[0]


def undelegate(platform: Platform, pa: int, cpu: int = 0) -> int:
    return realm(platform, cpu).smc(RMM_GTSI_UNDELEGATE, pa)[0]


def gpi_set(platform: Platform, base: int, count: int, target: int,
            state: SecurityState = SecurityState.SECURE) -> tuple[int, int]:
    x = platform.cpus[0].probe(state).smc(FIRME_GM_GPI_SET, base, count, target)
    return x[0], x[1]


def gpt_snapshot(platform: Platform) -> tuple[object, ...]:
    """Everything a transition could change: the L0 table, the per-region GPI counts."""
    gpt = platform.monitor.gpt
    l0 = platform.el3.read(gpt.l0_base, gpt.geometry.l0_table_size)
    summary = tuple((r.name, tuple(sorted(c.items()))) for r, c in platform.el3.gpt_summary())
    return l0, summary


# ------------------------------------------------------------------------------ GTSI


def test_delegate_and_undelegate(p: Platform) -> None:
    g = ns_granule(p, 0x123)
    p.host.write(g, b"host data")
    assert delegate(p, g) == E_RMM_OK
    assert p.el3.gpi(g) == GPI_REALM == 0xB
    with pytest.raises(GranuleProtectionFault) as info:
        p.host.read(g, 8)
    assert info.value.pas == Pas.NON_SECURE and info.value.level == 1
    assert realm(p).read(g, 9, Pas.REALM) == b"host data"  # EL3 does not scrub
    with pytest.raises(GranuleProtectionFault):
        realm(p).read(g, 8, Pas.NON_SECURE)
    assert undelegate(p, g) == E_RMM_OK
    assert p.el3.gpi(g) == GPI_NS
    assert p.host.read(g, 9) == b"host data"
    with pytest.raises(GranuleProtectionFault):
        realm(p).read(g, 8, Pas.REALM)


def test_delegate_is_seen_by_every_pe(p: Platform) -> None:
    g = ns_granule(p, 0x77)
    for cpu in range(4):
        p.cpus[cpu].host.read(g, 8)  # every PE caches the Non-secure GPI
    assert delegate(p, g, cpu=2) == E_RMM_OK
    for cpu in range(4):
        with pytest.raises(GranuleProtectionFault):
            p.cpus[cpu].host.read(g, 8)
    assert undelegate(p, g, cpu=3) == E_RMM_OK
    for cpu in range(4):
        p.cpus[cpu].host.read(g, 8)


def _bad_addr_cases(p: Platform) -> dict[str, int]:
    return {
        "unaligned": ns_granule(p, 4) + 8,
        "unaligned by half a granule": ns_granule(p, 4) + 0x800,
        "hole below secure DRAM": 0x1000,
        "hole above the Root region": 0x4000_0000,
        "uart0 MMIO": p.region("uart0").base,
        "beyond PPS": 1 << 32,
        "far beyond PPS": 1 << 40,
        "top bit set": 1 << 63,
    }


def _bad_pas_cases(p: Platform) -> dict[str, int]:
    return {
        "secure DRAM": p.region("secure_dram").base,
        "root": p.region("root").base,
        "GPT L0 table": p.monitor.gpt.l0_base,
        "rmm": p.region("rmm").base,
        "RMM-EL3 shared buffer": p.rmmd.shared_buffer,
    }


@pytest.mark.parametrize("fid", [RMM_GTSI_DELEGATE, RMM_GTSI_UNDELEGATE])
@pytest.mark.parametrize(
    "case", ["unaligned", "unaligned by half a granule", "hole below secure DRAM",
             "hole above the Root region", "uart0 MMIO", "beyond PPS", "far beyond PPS",
             "top bit set"])
def test_gtsi_bad_addr(fid: int, case: str) -> None:
    p = Platform()
    pa = _bad_addr_cases(p)[case]
    before = gpt_snapshot(p)
    p.pes[0].maintenance_log = []
    assert realm(p).smc(fid, pa)[0] == E_RMM_BAD_ADDR == u64(-2)
    assert p.pes[0].maintenance_log == []
    assert gpt_snapshot(p) == before


@pytest.mark.parametrize(
    ("fid", "case"),
    [(RMM_GTSI_DELEGATE, c) for c in ("secure DRAM", "root", "GPT L0 table", "rmm",
                                      "RMM-EL3 shared buffer")]
    + [(RMM_GTSI_UNDELEGATE, c) for c in ("secure DRAM", "root", "GPT L0 table")],
)
def test_gtsi_bad_pas(fid: int, case: str) -> None:
    p = Platform()
    pa = _bad_pas_cases(p)[case]
    gpi = p.el3.gpi(pa)
    before = gpt_snapshot(p)
    p.pes[0].maintenance_log = []
    assert realm(p).smc(fid, pa)[0] == E_RMM_BAD_PAS == u64(-3)
    assert p.pes[0].maintenance_log == []
    assert p.el3.gpi(pa) == gpi
    assert gpt_snapshot(p) == before


def test_undelegate_checks_only_the_current_gpi(p: Platform) -> None:
    # rmm-abi §12.4: undelegate requires GPI == REALM, nothing else; the RMM's own carve-out
    # is Realm memory, so EL3 lets the (trusted) RMM give it back.
    pa = p.region("rmm").base + 5 * GRANULE
    assert undelegate(p, pa) == E_RMM_OK
    assert p.el3.gpi(pa) == GPI_NS
    p.host.read(pa, 8)


def test_double_delegate_and_undelegate_of_ns_are_bad_pas(p: Platform) -> None:
    g = ns_granule(p, 0x200)
    assert undelegate(p, g) == E_RMM_BAD_PAS  # Non-secure is not Realm
    assert p.el3.gpi(g) == GPI_NS
    assert delegate(p, g) == E_RMM_OK
    before = gpt_snapshot(p)
    assert delegate(p, g) == E_RMM_BAD_PAS
    assert gpt_snapshot(p) == before
    assert p.el3.gpi(g) == GPI_REALM


@pytest.mark.parametrize("state", [SecurityState.NON_SECURE, SecurityState.SECURE])
@pytest.mark.parametrize("fid", [RMM_GTSI_DELEGATE, RMM_GTSI_UNDELEGATE])
def test_gtsi_only_from_realm(state: SecurityState, fid: int) -> None:
    p = Platform()
    g = ns_granule(p, 0x300)
    if fid == RMM_GTSI_UNDELEGATE:
        assert delegate(p, g) == E_RMM_OK
    gpi = p.el3.gpi(g)
    assert p.cpus[1].probe(state).smc(fid, g)[0] == SMC_UNKNOWN
    assert p.el3.gpi(g) == gpi


# ------------------------------------------------------------------------------ maintenance order


class GpiRecorder(list[tuple[object, ...]]):
    """A PE maintenance log that also notes the GPI the tables hold for ``pa`` at each op."""

    def __init__(self, platform: Platform, pa: int) -> None:
        super().__init__()
        self.platform = platform
        self.pa = pa

    def append(self, op: MaintenanceOp) -> None:  # type: ignore[override]
        gpi = self.platform.el3.gpi(self.pa)
        if op.op.startswith("DSB"):
            super().append((op.op, gpi))
        elif op.op.startswith("TLBI"):
            name = "TLBI RPA(L)OS" if op.op in ("TLBI RPALOS", "TLBI RPAOS") else op.op
            super().append((name, op.pa, op.size, gpi))
        else:
            super().append((op.op, op.pa, op.pas, gpi))


def _warm_l1(p: Platform, g: int) -> None:
    """Make the first transition in g's 1 GB region happen beforehand (L0 block -> table)."""
    other = g + 16 * GRANULE
    assert delegate(p, other) == E_RMM_OK and undelegate(p, other) == E_RMM_OK


@pytest.mark.parametrize("cpu", [0, 3])
def test_gtsi_delegate_maintenance_order(cpu: int) -> None:
    p = Platform()
    g = ns_granule(p, 0x55)
    _warm_l1(p, g)
    log = GpiRecorder(p, g)
    p.pes[cpu].maintenance_log = log  # type: ignore[assignment]
    assert delegate(p, g, cpu) == E_RMM_OK
    # rme-hardware §6 step 4: CMO in the target PAS; GPI write, DSB OSHST; TLBI, DSB OSH;
    # CMO in the source PAS.
    assert log == [
        ("DC CIPAPA", g, Pas.REALM, GPI_NS),
        ("DSB OSHST", GPI_REALM),
        ("TLBI RPA(L)OS", g, GRANULE, GPI_REALM),
        ("DSB OSH", GPI_REALM),
        ("DC CIPAPA", g, Pas.NON_SECURE, GPI_REALM),
    ]


@pytest.mark.parametrize("cpu", [0, 2])
def test_gtsi_undelegate_maintenance_order(cpu: int) -> None:
    p = Platform()
    g = ns_granule(p, 0x56)
    _warm_l1(p, g)
    assert delegate(p, g) == E_RMM_OK
    log = GpiRecorder(p, g)
    p.pes[cpu].maintenance_log = log  # type: ignore[assignment]
    assert undelegate(p, g, cpu) == E_RMM_OK
    # rme-hardware §6 step 5: No-access + TLBI first; CMOs in the source then the target PAS;
    # then the target GPI + TLBI.
    assert log == [
        ("DSB OSHST", GPI_NO_ACCESS),
        ("TLBI RPA(L)OS", g, GRANULE, GPI_NO_ACCESS),
        ("DSB OSH", GPI_NO_ACCESS),
        ("DC CIPAPA", g, Pas.REALM, GPI_NO_ACCESS),
        ("DC CIPAPA", g, Pas.NON_SECURE, GPI_NO_ACCESS),
        ("DSB OSHST", GPI_NS),
        ("TLBI RPA(L)OS", g, GRANULE, GPI_NS),
        ("DSB OSH", GPI_NS),
    ]


def test_firme_secure_transitions_use_the_same_sequences(p: Platform) -> None:
    g = ns_granule(p, 0x57)
    _warm_l1(p, g)
    log = GpiRecorder(p, g)
    p.pes[0].maintenance_log = log  # type: ignore[assignment]
    assert gpi_set(p, g, 1, GPI_SECURE) == (FIRME_SUCCESS, 1)
    assert [e[0] for e in log] == ["DC CIPAPA", "DSB OSHST", "TLBI RPA(L)OS", "DSB OSH",
                                   "DC CIPAPA"]
    assert (log[0][2], log[-1][2]) == (Pas.SECURE, Pas.NON_SECURE)
    log.clear()
    assert gpi_set(p, g, 1, GPI_NS) == (FIRME_SUCCESS, 1)
    assert [e[-1] for e in log] == [GPI_NO_ACCESS] * 5 + [GPI_NS] * 3
    assert [(e[0], e[2]) for e in log if e[0] == "DC CIPAPA"] == [
        ("DC CIPAPA", Pas.SECURE), ("DC CIPAPA", Pas.NON_SECURE)]


def test_old_owner_loses_access_before_the_cmos(p: Platform) -> None:
    """Between the No-access write and the final GPI write neither world can touch the
    granule (the point of the intermediate state)."""
    g = ns_granule(p, 0x58)
    assert delegate(p, g) == E_RMM_OK
    realm(p, 1).read(g, 8, Pas.REALM)  # PE 1 caches the Realm GPI
    seen: list[tuple[bool, bool]] = []

    class Probe(list[MaintenanceOp]):
        def append(self, op: MaintenanceOp) -> None:  # type: ignore[override]
            super().append(op)
            if op.op == "DC CIPAPA":
                seen.append((_ok(lambda: realm(p, 1).read(g, 8, Pas.REALM)),
                             _ok(lambda: p.cpus[1].host.read(g, 8))))

    p.pes[0].maintenance_log = Probe()
    assert undelegate(p, g) == E_RMM_OK
    assert seen == [(False, False), (False, False)]


def _ok(access: object) -> bool:
    try:
        access()  # type: ignore[operator]
    except GranuleProtectionFault:
        return False
    return True


# ------------------------------------------------------------------------------ L0 block -> L1


@settings(max_examples=15, deadline=None)
@given(index=st.integers(0, (1 << 18) - 1), region=st.sampled_from([0, 1]))
def test_first_transition_in_a_1gb_region_keeps_every_other_gpi(index: int, region: int) -> None:
    p = Platform()
    ns = p.region("ns_dram")
    g = ns.base + region * GiB + index * GRANULE
    other_region = ns.base + (1 - region) * GiB
    assert bits(root_read_u64(p, l0_entry_pa(p, g)), 3, 0) == 0b0001  # block descriptor
    neighbours = [ns.base + region * GiB, ns.base + (region + 1) * GiB - GRANULE,
                  g ^ GRANULE, g ^ (16 * GRANULE), g ^ (1 << 20)]
    p.cpus[1].host.read(neighbours[0], 8)  # cached from the block descriptor
    assert delegate(p, g) == E_RMM_OK
    assert bits(root_read_u64(p, l0_entry_pa(p, g)), 3, 0) == 0b0011  # now a table
    assert bits(root_read_u64(p, l0_entry_pa(p, other_region)), 3, 0) == 0b0001
    desc = root_read_u64(p, l1_entry_pa(p, g))
    gi = bits(g, 15, 12)
    for i in range(16):
        assert bits(desc, 4 * i + 3, 4 * i) == (GPI_REALM if i == gi else GPI_NS)
    for pa in neighbours:
        if pa != g:
            assert p.el3.gpi(pa) == GPI_NS
            p.cpus[1].host.read(pa, 8)
    counts = dict(p.el3.gpt_summary())[ns]
    assert counts == {GPI_NS: ns.size // GRANULE - 1, GPI_REALM: 1}
    assert undelegate(p, g) == E_RMM_OK
    assert dict(p.el3.gpt_summary())[ns] == {GPI_NS: ns.size // GRANULE}


def test_transition_inside_a_contiguous_block_shatters_it(p: Platform) -> None:
    block = p.region("ns_dram").base + 10 * MiB
    contig = 0b0001 | GPI_NS << 4 | 0b01 << 8  # 2 MB Non-secure contiguous descriptor
    first = l1_entry_pa(p, block)
    entries = 2 * MiB // (16 * GRANULE)
    for i in range(entries):
        root_write_u64(p, first + 8 * i, contig)
    tlbi_paallos(p)
    g = block + 0x5_7000
    log: list[MaintenanceOp] = []
    p.pes[0].maintenance_log = log
    assert delegate(p, g) == E_RMM_OK
    # Shatter: the block's entries become granules descriptors of the same GPI, then one
    # TLBI by range over the block (rme-hardware §6 step 3), before the delegate sequence.
    tlbis = [op for op in log if op.op.startswith("TLBI")]
    assert (tlbis[0].pa, tlbis[0].size) == (block, 2 * MiB)
    assert log.index(tlbis[0]) < next(i for i, op in enumerate(log) if op.op == "DC CIPAPA")
    for i in range(entries):
        desc = root_read_u64(p, first + 8 * i)
        assert bits(desc, 3, 0) != 0b0001
    for pa in (block, block + MiB, block + 2 * MiB - GRANULE, g - GRANULE, g + GRANULE):
        assert p.el3.gpi(pa) == GPI_NS
        p.host.read(pa, 8)
    assert p.el3.gpi(g) == GPI_REALM


@pytest.mark.parametrize(
    ("l0gptsz", "dram"), [(30, 2 * GiB), (34, 20 * GiB), (36, 3 * GiB), (39, 64 * MiB)])
def test_transitions_for_every_l0gptsz(l0gptsz: int, dram: int) -> None:
    p = Platform(PlatformConfig(l0gptsz=l0gptsz, dram_size=dram, cpus=2))
    ns = p.region("ns_dram")
    for g in (ns.base, ns.base + ns.size // 2 + 7 * GRANULE, ns.end - GRANULE):
        assert delegate(p, g) == E_RMM_OK
        with pytest.raises(GranuleProtectionFault):
            p.cpus[1].host.read(g, 8)
        p.host.read(g - GRANULE if g > ns.base else g + GRANULE, 8)
        assert undelegate(p, g) == E_RMM_OK
        p.cpus[1].host.read(g, 8)


# ------------------------------------------------------------------------------ FIRME


def test_firme_ns_to_secure_and_back(p: Platform) -> None:
    g = ns_granule(p, 0x400)
    assert gpi_set(p, g, 1, GPI_SECURE) == (FIRME_SUCCESS, 1)
    assert p.el3.gpi(g) == GPI_SECURE
    with pytest.raises(GranuleProtectionFault):
        p.host.read(g, 8)
    secure(p).read(g, 8)
    assert gpi_set(p, g, 1, GPI_NS) == (FIRME_SUCCESS, 1)
    assert p.el3.gpi(g) == GPI_NS
    p.host.read(g, 8)


def test_firme_multi_granule(p: Platform) -> None:
    base = ns_granule(p, 0x500)
    assert gpi_set(p, base, 40, GPI_SECURE) == (FIRME_SUCCESS, 40)
    assert all(p.el3.gpi(base + i * GRANULE) == GPI_SECURE for i in range(40))
    assert p.el3.gpi(base - GRANULE) == GPI_NS and p.el3.gpi(base + 40 * GRANULE) == GPI_NS
    assert gpi_set(p, base, 40, GPI_NS) == (FIRME_SUCCESS, 40)
    assert all(p.el3.gpi(base + i * GRANULE) == GPI_NS for i in range(41))


def test_firme_more_than_512_granules_is_incomplete(p: Platform) -> None:
    base = ns_granule(p, 0x1000)
    assert gpi_set(p, base, 600, GPI_SECURE) == (FIRME_INCOMPLETE, 512)
    assert p.el3.gpi(base + 511 * GRANULE) == GPI_SECURE
    assert p.el3.gpi(base + 512 * GRANULE) == GPI_NS
    assert gpi_set(p, base + 512 * GRANULE, 88, GPI_SECURE) == (FIRME_SUCCESS, 88)
    counts = dict(p.el3.gpt_summary())[p.region("ns_dram")]
    assert counts[GPI_SECURE] == 600


@pytest.mark.parametrize(
    ("what", "source", "target"),
    [
        ("same to same", None, GPI_NS),
        ("NS to Realm", None, GPI_REALM),
        ("Secure to Secure", GPI_SECURE, GPI_SECURE),
        ("Realm to NS", GPI_REALM, GPI_NS),
        ("Realm to Secure", GPI_REALM, GPI_SECURE),
    ],
)
def test_firme_policy_violations_are_denied(what: str, source: int | None, target: int) -> None:
    p = Platform()
    g = ns_granule(p, 0x600)
    if source == GPI_SECURE:
        assert gpi_set(p, g, 1, GPI_SECURE)[0] == FIRME_SUCCESS
    elif source == GPI_REALM:
        assert delegate(p, g) == E_RMM_OK
    before = gpt_snapshot(p)
    assert gpi_set(p, g, 1, target) == (FIRME_DENIED, 0)
    assert gpt_snapshot(p) == before


@pytest.mark.parametrize("region", ["root", "rmm"])
def test_firme_cannot_touch_root_or_realm_carveouts(region: str) -> None:
    p = Platform()
    pa = p.region(region).base
    before = gpt_snapshot(p)
    assert gpi_set(p, pa, 1, GPI_NS) == (FIRME_DENIED, 0)
    assert gpi_set(p, pa, 1, GPI_SECURE) == (FIRME_DENIED, 0)
    assert gpt_snapshot(p) == before


def test_firme_bad_parameters(p: Platform) -> None:
    g = ns_granule(p, 0x700)
    ns = p.region("ns_dram")
    before = gpt_snapshot(p)
    cases = [
        (g, 0, GPI_SECURE),  # no granules
        (g + 0x10, 1, GPI_SECURE),  # unaligned base
        (g, 1, GPI_SECURE | 1 << 4),  # x3 bits above [3:0]
        (g, 1, 0b0011),  # reserved GPI
        (ns.end - GRANULE, 2, GPI_SECURE),  # runs past the PPS
        (1 << 40, 1, GPI_SECURE),  # beyond the PPS
        (p.region("uart0").base, 1, GPI_SECURE),  # MMIO
        (0x4000_0000, 1, GPI_SECURE),  # a hole
    ]
    for base, count, target in cases:
        assert gpi_set(p, base, count, target) == (FIRME_INVALID_PARAMETERS, 0), hex(base)
    assert gpt_snapshot(p) == before


@pytest.mark.parametrize("target", [GPI_ROOT, GPI_ANY, GPI_NO_ACCESS])
def test_firme_untransitionable_targets_are_rejected(target: int) -> None:
    p = Platform()
    g = ns_granule(p, 0x701)
    before = gpt_snapshot(p)
    status, done = gpi_set(p, g, 1, target)
    assert status in (FIRME_INVALID_PARAMETERS, FIRME_DENIED) and done == 0
    assert gpt_snapshot(p) == before


@pytest.mark.parametrize(("count", "bad"), [(3, 2), (512, 300), (700, 511)])
def test_firme_is_all_or_nothing(count: int, bad: int) -> None:
    p = Platform()
    base = ns_granule(p, 0x800)
    assert delegate(p, base + bad * GRANULE) == E_RMM_OK
    before = gpt_snapshot(p)
    assert gpi_set(p, base, count, GPI_SECURE) == (FIRME_DENIED, 0)
    assert gpt_snapshot(p) == before
    assert all(p.el3.gpi(base + i * GRANULE) == GPI_NS for i in range(bad))


def test_firme_from_ns_is_denied(p: Platform) -> None:
    g = ns_granule(p, 0x900)
    before = gpt_snapshot(p)
    assert gpi_set(p, g, 1, GPI_SECURE, SecurityState.NON_SECURE) == (FIRME_DENIED, 0)
    assert p.host.smc(FIRME_GM_GPI_SET, g, 1, GPI_SECURE)[:2] == (FIRME_DENIED, 0)
    assert gpt_snapshot(p) == before


def test_realm_and_secure_cannot_trade_granules_directly(p: Platform) -> None:
    r, s = ns_granule(p, 0xA00), ns_granule(p, 0xA01)
    assert delegate(p, r) == E_RMM_OK
    assert gpi_set(p, s, 1, GPI_SECURE) == (FIRME_SUCCESS, 1)
    before = gpt_snapshot(p)
    # Secure cannot take or release a Realm granule; Realm cannot take a Secure one.
    assert gpi_set(p, r, 1, GPI_SECURE) == (FIRME_DENIED, 0)
    assert gpi_set(p, r, 1, GPI_NS) == (FIRME_DENIED, 0)
    assert delegate(p, s) == E_RMM_BAD_PAS
    assert undelegate(p, s) == E_RMM_BAD_PAS
    assert gpi_set(p, s, 1, GPI_REALM, SecurityState.REALM) == (FIRME_DENIED, 0)
    # Realm asking FIRME for a Secure granule out of Non-secure memory is denied too.
    assert gpi_set(p, ns_granule(p, 0xA02), 1, GPI_SECURE, SecurityState.REALM) == (
        FIRME_DENIED, 0)
    assert gpt_snapshot(p) == before
    # The legal route: through Non-secure, by two different callers.
    assert undelegate(p, r) == E_RMM_OK
    assert gpi_set(p, r, 1, GPI_SECURE) == (FIRME_SUCCESS, 1)
    assert p.el3.gpi(r) == GPI_SECURE


def test_firme_from_realm_moves_ns_and_realm(p: Platform) -> None:
    g = ns_granule(p, 0xB00)
    assert gpi_set(p, g, 2, GPI_REALM, SecurityState.REALM) == (FIRME_SUCCESS, 2)
    assert p.el3.gpi(g + GRANULE) == GPI_REALM
    assert gpi_set(p, g, 2, GPI_NS, SecurityState.REALM) == (FIRME_SUCCESS, 2)
    assert p.el3.gpi(g) == GPI_NS
