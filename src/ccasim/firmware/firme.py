"""FIRME granule management (DEN0149): FIRME_GM_GPI_SET for Secure and Realm callers.

This is how the Secure world (an SPMC) moves granules between the Non-secure and Secure PAS
at run time; the Realm world may use it as an alternative to the RMM's GTSI calls.

``FIRME_GM_GPI_SET``: x1 = base PA, x2 = granule count, x3[3:0] = target GPI (other bits
of x3 must be zero) → x0 = status, x1 = granules transitioned. At most 512 granules (2 MB)
are processed per call; a larger request transitions the first 512 and returns INCOMPLETE
so the caller continues from ``base + 512 granules``. A request is validated in full (every
granule's address and the transition policy) before any granule changes, so a failed call
changes nothing.
"""

from __future__ import annotations

from ..arch.pe import ProcessingElement
from ..arch.security import SecurityState
from . import smccc
from .el3 import Monitor, Results
from .errors import Firme, gpt_errno_to_firme

FIRME_VERSION_1_0 = 0x0001_0000
MAX_GRANULES_PER_CALL = 512


class FirmeService:
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        monitor.register("firme", smccc.is_firme, self.call)

    def call(self, pe: ProcessingElement, caller: SecurityState, fid: int) -> Results:
        if fid == smccc.FIRME_BASE_VERSION:
            return (FIRME_VERSION_1_0,)
        if fid == smccc.FIRME_GM_GPI_SET:
            status, done = self.gm_gpi_set(pe, caller, pe.x[1], pe.x[2], pe.x[3])
            return (smccc.to_u64(status), done)
        return (smccc.to_u64(Firme.NOT_SUPPORTED),)

    def gm_gpi_set(
        self, pe: ProcessingElement, caller: SecurityState, base: int, count: int, attributes: int
    ) -> tuple[Firme, int]:
        gpt = self.monitor.gpt
        granule = gpt.geometry.granule_size
        if count == 0 or attributes >> 4:
            return Firme.INVALID_PARAMETERS, 0
        if base % granule or base + count * granule > 1 << gpt.geometry.t:
            return Firme.INVALID_PARAMETERS, 0
        target = attributes & 0xF
        todo = min(count, MAX_GRANULES_PER_CALL)
        addresses = [base + i * granule for i in range(todo)]
        rc = gpt.check_many(pe, caller, addresses, target)
        if rc:
            return gpt_errno_to_firme(rc), 0
        for pa in addresses:
            rc = gpt.transition(pe, caller, pa, target)
            if rc:  # cannot happen after check_many; never leave a half-done call silent
                raise RuntimeError(f"GPT transition failed after validation: {rc}")
        status = Firme.SUCCESS if todo == count else Firme.INCOMPLETE
        return status, todo
