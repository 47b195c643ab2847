"""RSI_HOST_CALL (rmm-abi §8.5, §9): the realm passes an RsiHostCall to the host."""

from __future__ import annotations

from ...layout import Field, Layout
from ..context import EmptyPage, RecExit, RunContext
from ..objects import REC_HOST_CALL_PENDING
from ..recrun import RecExitReason
from . import RsiError, RsiStatus, rsi_command, rsi_conditions

HOST_CALL = Layout(
    "RsiHostCall", 0x100, [Field("imm", 0x00, 4), Field("gprs", 0x08, 31 * 8, raw=True)]
)


RSI_CONDITIONS = rsi_conditions(
    "RSI_HOST_CALL",
    ("addr_align", RsiStatus.ERROR_INPUT, "addr is not aligned to 256 bytes"),
    ("addr_granule", RsiStatus.ERROR_INPUT, "the RsiHostCall structure crosses a granule"),
    ("addr_bound", RsiStatus.ERROR_INPUT, "addr is not in the protected IPA space"),
    ("addr_ripas", RsiStatus.ERROR_INPUT, "addr is RIPAS EMPTY (or DESTROYED)"),
)


@rsi_command(0xC400_0199, "RSI_HOST_CALL")
def rsi_host_call(ctx: RunContext) -> RecExit | None:
    """x1 = IPA of a 256-byte aligned RsiHostCall: exit HOST_CALL with imm and gprs; the
    host's answer is copied back on the next REC_ENTER (rmm-abi §7.1 step 7)."""
    (ipa,) = ctx.args(1)
    if ipa & 0xFF:
        raise RsiError(RsiStatus.ERROR_INPUT, "addr_align")
    if (ipa & 0xFFF) + HOST_CALL.size > 0x1000:
        raise RsiError(RsiStatus.ERROR_INPUT, "addr_granule")
    if not ctx.realm.geometry.in_par(ipa):
        raise RsiError(RsiStatus.ERROR_INPUT, "addr_bound")
    try:
        raw = ctx.read(ipa, HOST_CALL.size)
    except EmptyPage:
        raise RsiError(RsiStatus.ERROR_INPUT, "addr_ripas") from None
    values = HOST_CALL.unpack(raw)
    rec = ctx.rec
    rec["host_call_ipa"] = ipa
    rec.flags |= REC_HOST_CALL_PENDING
    return RecExit(RecExitReason.HOST_CALL, {"imm": int(values["imm"]),
                                              "gprs": values["gprs"]})
