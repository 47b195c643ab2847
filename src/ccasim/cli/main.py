"""``ccasim`` command-line interface (typer + rich)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..arch.gpt import Gpi
from ..config import ConfigError, PlatformConfig
from ..platform import Platform

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="ccasim: an executable model of the Arm Confidential Compute Architecture.",
)

_GPI_NAMES = {g.value: g.name for g in Gpi}


@app.callback()
def _root() -> None:
    """ccasim: an executable model of the Arm Confidential Compute Architecture."""


def _size(n: int) -> str:
    for unit, div in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div and n % div == 0:
            return f"{n // div} {unit}"
    return f"{n} B"


def _parse_size(text: str) -> int:
    text = text.strip().upper().replace("IB", "").replace("B", "")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if text and text[-1] in mult:
        return int(float(text[:-1]) * mult[text[-1]])
    return int(text, 0)


def platform_info(p: Platform, boot_seconds: float) -> dict[str, object]:
    """A machine-readable description of a booted platform."""
    gpt = p.monitor.gpt
    regions = []
    for region, counts in p.el3.gpt_summary():
        regions.append({
            "name": region.name,
            "base": region.base,
            "size": region.size,
            "kind": region.kind.value,
            "pas": region.pas.name,
            "description": region.description,
            "gpi_granules": {_GPI_NAMES.get(k, f"{k:#x}"): v for k, v in sorted(counts.items())},
        })
    g = gpt.geometry
    return {
        "boot_seconds": round(boot_seconds, 4),
        "cpus": len(p.cpus),
        "pa_bits": p.pa_bits,
        "gpt": {
            "GPCCR_EL3": p.el3.sysreg("GPCCR_EL3"),
            "GPTBR_EL3": p.el3.sysreg("GPTBR_EL3"),
            "pps_bits": g.t,
            "l0gptsz_bits": g.s,
            "granule_bits": g.p,
            "l0_base": gpt.l0_base,
            "l0_entries": g.l0_entries,
            "l1_table_bytes": g.l1_table_size,
        },
        "rmm_boot_status": p.el3.rmm_boot_status,
        "regions": regions,
    }


@app.command()
def info(
    dram: Annotated[str, typer.Option(help="Non-secure DRAM size, e.g. 2G or 1T")] = "2G",
    cpus: Annotated[int, typer.Option(help="number of PEs")] = 4,
    pa_bits: Annotated[int, typer.Option(help="physical address bits (PARange)")] = 48,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Cold-boot the platform and print its memory map and GPT summary."""
    console = Console()
    try:
        size = _parse_size(dram)
    except ValueError:
        console.print(f"[red]error:[/red] --dram: {dram!r} is not a size (e.g. 2G, 512M, 1T)")
        raise typer.Exit(2) from None
    try:
        config = PlatformConfig(dram_size=size, cpus=cpus, pa_bits=pa_bits)
    except (ConfigError, ValueError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    start = time.perf_counter()
    p = Platform(config)
    elapsed = time.perf_counter() - start
    data = platform_info(p, elapsed)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    gpt = data["gpt"]
    assert isinstance(gpt, dict)
    console.print(
        f"[bold]ccasim platform[/bold]: {len(p.cpus)} PEs, PA {p.pa_bits} bits, "
        f"booted in {elapsed * 1000:.1f} ms, RMM boot status {data['rmm_boot_status']}"
    )
    console.print(
        f"GPCCR_EL3 = {gpt['GPCCR_EL3']:#x}  GPTBR_EL3 = {gpt['GPTBR_EL3']:#x}  "
        f"PPS {gpt['pps_bits']} bits, L0 entry covers {_size(1 << gpt['l0gptsz_bits'])}, "
        f"L0 table at {gpt['l0_base']:#x} ({gpt['l0_entries']} entries)"
    )
    table = Table(title="Physical memory map")
    for col in ("region", "base", "size", "kind", "boot PAS", "GPT now (granules)"):
        table.add_column(col)
    for r in data["regions"]:  # type: ignore[attr-defined]
        counts = ", ".join(f"{k}: {v}" for k, v in r["gpi_granules"].items())
        table.add_row(r["name"], f"{r['base']:#x}", _size(r["size"]), r["kind"], r["pas"],
                      counts)
    console.print(table)


_VERIFY_EXIT = {"affirming": 0, "contraindicated": 1, "warning": 3}


@app.command()
def verify(
    token: Annotated[Path, typer.Argument(
        metavar="TOKEN", show_default=False,
        help="CCA token (CBOR): tag 907 or 399, or a bare platform token")],
    cpak: Annotated[Path | None, typer.Option(
        "--cpak", help="CPAK public key (PEM, DER or JWK) to verify the platform signature; "
                       "without it the platform signature is reported unverified")] = None,
    reference: Annotated[Path | None, typer.Option(
        "--reference", help="reference values, .json or .toml (sections realm, platform)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="EAR-shaped JSON result")] = False,
) -> None:
    """Verify a CCA attestation token and appraise it against reference values.

    Exit status: 0 affirming, 1 contraindicated, 2 usage error (unreadable file, bad reference
    values), 3 warning (e.g. platform signature unverified).
    """
    from ..attestation.verify import ReferenceValues, ReferenceValuesError, verify_token

    err = Console(stderr=True)

    def fail(message: str) -> typer.Exit:
        err.print(Text.assemble(("error:", "red"), " ", message), highlight=False,
                  soft_wrap=True)
        return typer.Exit(2)

    def read(path: Path, what: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as e:
            raise fail(f"cannot read {what} {path}: {e.strerror or e}") from None

    data = read(token, "token")
    key = read(cpak, "CPAK") if cpak is not None else None
    refs = None
    if reference is not None:
        read(reference, "reference values")
        try:
            refs = ReferenceValues.load(reference)
        except (ReferenceValuesError, UnicodeDecodeError) as e:
            raise fail(f"reference values {reference}: {e}") from None
    result = verify_token(data, cpak=key, reference=refs)
    if as_json:
        print(result.to_json())
    else:
        Console().print(result)
    raise typer.Exit(_VERIFY_EXIT[result.status])


# Commands defined in their own modules register themselves on ``app``.
from . import conformance as _conformance  # noqa: E402, F401
from . import demo as _demo  # noqa: E402, F401
from . import fuzz as _fuzz  # noqa: E402, F401
from . import map as _map  # noqa: E402, F401
from . import run as _run  # noqa: E402, F401


def main() -> None:
    """The ``ccasim`` entry point. Usage errors (unknown command or option, bad or missing
    argument) are one line on stderr with exit status 2, not click's boxed usage panel."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        Console(stderr=True).print("[red]aborted[/red]")
        raise SystemExit(1) from None
    except Exception as err:
        # click's ClickException (UsageError, BadParameter, ...), whichever click typer uses
        exit_code, message = getattr(err, "exit_code", None), getattr(err, "format_message", None)
        if not isinstance(exit_code, int) or not callable(message):
            raise
        ctx = getattr(err, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        Console(stderr=True).print(Text.assemble(("error:", "red"), " ", message() + hint),
                                   highlight=False, soft_wrap=True)
        raise SystemExit(exit_code) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
