"""RSI_ATTESTATION_TOKEN_INIT / TOKEN_CONTINUE: the call protocol and buffer handling
(rmm-abi §9, §11.2). The token itself is built by ``Rmm.token_builder`` (the attestation
layer); without one, TOKEN_CONTINUE fails with RSI_ERROR_UNKNOWN (a signing error).

The challenge and the token under construction are per REC: the challenge lives in the
REC granule, the built token in the REC's auxiliary granules (4 onwards).
"""

from __future__ import annotations

from ...arch.memory import GRANULE_SIZE
from ..context import EmptyPage, RecExit, RunContext
from ..objects import REC_TOKEN_INIT
from . import RsiError, RsiStatus, ret, rsi_command, rsi_conditions

TOKEN_AUX_FIRST = 4  # aux granules 0..3 hold the vCPU context
TOKEN_MAX = (16 - TOKEN_AUX_FIRST) * GRANULE_SIZE
TOKEN_BUFFER_UPPER_BOUND = GRANULE_SIZE  # RMM_CCA_TOKEN_BUFFER default: one page


RSI_CONDITIONS = rsi_conditions(
    "RSI_ATTESTATION_TOKEN_CONTINUE",
    ("addr_align", RsiStatus.ERROR_INPUT, "addr is not aligned to a granule"),
    ("offset_bound", RsiStatus.ERROR_INPUT, "offset is not within the granule"),
    ("size_bound", RsiStatus.ERROR_INPUT, "offset + size runs past the granule"),
    ("addr_bound", RsiStatus.ERROR_INPUT, "addr is not in the protected IPA space"),
    ("token_init", RsiStatus.ERROR_STATE, "no RSI_ATTESTATION_TOKEN_INIT since the last token"),
    ("addr_ripas", RsiStatus.ERROR_INPUT, "addr is RIPAS EMPTY (or DESTROYED)"),
    ("no_token_builder", RsiStatus.ERROR_UNKNOWN, "the RMM cannot sign tokens"),
    ("token_build", RsiStatus.ERROR_INPUT, "building the token failed"),
    ("token_size", RsiStatus.ERROR_INPUT, "the token is empty or larger than its buffer"),
)


@rsi_command(0xC400_0194, "RSI_ATTESTATION_TOKEN_INIT")
def rsi_attestation_token_init(ctx: RunContext) -> RecExit | None:
    """x1..x8 = the 64-byte challenge; aborts any token operation in progress;
    x1 = an upper bound on the token size."""
    words = ctx.args(8)
    rec = ctx.rec
    rec["challenge"] = b"".join(w.to_bytes(8, "little") for w in words)
    rec["token_len"] = 0
    rec["token_copied"] = 0
    # The claims (a snapshot of the measurements) are fixed now (rmm-abi §11.2).
    rec["meas_snapshot"] = b"".join(ctx.realm.measurements)
    rec.flags |= REC_TOKEN_INIT
    ret(ctx, RsiStatus.SUCCESS, max(TOKEN_BUFFER_UPPER_BOUND, 2 * GRANULE_SIZE))
    return None


def _token(ctx: RunContext) -> bytes:
    """The token for this REC, built on the first copy and kept in the aux granules."""
    rec = ctx.rec
    aux = rec.aux
    length = rec["token_len"]
    if length:
        data = b"".join(ctx.pe.read(aux[TOKEN_AUX_FIRST + i], GRANULE_SIZE)
                        for i in range(-(-length // GRANULE_SIZE)))
        return data[:length]
    builder = ctx.rmm.token_builder
    if builder is None:
        raise RsiError(RsiStatus.ERROR_UNKNOWN, "no_token_builder")
    challenge = rec.raw("challenge")
    snapshot = rec.raw("meas_snapshot")
    measurements = [snapshot[i * 64 : (i + 1) * 64] for i in range(5)]
    try:
        token = builder(ctx.pe, ctx.realm, challenge, measurements)
    except Exception:
        raise RsiError(RsiStatus.ERROR_INPUT, "token_build") from None
    if not token or len(token) > TOKEN_MAX:
        raise RsiError(RsiStatus.ERROR_INPUT, "token_size")
    for i in range(0, len(token), GRANULE_SIZE):
        ctx.pe.write(aux[TOKEN_AUX_FIRST + i // GRANULE_SIZE],
                     token[i : i + GRANULE_SIZE].ljust(GRANULE_SIZE, b"\0"))
    rec["token_len"] = len(token)
    return token


@rsi_command(0xC400_0195, "RSI_ATTESTATION_TOKEN_CONTINUE")
def rsi_attestation_token_continue(ctx: RunContext) -> RecExit | None:
    """x1 = buffer IPA (granule aligned), x2 = offset, x3 = size: copy the next part of
    the token; x0 = INCOMPLETE while bytes remain, x1 = bytes written by this call."""
    ipa, offset, size = ctx.args(3)
    if ipa & 0xFFF:
        raise RsiError(RsiStatus.ERROR_INPUT, "addr_align")
    if offset >= GRANULE_SIZE:
        raise RsiError(RsiStatus.ERROR_INPUT, "offset_bound")
    if offset + size > GRANULE_SIZE:
        raise RsiError(RsiStatus.ERROR_INPUT, "size_bound")
    if not ctx.realm.geometry.in_par(ipa):
        raise RsiError(RsiStatus.ERROR_INPUT, "addr_bound")
    rec = ctx.rec
    if not rec.flags & REC_TOKEN_INIT:
        raise RsiError(RsiStatus.ERROR_STATE, "token_init")
    try:
        ctx.page(ipa)
    except EmptyPage:
        raise RsiError(RsiStatus.ERROR_INPUT, "addr_ripas") from None
    if size == 0:
        ret(ctx, RsiStatus.INCOMPLETE, 0)
        return None
    token = _token(ctx)
    copied = rec["token_copied"]
    chunk = token[copied : copied + size]
    ctx.write(ipa + offset, chunk)
    rec["token_copied"] = copied + len(chunk)
    if copied + len(chunk) < len(token):
        ret(ctx, RsiStatus.INCOMPLETE, len(chunk))
    else:
        rec.flags &= ~REC_TOKEN_INIT
        ret(ctx, RsiStatus.SUCCESS, len(chunk))
    return None
