"""The SPM dispatcher at EL3 (TF-A ``spmd``): SPMC boot and FF-A forwarding.

The counterpart of :mod:`.rmmd` for the Secure world. The Secure Partition Manager Core
(SPMC) runs at S-EL2; EL3 only moves FF-A calls between it and the Normal world:

* Cold boot: EL3 enters the SPMC at S-EL2 (x0 = CPU index); the SPMC loads its partitions
  and reports the end of its initialisation with ``FFA_MSG_WAIT`` (``FFA_ERROR`` = failed),
  after which EL3 resumes its own boot.
* Normal world -> SPMC: every FF-A call (function numbers 0x60..0xFF, SMC32 and SMC64) is
  forwarded verbatim, x0..x7, to the SPMC at S-EL2 — except ``FFA_VERSION`` (answered with
  the SPMC's version, bit 31 of w1 set = NOT_SUPPORTED) and ``FFA_ID_GET`` (the Normal
  world's endpoint ID, 0), which the SPMD answers itself, as TF-A's does.
* SPMC -> Normal world: the SPMC ends a forwarded call with an SMC whose x0 is
  ``FFA_SUCCESS`` (32/64), ``FFA_ERROR`` or ``FFA_MSG_SEND_DIRECT_RESP`` (32/64); its x0..x7
  become the Normal world's x0..x7.
* Calls from the Realm world get SMC_UNKNOWN; other calls from the Secure world (no
  forwarded call pending) get ``FFA_ERROR(NOT_SUPPORTED)``.

Function IDs below are the FF-A v1.1 values (DEN0077A; TF-A ``ffa_svc.h``); the full table
lives in :mod:`ccasim.secure.ffa` and a test checks that the two agree.
"""

from __future__ import annotations

from typing import Protocol

from ..arch.pe import ProcessingElement
from ..arch.security import SecurityState
from . import smccc
from .el3 import FirmwareError, Monitor, Results

FFA_ERROR = 0x8400_0060
FFA_SUCCESS_32 = 0x8400_0061
FFA_SUCCESS_64 = 0xC400_0061
FFA_VERSION = 0x8400_0063
FFA_ID_GET = 0x8400_0069
FFA_MSG_WAIT = 0x8400_006B
FFA_MSG_SEND_DIRECT_RESP_32 = 0x8400_0070
FFA_MSG_SEND_DIRECT_RESP_64 = 0xC400_0070
FFA_NOT_SUPPORTED = -1
FFA_NWD_ENDPOINT_ID = 0
FFA_VERSION_BIT31 = 1 << 31

SPMC_RESPONSES = frozenset({FFA_SUCCESS_32, FFA_SUCCESS_64, FFA_ERROR,
                            FFA_MSG_SEND_DIRECT_RESP_32, FFA_MSG_SEND_DIRECT_RESP_64})


def is_ffa(fid: int) -> bool:
    """FF-A function numbers 0x60..0xFF in the standard service range, SMC32 or SMC64."""
    return (fid & 0xBFFF_FF00) == 0x8400_0000 and (fid & 0xFF) >= 0x60


class SecurePartitionManager(Protocol):
    """What EL3 needs from the SPMC image: its version and its two entry points at S-EL2."""

    ffa_version: int

    def cold_boot(self, pe: ProcessingElement) -> None: ...

    def handle_ffa(self, pe: ProcessingElement) -> None: ...


class Spmd:
    def __init__(self, monitor: Monitor, spmc: SecurePartitionManager) -> None:
        self.monitor = monitor
        self.spmc = spmc
        self.boot_status: int | None = None  # 0 = the SPMC initialised, else its FF-A error
        self._booting = False
        self._in_call: dict[int, bool] = {}
        monitor.register("ffa", is_ffa, self.ffa_call)

    @property
    def spmc_ready(self) -> bool:
        return self.boot_status == 0

    # ------------------------------------------------------------------ boot
    def boot(self, pe: ProcessingElement) -> int:
        """Enter the SPMC's cold-boot entry on ``pe`` (at EL3); returns 0 or an FF-A error."""
        self._booting = True
        self.boot_status = None
        self.monitor.enter_lower(pe, SecurityState.SECURE, 2, [pe.index])
        self.spmc.cold_boot(pe)
        if self._booting or pe.el != 3 or self.boot_status is None:
            self._booting = False
            raise FirmwareError("the SPMC returned without FFA_MSG_WAIT / FFA_ERROR")
        return self.boot_status

    # ------------------------------------------------------------------ dispatch
    def ffa_call(self, pe: ProcessingElement, caller: SecurityState, fid: int) -> Results:
        if caller is SecurityState.NON_SECURE:
            return self._from_normal_world(pe, fid)
        if caller is SecurityState.SECURE:
            return self._from_secure_world(pe, fid)
        return (smccc.SMC_UNKNOWN,)

    def _from_normal_world(self, pe: ProcessingElement, fid: int) -> Results:
        if fid == FFA_VERSION:
            if pe.x[1] & FFA_VERSION_BIT31 or not self.spmc_ready:
                return (smccc.to_u64(FFA_NOT_SUPPORTED),)
            return (self.spmc.ffa_version,)
        if not self.spmc_ready:
            return (FFA_ERROR, 0, FFA_NOT_SUPPORTED & 0xFFFF_FFFF, 0, 0, 0, 0, 0)
        if fid == FFA_ID_GET:
            return (FFA_SUCCESS_32, 0, FFA_NWD_ENDPOINT_ID, 0, 0, 0, 0, 0)
        if self._in_call.get(pe.index):
            raise FirmwareError("nested FF-A call on one PE")
        monitor = self.monitor
        args = list(pe.x[:8])
        monitor.save_world(pe, SecurityState.NON_SECURE)
        self._in_call[pe.index] = True
        try:
            monitor.enter_lower(pe, SecurityState.SECURE, 2, args)
            self.spmc.handle_ffa(pe)
        except BaseException:
            # A modelled-firmware bug: put the PE back in the Normal world before reporting.
            if self._in_call.get(pe.index):
                self._in_call[pe.index] = False
                pe.set_el(3)
                monitor.restore_world(pe, SecurityState.NON_SECURE)
                pe.eret()
            raise
        if self._in_call.get(pe.index):
            self._in_call[pe.index] = False
            raise FirmwareError("the SPMC returned without an FF-A response")
        return None

    def _from_secure_world(self, pe: ProcessingElement, fid: int) -> Results:
        monitor = self.monitor
        if self._booting and fid in (FFA_MSG_WAIT, FFA_ERROR):
            self._booting = False
            self.boot_status = 0 if fid == FFA_MSG_WAIT else smccc.to_signed(
                (pe.x[2] & 0xFFFF_FFFF) | (0xFFFF_FFFF << 32 if pe.x[2] & (1 << 31) else 0))
            monitor.save_world(pe, SecurityState.SECURE)
            return None  # stay at EL3: the boot flow resumes in :meth:`boot`
        if self._in_call.get(pe.index) and fid in SPMC_RESPONSES:
            results = tuple(pe.x[:8])
            monitor.save_world(pe, SecurityState.SECURE)
            monitor.restore_world(pe, SecurityState.NON_SECURE)
            self._in_call[pe.index] = False
            monitor.return_to_caller(pe, results)
            return None
        return (FFA_ERROR, 0, FFA_NOT_SUPPORTED & 0xFFFF_FFFF, 0, 0, 0, 0, 0)


__all__ = ["SecurePartitionManager", "Spmd", "is_ffa"]
