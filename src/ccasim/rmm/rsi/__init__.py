"""The RSI (realm -> RMM) and PSCI as a realm sees it (rmm-abi §9, errata §9).

One dispatch table per interface (FID -> handler). A handler returns None to let the REC
continue, or a :class:`~ccasim.rmm.context.RecExit` to exit to the host. Results are
written into the REC's registers by the handler; :class:`RsiError` sets x0 to its status.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from ..context import RecExit, RunContext
from ..errors import CONDITION_LISTENERS, report_condition


class RsiStatus(enum.IntEnum):
    SUCCESS = 0
    ERROR_INPUT = 1
    ERROR_STATE = 2
    INCOMPLETE = 3
    ERROR_UNKNOWN = 4


class RsiError(Exception):
    def __init__(self, status: RsiStatus, label: str = "", outputs: tuple[int, ...] = ()):
        super().__init__(f"{status.name} [{label}]")
        self.status = status
        self.label = label
        self.outputs = outputs


@dataclass(frozen=True)
class RsiCondition:
    """One labelled failure condition of an RSI command (declared as data next to the
    handler that raises it; ``ccasim.conformance`` lists them)."""

    command: str
    label: str
    status: RsiStatus
    description: str


def rsi_conditions(command: str, *rows: tuple[str, RsiStatus, str]) -> tuple[RsiCondition, ...]:
    return tuple(RsiCondition(command, label, status, text) for label, status, text in rows)


@dataclass(frozen=True)
class RsiCommand:
    fid: int
    name: str
    handler: Callable[[RunContext], RecExit | None]


RSI_TABLE: dict[int, RsiCommand] = {}
RSI_FNUM_FIRST = 0x190
RSI_FNUM_LAST = 0x1AF


def rsi_command(fid: int, name: str) -> Callable[
    [Callable[[RunContext], RecExit | None]], Callable[[RunContext], RecExit | None]
]:
    def register(fn: Callable[[RunContext], RecExit | None]) -> Callable[
        [RunContext], RecExit | None
    ]:
        RSI_TABLE[fid] = RsiCommand(fid, name, fn)
        return fn

    return register


def ret(ctx: RunContext, *values: int) -> None:
    """Return to the realm: x0.. := ``values``; x1..x3 that carry no result are zeroed,
    x4 and above are left alone unless they carry a result (errata E-17)."""
    ctx.results(*values, *([0] * (4 - len(values))))


def is_rsi(fid: int) -> bool:
    return (fid & 0xFFFF_0000) == 0xC400_0000 and RSI_FNUM_FIRST <= (fid & 0xFFFF) <= RSI_FNUM_LAST


def dispatch(ctx: RunContext, fid: int) -> RecExit | None:
    """Run one RSI call. Unknown FIDs in the RSI range return SMC_UNKNOWN (x0 = -1)."""
    command = RSI_TABLE.get(fid)
    if command is None:
        ret(ctx, (1 << 64) - 1)
        return None
    try:
        return command.handler(ctx)
    except RsiError as err:
        ctx.rmm.last_rsi_error = err
        if CONDITION_LISTENERS:
            report_condition("RSI", command.name, err.label)
        ret(ctx, err.status, *err.outputs)
        return None


from . import attestation, config, host_call, measurement, memory, version  # noqa: E402

__all__ = ["RSI_TABLE", "RsiCondition", "RsiError", "RsiStatus", "attestation", "config",
           "dispatch", "host_call", "is_rsi", "measurement", "memory", "ret", "rsi_command",
           "rsi_conditions", "version"]
