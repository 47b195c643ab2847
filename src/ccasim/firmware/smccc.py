"""SMC Calling Convention (DEN0028) function IDs and the ranges EL3 dispatches on.

A fast SMC64 call in the standard-secure-service range has FID = 0xC400_0000 | number.
Bit 16 is the SMCCC 1.3 SVE hint; dispatch ignores it (rmm-abi §2.1).
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1

SMC_UNKNOWN = MASK64  # -1
SMC_NOT_SUPPORTED = MASK64  # SMCCC NOT_SUPPORTED is also -1

FID_SVE_HINT = 1 << 16


def to_u64(value: int) -> int:
    """Two's-complement encoding of a (possibly negative) status in a 64-bit register."""
    return value & MASK64


def to_signed(value: int) -> int:
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


def fid_number(fid: int) -> int:
    """Function number, bits [15:0]."""
    return fid & 0xFFFF


def fid_oen(fid: int) -> int:
    """Owning entity number, bits [29:24]."""
    return (fid >> 24) & 0x3F


def fid_is_fast(fid: int) -> bool:
    return bool((fid >> 31) & 1)


def fid_is_smc64(fid: int) -> bool:
    return bool((fid >> 30) & 1)


def normalise(fid: int) -> int:
    """The 32-bit function identifier with the SVE hint cleared (w0 carries the FID)."""
    return fid & 0xFFFF_FFFF & ~FID_SVE_HINT


# ---------------------------------------------------------------------------- Arm arch
SMCCC_VERSION = 0x8000_0000
SMCCC_ARCH_FEATURES = 0x8000_0001
SMCCC_VERSION_1_2 = 0x0001_0002

# ---------------------------------------------------------------------------- PSCI 1.1
PSCI_VERSION = 0x8400_0000
PSCI_FEATURES = 0x8400_000A
PSCI_VERSION_1_1 = 0x0001_0001
PSCI_NOT_SUPPORTED = -1

# ---------------------------------------------------------------------------- RMM
RMI_FNUM_FIRST = 0x150
RMI_FNUM_LAST = 0x18E  # 0x18F is RMM_RMI_REQ_COMPLETE, RMM -> EL3
RMI_FNUM_EXT_FIRST = 0x1D0
RMI_FNUM_EXT_LAST = 0x2CF
RSI_FNUM_FIRST = 0x190
RSI_FNUM_LAST = 0x1AF
RMM_EL3_FNUM_FIRST = 0x1B0
RMM_EL3_FNUM_LAST = 0x1CF

RMM_RMI_REQ_COMPLETE = 0xC400_018F
RMM_GTSI_DELEGATE = 0xC400_01B0
RMM_GTSI_UNDELEGATE = 0xC400_01B1
RMM_ATTEST_GET_REALM_KEY = 0xC400_01B2
RMM_ATTEST_GET_PLAT_TOKEN = 0xC400_01B3
RMM_EL3_FEATURES = 0xC400_01B4
RMM_BOOT_COMPLETE = 0xC400_01CF

# ---------------------------------------------------------------------------- FIRME
FIRME_BASE_VERSION = 0xC400_0400
FIRME_BASE_FEATURES = 0xC400_0401
FIRME_GM_GPI_SET = 0xC400_0402
FIRME_FNUM_FIRST = 0x400
FIRME_FNUM_LAST = 0x412

STD_SVC_SMC64 = 0xC400_0000


def is_std_smc64(fid: int) -> bool:
    return (fid & 0xFFFF_0000) == STD_SVC_SMC64


def is_rmi(fid: int) -> bool:
    """An RMI function ID (host -> RMM), REL0 range plus the reserved extension range."""
    if not is_std_smc64(fid):
        return False
    n = fid_number(fid)
    return RMI_FNUM_FIRST <= n <= RMI_FNUM_LAST or RMI_FNUM_EXT_FIRST <= n <= RMI_FNUM_EXT_LAST


def is_rmm_el3(fid: int) -> bool:
    if not is_std_smc64(fid):
        return False
    n = fid_number(fid)
    return fid == RMM_RMI_REQ_COMPLETE or RMM_EL3_FNUM_FIRST <= n <= RMM_EL3_FNUM_LAST


def is_firme(fid: int) -> bool:
    return is_std_smc64(fid) and FIRME_FNUM_FIRST <= fid_number(fid) <= FIRME_FNUM_LAST
