"""Fuzzing campaigns: many seeded runs, sharded over local processes or a Ray cluster.

:func:`run_campaign` runs ``seeds`` runs of one fuzzer (``"host"``: :mod:`.host`, ``"guest"``:
:mod:`.guest`). Run ``i`` has the seed :func:`~ccasim.fuzz.common.derive_seed` gives for the
campaign seed and ``i``, so a run is the same whichever shard, process or machine executes
it. The runs are cut into contiguous shards and executed

* in this process (``workers=1``, no Ray address),
* by a ``concurrent.futures.ProcessPoolExecutor`` of ``workers`` spawned processes, or
* as Ray tasks on the cluster at ``ray_address`` (``pip install 'ccasim[ray]'``; Ray is
  imported only then; every node needs ccasim installed).

The results are merged in run order. Each distinct failure signature is then shrunk once —
from its lowest-numbered run, again through the same backend, one task per signature — and
turned into a reproducer script; reproducers are therefore deduplicated by signature and
the merged result does not depend on the number of workers (only the timings do).
"""

from __future__ import annotations

import importlib
import json
import multiprocessing
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import GUEST_MAX_EXITS, GUEST_TIME_LIMIT_S, Failure, ShrinkStats, derive_seed

KINDS = ("host", "guest")
DEFAULT_STEPS = {"host": 300, "guest": 60}


# ============================================================================ results
@dataclass
class RunOutcome:
    """One run: its global index and seed, the steps it executed (host steps or guest
    items), REC entries (guest), the time taken and the failure, if any."""

    index: int
    seed: int
    steps: int
    entries: int
    seconds: float
    failure: Failure | None = None
    trace: Any = None  # the failing run's steps / program (JSON-able), for shrinking
    end: str = ""

    def to_dict(self, *, timing: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "seed": self.seed, "steps": self.steps,
                               "entries": self.entries, "end": self.end,
                               "failure": self.failure.to_dict() if self.failure else None}
        if timing:
            out["seconds"] = round(self.seconds, 4)
        return out


@dataclass
class FailureReport:
    """A distinct failure (by signature): the runs that hit it, and the shrunk reproducer
    made from the first of them."""

    signature: str
    failure: Failure
    runs: list[int]
    seed: int
    original_length: int
    shrunk_length: int
    reproducer: str
    shrink_tests: int = 0
    path: Path | None = None

    def to_dict(self, *, timing: bool = True) -> dict[str, Any]:
        out = {"signature": self.signature, "failure": self.failure.to_dict(),
               "runs": self.runs, "seed": self.seed, "original_length": self.original_length,
               "shrunk_length": self.shrunk_length, "reproducer": self.reproducer,
               "shrink_tests": self.shrink_tests}
        if self.path is not None:
            out["path"] = str(self.path)
        return out


