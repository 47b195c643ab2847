"""The RMI: one dispatch table from function ID to handler (rmm-abi §2, §6).

Command groups register their handlers in :data:`RMI_TABLE`. A FID in the RMI range with no
handler returns SMC_UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...firmware import smccc

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


def dispatch(rmm: Rmm, pe: ProcessingElement, fid: int, args: Sequence[int]) -> tuple[int, ...]:
    """Decode and run one RMI call; returns the result registers x0..x4 (REL0: five)."""
    command = RMI_TABLE.get(smccc.normalise(fid))
    if command is None:
        return (smccc.SMC_UNKNOWN, 0, 0, 0, 0)
    results = command.handler(rmm, pe, args[: command.args])
    return (*results, *([0] * (5 - len(results))))
