"""``ccasim fuzz --host|--guest``: fuzzing campaigns (ccasim.fuzz)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from .main import app


def _error(message: str) -> None:
    Console(stderr=True).print(Text.assemble(("error:", "red"), " ", message),
                               highlight=False, soft_wrap=True)


@app.command()
def fuzz(
    host: Annotated[bool, typer.Option(
        "--host", help="hostile host: random RMI and FF-A calls, RecRun/params corruption, "
                       "interleaved REC runs")] = False,
    guest: Annotated[bool, typer.Option(
        "--guest", help="hostile guest: random instruction streams and RSI/PSCI calls in a "
                        "realm")] = False,
    seed: Annotated[int, typer.Option(help="campaign seed (every run's seed derives from it)")]
    = 0,
    runs: Annotated[int, typer.Option(help="runs (host) or programs (guest) per round")] = 8,
    steps: Annotated[int | None, typer.Option(
        help="steps per host run / instruction items per guest program "
             "[default: 300 / 60]")] = None,
    workers: Annotated[int, typer.Option(help="local worker processes")] = 1,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="ADDRESS",
        help="run the shards as tasks on this Ray cluster (pip install 'ccasim[ray]')")]
    = None,
    duration: Annotated[float, typer.Option(
        help="long mode: keep running rounds of --runs runs for this many seconds "
             "(0: one round)")] = 0.0,
    out: Annotated[Path, typer.Option(
        help="where reproducers (and a summary) are written when a failure is found")]
    = Path("ccasim-fuzz-out"),
    shrink: Annotated[bool, typer.Option(help="shrink failures to a minimal sequence")]
    = True,
    shrink_time: Annotated[float, typer.Option(help="seconds to spend shrinking each "
                                                    "distinct failure")] = 60.0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable summary")] = False,
) -> None:
    """Fuzz the model; exit 1 when a failure is found (its reproducers are written to --out).

    Every run boots a platform with the invariant checker on. Failures (an exception
    escaping an SMC, an invariant violation, an isolation breach, memory outside a realm
    changing while it runs, an exit the spec does not define) are shrunk and written as
    standalone Python reproducers, one per distinct failure signature."""
    from ..fuzz.campaign import CampaignResult, merge, run_campaign

    if host == guest:
        _error("choose one of --host and --guest")
        raise typer.Exit(2)
    for name, value in (("--runs", runs), ("--workers", workers)):
        if value < 1:
            _error(f"{name} must be at least 1")
            raise typer.Exit(2)
    if steps is not None and steps < 1:
        _error("--steps must be at least 1")
        raise typer.Exit(2)
    kind = "host" if host else "guest"
    results: list[CampaignResult] = []
    deadline = time.monotonic() + duration
    shown = time.monotonic()
    start = 0
    try:
        while True:
            result = run_campaign(kind, runs, steps, workers, ray, seed=seed, start=start,
                                  shrink=shrink, shrink_seconds=shrink_time)
            results.append(result)
            start += runs
            now = time.monotonic()
            if not as_json and duration > 0 and now - shown >= 10:
                shown = now
                done = merge(results)
                Console(stderr=True).print(
                    f"[dim]{len(results)} rounds, {done.runs} runs, {done.total_steps} steps, "
                    f"{len(done.failures)} distinct failures[/dim]", highlight=False)
            if duration <= 0 or now >= deadline:
                break
    except RuntimeError as err:  # e.g. Ray not installed
        _error(str(err))
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        if not results:
            raise
    total = merge(results)
    paths = total.write(out) if total.failures else []
    if as_json:
        print(json.dumps(total.to_dict(), indent=2))
    else:
        _print(total)
    for path in paths:
        Console(stderr=True).print(f"reproducer: {path}", highlight=False, soft_wrap=True)
    raise typer.Exit(1 if total.failures else 0)


def _print(result: object) -> None:
    from ..fuzz.campaign import CampaignResult

    assert isinstance(result, CampaignResult)
    console = Console()
    unit = "steps" if result.kind == "host" else "items"
    extra = f", {result.total_entries} REC entries" if result.kind == "guest" else ""
    console.print(
        f"[bold]ccasim fuzz --{result.kind}[/bold] seed {result.seed}: {result.runs} runs, "
        f"{result.total_steps} {unit}{extra} in {result.fuzz_seconds:.1f} s "
        f"({result.steps_per_second:.0f} {unit}/s, {result.backend}, "
        f"{result.workers} worker{'s' if result.workers != 1 else ''})", highlight=False,
        soft_wrap=True)
    if not result.failures:
        console.print("[green]no failures[/green]")
        return
    console.print(f"[red]{len(result.failures)} distinct "
                  f"failure{'s' if len(result.failures) != 1 else ''}:[/red]")
    for f in result.failures:
        console.print(Text.assemble(
            "  ", (f.signature, "bold"), f"  ({len(f.runs)} run{'s' if len(f.runs) != 1 else ''}"
            f", {f.original_length} -> {f.shrunk_length} {unit})\n    {f.failure.summary}"),
            highlight=False, soft_wrap=True)