@dataclass
class CampaignResult:
    kind: str
    seed: int
    runs: int
    steps: int
    workers: int
    backend: str
    outcomes: list[RunOutcome] = field(default_factory=list)
    failures: list[FailureReport] = field(default_factory=list)
    seconds: float = 0.0
    fuzz_seconds: float = 0.0

    @property
    def total_steps(self) -> int:
        return sum(o.steps for o in self.outcomes)

    @property
    def total_entries(self) -> int:
        return sum(o.entries for o in self.outcomes)

    @property
    def steps_per_second(self) -> float:
        return self.total_steps / self.fuzz_seconds if self.fuzz_seconds else 0.0

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def to_dict(self, *, timing: bool = True) -> dict[str, Any]:
        """Everything, as JSON-able data; ``timing=False`` leaves out what depends on the
        machine and the sharding (times, workers, backend), for comparisons."""
        out: dict[str, Any] = {
            "kind": self.kind, "seed": self.seed, "runs": self.runs, "steps": self.steps,
            "total_steps": self.total_steps, "total_entries": self.total_entries,
            "outcomes": [o.to_dict(timing=timing) for o in self.outcomes],
            "failures": [f.to_dict(timing=timing) for f in self.failures],
        }
        if timing:
            out.update({"workers": self.workers, "backend": self.backend,
                        "seconds": round(self.seconds, 3),
                        "fuzz_seconds": round(self.fuzz_seconds, 3),
                        "steps_per_second": round(self.steps_per_second, 1)})
        return out

    def write(self, out_dir: Path) -> list[Path]:
        """Write each reproducer (``<kind>-<n>-<signature>.py``) and ``summary.json`` to
        ``out_dir``; returns the reproducers' paths."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for n, report in enumerate(self.failures, start=1):
            slug = re.sub(r"[^A-Za-z0-9]+", "_", report.signature).strip("_")[:60]
            path = out_dir / f"{self.kind}-{self.seed}-{n}-{slug}.py"
            path.write_text(report.reproducer)
            path.chmod(0o755)
            report.path = path
            paths.append(path)
        (out_dir / f"{self.kind}-{self.seed}-summary.json").write_text(
            json.dumps(self.to_dict(), indent=2) + "\n")
        return paths


# ============================================================================ tasks
# Top-level functions taking and returning plain data: they run in spawned processes and
# as Ray tasks.
def run_shard(kind: str, jobs: Sequence[tuple[int, int]], steps: int,
              options: dict[str, Any]) -> list[dict[str, Any]]:
    """Run ``jobs`` ((global index, seed) pairs) of fuzzer ``kind``; one dict per run."""
    out = []
    for index, seed in jobs:
        outcome = _run_one(kind, index, seed, steps, options)
        out.append({"index": outcome.index, "seed": outcome.seed, "steps": outcome.steps,
                    "entries": outcome.entries, "seconds": outcome.seconds,
                    "end": outcome.end, "trace": outcome.trace,
                    "failure": outcome.failure.to_dict() if outcome.failure else None})
    return out


def _run_one(kind: str, index: int, seed: int, steps: int,
             options: dict[str, Any]) -> RunOutcome:
    if kind == "host":
        from .host import run_host

        h = run_host(seed, steps)
        trace: Any = [s.to_dict() for s in h.steps] if h.failure else None
        return RunOutcome(index, seed, len(h.steps), 0, h.seconds, h.failure, trace,
                          "failure" if h.failure else "done")
    if kind == "guest":
        from .guest import run_guest

        g = run_guest(seed, steps, max_exits=int(options.get("max_exits", GUEST_MAX_EXITS)),
                      time_limit=float(options.get("time_limit", GUEST_TIME_LIMIT_S)))
        return RunOutcome(index, seed, len(g.program.items), g.entries, g.seconds,
                          g.failure, g.program.to_dict() if g.failure else None, g.end)
    raise ValueError(f"unknown fuzzer {kind!r}")


def shrink_task(kind: str, trace: Any, failure: dict[str, Any], title: str,
                options: dict[str, Any], seed: int = 0, steps: int = 0) -> dict[str, Any]:
    """Shrink one failing run (unless ``options["shrink"]`` is false) and make its
    reproducer. A failure of the host fuzzer's own code cannot be replayed from its steps:
    its reproducer re-runs the fuzzer with the run's seed."""
    fail = Failure.from_dict(failure)
    stats = ShrinkStats()
    budget = float(options.get("shrink_seconds", 60.0))
    do_shrink = bool(options.get("shrink", True))
    if kind == "host" and fail.kind == "fuzzer":
        n = len(trace)
        return {"length": n, "shrunk": n, "tests": 0, "failure": fail.to_dict(),
                "reproducer": _fuzzer_bug_script(fail, title, seed, steps)}
    if kind == "host":
        from . import host

        logged = [host.Step.from_dict(d) for d in trace]
        small = host.shrink_steps(logged, fail, budget_s=budget, stats=stats) if (
            do_shrink) else logged
        r = host.replay(small)
        final = r.failure if r.failure is not None and r.failure.signature == (
            fail.signature) else fail
        text = host.reproducer(small, final, title=title)
        return {"length": len(logged), "shrunk": len(small), "tests": stats.tests,
                "reproducer": text, "failure": final.to_dict()}
    from . import guest

    program = guest.GuestProgram.from_dict(trace)
    max_exits = int(options.get("max_exits", GUEST_MAX_EXITS))
    time_limit = float(options.get("time_limit", GUEST_TIME_LIMIT_S))
    small_p = guest.shrink_program(program, fail, budget_s=budget, stats=stats,
                                   max_exits=max_exits, time_limit=time_limit) if (
        do_shrink) else program
    g = guest.run_program(small_p, max_exits=max_exits, time_limit=time_limit)
    final = g.failure if g.failure is not None and g.failure.signature == (
        fail.signature) else fail
    text = guest.reproducer(small_p, final, title=title, max_exits=max_exits,
                            time_limit=time_limit)
    return {"length": len(program.items), "shrunk": len(small_p.items), "tests": stats.tests,
            "reproducer": text, "failure": final.to_dict()}


