"""RSI_VERSION and RSI_FEATURES (rmm-abi §9)."""

from __future__ import annotations

from ..context import RecExit, RunContext
from . import RsiError, RsiStatus, ret, rsi_command, rsi_conditions

RSI_ABI_VERSION = 0x0001_0000


RSI_CONDITIONS = rsi_conditions(
    "RSI_VERSION",
    ("version", RsiStatus.ERROR_INPUT, "the requested version is not 1.0"),
)


@rsi_command(0xC400_0190, "RSI_VERSION")
def rsi_version(ctx: RunContext) -> RecExit | None:
    """REL0: SUCCESS only for exactly 1.0; x1 = x2 = 1.0 in both cases."""
    (requested,) = ctx.args(1)
    if requested != RSI_ABI_VERSION:
        raise RsiError(RsiStatus.ERROR_INPUT, "version", (RSI_ABI_VERSION, RSI_ABI_VERSION))
    ret(ctx, RsiStatus.SUCCESS, RSI_ABI_VERSION, RSI_ABI_VERSION)
    return None


@rsi_command(0xC400_0191, "RSI_FEATURES")
def rsi_features(ctx: RunContext) -> RecExit | None:
    """REL0 advertises no optional features: every index reads as zero."""
    ret(ctx, RsiStatus.SUCCESS, 0)
    return None
