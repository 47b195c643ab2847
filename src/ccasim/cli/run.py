"""``ccasim run REALM.toml`` and ``ccasim measure REALM.toml``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from ..attestation.rim import predict_rim
from ..host.description import DescriptionError, load_description
from ..host.vmm import HostCall, Vmm
from ..platform import Platform
from ..rmm import measurement
from ..trace import Tracer
from .main import app

EXIT_CODES = {"system_off": 0, "system_reset": 3}


def _error(message: str) -> None:
    """One line on stderr; the message is plain text (no markup, no wrapping)."""
    Console(stderr=True).print(Text.assemble(("error:", "red"), " ", message),
                               highlight=False, soft_wrap=True)


def _load(path: Path) -> object:
    try:
        return load_description(path)
    except DescriptionError as err:
        _error(str(err))
        raise typer.Exit(2) from None


@app.command()
def run(
    description: Annotated[Path, typer.Argument(help="realm description (TOML)")],
    trace: Annotated[Path | None, typer.Option(help="write a Chrome trace (Perfetto)")] = None,
    max_exits: Annotated[int, typer.Option(help="stop after this many REC exits")] = 1_000_000,
    timeout: Annotated[float, typer.Option(help="stop after this many seconds")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable summary")] = False,
    check: Annotated[bool, typer.Option(
        "--check", help="verify the platform's invariants after every SMC and REC exit")] = False,
) -> None:
    """Build and run a realm; its console is streamed; exit 0 on SYSTEM_OFF."""
    spec = _load(description)
    from ..host.vmm import RealmSpec

    assert isinstance(spec, RealmSpec)
    p = Platform(check_invariants=check)
    tracer = Tracer() if trace is not None else None
    if tracer is not None:
        p.attach_tracer(tracer)

    def console(byte: bytes) -> None:
        if not as_json:
            sys.stdout.write(byte.decode(errors="replace"))
            sys.stdout.flush()

    def host_call(call: HostCall) -> None:
        if not as_json:
            Console(stderr=True).print(f"[dim]host call imm={call.imm:#x} "
                                       f"x0..x3={[hex(g) for g in call.gprs[:4]]}[/dim]")

    vmm = Vmm(p, console=console, host_call=host_call)
    start = time.perf_counter()
    # Progress bars on a terminal only (stderr), for big realms and long runs.
    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
        disable=as_json or not sys.stderr.isatty(),
    )
    with bars:
        task = bars.add_task("building the realm (measured pages)", total=None)
        try:
            vm = vmm.create(spec, progress=lambda done, total: bars.update(
                task, completed=done, total=total))
        except (RuntimeError, ValueError) as err:
            bars.stop()
            _error(f"building the realm failed: {err}")
            raise typer.Exit(1) from None
    result = vmm.run(vm, max_exits=max_exits, timeout_s=timeout)
    vmm.destroy(vm)
    if tracer is not None and trace is not None:
        tracer.save(trace)
    code = EXIT_CODES.get(result.reason, 1)
    if as_json:
        print(json.dumps({
            "reason": result.reason, "error": result.error, "exits": dict(result.exits),
            "console": result.console.decode(errors="replace"),
            "seconds": round(time.perf_counter() - start, 4)}, indent=2))
    else:
        stderr = Console(stderr=True)
        if result.error:
            _error(result.error)
        stderr.print(f"[dim]realm stopped: {result.reason} after "
                  f"{sum(result.exits.values())} exits, {result.seconds:.2f} s[/dim]")
    raise typer.Exit(code)


@app.command()
def measure(
    description: Annotated[Path, typer.Argument(help="realm description (TOML)")],
    reference_out: Annotated[Path | None, typer.Option(
        "--reference-out", help="write reference values for `ccasim verify`")] = None,
    explain: Annotated[bool, typer.Option(help="show every measured step")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Predict the realm's RIM without running anything."""
    spec = _load(description)
    from ..host.vmm import RealmSpec

    assert isinstance(spec, RealmSpec)
    trace = predict_rim(spec)
    algo = "sha-256" if spec.algorithm == measurement.HashAlgorithm.SHA_256 else "sha-512"
    reference = {"realm": {"rim": trace.rim.hex(), "hash_algo": algo, "rpv": spec.rpv.hex()},
                 "platform": {"lifecycles": ["secured"]}}
    if reference_out is not None:
        try:
            reference_out.write_text(json.dumps(reference, indent=2) + "\n")
        except OSError as err:
            _error(f"cannot write {reference_out}: {err.strerror or err}")
            raise typer.Exit(2) from None
    if as_json:
        out: dict[str, Any] = {"rim": trace.rim.hex(), "hash_algorithm": algo,
                               "reference": reference}
        if explain:
            out["steps"] = [{"step": name, "rim": rim.hex()} for name, rim in trace.steps]
        print(json.dumps(out, indent=2))
        return
    console = Console(highlight=False)
    if explain:
        for name, rim in trace.steps:
            console.print(f"[dim]{rim.hex()}[/dim]  {name}", soft_wrap=True)
    console.print(f"RIM ({algo}): [bold]{trace.rim.hex()}[/bold]", soft_wrap=True)
    if reference_out is not None:
        console.print(f"reference values written to {reference_out}", markup=False,
                      soft_wrap=True)
