"""Status codes of the interfaces EL3 implements."""

from __future__ import annotations

import enum
import errno


class ERmm(enum.IntEnum):
    """E_RMM_* codes of the RMM-EL3 interface (rmm-abi §12.1)."""

    OK = 0
    UNK = -1
    BAD_ADDR = -2
    BAD_PAS = -3
    NOMEM = -4
    INVAL = -5
    AGAIN = -6


class ERmmBoot(enum.IntEnum):
    """RMM_BOOT_COMPLETE status codes (rmm-abi §12.1)."""

    SUCCESS = 0
    UNKNOWN = -1
    VERSION_NOT_VALID = -2
    CPUS_OUT_OF_RANGE = -3
    CPU_ID_OUT_OF_RANGE = -4
    INVALID_SHARED_BUFFER = -5
    MANIFEST_VERSION_NOT_SUPPORTED = -6
    MANIFEST_DATA_ERROR = -7


class Firme(enum.IntEnum):
    """FIRME status codes (DEN0149 1.0 ALP; as in TF-A's FIRME service)."""

    SUCCESS = 0
    NOT_SUPPORTED = -1
    INVALID_PARAMETERS = -2
    ABORTED = -3
    INCOMPLETE = -4
    DENIED = -5


def gpt_errno_to_rmm(rc: int) -> ERmm:
    """GPT library errors as the RMM dispatcher reports them (rmm-abi §12.4)."""
    if rc == 0:
        return ERmm.OK
    if rc == -errno.EPERM:
        return ERmm.BAD_PAS
    return ERmm.BAD_ADDR


def gpt_errno_to_firme(rc: int) -> Firme:
    if rc == 0:
        return Firme.SUCCESS
    if rc == -errno.EPERM:
        return Firme.DENIED
    return Firme.INVALID_PARAMETERS
