"""Architectural faults raised by memory accesses (rme-hardware §4).

Every fault carries the physical address, the PAS of the access, the security state that
made it, the kind of access and, for GPC faults, the GPT level the check stopped at. The
classes map one-to-one onto the GPCSC / FSC encodings so a later exception-entry layer can
build ESR values without re-deriving anything.
"""

from __future__ import annotations

import enum

from .security import PhysicalAddressSpace, SecurityState


class AccessKind(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    FETCH = "fetch"


# GPCSC values of the GPC exception ISS (EC 0x1E), rme-hardware §4.
GPCSC_ADDRESS_SIZE_L0 = 0b000000
GPCSC_WALK_FAULT_L0 = 0b000100
GPCSC_GPF_L0 = 0b001100
GPCSC_EABT_L0 = 0b010100

# Data/Instruction abort FSC for a GPF that is not on a translation table walk.
FSC_GPF = 0b101000
# Synchronous external abort, not on a translation table walk.
FSC_SEA = 0b010000


class ArchFault(Exception):
    """Base class of faults produced by the modelled hardware."""

    def __init__(
        self,
        pa: int,
        pas: PhysicalAddressSpace,
        security_state: SecurityState,
        access: AccessKind,
        message: str,
    ) -> None:
        super().__init__(message)
        self.pa = pa
        self.pas = pas
        self.security_state = security_state
        self.access = access


class GranuleProtectionCheckException(ArchFault):
    """A fault detected by the granule protection check.

    ``level`` is the GPT level (0 or 1) at which the check stopped; ``gpcsc`` the GPCSC field
    a GPC exception to EL3 would report.
    """

    gpcsc_base: int = 0
    what: str = "GPC exception"

    def __init__(
        self,
        pa: int,
        pas: PhysicalAddressSpace,
        security_state: SecurityState,
        access: AccessKind,
        level: int,
    ) -> None:
        super().__init__(
            pa,
            pas,
            security_state,
            access,
            f"{self.what} at PA {pa:#x} ({pas.name} PAS, {access} from "
            f"{security_state.name}, GPT level {level})",
        )
        self.level = level

    @property
    def gpcsc(self) -> int:
        return self.gpcsc_base + self.level

    @property
    def mfar_el3(self) -> int:
        """MFAR_EL3 as EL3 would see it: FPA[51:12], NSE [62], NS [63] (rme-hardware §3)."""
        nse_ns = {
            PhysicalAddressSpace.SECURE: (0, 0),
            PhysicalAddressSpace.NON_SECURE: (0, 1),
            PhysicalAddressSpace.ROOT: (1, 0),
            PhysicalAddressSpace.REALM: (1, 1),
        }[self.pas]
        return (self.pa & 0x000F_FFFF_FFFF_F000) | (nse_ns[0] << 62) | (nse_ns[1] << 63)


class GranuleProtectionFault(GranuleProtectionCheckException):
    """The GPI of the target granule does not admit the access's PAS (a real GPF)."""

    gpcsc_base = GPCSC_GPF_L0
    what = "Granule Protection Fault"

    @property
    def fsc(self) -> int:
        """DFSC/IFSC when the GPF is reported as an ordinary abort (SCR_EL3.GPF = 0)."""
        return FSC_GPF


class GptWalkFault(GranuleProtectionCheckException):
    """Invalid GPT descriptor, reserved GPI or invalid GPCCR_EL3 configuration."""

    gpcsc_base = GPCSC_WALK_FAULT_L0
    what = "GPT walk fault"


class GptAddressSizeFault(GranuleProtectionCheckException):
    """A non-NS access beyond the protected physical size, or GPTBR beyond it."""

    gpcsc_base = GPCSC_ADDRESS_SIZE_L0
    what = "GPT address size fault"

    @property
    def gpcsc(self) -> int:
        return GPCSC_ADDRESS_SIZE_L0


class GptExternalAbort(GranuleProtectionCheckException):
    """A synchronous external abort on a GPT table fetch."""

    gpcsc_base = GPCSC_EABT_L0
    what = "External abort on GPT fetch"


class ExternalAbort(ArchFault):
    """A synchronous external abort: nothing answers at this PA (no DRAM or device there),
    or a device rejected the access."""

    def __init__(
        self,
        pa: int,
        pas: PhysicalAddressSpace,
        security_state: SecurityState,
        access: AccessKind,
        reason: str = "no memory or device at this address",
    ) -> None:
        super().__init__(pa, pas, security_state, access, f"External abort at PA {pa:#x}: {reason}")
        self.reason = reason

    @property
    def fsc(self) -> int:
        return FSC_SEA


class UndefinedInstruction(Exception):
    """An instruction executed at an EL where it is UNDEFINED (e.g. TLBI PAALL below EL3)."""
