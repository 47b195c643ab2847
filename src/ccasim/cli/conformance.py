"""``ccasim conformance``: every RMI/RSI failure condition and the test that triggers it."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..conformance import Report, build_report, load_hits
from .main import app


def _error(message: str) -> None:
    Console(stderr=True).print(Text.assemble(("error:", "red"), " ", message),
                               highlight=False, soft_wrap=True)


def _run_suite(tests: Path, quiet: bool) -> tuple[Path, int]:
    """Run the test suite with the recorder; returns the recording and pytest's exit code."""
    out = Path(tempfile.mkdtemp(prefix="ccasim-conformance-")) / "conformance.json"
    cmd = [sys.executable, "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider",
           f"--conformance-out={out}", "--conformance-check=off"]
    proc = subprocess.run(cmd, capture_output=quiet, text=True, check=False)
    if not out.exists():
        detail = (proc.stdout or "")[-2000:] + (proc.stderr or "")[-2000:] if quiet else ""
        _error(f"the test run wrote no recording (pytest exit {proc.returncode}; does "
               f"{tests}/conftest.py register ccasim.conformance.ConformancePlugin?) "
               + detail.strip())
        raise typer.Exit(2)
    return out, proc.returncode


def _table(report: Report, missing_only: bool) -> Table:
    table = Table(title="RMI / RSI failure conditions", show_lines=False)
    table.add_column("command", style="bold", no_wrap=True)
    table.add_column("condition", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("", justify="center", no_wrap=True)
    table.add_column("triggered by", overflow="fold")
    for iface, name in report.commands:
        rows = [r for r in report.rows
                if (r.condition.interface, r.condition.command) == (iface, name)]
        if missing_only:
            rows = [r for r in rows if r.verdict == "MISSING"]
            if not rows:
                continue
        if not rows:
            table.add_row(name, Text("no failure conditions", style="dim"), "", "", "")
            continue
        for i, row in enumerate(rows):
            c = row.condition
            if row.verdict == "tested":
                first = row.tests[0].removeprefix("tests/")
                more = f" (+{len(row.tests) - 1})" if len(row.tests) > 1 else ""
                mark, by = Text("✓", style="green"), Text(first + more)
            elif row.verdict == "unreachable":
                mark, by = Text("–", style="yellow"), Text(f"unreachable: {c.unreachable}",
                                                           style="yellow")
            else:
                mark, by = Text("✗", style="bold red"), Text("no test", style="bold red")
            table.add_row(name if i == 0 else "", c.label, c.status.removeprefix("ERROR_"),
                          mark, by)
    return table


@app.command()
def conformance(
    recording: Annotated[Path | None, typer.Argument(
        help="a recording written by `pytest --conformance-out FILE`")] = None,
    run: Annotated[bool, typer.Option("--run", help="run the test suite to record")] = False,
    tests: Annotated[Path, typer.Option(help="the test suite for --run")] = Path("tests"),
    missing: Annotated[bool, typer.Option("--missing", help="list only the gaps")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Which test triggers each RMI/RSI failure condition; exit 1 if one has none."""
    if (recording is None) == (not run):
        _error("give either a recording (pytest --conformance-out FILE) or --run")
        raise typer.Exit(2)
    suite_status = 0
    if run:
        if not tests.is_dir():
            _error(f"no test suite at {tests}")
            raise typer.Exit(2)
        recording, suite_status = _run_suite(tests, quiet=as_json)
    assert recording is not None
    try:
        hits, complete = load_hits(recording)
    except (OSError, ValueError, KeyError, TypeError) as err:
        _error(f"cannot read the recording {recording}: {err}")
        raise typer.Exit(2) from None
    report = build_report(hits)
    if as_json:
        print(json.dumps({**report.to_json(), "complete": complete,
                          "suite_exit": suite_status}, indent=2))
    else:
        console = Console(highlight=False)
        if not missing or report.missing:
            console.print(_table(report, missing))
        tested = sum(1 for r in report.rows if r.verdict == "tested")
        console.print(f"{tested} of {len(report.rows)} conditions triggered by a test, "
                      f"{len(report.unreachable)} unreachable, "
                      f"[{'red' if report.missing else 'green'}]{len(report.missing)} without "
                      f"a test[/]")
        for (iface, cmd, label), who in sorted(report.undeclared.items()):
            console.print(f"[red]{iface} {cmd} {label}[/red]: raised by {who[0]} but "
                          "declared in no condition table")
        if not complete:
            console.print("[yellow]the recording is not from a complete, passing run of the "
                          "whole suite: conditions may be missing only because their tests "
                          "did not run[/yellow]")
    raise typer.Exit(0 if report.ok else 1)