def _fuzzer_bug_script(fail: Failure, title: str, seed: int, steps: int) -> str:
    summary = str(fail).replace(chr(34) * 3, chr(39) * 3)
    return "\n".join([
        "#!/usr/bin/env python3",
        f'"""ccasim fuzz --host: a failure of the fuzzer itself ({title}).',
        "",
        summary,
        "",
        "Re-runs the fuzzer with the run's seed; exits 0 after printing the failure while it",
        "reproduces.",
        '"""',
        "import sys",
        "",
        "from ccasim.fuzz.host import run_host",
        "",
        f"failure = run_host({seed}, {steps}).failure",
        "print(failure)",
        "if failure is not None:",
        "    print(failure.detail)",
        f"assert failure is not None and failure.signature == {fail.signature!r}",
        "sys.exit(0)",
        "",
    ])


# ============================================================================ backends
class _Backend:
    """Runs a list of calls of top-level functions and returns their results in order."""

    name = "inline"
    parallelism = 1

    def map(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> list[Any]:
        return [fn(*args) for args in calls]

    def close(self) -> None:
        pass


class _Processes(_Backend):
    name = "processes"

    def __init__(self, workers: int) -> None:
        # spawn, not fork: forked children would inherit a timer thread that no longer
        # runs (ccasim.arch.execution.WATCHDOG) and never preempt a looping guest.
        self.parallelism = workers
        self.pool = ProcessPoolExecutor(max_workers=workers,
                                        mp_context=multiprocessing.get_context("spawn"))

    def map(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> list[Any]:
        futures = [self.pool.submit(fn, *args) for args in calls]
        return [f.result() for f in futures]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Ray(_Backend):
    name = "ray"

    def __init__(self, address: str, workers: int) -> None:
        try:
            self.ray: Any = importlib.import_module("ray")
        except ImportError as err:
            raise RuntimeError("--ray needs Ray: pip install 'ccasim[ray]'") from err
        self.connected = False
        if not self.ray.is_initialized():
            self.ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                          logging_level="ERROR", configure_logging=False)
            self.connected = True
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        self.parallelism = max(workers, cpus)
        self._remote: dict[Callable[..., Any], Any] = {}

    def map(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> list[Any]:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self.ray.remote(num_cpus=1, max_retries=0)(fn)
        refs = [remote.remote(*args) for args in calls]
        return list(self.ray.get(refs))

    def close(self) -> None:
        if self.connected:
            self.ray.shutdown()


def _backend(workers: int, ray_address: str | None) -> _Backend:
    if ray_address is not None:
        return _Ray(ray_address, workers)
    if workers > 1:
        return _Processes(workers)
    return _Backend()


# ============================================================================ campaigns
def run_campaign(
    kind: str,
    seeds: int | Sequence[int],
    steps: int | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    *,
    seed: int = 0,
    start: int = 0,
    shrink: bool = True,
    shrink_seconds: float = 60.0,
    max_exits: int = GUEST_MAX_EXITS,
    time_limit: float = GUEST_TIME_LIMIT_S,
) -> CampaignResult:
    """Run a campaign of fuzzer ``kind`` (``"host"`` or ``"guest"``).

    ``seeds``: the number of runs, whose seeds derive from the campaign ``seed`` and the
    run indices ``start, start + 1, ...``; or an explicit list of run seeds. ``steps``: host
    steps per run, or instruction items per guest program. ``workers``: local processes
    (1: this process); ``ray_address``: run the shards as Ray tasks on that cluster instead.
    ``shrink``: shrink each distinct failure (at most ``shrink_seconds`` each).
    ``max_exits`` and ``time_limit`` bound each guest program's run."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    steps = DEFAULT_STEPS[kind] if steps is None else steps
    if isinstance(seeds, int):
        jobs = [(start + i, derive_seed(seed, kind, start + i)) for i in range(seeds)]
    else:
        jobs = [(start + i, int(s)) for i, s in enumerate(seeds)]
    options = {"shrink": shrink, "shrink_seconds": shrink_seconds, "max_exits": max_exits,
               "time_limit": time_limit}
    began = time.perf_counter()
    backend = _backend(workers, ray_address)
    try:
        shards = _shards(jobs, backend.parallelism)
        raw = backend.map(run_shard, [(kind, shard, steps, options) for shard in shards])
        fuzz_seconds = time.perf_counter() - began
        outcomes = [RunOutcome(d["index"], d["seed"], d["steps"], d["entries"], d["seconds"],
                               Failure.from_dict(d["failure"]) if d["failure"] else None,
                               d["trace"], d["end"])
                    for shard in raw for d in shard]
        outcomes.sort(key=lambda o: o.index)
        first: dict[str, RunOutcome] = {}
        hits: dict[str, list[int]] = {}
        for o in outcomes:
            if o.failure is not None:
                first.setdefault(o.failure.signature, o)
                hits.setdefault(o.failure.signature, []).append(o.index)
        titles = {sig: f"campaign seed {seed}, run {o.index} (seed {o.seed})"
                  for sig, o in first.items()}
        shrunk = backend.map(shrink_task, [(kind, o.trace, o.failure.to_dict(), titles[sig],
                                            options, o.seed, steps)
                                           for sig, o in first.items() if o.failure])
    finally:
        backend.close()
    reports = []
    for (sig, o), s in zip(first.items(), shrunk, strict=True):
        reports.append(FailureReport(sig, Failure.from_dict(s["failure"]), hits[sig], o.seed,
                                     s["length"], s["shrunk"], s["reproducer"], s["tests"]))
    for o in outcomes:
        o.trace = None
    return CampaignResult(kind, seed, len(jobs), steps, workers, backend.name, outcomes,
                          reports, time.perf_counter() - began, fuzz_seconds)


def _shards(jobs: list[tuple[int, int]], parallelism: int) -> list[list[tuple[int, int]]]:
    """Contiguous shards, a few per worker (their number does not change any run)."""
    if not jobs:
        return []
    count = min(len(jobs), max(1, parallelism) * 4 if parallelism > 1 else 1)
    size = -(-len(jobs) // count)
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def merge(results: Sequence[CampaignResult]) -> CampaignResult:
    """Several campaigns of one fuzzer (rounds of a long run) as one result: outcomes
    concatenated, failures deduplicated by signature (the first report kept)."""
    if not results:
        raise ValueError("nothing to merge")
    head = results[0]
    merged = CampaignResult(head.kind, head.seed, 0, head.steps, head.workers, head.backend)
    by_sig: dict[str, FailureReport] = {}
    for r in results:
        merged.runs += r.runs
        merged.outcomes += r.outcomes
        merged.seconds += r.seconds
        merged.fuzz_seconds += r.fuzz_seconds
        for f in r.failures:
            if f.signature in by_sig:
                by_sig[f.signature].runs += f.runs
            else:
                by_sig[f.signature] = f
    merged.failures = list(by_sig.values())
    return merged


__all__ = ["DEFAULT_STEPS", "KINDS", "CampaignResult", "FailureReport", "RunOutcome", "merge",
           "run_campaign", "run_shard", "shrink_task"]
