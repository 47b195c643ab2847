"""RMI_GRANULE_DELEGATE / RMI_GRANULE_UNDELEGATE (rmm-abi §6, §3.3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...arch.pe import ProcessingElement
from ...firmware import smccc
from ...firmware.el3 import FirmwareError
from ..errors import INPUT, RmiStatus, conditions
from ..granules import GranuleState
from .common import command, find, zero_granule

if TYPE_CHECKING:
    from ..rmm import Rmm

# Enum members bound once: member access through the class is slow on Python 3.11.
_UNDELEGATED, _DELEGATED = GranuleState.UNDELEGATED, GranuleState.DELEGATED
_SUCCESS = (RmiStatus.SUCCESS,)

DELEGATE = conditions(
    "RMI_GRANULE_DELEGATE",
    ("gran_align", INPUT, "addr is not aligned to a granule"),
    ("gran_bound", INPUT, "addr is not in tracked DRAM"),
    ("gran_state", INPUT, "granule is not UNDELEGATED"),
    ("gran_gpt", INPUT, "the monitor refused the transition (e.g. the granule is Secure)"),
)
UNDELEGATE = conditions(
    "RMI_GRANULE_UNDELEGATE",
    ("gran_align", INPUT, "addr is not aligned to a granule"),
    ("gran_bound", INPUT, "addr is not in tracked DRAM"),
    ("gran_state", INPUT, "granule is not DELEGATED"),
)


@command(0xC400_0151, "RMI_GRANULE_DELEGATE", 1, 1)
def rmi_granule_delegate(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.5: NS -> DELEGATED through RMM_GTSI_DELEGATE; REL0 zero-fills."""
    addr = args[0]
    idx = find(rmm, DELEGATE, "gran", addr, _UNDELEGATED)
    if rmm.el3_call(pe, smccc.RMM_GTSI_DELEGATE, addr) != 0:
        DELEGATE["gran_gpt"].fail()
    zero_granule(pe, addr)
    rmm.tracker.set_state(idx, _DELEGATED)
    return _SUCCESS


@command(0xC400_0152, "RMI_GRANULE_UNDELEGATE", 1, 1)
def rmi_granule_undelegate(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.6: DELEGATED -> NS. The granule is already zero (DELEGATED invariant)."""
    addr = args[0]
    idx = find(rmm, UNDELEGATE, "gran", addr, _DELEGATED)
    if rmm.el3_call(pe, smccc.RMM_GTSI_UNDELEGATE, addr) != 0:
        raise FirmwareError(f"RMM panic: EL3 refused to undelegate {addr:#x}")
    rmm.tracker.set_state(idx, _UNDELEGATED)
    return _SUCCESS
