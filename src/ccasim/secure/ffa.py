"""The Arm Firmware Framework for A-profile (FF-A, DEN0077A v1.1): the ABI subset the model
implements — function IDs, status codes, register conventions and the memory transaction
descriptors exchanged through the RX/TX buffers.

Sources (values checked against public headers; nothing copied): TF-A
``include/services/ffa_svc.h`` (function numbers 0x60..0x8E, error codes -1..-7, partition
info descriptor) and ``include/services/el3_spmc_ffa_memory.h`` (the v1.1 ``ffa_mtd``, the
endpoint memory access descriptor, composite and constituent descriptors, permission and
flag bits); Hafnium ``inc/vmapi/hf/ffa.h`` (FIDs, error codes including ABORTED -8 and
NO_DATA -9, the relinquish descriptor, handle allocator bit 63).

Register conventions (SMCCC, w = 32-bit, x = 64-bit):

* status: ``FFA_SUCCESS`` (x0 = 0x84000061 / 0xC4000061, w1 = target info MBZ, w2.. =
  results) or ``FFA_ERROR`` (x0 = 0x84000060, w1 = 0, w2 = error code as int32);
* ``FFA_VERSION``: w1 = caller's version (bit 31 MBZ) -> w0 = callee's version or
  NOT_SUPPORTED (-1) in x0;
* ``FFA_MSG_SEND_DIRECT_REQ/RESP``: w1[31:16] sender ID, w1[15:0] receiver ID, w2 flags
  (bit 31 = framework message), x3..x7 payload;
* ``FFA_MEM_SHARE/LEND/DONATE`` and ``FFA_MEM_RETRIEVE_REQ``: w1 total length, w2 fragment
  length, x3 buffer address and w4 page count (both 0: the descriptor is in the TX buffer);
  a send returns the 64-bit handle in w2 (low) / w3 (high); a retrieve returns
  ``FFA_MEM_RETRIEVE_RESP`` with w1 total / w2 fragment length, the descriptor in RX;
* ``FFA_MEM_RECLAIM``: w1 / w2 handle low / high, w3 flags (bit 0 zero memory).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ..layout import Field, Layout

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1

# ---------------------------------------------------------------------------- function IDs
FFA_ERROR = 0x8400_0060
FFA_SUCCESS_32 = 0x8400_0061
FFA_SUCCESS_64 = 0xC400_0061
FFA_INTERRUPT = 0x8400_0062
FFA_VERSION = 0x8400_0063
FFA_FEATURES = 0x8400_0064
FFA_RX_RELEASE = 0x8400_0065
FFA_RXTX_MAP_32 = 0x8400_0066
FFA_RXTX_MAP_64 = 0xC400_0066
FFA_RXTX_UNMAP = 0x8400_0067
FFA_PARTITION_INFO_GET = 0x8400_0068
FFA_ID_GET = 0x8400_0069
FFA_MSG_WAIT = 0x8400_006B
FFA_RUN = 0x8400_006D
FFA_MSG_SEND_DIRECT_REQ_32 = 0x8400_006F
FFA_MSG_SEND_DIRECT_REQ_64 = 0xC400_006F
FFA_MSG_SEND_DIRECT_RESP_32 = 0x8400_0070
FFA_MSG_SEND_DIRECT_RESP_64 = 0xC400_0070
FFA_MEM_DONATE_32 = 0x8400_0071
FFA_MEM_DONATE_64 = 0xC400_0071
FFA_MEM_LEND_32 = 0x8400_0072
FFA_MEM_LEND_64 = 0xC400_0072
FFA_MEM_SHARE_32 = 0x8400_0073
FFA_MEM_SHARE_64 = 0xC400_0073
FFA_MEM_RETRIEVE_REQ_32 = 0x8400_0074
FFA_MEM_RETRIEVE_REQ_64 = 0xC400_0074
FFA_MEM_RETRIEVE_RESP = 0x8400_0075
FFA_MEM_RELINQUISH = 0x8400_0076
FFA_MEM_RECLAIM = 0x8400_0077

FFA_FNUM_FIRST = 0x60
FFA_FNUM_LAST = 0xFF

NAMES: dict[int, str] = {
    value: name
    for name, value in globals().items()
    if name.startswith("FFA_") and isinstance(value, int) and value >> 24 in (0x84, 0xC4)
}


def is_ffa(fid: int) -> bool:
    """An FF-A function ID: SMC32 0x84000060..0x840000FF or SMC64 0xC4000060..0xC40000FF."""
    return (fid & 0xBFFF_FF00) == 0x8400_0000 and (fid & 0xFF) >= FFA_FNUM_FIRST


def fid_name(fid: int) -> str:
    return NAMES.get(fid, f"FFA {fid:#x}")


# ---------------------------------------------------------------------------- status
class FfaError(enum.IntEnum):
    """FF-A error codes (w2 of FFA_ERROR)."""

    NOT_SUPPORTED = -1
    INVALID_PARAMETERS = -2
    NO_MEMORY = -3
    BUSY = -4
    INTERRUPTED = -5
    DENIED = -6
    RETRY = -7
    ABORTED = -8
    NO_DATA = -9


def error_regs(code: FfaError) -> tuple[int, ...]:
    """x0..x7 of ``FFA_ERROR(code)``: w2 holds the code as a 32-bit two's complement value."""
    return (FFA_ERROR, 0, int(code) & MASK32, 0, 0, 0, 0, 0)


