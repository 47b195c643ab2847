"""RSI_MEASUREMENT_READ and RSI_MEASUREMENT_EXTEND (rmm-abi §9, §10.6)."""

from __future__ import annotations

from .. import measurement as m
from ..context import RecExit, RunContext
from . import RsiError, RsiStatus, ret, rsi_command, rsi_conditions

RSI_CONDITIONS = (
    *rsi_conditions(
        "RSI_MEASUREMENT_READ",
        ("index_bound", RsiStatus.ERROR_INPUT, "index is above 4"),
    ),
    *rsi_conditions(
        "RSI_MEASUREMENT_EXTEND",
        ("index_bound", RsiStatus.ERROR_INPUT, "index is 0 (the RIM) or above 4"),
        ("size_bound", RsiStatus.ERROR_INPUT, "size is above 64 bytes"),
    ),
)


@rsi_command(0xC400_0192, "RSI_MEASUREMENT_READ")
def rsi_measurement_read(ctx: RunContext) -> RecExit | None:
    """x1 = index (0 = RIM, 1..4 = REMs) -> x1..x8 = the 64-byte slot, little-endian."""
    (index,) = ctx.args(1)
    if index > 4:
        raise RsiError(RsiStatus.ERROR_INPUT, "index_bound")
    slot = ctx.realm.measurements[index]
    words = [int.from_bytes(slot[8 * i : 8 * i + 8], "little") for i in range(8)]
    ret(ctx, RsiStatus.SUCCESS, *words)
    return None


@rsi_command(0xC400_0193, "RSI_MEASUREMENT_EXTEND")
def rsi_measurement_extend(ctx: RunContext) -> RecExit | None:
    """x1 = index 1..4, x2 = size <= 64, x3..x10 = value: REM := H(REM || value[:size])."""
    args = ctx.args(10)
    index, size = args[0], args[1]
    if index == 0 or index > 4:
        raise RsiError(RsiStatus.ERROR_INPUT, "index_bound")
    if size > 64:
        raise RsiError(RsiStatus.ERROR_INPUT, "size_bound")
    value = b"".join(w.to_bytes(8, "little") for w in args[2:10])[:size]
    realm = ctx.realm
    algo = realm.hash_algo
    current = realm.measurements[index][: algo.digest_size]
    realm.measurements[index] = m.slot(m.extend_rem(algo, current, value))
    realm.store(ctx.pe)
    ret(ctx, RsiStatus.SUCCESS)
    return None
