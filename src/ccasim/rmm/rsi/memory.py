"""RSI_IPA_STATE_SET and RSI_IPA_STATE_GET (rmm-abi §9, errata E-5)."""

from __future__ import annotations

from .. import s2tt
from ..context import RecExit, RunContext
from ..recrun import RecExitReason
from ..s2tt import ENTRIES, Rtte
from . import RsiError, RsiStatus, ret, rsi_command, rsi_conditions

RSI_CONDITIONS = (
    *rsi_conditions(
        "RSI_IPA_STATE_SET",
        ("ripas_valid", RsiStatus.ERROR_INPUT, "ripas is neither EMPTY nor RAM"),
        ("base_align", RsiStatus.ERROR_INPUT, "base is not aligned to a granule"),
        ("top_align", RsiStatus.ERROR_INPUT, "top is not aligned to a granule"),
        ("size_valid", RsiStatus.ERROR_INPUT, "top <= base"),
        ("rgn_bound", RsiStatus.ERROR_INPUT, "[base, top) is not in the protected IPA space"),
    ),
    *rsi_conditions(
        "RSI_IPA_STATE_GET",
        ("base_align", RsiStatus.ERROR_INPUT, "base is not aligned to a granule"),
        ("end_align", RsiStatus.ERROR_INPUT, "end is not aligned to a granule"),
        ("size_valid", RsiStatus.ERROR_INPUT, "end <= base"),
        ("rgn_bound", RsiStatus.ERROR_INPUT, "[base, end) is not in the protected IPA space"),
        ("ripas", RsiStatus.ERROR_INPUT, "base is not mapped by a protected leaf entry"),
    ),
)


@rsi_command(0xC400_0197, "RSI_IPA_STATE_SET")
def rsi_ipa_state_set(ctx: RunContext) -> RecExit | None:
    """x1 base, x2 top, x3 RIPAS (EMPTY/RAM), x4 flags (change_destroyed): record the
    request in the REC and exit RIPAS_CHANGE; x0..x2 are set on the next REC_ENTER."""
    base, top, ripas, flags = ctx.args(4)
    g = ctx.realm.geometry
    if ripas > 1:
        raise RsiError(RsiStatus.ERROR_INPUT, "ripas_valid")
    if base & 0xFFF:
        raise RsiError(RsiStatus.ERROR_INPUT, "base_align")
    if top & 0xFFF:
        raise RsiError(RsiStatus.ERROR_INPUT, "top_align")
    if top <= base:
        raise RsiError(RsiStatus.ERROR_INPUT, "size_valid")
    if not (g.in_par(base) and top <= g.par_top):
        raise RsiError(RsiStatus.ERROR_INPUT, "rgn_bound")
    rec = ctx.rec
    rec["set_ripas_base"] = base
    rec["set_ripas_top"] = top
    rec["set_ripas_addr"] = base
    rec["set_ripas_value"] = ripas
    rec["set_ripas_change_destroyed"] = 1 if flags else 0
    ctx.engine.set_x(3, 0)  # E-5: x3 reads as zero when the change completes
    return RecExit(RecExitReason.RIPAS_CHANGE,
                   {"ripas_base": base, "ripas_top": top, "ripas_value": ripas})


@rsi_command(0xC400_0198, "RSI_IPA_STATE_GET")
def rsi_ipa_state_get(ctx: RunContext) -> RecExit | None:
    """x1 base, x2 end -> x1 top of the run of entries with base's RIPAS (within one RTT),
    x2 that RIPAS."""
    base, end = ctx.args(2)
    g = ctx.realm.geometry
    if base & 0xFFF:
        raise RsiError(RsiStatus.ERROR_INPUT, "base_align")
    if end & 0xFFF:
        raise RsiError(RsiStatus.ERROR_INPUT, "end_align")
    if end <= base:
        raise RsiError(RsiStatus.ERROR_INPUT, "size_valid")
    if not (g.in_par(base) and g.in_par(end - 1)):
        raise RsiError(RsiStatus.ERROR_INPUT, "rgn_bound")
    w = s2tt.walk(ctx.pe, g, base, 3)
    size = s2tt.level_size(w.level)
    descs = s2tt.read_table(ctx.pe, w.table_pa)
    first = s2tt.classify(descs[w.index], w.level)
    if first in (Rtte.TABLE, Rtte.ASSIGNED_NS, Rtte.UNASSIGNED_NS):
        raise RsiError(RsiStatus.ERROR_INPUT, "ripas")
    ripas = s2tt.ripas_of(first)
    addr = base & ~(size - 1)
    index = w.index
    while index < ENTRIES and addr < end:
        kind = s2tt.classify(descs[index], w.level)
        if kind in (Rtte.TABLE, Rtte.ASSIGNED_NS, Rtte.UNASSIGNED_NS):
            break
        if s2tt.ripas_of(kind) != ripas:
            break
        addr += size
        index += 1
    ret(ctx, RsiStatus.SUCCESS, min(addr, end), ripas)
    return None
