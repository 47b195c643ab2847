"""PSCI as a realm sees it, handled by the RMM (rmm-abi §9 "PSCI").

VERSION and FEATURES are answered directly; CPU_SUSPEND, CPU_OFF, SYSTEM_OFF/RESET exit to
the host; CPU_ON and AFFINITY_INFO on another REC leave a request pending that the host
completes with RMI_PSCI_COMPLETE.
"""

from __future__ import annotations

from .context import RecExit, RunContext
from .objects import REC_PSCI_PENDING, REC_RUNNABLE, RealmState
from .recrun import RecExitReason, pack_words

PSCI_VERSION = 0x8400_0000
CPU_SUSPEND = (0x8400_0001, 0xC400_0001)
CPU_OFF = 0x8400_0002
CPU_ON = (0x8400_0003, 0xC400_0003)
AFFINITY_INFO = (0x8400_0004, 0xC400_0004)
SYSTEM_OFF = 0x8400_0008
SYSTEM_RESET = 0x8400_0009
PSCI_FEATURES = 0x8400_000A
SMCCC_VERSION = 0x8000_0000

SUCCESS = 0
NOT_SUPPORTED = -1
INVALID_PARAMS = -2
DENIED = -3
ALREADY_ON = -4
INVALID_ADDRESS = -9
AFF_ON = 0
MASK64 = (1 << 64) - 1

# PSCI_FEATURES answers SUCCESS only for these; PSCI_VERSION itself is NOT_SUPPORTED (E-20)
_FEATURES = frozenset({*CPU_SUSPEND, CPU_OFF, *CPU_ON, *AFFINITY_INFO, SYSTEM_OFF,
                       SYSTEM_RESET, PSCI_FEATURES, SMCCC_VERSION})


def _ret(ctx: RunContext, value: int) -> None:
    """x0 := ``value``, x1..x3 := 0 (errata E-17)."""
    ctx.results(value, 0, 0, 0)


def is_psci(fid: int) -> bool:
    return (fid & 0xBFFF_FFE0) == 0x8400_0000 and (fid & 0x1F) <= 0x14


def mpidr_to_index(mpidr: int) -> int:
    """REC index from an MPIDR_EL1-format value (Aff3 at [39:32])."""
    return (mpidr & 0xF) | ((mpidr >> 8) & 0xFF) << 4 | ((mpidr >> 16) & 0xFF) << 12 | (
        (mpidr >> 32) & 0xFF
    ) << 20


def _exit(fid: int, target: int | None = None) -> RecExit:
    gprs = [fid] + ([target] if target is not None else [])
    return RecExit(RecExitReason.PSCI, {"gprs": pack_words(gprs + [0] * (31 - len(gprs)))})


def handle(ctx: RunContext, fid: int) -> RecExit | None:
    rec, realm = ctx.rec, ctx.realm
    if fid == PSCI_VERSION:
        _ret(ctx, 0x0001_0001)
        return None
    if fid == PSCI_FEATURES:
        (queried,) = ctx.args(1)
        _ret(ctx, SUCCESS if queried & 0xFFFF_FFFF in _FEATURES else NOT_SUPPORTED & MASK64)
        return None
    if fid in CPU_SUSPEND:
        _ret(ctx, SUCCESS)
        return _exit(fid)
    if fid == CPU_OFF:
        rec.flags &= ~REC_RUNNABLE
        _ret(ctx, SUCCESS)
        return _exit(fid)
    if fid in (SYSTEM_OFF, SYSTEM_RESET):
        realm.state = RealmState.SYSTEM_OFF
        realm.store(ctx.pe)
        return _exit(fid)
    if fid in CPU_ON:
        target, entry, context = ctx.args(3)
        if not realm.geometry.in_par(entry):
            _ret(ctx, INVALID_ADDRESS & MASK64)
            return None
        index = mpidr_to_index(target)
        if index >= realm.rec_count:
            _ret(ctx, INVALID_PARAMS & MASK64)
            return None
        if index == rec.rec_idx:
            _ret(ctx, ALREADY_ON & MASK64)
            return None
        rec.flags |= REC_PSCI_PENDING
        rec["psci_fid"] = CPU_ON[1]  # SMC32 and SMC64 complete alike (RMI_PSCI_COMPLETE)
        rec["psci_target_mpidr"] = target
        rec["psci_entry"] = entry
        rec["psci_context"] = context
        return _exit(fid, target)
    if fid in AFFINITY_INFO:
        target, lowest = ctx.args(2)
        if lowest != 0:
            _ret(ctx, INVALID_PARAMS & MASK64)
            return None
        index = mpidr_to_index(target)
        if index >= realm.rec_count:
            _ret(ctx, INVALID_PARAMS & MASK64)
            return None
        if index == rec.rec_idx:
            _ret(ctx, AFF_ON)
            return None
        rec.flags |= REC_PSCI_PENDING
        rec["psci_fid"] = AFFINITY_INFO[1]
        rec["psci_target_mpidr"] = target
        return _exit(fid, target)
    _ret(ctx, NOT_SUPPORTED & MASK64)
    return None
