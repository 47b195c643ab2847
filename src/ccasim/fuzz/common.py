"""What both fuzzers share: failures and their signatures, reproducible seeds, the shrinker,
and releasing a platform's emulators when a run is over.

A *failure* is anything the model must never do, whatever the host or the guest does:
an unexpected Python exception escaping an SMC, an :class:`~ccasim.checker.InvariantViolation`,
an isolation breach, memory outside a realm changing while it runs, a REC exit the
specification does not define. Its *signature* (kind, exception type, the innermost frame in
the model, or the invariants concerned) names the bug, not the run: campaigns deduplicate
reproducers by it and the shrinker keeps it while it removes steps.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..checker import InvariantViolation

if TYPE_CHECKING:
    from ..platform import Platform

T = TypeVar("T")

#: Bounds on one guest program's run: REC exits handled, and seconds (a guest that loops
#: gets the host back every 50 ms through the physical timer).
GUEST_MAX_EXITS = 64
GUEST_TIME_LIMIT_S = 0.3

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # src/ccasim
_FUZZ_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Failure:
    """One failure found by a run.

    ``kind``: ``exception`` | ``invariant`` | ``isolation`` | ``world`` | ``abi`` |
    ``exit`` | ``memory`` | ``hang`` | ``teardown`` (the model's), or ``fuzzer`` (a bug of
    the fuzzer itself); ``where``: what identifies the bug
    within the kind (exception type and innermost model frame, the invariant names, the
    memory area...);
    ``step``: index of the step (host) or REC entry (guest) at which it showed;
    ``summary``: one line; ``detail``: the traceback or the full report."""

    kind: str
    where: str
    step: int
    summary: str
    detail: str = ""

    @property
    def signature(self) -> str:
        return f"{self.kind}:{self.where}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        return cls(str(data["kind"]), str(data["where"]), int(data["step"]),
                   str(data["summary"]), str(data.get("detail", "")))

    def __str__(self) -> str:
        return f"[{self.signature}] step {self.step}: {self.summary}"


def reproducer_header(kind: str, title: str, count: str, failure: Failure) -> list[str]:
    """The first lines shared by every standalone reproducer script: shebang, a docstring
    naming the campaign (``kind``: ``host`` or ``guest``), ``count`` and the failure, and how
    the script reports (exit 0 while it reproduces, AssertionError once it no longer does)."""
    return [
        "#!/usr/bin/env python3",
        f'"""ccasim fuzz --{kind} reproducer' + (f": {title}" if title else "") + ".",
        "",
        f"{count}. Failure: {failure}".replace('"""', "'''"),
        "",
        "Exits 0 after printing the failure while it reproduces; raises AssertionError once",
        "it no longer does.",
        '"""',
        "import sys",
        "",
    ]


def model_frame(exc: BaseException) -> str:
    """``module:function`` of the innermost traceback frame inside the model (the ``ccasim``
    package, not this fuzzing package); ``?`` when there is none."""
    best = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            path = Path(frame.filename).resolve()
        except (OSError, ValueError):
            continue
        if _PACKAGE_DIR in path.parents and _FUZZ_DIR not in path.parents:
            rel = path.relative_to(_PACKAGE_DIR.parent).with_suffix("")
            best = f"{'.'.join(rel.parts)}:{frame.name}"
    return best


def exception_failure(exc: BaseException, step: int, context: str) -> Failure:
    """The failure an exception escaping the model is: an invariant violation, or an
    unexpected exception named by its type and innermost model frame."""
    detail = "".join(traceback.format_exception(exc))
    frame = model_frame(exc)
    if frame == "?":  # raised by the fuzzer's own code, not by the model
        return Failure("fuzzer", type(exc).__name__, step,
                       f"{context}: the fuzzer itself failed: {type(exc).__name__}: {exc}"[:400],
                       detail)
    if isinstance(exc, InvariantViolation):
        names = ",".join(sorted(exc.invariants))
        return Failure("invariant", names, step, f"{context}: {exc}", detail)
    where = f"{type(exc).__name__}@{frame}"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return Failure("exception", where, step,
                   f"{context}: {type(exc).__name__}: {first}"[:400], detail)


