"""RMI_VERSION and RMI_FEATURES (rmm-abi §1, §6)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...arch.pe import ProcessingElement
from ..errors import INPUT, RmiStatus, conditions
from .common import command

if TYPE_CHECKING:
    from ..rmm import Rmm

RMI_ABI_VERSION = 0x0001_0000  # 1.0

VERSION = conditions("RMI_VERSION", ("version", INPUT, "requested version is not 1.0"))


@command(0xC400_0150, "RMI_VERSION", 1, 3)
def rmi_version(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.23. REL0: SUCCESS only for exactly 1.0; x1 = x2 = 1.0 in both cases."""
    if args[0] != RMI_ABI_VERSION:
        VERSION["version"].fail(outputs=(RMI_ABI_VERSION, RMI_ABI_VERSION))
    return (RmiStatus.SUCCESS, RMI_ABI_VERSION, RMI_ABI_VERSION)


@command(0xC400_0165, "RMI_FEATURES", 1, 2)
def rmi_features(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.4. Index 0 is RmiFeatureRegister0; any other index reads as zero."""
    value = rmm.features.register0() if args[0] == 0 else 0
    return (RmiStatus.SUCCESS, value)
