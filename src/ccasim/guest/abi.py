"""What a realm guest sees of the RMM: RSI and PSCI function IDs, status codes and the
in-memory structures it shares with the RMM (rmm-abi.md §8.4, §8.5, §9; errata E-17..E-23).

Everything here is a plain constant or a :class:`~ccasim.layout.Layout`, so that guest
programs (assembly built by :mod:`ccasim.guest.runtime`) and the Python that checks them
name the same values.
"""

from __future__ import annotations

import enum

from ccasim.layout import Field, Layout

GRANULE_SIZE = 0x1000

# ---------------------------------------------------------------------------- RSI (§9)
RSI_VERSION = 0xC400_0190
RSI_FEATURES = 0xC400_0191
RSI_MEASUREMENT_READ = 0xC400_0192
RSI_MEASUREMENT_EXTEND = 0xC400_0193
RSI_ATTESTATION_TOKEN_INIT = 0xC400_0194
RSI_ATTESTATION_TOKEN_CONTINUE = 0xC400_0195
RSI_REALM_CONFIG = 0xC400_0196
RSI_IPA_STATE_SET = 0xC400_0197
RSI_IPA_STATE_GET = 0xC400_0198
RSI_HOST_CALL = 0xC400_0199

RSI_ABI_VERSION_1_0 = 0x1_0000  # major << 16 | minor


class RsiStatus(enum.IntEnum):
    SUCCESS = 0
    ERROR_INPUT = 1
    ERROR_STATE = 2
    INCOMPLETE = 3
    ERROR_UNKNOWN = 4


RSI_MEASUREMENT_SLOTS = 5  # 0 = RIM, 1..4 = REMs
RSI_MEASUREMENT_BYTES = 64  # x1..x8 / x3..x10 carry 64 bytes

# ---------------------------------------------------------------------------- PSCI (§9)
PSCI_VERSION = 0x8400_0000
PSCI_CPU_SUSPEND = 0xC400_0001
PSCI_CPU_OFF = 0x8400_0002
PSCI_CPU_ON = 0xC400_0003
PSCI_AFFINITY_INFO = 0xC400_0004
PSCI_SYSTEM_OFF = 0x8400_0008
PSCI_SYSTEM_RESET = 0x8400_0009
PSCI_FEATURES = 0x8400_000A
SMCCC_VERSION = 0x8000_0000


class PsciStatus(enum.IntEnum):
    SUCCESS = 0
    NOT_SUPPORTED = -1
    INVALID_PARAMS = -2
    DENIED = -3
    ALREADY_ON = -4
    INVALID_ADDRESS = -9


class AffinityState(enum.IntEnum):
    ON = 0
    OFF = 1


def mpidr_to_rec_index(mpidr: int) -> int:
    """The REC index the RMM derives from an MPIDR (errata E-19)."""
    return (
        (mpidr & 0xF)
        | ((mpidr >> 8) & 0xFF) << 4
        | ((mpidr >> 16) & 0xFF) << 12
        | ((mpidr >> 32) & 0xFF) << 20
    )


# ---------------------------------------------------------------------------- structures
RSI_HOST_CALL_ALIGN = 0x100
RSI_HOST_CALL_GPRS = 31

#: RsiHostCall (§8.5): 0x100 bytes, 256-aligned. TF-RMM reads ``imm`` as a u32.
RSI_HOST_CALL_LAYOUT = Layout(
    "RsiHostCall",
    0x100,
    [Field("imm", 0x00, 4)] + [Field(f"gprs{i}", 0x08 + 8 * i, 8) for i in range(31)],
)

#: RsiRealmConfig (§8.4), written by RSI_REALM_CONFIG into a granule of the realm.
RSI_REALM_CONFIG_LAYOUT = Layout(
    "RsiRealmConfig",
    GRANULE_SIZE,
    [
        Field("ipa_width", 0x000, 8),
        Field("hash_algo", 0x008, 1),
        Field("rpv", 0x200, 64, raw=True),
    ],
)

#: The guest runtime's "last exception" record (not an RMM structure): the exception
#: vectors of :func:`ccasim.guest.runtime.exception_vectors` fill it on every exception.
#: ``policy`` selects what the handler does next (:class:`ExceptionPolicy`); guest code
#: may change it at run time.
EXCEPTION_RECORD = Layout(
    "GuestExceptionRecord",
    0x40,
    [
        Field("count", 0x00, 8),
        Field("vector", 0x08, 8),  # offset of the vector taken, 0x000..0x780
        Field("esr", 0x10, 8),
        Field("far", 0x18, 8),
        Field("elr", 0x20, 8),
        Field("spsr", 0x28, 8),
        Field("policy", 0x30, 8),
        Field("depth", 0x38, 8),  # handler nesting; > 1 means the handler itself faulted
    ],
)


class ExceptionPolicy(enum.IntEnum):
    """What the runtime's exception handler does after recording an exception."""

    REPORT = 0  # print the record over the UART, then PSCI SYSTEM_OFF
    SKIP = 1  # return; a synchronous fault resumes after the faulting instruction