# ---------------------------------------------------------------------------- seeds
def derive_seed(campaign_seed: int, kind: str, index: int) -> int:
    """The seed of run ``index`` of a campaign: a function of the campaign seed, the
    fuzzer and the run's global index only, so a run is the same however the campaign is
    sharded (shard j's i-th run has global index ``j * shard_size + i``)."""
    digest = hashlib.sha256(f"ccasim-fuzz/{kind}/{campaign_seed}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# ---------------------------------------------------------------------------- shrinking
@dataclass
class ShrinkStats:
    tests: int = 0
    seconds: float = 0.0
    exhausted: bool = False  # the budget ran out before the result was 1-minimal


def shrink(
    items: Sequence[T],
    still_fails: Callable[[list[T]], bool],
    *,
    max_tests: int = 400,
    budget_s: float = 60.0,
    stats: ShrinkStats | None = None,
) -> list[T]:
    """Delta debugging (Zeller's ddmin) over ``items``: remove chunks — halves, quarters,
    ... single items — as long as ``still_fails`` says the failure persists. The result is
    1-minimal (no single item can be removed) unless the budget runs out first."""
    stats = stats if stats is not None else ShrinkStats()
    start = time.perf_counter()
    current = list(items)

    def test(candidate: list[T]) -> bool:
        if stats.tests >= max_tests or time.perf_counter() - start > budget_s:
            stats.exhausted = True
            return False
        stats.tests += 1
        return still_fails(candidate)

    n = 2
    while len(current) >= 2 and not stats.exhausted:
        size = -(-len(current) // n)
        chunks = [current[i : i + size] for i in range(0, len(current), size)]
        reduced = False
        # Later chunks first: the steps right before the failure matter most, so removing
        # from the end rarely helps and is tried last among equals.
        for i in range(len(chunks)):
            candidate = [x for j, c in enumerate(chunks) if j != i for x in c]
            if test(candidate):
                current = candidate
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if n >= len(current):
                break
            n = min(2 * n, len(current))
    if len(current) == 1 and not stats.exhausted and test([]):
        current = []
    stats.seconds = time.perf_counter() - start
    return current


# ---------------------------------------------------------------------------- platforms
def dispose(platform: Platform) -> None:
    """Release a platform's execution engines: the shared physical-timer thread keeps a
    reference to every engine ever created, so a campaign that boots thousands of platforms
    would otherwise keep every emulator (and its guest memory) alive."""
    from ..arch import execution

    engines: list[Any] = []
    runner = platform.rmm.runner
    if runner is not None:
        engines += list(runner.engines.values())
    engines += list(getattr(platform.spmc, "_engines", {}).values())
    if not engines:
        return
    watchdog = execution.WATCHDOG
    with watchdog._lock:
        watchdog.engines[:] = [e for e in watchdog.engines if all(e is not x for x in engines)]
    if platform.checker is not None:
        platform.checker.detach()


def python_bytes(data: bytes, size: int | None = None) -> str:
    """A short Python expression for ``data``: its non-zero runs as ``page(size, {offset:
    hex})`` when that is shorter than one ``bytes.fromhex``."""
    size = len(data) if size is None else size
    runs: dict[int, str] = {}
    i = 0
    while i < len(data):
        if data[i] == 0:
            i += 1
            continue
        j = i
        zeros = 0
        while j < len(data) and zeros < 16:
            zeros = zeros + 1 if data[j] == 0 else 0
            j += 1
        end = j - zeros
        runs[i] = data[i:end].hex()
        i = j
    body = ", ".join(f"{off:#x}: {hexs!r}" for off, hexs in runs.items())
    return f"page({size:#x}, {{{body}}})"


def page(size: int, runs: dict[int, str]) -> bytes:
    """The inverse of :func:`python_bytes`: ``size`` bytes, zero except ``runs``."""
    out = bytearray(size)
    for off, hexs in runs.items():
        chunk = bytes.fromhex(hexs)
        out[off : off + len(chunk)] = chunk
    return bytes(out)


__all__ = ["GUEST_MAX_EXITS", "GUEST_TIME_LIMIT_S", "Failure", "ShrinkStats", "derive_seed",
           "dispose", "exception_failure", "model_frame", "page", "python_bytes", "shrink"]