def success_regs(*results: int) -> tuple[int, ...]:
    """x0..x7 of ``FFA_SUCCESS_32`` with w2.. = ``results`` (w1, the target info, is 0)."""
    regs = [FFA_SUCCESS_32, 0, *(r & MASK32 for r in results)]
    return tuple(regs + [0] * (8 - len(regs)))


def error_of(regs: Sequence[int]) -> FfaError | None:
    """The error code if ``regs`` is an FFA_ERROR return, else None."""
    if regs[0] & MASK32 != FFA_ERROR:
        return None
    code = regs[2] & MASK32
    return FfaError(code - (1 << 32) if code >> 31 else code)


# ---------------------------------------------------------------------------- versions, IDs
def make_version(major: int, minor: int) -> int:
    return ((major & 0x7FFF) << 16) | (minor & 0xFFFF)


FFA_VERSION_1_0 = make_version(1, 0)
FFA_VERSION_1_1 = make_version(1, 1)

NWD_ENDPOINT_ID = 0x0000  # the Normal world (NS-EL2 host) as an FF-A endpoint
SPMC_ID = 0x8000
SECURE_ID_BIT = 1 << 15  # bit 15 set: a Secure-world endpoint ID


def is_secure_id(endpoint: int) -> bool:
    return bool(endpoint & SECURE_ID_BIT)


def direct_msg_ids(sender: int, receiver: int) -> int:
    """w1 of a direct message: sender in [31:16], receiver in [15:0]."""
    return ((sender & 0xFFFF) << 16) | (receiver & 0xFFFF)


DIRECT_MSG_FRAMEWORK = 1 << 31

# FFA_PARTITION_INFO_GET
PARTITION_INFO_COUNT_FLAG = 1 << 0
PROP_DIRECT_REQ_RECV = 1 << 0
PROP_DIRECT_REQ_SEND = 1 << 1
PROP_INDIRECT_MSG = 1 << 2
PROP_NOTIFICATIONS = 1 << 3
PROP_AARCH64 = 1 << 8

PARTITION_INFO = Layout(
    "ffa_partition_info (v1.1)",
    24,
    [
        Field("id", 0, 2),
        Field("exec_ctx_count", 2, 2),
        Field("properties", 4, 4),
        Field("uuid", 8, 16, raw=True),
    ],
)


def uuid_bytes(words: Sequence[int]) -> bytes:
    """A UUID given as the four 32-bit words of w1..w4 (PARTITION_INFO_GET), as stored in
    the partition information descriptor."""
    return struct.pack("<4I", *(w & MASK32 for w in words))


# ---------------------------------------------------------------------------- memory
FFA_PAGE_SIZE = 4096

# Memory access permissions (endpoint memory access descriptor, one byte)
DATA_ACCESS_MASK = 0x3
DATA_NOT_SPECIFIED = 0
DATA_RO = 1
DATA_RW = 2
INSTR_ACCESS_SHIFT = 2
INSTR_ACCESS_MASK = 0x3 << INSTR_ACCESS_SHIFT
INSTR_NOT_SPECIFIED = 0 << INSTR_ACCESS_SHIFT
INSTR_NX = 1 << INSTR_ACCESS_SHIFT
INSTR_X = 2 << INSTR_ACCESS_SHIFT
PERM_RW_NX = DATA_RW | INSTR_NX
PERM_RO_NX = DATA_RO | INSTR_NX

