"""RSI_REALM_CONFIG (rmm-abi §8.4, §9)."""

from __future__ import annotations

from ...layout import Field, Layout
from ..context import EmptyPage, RecExit, RunContext
from . import RsiError, RsiStatus, ret, rsi_command, rsi_conditions

REALM_CONFIG = Layout(
    "RsiRealmConfig",
    0x240,
    [Field("ipa_width", 0x000, 8), Field("hash_algo", 0x008, 1),
     Field("rpv", 0x200, 64, raw=True)],
)


RSI_CONDITIONS = rsi_conditions(
    "RSI_REALM_CONFIG",
    ("addr_align", RsiStatus.ERROR_INPUT, "addr is not aligned to a granule"),
    ("addr_bound", RsiStatus.ERROR_INPUT, "addr is not in the protected IPA space"),
    ("addr_ripas", RsiStatus.ERROR_INPUT, "addr is RIPAS EMPTY (or DESTROYED)"),
)


@rsi_command(0xC400_0196, "RSI_REALM_CONFIG")
def rsi_realm_config(ctx: RunContext) -> RecExit | None:
    """Write ipa_width, hash_algo and rpv into the page at x1 (REL0 leaves the rest)."""
    (ipa,) = ctx.args(1)
    if ipa & 0xFFF:
        raise RsiError(RsiStatus.ERROR_INPUT, "addr_align")
    if not ctx.realm.geometry.in_par(ipa):
        raise RsiError(RsiStatus.ERROR_INPUT, "addr_bound")
    realm = ctx.realm
    try:
        ctx.write(ipa + REALM_CONFIG.offset("ipa_width"), realm.s2sz.to_bytes(8, "little"))
        ctx.write(ipa + REALM_CONFIG.offset("hash_algo"), bytes([realm.hash_algo]))
        ctx.write(ipa + REALM_CONFIG.offset("rpv"), realm.rpv)
    except EmptyPage:
        raise RsiError(RsiStatus.ERROR_INPUT, "addr_ripas") from None
    ret(ctx, RsiStatus.SUCCESS)
    return None
