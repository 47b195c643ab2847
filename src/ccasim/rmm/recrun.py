"""RmiRecRun (rmm-abi §8.3): RmiRecEnter at 0x000 and RmiRecExit at 0x800, and the REC
exit reasons (§7.2)."""

from __future__ import annotations

import enum
import struct

from ..layout import Field, Layout

REC_ENTER = Layout(
    "RmiRecEnter",
    0x800,
    [
        Field("flags", 0x000, 8),
        Field("gprs", 0x200, 31 * 8, raw=True),
        Field("gicv3_hcr", 0x300, 8),
        Field("gicv3_lrs", 0x308, 16 * 8, raw=True),
    ],
)
REC_EXIT = Layout(
    "RmiRecExit",
    0x800,
    [
        Field("exit_reason", 0x000, 8),
        Field("esr", 0x100, 8),
        Field("far", 0x108, 8),
        Field("hpfar", 0x110, 8),
        Field("gprs", 0x200, 31 * 8, raw=True),
        Field("gicv3_hcr", 0x300, 8),
        Field("gicv3_lrs", 0x308, 16 * 8, raw=True),
        Field("gicv3_misr", 0x388, 8),
        Field("gicv3_vmcr", 0x390, 8),
        Field("cntp_ctl", 0x400, 8),
        Field("cntp_cval", 0x408, 8),
        Field("cntv_ctl", 0x410, 8),
        Field("cntv_cval", 0x418, 8),
        Field("ripas_base", 0x500, 8),
        Field("ripas_top", 0x508, 8),
        Field("ripas_value", 0x510, 1),
        Field("imm", 0x600, 4),
        Field("pmu_ovf_status", 0x700, 8),
    ],
)
REC_EXIT_OFFSET = 0x800

ENTER_EMUL_MMIO = 1 << 0
ENTER_INJECT_SEA = 1 << 1
ENTER_TRAP_WFI = 1 << 2
ENTER_TRAP_WFE = 1 << 3
ENTER_RIPAS_RESPONSE = 1 << 4


class RecExitReason(enum.IntEnum):
    SYNC = 0
    IRQ = 1
    FIQ = 2
    PSCI = 3
    RIPAS_CHANGE = 4
    HOST_CALL = 5
    SERROR = 6


def words(raw: bytes, count: int) -> list[int]:
    """The first ``count`` little-endian 64-bit words of ``raw``."""
    return list(struct.unpack_from(f"<{count}Q", raw))


def pack_words(values: list[int]) -> bytes:
    return b"".join((v & ((1 << 64) - 1)).to_bytes(8, "little") for v in values)