# Memory region attributes (v1.1: 16 bits)
ATTR_SHAREABILITY_MASK = 0x3
ATTR_CACHEABILITY_SHIFT = 2
ATTR_TYPE_SHIFT = 4
ATTR_TYPE_MASK = 0x3 << ATTR_TYPE_SHIFT
ATTR_TYPE_NOT_SPECIFIED = 0 << ATTR_TYPE_SHIFT
ATTR_TYPE_DEVICE = 1 << ATTR_TYPE_SHIFT
ATTR_TYPE_NORMAL = 2 << ATTR_TYPE_SHIFT
ATTR_NS = 1 << 6  # set by the SPMC in a retrieve response: the memory is Non-secure
ATTR_NORMAL_WB_INNER = ATTR_TYPE_NORMAL | (0x3 << ATTR_CACHEABILITY_SHIFT) | 0x3

# Memory transaction descriptor flags
MTD_FLAG_ZERO_MEMORY = 1 << 0
MTD_FLAG_TIME_SLICING = 1 << 1
MTD_FLAG_ZERO_AFTER_RELINQUISH = 1 << 2
MTD_TYPE_SHIFT = 3
MTD_TYPE_MASK = 0x3 << MTD_TYPE_SHIFT
MTD_ALIGNMENT_HINT_MASK = 0x1F << 5


class TransactionType(enum.IntEnum):
    """Bits [4:3] of the transaction flags; also names the send call."""

    UNSPECIFIED = 0
    SHARE = 1
    LEND = 2
    DONATE = 3

    @property
    def flags(self) -> int:
        return int(self) << MTD_TYPE_SHIFT


SEND_CALLS: dict[int, TransactionType] = {
    FFA_MEM_SHARE_32: TransactionType.SHARE,
    FFA_MEM_SHARE_64: TransactionType.SHARE,
    FFA_MEM_LEND_32: TransactionType.LEND,
    FFA_MEM_LEND_64: TransactionType.LEND,
    FFA_MEM_DONATE_32: TransactionType.DONATE,
    FFA_MEM_DONATE_64: TransactionType.DONATE,
}

RELINQUISH_FLAG_ZERO = 1 << 0
RECLAIM_FLAG_ZERO = 1 << 0
RECLAIM_FLAG_TIME_SLICING = 1 << 1

HANDLE_ALLOCATOR_HYPERVISOR = 1 << 63  # clear: the handle was allocated by the SPMC

MTD = Layout(
    "ffa_mtd (v1.1 memory transaction descriptor)",
    48,
    [
        Field("sender_id", 0, 2),
        Field("attributes", 2, 2),
        Field("flags", 4, 4),
        Field("handle", 8, 8),
        Field("tag", 16, 8),
        Field("emad_size", 24, 4),
        Field("emad_count", 28, 4),
        Field("emad_offset", 32, 4),
        Field("reserved_36", 36, 4),
        Field("reserved_40", 40, 8),
    ],
)
EMAD = Layout(
    "ffa_emad (endpoint memory access descriptor)",
    16,
    [
        Field("endpoint_id", 0, 2),
        Field("permissions", 2, 1),
        Field("flags", 3, 1),
        Field("composite_offset", 4, 4),
        Field("reserved", 8, 8),
    ],
)
COMPOSITE = Layout(
    "ffa_comp_mrd (composite memory region descriptor)",
    16,
    [
        Field("total_page_count", 0, 4),
        Field("address_range_count", 4, 4),
        Field("reserved", 8, 8),
    ],
)
CONSTITUENT = Layout(
    "ffa_cons_mrd (constituent memory region descriptor)",
    16,
    [Field("address", 0, 8), Field("page_count", 8, 4), Field("reserved", 12, 4)],
)
RELINQUISH = Layout(
    "ffa_mem_relinquish",
    16,
    [Field("handle", 0, 8), Field("flags", 8, 4), Field("endpoint_count", 12, 4)],
)


