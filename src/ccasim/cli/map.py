"""``ccasim map``: the physical memory map by PAS (from the GPT) and by owner.

Terminal rendering of :class:`ccasim.mapview.MapView`: one address-ordered bar per region
(upper half of each cell: owner / kind, lower half: PAS from the GPT; without colours,
two rows of letters), a detail bar where a region holds a few interesting granules, a
legend, the owners and every realm's granules by kind. ``--out FILE.svg`` writes the same
picture as SVG; ``--out FILE.png`` converts it with whatever converter is installed.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.columns import Columns
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ..arch.memory import GRANULE_SIZE
from ..config import ConfigError, PlatformConfig
from ..mapview import (
    GPI_CHARS,
    GPI_COLORS,
    KINDS,
    Granule,
    MapView,
    RegionView,
    address_ranges,
    cells,
    gpi_counts_text,
    gpi_label,
    memory_map_view,
    render_svg,
    size_text,
)
from ..platform import Platform
from .main import _parse_size, app

_PREFIX = 37  # " name        base         size  " before each bar


class MapError(Exception):
    """A map that cannot be written; the message is one line."""


def _bar_width(console: Console) -> int:
    return max(16, min(64, console.width - _PREFIX - 1))


def _colored(console: Console) -> bool:
    return console.color_system is not None and not console.no_color


def _bar(console: Console, region: RegionView, lo: int, hi: int, width: int) -> list[Text]:
    """The bar of ``[lo, hi)``: one line of half blocks in colour, else two lines of letters
    (kind, then PAS)."""
    row = cells(region, lo, hi, width)
    if _colored(console):
        text = Text()
        for c in row:
            text.append("▀", Style(color=KINDS[c.kind].color,
                                   bgcolor=GPI_COLORS.get(c.gpi, "#636363")))
        return [text]
    kinds = Text("".join(KINDS[c.kind].char for c in row))
    pas = Text("".join(GPI_CHARS.get(c.gpi, "?") for c in row), style="dim")
    return [kinds, pas]


def _line(name: str, base: int, size: int, bar: Text, *, bold: bool = True) -> Text:
    head = Text(" ")
    head.append(f"{name:<12}", style="bold" if bold else "")
    head.append(f"{base:#010x}".rjust(12) + f"  {size_text(size):>8}  ")
    return head + bar


def _legend(console: Console, view: MapView) -> Columns:
    """Swatches (or letters) for the kinds on the map, then for the PAS, in columns."""
    return Columns(_legend_items(console, view), padding=(0, 2))


def _legend_items(console: Console, view: MapView) -> list[Text]:
    items: list[Text] = []
    colored = _colored(console)
    for kind in view.kinds_present():
        swatch = ("■", Style(color=kind.color)) if colored else (kind.char, Style(bold=True))
        items.append(Text.assemble(swatch, f" {kind.label}"))
    for gpi in sorted({s.gpi for r in view.regions for s in r.spans}):
        swatch = (("▄", Style(color=GPI_COLORS.get(gpi, "#636363"))) if colored
                  else (GPI_CHARS.get(gpi, "?"), Style(bold=True)))
        items.append(Text.assemble(swatch, f" PAS {gpi_label(gpi)}"))
    return items


def print_map(console: Console, view: MapView) -> None:
    """The full terminal rendering."""
    g = view.gpt
    console.print(Text.assemble(
        ("ccasim map", "bold"),
        f" — {view.cpus} PEs, PA {view.pa_bits} bits · GPT: PPS {g['pps_bits']} bits, L0 entry "
        f"{size_text(1 << g['l0gptsz_bits'])}, {size_text(1 << g['granule_bits'])} granules, "
        f"L0 table at {g['l0_base']:#x}, {len(g['l1_tables'])} L1 tables"))
    colored = _colored(console)
    console.print(Text(
        "each bar is in address order; upper half of a cell: owner / kind, lower half: PAS "
        "(GPT)" if colored else
        "each bar is in address order; first row: owner / kind, second row: PAS (GPT)",
        style="dim"))
    width = _bar_width(console)
    indent = " " * _PREFIX
    for region in view.regions:
        bars = _bar(console, region, region.base, region.end, width)
        console.print(_line(region.name, region.base, region.size, bars[0]), no_wrap=True,
                      crop=True)
        for extra in bars[1:]:
            console.print(Text(indent) + extra, no_wrap=True, crop=True)
        console.print(Text(f"{indent}{gpi_counts_text(region)} · {region.description}",
                           style="dim"), overflow="ellipsis", no_wrap=True)
        zoom = region.zoom()
        if zoom is not None:
            lo, hi = zoom
            bars = _bar(console, region, lo, hi, width)
            console.print(_line("└ detail", lo, hi - lo, bars[0], bold=False), no_wrap=True,
                          crop=True)
            for extra in bars[1:]:
                console.print(Text(indent) + extra, no_wrap=True, crop=True)
            console.print(Text(f"{indent}{_detail_note(lo, hi, width)}", style="dim"))
    console.print()
    console.print(_legend(console, view))
    console.print()

    owners = Table(title="Owners", title_justify="left", show_edge=False, pad_edge=False)
    for col, justify in (("owner", "left"), ("granules", "right"), ("size", "right"),
                         ("PAS", "left"), ("made of", "left")):
        owners.add_column(col, justify=justify)  # type: ignore[arg-type]
    for owner, granules, kinds, gpis in view.owners():
        owners.add_row(escape(owner), str(granules), size_text(granules * GRANULE_SIZE),
                       ", ".join(gpis),
                       ", ".join(f"{k} {n}" for k, n in kinds.items()))
    console.print(owners)
    console.print()

    if not view.realms:
        console.print("No realms (the RMM's granule tracker holds no RD). "
                      "[dim]Try `ccasim map --demo`.[/dim]")
    else:
        realms = Table(title="Realm granules (from the RMM's granule tracker and RTT walk)",
                       title_justify="left", show_edge=False, pad_edge=False)
        for col, justify in (("realm", "left"), ("kind", "left"), ("count", "right"),
                             ("physical addresses", "left"), ("notes", "left")):
            realms.add_column(col, justify=justify,  # type: ignore[arg-type]
                              overflow="fold")
        for realm in view.realms:
            first = True
            rows: list[tuple[str, list[Granule]]] = list(realm.by_kind().items())
            if realm.shared:
                rows.append(("ns_shared", realm.shared))
            for kind, members in rows:
                label = (f"{realm.label}\nRD {realm.rd:#x}, {realm.state}" if first else "")
                marker = (("■", Style(color=KINDS[kind].color)) if _colored(console)
                          else (KINDS[kind].char, Style()))
                realms.add_row(label, Text.assemble(marker, " ", KINDS[kind].label),
                               str(len(members)),
                               address_ranges(g.pa for g in members), _notes(kind, members))
                first = False
            realms.add_section()
        console.print(realms)
    for problem in view.problems:
        console.print(Text.assemble(("problem:", "red"), " ", problem))


def _detail_note(lo: int, hi: int, width: int) -> str:
    granules = (hi - lo) // GRANULE_SIZE
    per = "1 granule" if granules <= width else f"≈{granules / width:.1f} granules"
    return f"{granules} granules, 1 cell = {per}"


def _notes(kind: str, granules: list[Granule]) -> str:
    if kind == "rtt":
        levels: dict[int, int] = {}
        for g in granules:
            levels[g.level or 0] = levels.get(g.level or 0, 0) + 1
        return ", ".join(f"level {lvl} ×{n}" for lvl, n in sorted(levels.items()))
    if kind in ("data", "ns_shared"):
        ipas = sorted(g.ipa for g in granules if g.ipa is not None)
        return f"IPA {address_ranges(ipas, limit=2)}" if ipas else ""
    if kind == "rec_aux":
        recs = {g.rec for g in granules}
        return f"{len(granules) // max(len(recs), 1)} per REC"
    return ""


def print_compact_map(console: Console, view: MapView, indent: str = "   ") -> None:
    """A few lines for ``ccasim demo``: the detail bar of the region holding the realm
    (or every region, if nothing stands out) and a legend."""
    width = max(16, min(64, console.width - len(indent) - 26))
    shown = False
    for region in view.regions:
        zoom = region.zoom()
        if zoom is None:
            continue
        lo, hi = zoom
        bars = _bar(console, region, lo, hi, width)
        head = Text(f"{indent}map> ", style="cyan")
        head.append(f"{region.name} {lo:#x}–{hi - 1:#x} ")
        console.print(head + bars[0], no_wrap=True, crop=True)
        for extra in bars[1:]:
            console.print(Text(" " * len(head.plain)) + extra, no_wrap=True, crop=True)
        shown = True
    if not shown:
        console.print(Text(f"{indent}map> no realm granules", style="cyan"))
        return
    legend = Text()
    for item in _legend_items(console, _zoomed(view)):
        legend.append_text(item)
        legend.append("  ")
    console.print(Padding(legend, (0, 0, 0, len(indent) + 5)))


def _zoomed(view: MapView) -> MapView:
    """``view`` with each region cut down to its detail range (for the compact legend)."""
    regions = []
    for r in view.regions:
        zoom = r.zoom()
        if zoom is None:
            continue
        lo, hi = zoom
        spans = [s for s in r.spans if s.end > lo and s.base < hi]
        regions.append(RegionView(r.name, lo, hi - lo, r.kind, r.boot_gpi, r.description,
                                  r.gpi_counts, spans))
    return MapView(view.cpus, view.pa_bits, view.gpt, regions, view.realms, view.delegated,
                   view.problems)


# ------------------------------------------------------------------------------- output files


def write_map(view: MapView, out: Path) -> None:
    """Write ``view`` as SVG, or as PNG through an installed converter."""
    suffix = out.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise MapError(f"--out {out}: the file name must end in .svg or .png")
    svg = render_svg(view)
    try:
        if suffix == ".svg":
            out.write_text(svg)
        else:
            _write_png(svg, out)
    except OSError as err:
        raise MapError(f"cannot write {out}: {err.strerror or err}") from None


_CONVERTERS = (
    ("rsvg-convert", ["{svg}", "-o", "{png}"]),
    ("inkscape", ["{svg}", "--export-type=png", "--export-filename={png}"]),
    ("magick", ["{svg}", "{png}"]),
    ("convert", ["{svg}", "{png}"]),
)


def _write_png(svg: str, out: Path) -> None:
    """PNG through cairosvg if it is installed, else the first converter on PATH that
    produces one (rsvg-convert, Inkscape, ImageMagick)."""
    try:
        cairosvg = importlib.import_module("cairosvg")
    except ImportError:
        pass
    else:
        cairosvg.svg2png(bytestring=svg.encode(), write_to=str(out))
        return
    tried = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "map.svg"
        src.write_text(svg)
        for tool, args in _CONVERTERS:
            path = shutil.which(tool)
            if path is None:
                continue
            tried.append(tool)
            target = Path(tmp) / "map.png"
            cmd = [path, *(a.format(svg=src, png=target) for a in args)]
            try:
                done = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if done.returncode == 0 and target.is_file() and \
                    target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n":
                out.write_bytes(target.read_bytes())
                return
    why = f"none of them works here ({', '.join(tried)} failed)" if tried else \
        "none of them is installed"
    raise MapError(f"PNG output needs cairosvg (pip install cairosvg), rsvg-convert, Inkscape "
                   f"or ImageMagick and {why}; use --out FILE.svg instead")


# ------------------------------------------------------------------------------- command


@app.command("map")
def map_command(
    demo: Annotated[bool, typer.Option(
        "--demo", help="build and run the demo realm first, so there is something to see")
    ] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help="also write the picture: FILE.svg, or FILE.png (needs a converter)")
    ] = None,
    dram: Annotated[str, typer.Option(help="Non-secure DRAM size, e.g. 2G or 1T")] = "2G",
    cpus: Annotated[int, typer.Option(help="number of PEs")] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show the physical memory map by PAS (from the GPT) and by owner (EL3, the RMM, the
    Secure world, each realm, the host).

    Exit status: 0, 1 if the GPT and the RMM's granule tracker disagree, 2 usage error.
    """
    err = Console(stderr=True)

    def fail(message: str, code: int = 2) -> typer.Exit:
        err.print(Text.assemble(("error:", "red"), " ", message), highlight=False,
                  soft_wrap=True)
        return typer.Exit(code)

    if out is not None and out.suffix.lower() not in (".svg", ".png"):
        raise fail(f"--out {out}: the file name must end in .svg or .png")
    try:
        dram_size = _parse_size(dram)
    except ValueError:
        raise fail(f"--dram {dram}: not a size (e.g. 2G, 512M, 1T)") from None
    try:
        config = PlatformConfig(dram_size=dram_size, cpus=cpus)
    except ConfigError as e:
        raise fail(f"bad platform configuration: {e}") from None
    start = time.perf_counter()
    p = Platform(config)
    note = "the booted platform, no realm"
    if demo:
        from .demo import build_demo_realm

        realm = build_demo_realm(p)
        result = realm.vmm.run(realm.vm, max_exits=100_000, timeout_s=30)
        note = f"the demo realm, built through the RMI and run to {result.reason.upper()}"
    view = memory_map_view(p)
    if out is not None:
        try:
            write_map(view, out)
        except MapError as e:
            raise fail(str(e)) from None
    if as_json:
        print(json.dumps({"note": note, **view.to_dict()}, indent=2))
    else:
        console = Console(highlight=False)
        print_map(console, view)
        console.print(f"[dim]{escape(note)}; mapped in "
                      f"{(time.perf_counter() - start) * 1000:.0f} ms"
                      + (f"; picture written to {escape(str(out))}" if out else "") + "[/dim]")
    if view.problems:
        raise typer.Exit(1)
