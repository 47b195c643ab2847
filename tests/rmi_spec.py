"""RMI 1.0 facts for the RMM-level tests (imported as ``rmi_spec``).

Everything here is written down from the spec digest (``shared/spec/rmm-abi.md`` §2, §4, §5,
§8, §10), not imported from the code under test, so that the tests compare the RMM against
the spec: status codes, enumerations, the parameter structures at their byte offsets, the
stage-2 geometry rules and the RIM computation. It also has the few A64 encodings the
tests put into realm memory.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

GRANULE = 0x1000
ZERO_PAGE = bytes(GRANULE)
MASK64 = (1 << 64) - 1
SMC_UNKNOWN = MASK64
SVE_HINT = 1 << 16  # SMCCC 1.3 SVE hint in the FID (§2.1)

# RmiStatus (§2.2)
SUCCESS, INPUT, REALM, REC, RTT = 0, 1, 2, 3, 4
# GPI encodings (rme-hardware §2)
GPI_NS, GPI_REALM = 0b1001, 0b1011

EMPTY, RAM, DESTROYED = 0, 1, 2  # RmiRipas
UNASSIGNED, ASSIGNED, TABLE = 0, 1, 2  # RmiRttEntryState
ENTRIES = 512
NUM_AUX = 16  # RMI_REC_AUX_COUNT in REL0
RMI_V1_0 = 0x1_0000

EXIT_SYNC, EXIT_IRQ = 0, 1  # RmiRecExitReason
EC_WFX, EC_IABT_LOWER = 0x01, 0x20

FLAG_LPA2, FLAG_SVE, FLAG_PMU = 1 << 0, 1 << 1, 1 << 2  # RmiRealmParams.flags
ENTER_EMUL_MMIO, ENTER_INJECT_SEA = 1 << 0, 1 << 1  # RmiRecEnter.flags
ENTER_TRAP_WFI, ENTER_TRAP_WFE, ENTER_RIPAS_REJECT = 1 << 2, 1 << 3, 1 << 4
ICH_HCR_ALLOWED = sum(1 << b for b in (1, 2, 3, 4, 5, 6, 7, 14))  # §7.3
MPIDR_VALID = 0xF | 0xFF << 8 | 0xFF << 16 | 0xFF << 24  # RmiRecMpidr (§4.2)

# Stage-2 descriptor bits (§5.2; VMSAv8-64 stage 2)
OA_MASK_48 = ((1 << 48) - 1) & ~0xFFF
HOST_ATTR_MASK = (0b111 << 2) | (0b11 << 6)  # MemAttr[4:2], S2AP[7:6]
DESC_AF, DESC_SH_IS, DESC_NS = 1 << 10, 0b11 << 8, 1 << 55
DESC_XN_10 = 0b10 << 53
DESC_RAM_ATTRS = (0b110 << 2) | (0b11 << 6) | DESC_SH_IS | DESC_AF

# A64 encodings
A64_WFI = 0xD503_207F


def udf_page(seed: int = 0) -> bytes:
    """A 4 KB page of ``UDF #imm16`` instructions (permanently undefined in A64): content
    that is distinct per ``seed`` but does nothing a realm could notice if it executes it —
    no loads, stores, SMCs or system-register accesses."""
    return b"".join(((seed + i) & 0xFFFF).to_bytes(4, "little") for i in range(GRANULE // 4))


def level_shift(level: int) -> int:
    return 12 + 9 * (3 - level)


def level_size(level: int) -> int:
    return 1 << level_shift(level)


def oa_mask(level: int) -> int:
    return OA_MASK_48 & ~(level_size(level) - 1)


def status_code(status: int, index: int = 0) -> int:
    """RmiReturnCode: ``(index << 8) | status`` (§2.2)."""
    return (index & 0xFF) << 8 | status


def start_level_valid(s2sz: int, sl: int, pa_bits: int = 48) -> bool:
    """§5.1 without LPA2."""
    if not 0 <= sl <= 3 or (sl == 0 and pa_bits < 44):
        return False
    levels = 3 - sl
    return 9 * levels + 13 <= s2sz <= 9 * levels + 21 + (4 if sl > 0 else 0)


def root_tables(s2sz: int, sl: int) -> int:
    """rtt_num_start (§5.1)."""
    excess = s2sz - (9 * (3 - sl) + 21)
    return 1 if excess <= 0 else 1 << excess


def mpidr_of(index: int) -> int:
    """RmiRecMpidr for REC index ``index`` (inverse of §4.2's index rule)."""
    return (
        (index & 0xF)
        | ((index >> 4) & 0xFF) << 8
        | ((index >> 12) & 0xFF) << 16
        | ((index >> 20) & 0xFF) << 24
    )


def rec_index(mpidr: int) -> int:
    """REC index = Aff0[3:0] | Aff1 << 4 | Aff2 << 12 | Aff3 << 20 (§4.2)."""
    return (
        (mpidr & 0xF)
        | ((mpidr >> 8) & 0xFF) << 4
        | ((mpidr >> 16) & 0xFF) << 12
        | ((mpidr >> 24) & 0xFF) << 20
    )


def u64(buf: bytes, off: int) -> int:
    return int.from_bytes(buf[off : off + 8], "little")


def u32(buf: bytes, off: int) -> int:
    return int.from_bytes(buf[off : off + 4], "little")


# ------------------------------------------------------------------------------ structures
def realm_fields(
    *,
    s2sz: int,
    sl: int,
    rtt_base: int,
    vmid: int,
    hash_algo: int = 0,
    num_bps: int = 1,
    num_wps: int = 1,
) -> dict[str, int]:
    """The RmiRealmParams fields of a plain realm (no LPA2, SVE or PMU)."""
    return {
        "flags": 0,
        "s2sz": s2sz,
        "sve_vl": 0,
        "num_bps": num_bps,
        "num_wps": num_wps,
        "pmu_num_ctrs": 0,
        "hash_algo": hash_algo,
        "vmid": vmid,
        "rtt_base": rtt_base,
        "rtt_level_start": sl,
        "rtt_num_start": root_tables(s2sz, sl),
    }


def pack_realm_params(f: dict[str, int], rpv: bytes = b"") -> bytes:
    """RmiRealmParams (§8.1)."""
    img = bytearray(GRANULE)
    struct.pack_into("<Q", img, 0x000, f["flags"] & MASK64)
    for name, off in (
        ("s2sz", 0x008),
        ("sve_vl", 0x010),
        ("num_bps", 0x018),
        ("num_wps", 0x020),
        ("pmu_num_ctrs", 0x028),
    ):
        struct.pack_into("<I", img, off, f[name] & 0xFFFF_FFFF)
    img[0x030] = f["hash_algo"] & 0xFF
    img[0x400:0x440] = rpv.ljust(64, b"\0")[:64]
    struct.pack_into("<H", img, 0x800, f["vmid"] & 0xFFFF)
    struct.pack_into("<Q", img, 0x808, f["rtt_base"] & MASK64)
    struct.pack_into("<Q", img, 0x810, f["rtt_level_start"] & MASK64)
    struct.pack_into("<I", img, 0x818, f["rtt_num_start"] & 0xFFFF_FFFF)
    return bytes(img)


def pack_rec_params(
    *, flags: int, mpidr: int, pc: int, gprs: Sequence[int], num_aux: int, aux: Sequence[int]
) -> bytes:
    """RmiRecParams (§8.2)."""
    img = bytearray(GRANULE)
    struct.pack_into("<Q", img, 0x000, flags & MASK64)
    struct.pack_into("<Q", img, 0x100, mpidr & MASK64)
    struct.pack_into("<Q", img, 0x200, pc & MASK64)
    for i, g in enumerate(list(gprs)[:8]):
        struct.pack_into("<Q", img, 0x300 + 8 * i, g & MASK64)
    struct.pack_into("<Q", img, 0x800, num_aux & MASK64)
    for i, a in enumerate(list(aux)[:NUM_AUX]):
        struct.pack_into("<Q", img, 0x808 + 8 * i, a & MASK64)
    return bytes(img)


def pack_rec_enter(flags: int = 0, hcr: int = 0, lrs: Sequence[int] = ()) -> bytes:
    """RmiRecEnter (§8.3), the first 0x800 bytes of RmiRecRun."""
    img = bytearray(0x800)
    struct.pack_into("<Q", img, 0x000, flags)
    struct.pack_into("<Q", img, 0x300, hcr)
    for i, lr in enumerate(lrs):
        struct.pack_into("<Q", img, 0x308 + 8 * i, lr)
    return bytes(img)


# ------------------------------------------------------------------------------ measurement
def _hash(algo: int, data: bytes) -> bytes:
    return hashlib.new("sha256" if algo == 0 else "sha512", data).digest()


def _slot(value: bytes) -> bytes:
    return value.ljust(64, b"\0")


def rim_init(algo: int, params: bytes) -> bytes:
    """§10.2: H(a zero RmiRealmParams image holding only the measured fields)."""
    measured = bytearray(GRANULE)
    for off, size in ((0x0, 8), (0x8, 4), (0x10, 4), (0x18, 4), (0x20, 4), (0x28, 4), (0x30, 1)):
        measured[off : off + size] = params[off : off + size]
    return _hash(algo, bytes(measured))


def rim_data(algo: int, rim: bytes, ipa: int, flags: int, content: bytes) -> bytes:
    """§10.3: extend with a DATA descriptor."""
    desc = bytearray(0x100)
    struct.pack_into("<QQ", desc, 0, 0, 0x100)
    desc[0x10:0x50] = _slot(rim)
    struct.pack_into("<QQ", desc, 0x50, ipa, flags)
    if flags == 1:
        desc[0x60:0xA0] = _slot(_hash(algo, content))
    return _hash(algo, bytes(desc))


def rim_rec(algo: int, rim: bytes, params: bytes) -> bytes:
    """§10.4: extend with a REC descriptor over flags, pc and gprs[0..7] of RmiRecParams."""
    measured = bytearray(GRANULE)
    measured[0:8] = params[0:8]
    measured[0x200:0x208] = params[0x200:0x208]
    measured[0x300:0x340] = params[0x300:0x340]
    desc = bytearray(0x100)
    struct.pack_into("<QQ", desc, 0, 1, 0x100)
    desc[0x10:0x50] = _slot(rim)
    desc[0x50:0x90] = _slot(_hash(algo, bytes(measured)))
    return _hash(algo, bytes(desc))


def rim_ripas(algo: int, rim: bytes, base: int, top: int) -> bytes:
    """§10.5: extend with a RIPAS descriptor for one RTT entry [base, top)."""
    desc = bytearray(0x100)
    struct.pack_into("<QQ", desc, 0, 2, 0x100)
    desc[0x10:0x50] = _slot(rim)
    struct.pack_into("<QQ", desc, 0x50, base, top)
    return _hash(algo, bytes(desc))