@dataclass(frozen=True)
class Constituent:
    """``pages`` 4 KiB pages from ``address``."""

    address: int
    pages: int

    @property
    def end(self) -> int:
        return self.address + self.pages * FFA_PAGE_SIZE

    def granules(self) -> range:
        return range(self.address, self.end, FFA_PAGE_SIZE)


def memory_region(
    *,
    sender: int,
    receiver: int,
    constituents: Sequence[tuple[int, int]] | Sequence[Constituent],
    permissions: int,
    attributes: int = ATTR_NORMAL_WB_INNER,
    flags: int = 0,
    handle: int = 0,
    tag: int = 0,
    receiver_flags: int = 0,
) -> bytes:
    """A v1.1 memory transaction descriptor with one receiver: mtd, one endpoint memory
    access descriptor, a composite descriptor and its constituents (what a sender writes
    to its TX buffer, and what the SPMC writes to a borrower's RX buffer)."""
    cons = [c if isinstance(c, Constituent) else Constituent(*c) for c in constituents]
    emad_offset = MTD.size
    composite_offset = emad_offset + EMAD.size
    out = bytearray(
        MTD.pack({
            "sender_id": sender, "attributes": attributes, "flags": flags, "handle": handle,
            "tag": tag, "emad_size": EMAD.size, "emad_count": 1, "emad_offset": emad_offset,
        })
    )
    out += EMAD.pack({"endpoint_id": receiver, "permissions": permissions,
                      "flags": receiver_flags, "composite_offset": composite_offset})
    out += COMPOSITE.pack({"total_page_count": sum(c.pages for c in cons),
                           "address_range_count": len(cons)})
    for c in cons:
        out += CONSTITUENT.pack({"address": c.address, "page_count": c.pages})
    return bytes(out)


def retrieve_request(
    *, sender: int, receiver: int, handle: int, permissions: int, flags: int = 0,
    tag: int = 0, attributes: int = 0,
) -> bytes:
    """A retrieve request: mtd naming the handle plus one endpoint memory access
    descriptor without a composite (composite offset 0)."""
    return MTD.pack({
        "sender_id": sender, "attributes": attributes, "flags": flags, "handle": handle,
        "tag": tag, "emad_size": EMAD.size, "emad_count": 1, "emad_offset": MTD.size,
    }) + EMAD.pack({"endpoint_id": receiver, "permissions": permissions})


def relinquish_descriptor(handle: int, endpoints: Sequence[int], flags: int = 0) -> bytes:
    body = RELINQUISH.pack({"handle": handle, "flags": flags,
                            "endpoint_count": len(endpoints)})
    return body + b"".join(struct.pack("<H", e & 0xFFFF) for e in endpoints)


@dataclass(frozen=True)
class ParsedRegion:
    """A decoded memory transaction descriptor with one receiver (see :func:`parse_region`)."""

    sender: int
    attributes: int
    flags: int
    handle: int
    tag: int
    receiver: int
    permissions: int
    receiver_flags: int
    total_pages: int
    constituents: tuple[Constituent, ...]


def parse_region(data: bytes) -> ParsedRegion:
    """Decode a descriptor built by :func:`memory_region` (no validation beyond shape);
    for tests and Normal-world code reading a retrieve response."""
    mtd = MTD.unpack(data)
    emad = EMAD.unpack(data[int(mtd["emad_offset"]) :])
    off = int(emad["composite_offset"])
    comp = COMPOSITE.unpack(data[off:])
    cons = []
    for i in range(int(comp["address_range_count"])):
        c = CONSTITUENT.unpack(data[off + COMPOSITE.size + i * CONSTITUENT.size :])
        cons.append(Constituent(int(c["address"]), int(c["page_count"])))
    return ParsedRegion(
        int(mtd["sender_id"]), int(mtd["attributes"]), int(mtd["flags"]), int(mtd["handle"]),
        int(mtd["tag"]), int(emad["endpoint_id"]), int(emad["permissions"]),
        int(emad["flags"]), int(comp["total_page_count"]), tuple(cons))


def handle_of(regs: Sequence[int]) -> int:
    """The memory handle of a successful send: w2 (low) | w3 (high)."""
    return (regs[2] & MASK32) | ((regs[3] & MASK32) << 32)

