"""``ccasim demo``: the whole CCA story in one run (issue: the host side and front door).

Boot the platform; build, measure and run a realm whose guest greets over the UART, extends
a measurement and asks for an attestation token with a fresh challenge; verify the token
against the predicted RIM; show the Granule Protection Fault a host gets when it peeks at
realm memory; tear everything down.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ..arch.faults import GranuleProtectionFault
from ..arch.gpt import Gpi
from ..arch.security import SecurityState
from ..attestation.rim import predict_rim
from ..attestation.verify import verify_token
from ..guest import programs
from ..host.vmm import HostCall, RealmSpec, RealmVm, Segment, Vmm
from ..mapview import memory_map_view
from ..platform import Platform
from ..rmm import measurement
from ..trace import Tracer
from .main import app
from .map import print_compact_map

SHARED_OFFSET = 0x1000_0000  # the token window, above the console in the unprotected half


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)


class DemoError(Exception):
    pass


@dataclass
class DemoRealm:
    """The demo realm, built through the RMI and ready to run (``vmm.run(vm)``)."""

    vmm: Vmm
    vm: RealmVm
    spec: RealmSpec
    layout: programs.GuestLayout
    challenge: bytes
    token: dict[str, bytes]  # "bytes": the token the guest hands over through the host


def build_demo_realm(
    p: Platform,
    *,
    on_line: Callable[[str], None] | None = None,
    challenge: bytes | None = None,
) -> DemoRealm:
    """Build the demo realm on ``p``: the demo guest in 2 MiB of RAM, a shared window for
    the token, host calls that hand over ``challenge`` (random by default) and collect the
    token; ``on_line`` receives each line the realm prints."""
    layout = programs.GuestLayout()
    shared_ipa = layout.unprotected_base + SHARED_OFFSET
    image = programs.demo(layout, shared_ipa)
    spec = RealmSpec(
        segments=(Segment(image.base, image.data),),
        entry=image.entry,
        ram=((layout.ram_base, layout.ram_size),),
        s2sz=layout.s2sz,
        rpv=b"ccasim demo realm".ljust(64, b"\0"),
        shared=((shared_ipa, 2 * 4096),),
    )
    nonce = os.urandom(64) if challenge is None else challenge
    token: dict[str, bytes] = {}

    def host_call(call: HostCall) -> list[int] | None:
        if call.imm == programs.CHALLENGE_HOST_CALL_IMM:
            words = [int.from_bytes(nonce[i : i + 8], "little") for i in range(0, 64, 8)]
            return words + list(call.gprs[8:])
        if call.imm == programs.TOKEN_HOST_CALL_IMM:
            ipa, length, status = call.gprs[:3]
            if status == 0 and 0 < length <= 2 * 4096:
                token["bytes"] = vmm.read_shared(vm, ipa, length)
        return None

    line = bytearray()

    def uart(byte: bytes) -> None:
        line.extend(byte)
        if byte == b"\n":
            if on_line is not None:
                on_line(line.decode(errors="replace").rstrip())
            line.clear()

    vmm = Vmm(p, console=uart, host_call=host_call)
    vm = vmm.create(spec)
    return DemoRealm(vmm, vm, spec, layout, nonce, token)


def run_demo(console: Console | None, tracer: Tracer | None = None,
             check: bool = False) -> list[Step]:
    """The demo's steps; ``console`` None runs it silently; ``check`` verifies the
    platform's invariants after every SMC, REC exit and GPT transition."""
    steps: list[Step] = []

    def step(name: str, ok: bool, detail: str, t0: float, **data: Any) -> None:
        steps.append(Step(name, ok, detail, time.perf_counter() - t0, data))
        if console is not None:
            mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
            console.print(f" {mark} [bold]{name:<10}[/bold] {detail} "
                          f"[dim]({steps[-1].seconds * 1000:.0f} ms)[/dim]")

    # 1. boot ------------------------------------------------------------------------------
    t0 = time.perf_counter()
    p = Platform(check_invariants=check)
    if tracer is not None:
        p.attach_tracer(tracer)
    boot_summary = _gpt_counts(p)
    g = p.monitor.gpt.geometry
    step("boot", p.el3.rmm_boot_status == 0,
         f"EL3 built the GPT (PPS {g.t} bits, {len(p.cpus)} PEs), enabled the GPC and booted "
         f"the RMM (RMI 1.0); platform token cached", t0)

    # 2. build -----------------------------------------------------------------------------
    t0 = time.perf_counter()

    def realm_line(text: str) -> None:
        if console is not None:
            console.print(f"   [cyan]realm>[/cyan] {escape(text)}", highlight=False)

    demo_realm = build_demo_realm(p, on_line=realm_line)
    vmm, vm, spec, layout = demo_realm.vmm, demo_realm.vm, demo_realm.spec, demo_realm.layout
    challenge, token = demo_realm.challenge, demo_realm.token
    predicted = predict_rim(spec).rim
    with p.cpus[0].probe(SecurityState.REALM)._running() as pe:
        from ..rmm.objects import Realm

        actual_rim = Realm.load(pe, vm.handle.rd).rim
    step("build", predicted == actual_rim,
         f"realm created through the RMI: {layout.ram_size >> 20} MiB RAM, "
         f"{len(spec.data_pages())} measured pages, 1 vCPU; RIM {actual_rim.hex()[:16]}… "
         f"{'= predicted offline' if predicted == actual_rim else '≠ prediction!'}", t0,
         rim=actual_rim.hex())

    # 3. run -------------------------------------------------------------------------------
    t0 = time.perf_counter()
    result = vmm.run(vm, max_exits=100_000, timeout_s=30)
    exits = ", ".join(f"{n} {k}" for k, n in result.exits.most_common())
    step("run", result.reason == "system_off",
         f"realm ran to PSCI SYSTEM_OFF ({sum(result.exits.values())} REC exits: {exits})",
         t0)

    # 4. attest ----------------------------------------------------------------------------
    t0 = time.perf_counter()
    if "bytes" not in token:
        step("attest", False, "the realm produced no token", t0)
    else:
        rem0 = measurement.extend_rem(measurement.HashAlgorithm.SHA_256, bytes(32),
                                      hashlib.sha256(programs.DEMO_WORKLOAD).digest())
        reference = {
            "realm": {"challenge": challenge.hex(), "rim": predicted.hex(),
                      "rems": [rem0.hex(), "", "", ""], "hash_algo": "sha-256",
                      "rpv": spec.rpv.hex()},
            "platform": {"lifecycles": ["secured"]},
        }
        verdict = verify_token(token["bytes"], cpak=p.el3.cpak_public_pem(),
                               reference=reference)
        step("attest", verdict.status == "affirming",
             f"{len(token['bytes'])}-byte CCA token (tag 907): signatures, binding, fresh "
             f"challenge, RIM = prediction, REM[0] = workload hash → {verdict.status}", t0,
             status=verdict.status)

    # 5. map -------------------------------------------------------------------------------
    t0 = time.perf_counter()
    view = memory_map_view(p)
    if console is not None:
        print_compact_map(console, view)
    if len(view.realms) != 1:
        step("map", False, f"{len(view.realms)} realms found in the granule tracker", t0)
    else:
        realm_view = view.realms[0]
        kinds = realm_view.by_kind()
        counts = {k: len(v) for k, v in kinds.items()}
        step("map", not view.problems,
             f"from the GPT and the RMM's granule tracker: {realm_view.label} holds "
             f"{counts.get('rd', 0)} RD, {counts.get('rec', 0)} REC + "
             f"{counts.get('rec_aux', 0)} aux, {counts.get('rtt', 0)} RTT and "
             f"{counts.get('data', 0)} DATA granules, "
             + ("all GPI Realm" if not view.problems else view.problems[0])
             + f"; it maps {len(realm_view.shared)} NS pages", t0,
             granules=counts, shared=len(realm_view.shared))

    # 6. isolation -------------------------------------------------------------------------
    t0 = time.perf_counter()
    target = vm.handle.data[layout.ram_base]
    try:
        leaked = p.host.read(target, 16)
        step("isolation", False, f"host read realm memory: {leaked.hex()}", t0)
    except GranuleProtectionFault as fault:
        step("isolation", True,
             f"host read of the realm's code granule at PA {fault.pa:#x} → Granule "
             f"Protection Fault ({fault.pas.name} PAS, GPI {Gpi(p.el3.gpi(target)).name}, "
             f"GPT level {fault.level})", t0)

    # 7. teardown --------------------------------------------------------------------------
    t0 = time.perf_counter()
    vmm.destroy(vm)
    leftovers = p.rmm.tracker.nonzero()
    clean = not leftovers and _gpt_counts(p) == boot_summary
    step("teardown", clean,
         "realm destroyed, every granule undelegated; GPT back to its boot state"
         if clean else f"{len(leftovers)} granules still tracked", t0)
    return steps


