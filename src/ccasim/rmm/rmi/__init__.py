"""The RMI: one dispatch table from function ID to handler (rmm-abi §2, §6).

Command modules register their handlers in :data:`RMI_TABLE` with
:func:`ccasim.rmm.rmi.common.command`. A FID in the RMI range with no handler returns
SMC_UNKNOWN. :class:`~ccasim.rmm.errors.RmiError` is converted to registers here and only
here: ``x0 = (index << 8) | status``, followed by the outputs the command defines for that
failure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...firmware import smccc
from ..errors import CONDITION_LISTENERS, RmiError, report_condition

if TYPE_CHECKING:
    from ...arch.pe import ProcessingElement
    from ..rmm import Rmm


@dataclass(frozen=True)
class RmiCommand:
    """One RMI command: FID, name, argument count (x1..) and result count (x0..)."""

    fid: int
    name: str
    args: int
    results: int
    handler: Callable[[Rmm, ProcessingElement, Sequence[int]], tuple[int, ...]]


RMI_TABLE: dict[int, RmiCommand] = {}
RESULT_REGS = 5  # REL0: x0..x4
_PADDING = [(0,) * (4 - n) for n in range(4)]  # zeros up to x3, by result count


def dispatch(rmm: Rmm, pe: ProcessingElement, fid: int, args: Sequence[int]) -> tuple[int, ...]:
    """Decode and run one RMI call; returns the result registers x0..x4.

    Results the command does not define are zero, except x4: TF-RMM saves the caller's x4
    and hands it back unless the command outputs it (in 1.0 only RMI_RTT_READ_ENTRY does),
    so the Normal world's x4 survives (SMCCC: registers without results are preserved)."""
    command = RMI_TABLE.get(fid & 0xFFFE_FFFF)  # w0 with the SVE hint (bit 16) cleared
    saved_x4 = args[3] if len(args) > 3 else 0
    if command is None:
        return (smccc.SMC_UNKNOWN, 0, 0, 0, saved_x4)
    try:
        results = tuple(command.handler(rmm, pe, args))
        rmm.last_error = None
    except RmiError as err:
        rmm.last_error = err
        if CONDITION_LISTENERS:
            report_condition("RMI", command.name, err.label)
        results = (err.code, *err.outputs)
    n = len(results)
    if n > 4 and command.results >= RESULT_REGS:
        return results[:5]
    if n < 4:
        results += _PADDING[n]
    return (*results[:4], saved_x4)


# Register the command groups (import order does not matter).
from . import data, granule, realm, rec, rtt, system  # noqa: E402

__all__ = [
    "RMI_TABLE",
    "RmiCommand",
    "data",
    "dispatch",
    "granule",
    "realm",
    "rec",
    "rtt",
    "system",
]
