"""SMCCC architecture calls and PSCI 1.1 (DEN0022) for the Normal world."""

from __future__ import annotations

from ..arch.pe import ProcessingElement
from ..arch.security import SecurityState
from . import smccc
from .el3 import Monitor, Results

PSCI_FID_RANGES = ((0x8400_0000, 0x8400_001F), (0xC400_0000, 0xC400_001F))


def is_psci(fid: int) -> bool:
    return any(lo <= fid <= hi for lo, hi in PSCI_FID_RANGES)


def is_arch(fid: int) -> bool:
    return 0x8000_0000 <= fid <= 0x8000_FFFF


class Psci:
    """The PSCI functions this platform implements; PSCI_FEATURES reports exactly these."""

    IMPLEMENTED = frozenset({smccc.PSCI_VERSION, smccc.PSCI_FEATURES})

    def __init__(self, monitor: Monitor) -> None:
        monitor.register("smccc-arch", is_arch, self.arch_call)
        monitor.register("psci", is_psci, self.psci_call)

    def arch_call(self, pe: ProcessingElement, caller: SecurityState, fid: int) -> Results:
        if fid == smccc.SMCCC_VERSION:
            return (smccc.SMCCC_VERSION_1_2,)
        if fid == smccc.SMCCC_ARCH_FEATURES:
            queried = pe.x[1] & 0xFFFF_FFFF
            known = queried in (smccc.SMCCC_VERSION, smccc.SMCCC_ARCH_FEATURES)
            return (0 if known else smccc.SMC_NOT_SUPPORTED,)
        return (smccc.SMC_UNKNOWN,)

    def psci_call(self, pe: ProcessingElement, caller: SecurityState, fid: int) -> Results:
        if caller is not SecurityState.NON_SECURE:
            return (smccc.SMC_UNKNOWN,)
        if fid == smccc.PSCI_VERSION:
            return (smccc.PSCI_VERSION_1_1,)
        if fid == smccc.PSCI_FEATURES:
            queried = pe.x[1] & 0xFFFF_FFFF
            supported = queried in self.IMPLEMENTED or queried == smccc.SMCCC_VERSION
            return (0 if supported else smccc.to_u64(smccc.PSCI_NOT_SUPPORTED),)
        return (smccc.to_u64(smccc.PSCI_NOT_SUPPORTED),)