def _gpt_counts(p: Platform) -> list[tuple[str, dict[int, int]]]:
    return [(r.name, counts) for r, counts in p.el3.gpt_summary()]


@app.command()
def demo(
    trace: Annotated[Path | None, typer.Option(help="write a Chrome trace (Perfetto)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    check: Annotated[bool, typer.Option(
        "--check", help="verify the platform's invariants after every SMC and REC exit")] = False,
) -> None:
    """The main job: boot, build and run a realm, attest it, try to peek at it, clean up."""
    start = time.perf_counter()
    console = None if as_json else Console(highlight=False)
    if console is not None:
        console.print("[bold]ccasim demo[/bold] — an Arm CCA platform (RME) in Python: "
                      "EL3, RMM, a realm, its attestation")
    tracer = Tracer() if trace is not None else None
    try:
        steps = run_demo(console, tracer, check)
    except Exception as err:  # a bug in the model: one line, non-zero exit
        Console(stderr=True).print(f"[red]error:[/red] demo failed: {err}")
        raise typer.Exit(1) from None
    total = time.perf_counter() - start
    if tracer is not None and trace is not None:
        tracer.save(trace)
    ok = all(s.ok for s in steps)
    if as_json:
        print(json.dumps({"ok": ok, "seconds": round(total, 3),
                          "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail,
                                     "seconds": round(s.seconds, 4), **s.data}
                                    for s in steps]}, indent=2))
    elif console is not None:
        verdict = "[green]all steps passed[/green]" if ok else "[red]some steps failed[/red]"
        extra = f"; trace written to {trace}" if trace is not None else ""
        console.print(f"{verdict} in {total:.2f} s{extra}")
    if not ok:
        raise typer.Exit(1)
