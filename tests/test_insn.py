"""A64 decoding for exception syndromes (ccasim.arch.insn).

Expectations come from the Arm ARM, not from the decoder: the load/store encodings' shared
decode (size:opc -> access size, sign extension, register width), the ESR_EL2 "ISS encoding
for an exception from a Data Abort" (ISV = 1 only for single general-purpose register
loads/stores without writeback, including acquire/release forms, excluding exclusives), and
the trap ISS layouts for WF*, HVC/SMC/SVC, ERET and MSR/MRS/System instructions.
Instructions are assembled with keystone; the ones keystone (an Armv8.0 assembler) does not
know — FEAT_LSE, FEAT_LRCPC/LRCPC2, FEAT_LOR, FEAT_PAuth, FEAT_MTE, FEAT_WFxT — are given as
encoding words from the Arm ARM, cross-checked with ``llvm-mc -show-encoding``. Loads and
stores are also executed in Unicorn to check complete_load/store_value against a real
implementation of the instructions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from keystone import KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN, Ks
from unicorn import UC_ARCH_ARM64, UC_MODE_ARM, Uc
from unicorn import arm64_const as A

from ccasim.arch.insn import (
    EC_DABT_LOWER,
    DataAccess,
    InsnKind,
    classify,
    complete_load,
    decode_data_abort,
    esr,
    store_value,
)

_KS = Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN)


@cache
def asm(text: str) -> int:
    """The single instruction word keystone assembles ``text`` to (at address 0)."""
    encoding, count = _KS.asm(text, 0)
    assert count == 1 and encoding is not None and len(encoding) == 4, text
    return int.from_bytes(bytes(encoding), "little")


# ---------------------------------------------------------------------------------------
# Expected decodes
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Want:
    """Expected fields; ``size`` in bytes. Informational flags default to False."""

    isv: bool
    size: int
    srt: int
    sf: bool = False
    sse: bool = False
    ar: bool = False
    wnr: bool = False
    simd: bool = False
    pair: bool = False
    wb: bool = False
    excl: bool = False
    atomic: bool = False
    tag: bool = False


def check(access: DataAccess | None, want: Want) -> None:
    assert access is not None
    got = (
        access.isv,
        access.size_bytes,
        access.sas,
        access.srt,
        access.sf,
        access.sse,
        access.ar,
        access.wnr,
        access.is_simd,
        access.is_pair,
        access.writeback,
        access.is_exclusive,
        access.is_atomic,
        access.is_tag,
    )
    sas = {1: 0, 2: 1, 4: 2, 8: 3, 16: 4}[want.size]
    expected = (
        want.isv,
        want.size,
        sas,
        want.srt,
        want.sf,
        want.sse,
        want.ar,
        want.wnr,
        want.simd,
        want.pair,
        want.wb,
        want.excl,
        want.atomic,
        want.tag,
    )
    assert got == expected


# LDR/STR (immediate, unsigned offset): size:opc gives the access size and, for loads,
# zero-extension into W/X (opc 01), sign-extension into X (opc 10) or into W (opc 11).
UNSIGNED_OFFSET = [
    ("ldrb w1, [x2, #1]", Want(True, 1, 1)),
    ("ldrh w3, [x4, #2]", Want(True, 2, 3)),
    ("ldr w5, [x6, #4]", Want(True, 4, 5)),
    ("ldr x7, [x8, #8]", Want(True, 8, 7, sf=True)),
    ("ldrsb w9, [x10]", Want(True, 1, 9, sse=True)),
    ("ldrsb x9, [x10, #4095]", Want(True, 1, 9, sse=True, sf=True)),
    ("ldrsh w11, [x12]", Want(True, 2, 11, sse=True)),
    ("ldrsh x11, [x12, #8190]", Want(True, 2, 11, sse=True, sf=True)),
    ("ldrsw x13, [x14, #16380]", Want(True, 4, 13, sse=True, sf=True)),
    ("ldr x0, [sp]", Want(True, 8, 0, sf=True)),
    ("ldr x30, [x29, #32760]", Want(True, 8, 30, sf=True)),
    ("ldr wzr, [x1]", Want(True, 4, 31)),
    ("ldr xzr, [x1]", Want(True, 8, 31, sf=True)),
    ("strb w15, [x16, #3]", Want(True, 1, 15, wnr=True)),
    ("strh w17, [x18, #6]", Want(True, 2, 17, wnr=True)),
    ("str w19, [x20, #12]", Want(True, 4, 19, wnr=True)),
    ("str x21, [x22, #24]", Want(True, 8, 21, sf=True, wnr=True)),
    ("str xzr, [sp, #8]", Want(True, 8, 31, sf=True, wnr=True)),
    ("strb wzr, [x0]", Want(True, 1, 31, wnr=True)),
]

# Register offset: Rm extended (UXTW/SXTW/SXTX) or shifted (LSL #size).
REGISTER_OFFSET = [
    ("ldr w1, [x2, x3]", Want(True, 4, 1)),
    ("ldr x1, [x2, x3, lsl #3]", Want(True, 8, 1, sf=True)),
    ("ldrb w1, [x2, w3, uxtw]", Want(True, 1, 1)),
    ("ldrsb x4, [x5, x6]", Want(True, 1, 4, sse=True, sf=True)),
    ("ldrh w1, [x2, w3, sxtw #1]", Want(True, 2, 1)),
    ("ldrsh x1, [x2, w3, sxtw #1]", Want(True, 2, 1, sse=True, sf=True)),
    ("ldrsh w1, [x2, x3, sxtx]", Want(True, 2, 1, sse=True)),
    ("ldrsw x1, [x2, x3, lsl #2]", Want(True, 4, 1, sse=True, sf=True)),
    ("ldr w1, [x2, w3, sxtw #2]", Want(True, 4, 1)),
    ("str x1, [x2, x3, sxtx #3]", Want(True, 8, 1, sf=True, wnr=True)),
    ("strh w1, [x2, x3, lsl #1]", Want(True, 2, 1, wnr=True)),
    ("strb w8, [sp, w9, uxtw]", Want(True, 1, 8, wnr=True)),
]

# Unscaled (LDUR/STUR) and unprivileged (LDTR/STTR): single register, no writeback.
UNSCALED_AND_UNPRIVILEGED = [
    ("ldur x1, [x2, #-8]", Want(True, 8, 1, sf=True)),
    ("ldur w1, [x2, #255]", Want(True, 4, 1)),
    ("ldurb w3, [x4, #-256]", Want(True, 1, 3)),
    ("ldurh w3, [x4, #1]", Want(True, 2, 3)),
    ("ldursb w5, [x6, #-1]", Want(True, 1, 5, sse=True)),
    ("ldursh x5, [x6, #3]", Want(True, 2, 5, sse=True, sf=True)),
    ("ldursw x7, [x8, #-3]", Want(True, 4, 7, sse=True, sf=True)),
    ("stur w1, [x2, #3]", Want(True, 4, 1, wnr=True)),
    ("sturh w1, [x2, #-2]", Want(True, 2, 1, wnr=True)),
    ("sturb w1, [x2, #7]", Want(True, 1, 1, wnr=True)),
    ("stur x1, [sp, #-16]", Want(True, 8, 1, sf=True, wnr=True)),
    ("ldtr x1, [x2, #8]", Want(True, 8, 1, sf=True)),
    ("ldtrb w1, [x2]", Want(True, 1, 1)),
    ("ldtrsb x1, [x2]", Want(True, 1, 1, sse=True, sf=True)),
    ("ldtrsh w1, [x2, #-2]", Want(True, 2, 1, sse=True)),
    ("ldtrsw x1, [x2]", Want(True, 4, 1, sse=True, sf=True)),
    ("sttrh w1, [x2]", Want(True, 2, 1, wnr=True)),
    ("sttr x1, [x2, #255]", Want(True, 8, 1, sf=True, wnr=True)),
]

# Pre-/post-indexed: the register fields are decoded, but writeback makes ISV 0.
WRITEBACK = [
    ("ldr x1, [x2, #8]!", Want(False, 8, 1, sf=True, wb=True)),
    ("ldr w1, [x2], #4", Want(False, 4, 1, wb=True)),
    ("ldrb w1, [x2, #-1]!", Want(False, 1, 1, wb=True)),
    ("ldrsw x1, [x2], #-4", Want(False, 4, 1, sse=True, sf=True, wb=True)),
    ("ldrsh w3, [x4, #2]!", Want(False, 2, 3, sse=True, wb=True)),
    ("strb w1, [x2, #1]!", Want(False, 1, 1, wnr=True, wb=True)),
    ("str x1, [sp, #-16]!", Want(False, 8, 1, sf=True, wnr=True, wb=True)),
    ("strh w5, [x6], #2", Want(False, 2, 5, wnr=True, wb=True)),
]

# LDR/LDRSW (literal): a single general-purpose register load without writeback.
LITERAL = [
    ("ldr w1, 0x1000", Want(True, 4, 1)),
    ("ldr x2, 0x100", Want(True, 8, 2, sf=True)),
    ("ldrsw x3, 0x40", Want(True, 4, 3, sse=True, sf=True)),
    ("ldr s4, 0x40", Want(False, 4, 4, simd=True)),
    ("ldr d5, 0x40", Want(False, 8, 5, simd=True)),
    ("ldr q6, 0x40", Want(False, 16, 6, simd=True)),
]

# Pairs: ISV 0 whatever the addressing mode; the size is per register.
PAIRS = [
    ("ldp x1, x2, [x3]", Want(False, 8, 1, sf=True, pair=True)),
    ("ldp w1, w2, [x3, #8]", Want(False, 4, 1, pair=True)),
    ("stp x29, x30, [sp, #-16]!", Want(False, 8, 29, sf=True, wnr=True, pair=True, wb=True)),
    ("ldp x29, x30, [sp], #16", Want(False, 8, 29, sf=True, pair=True, wb=True)),
    ("stp w1, w2, [x3], #8", Want(False, 4, 1, wnr=True, pair=True, wb=True)),
    ("ldpsw x1, x2, [x3]", Want(False, 4, 1, sse=True, sf=True, pair=True)),
    ("ldpsw x1, x2, [x3, #8]!", Want(False, 4, 1, sse=True, sf=True, pair=True, wb=True)),
    ("ldnp x1, x2, [x3]", Want(False, 8, 1, sf=True, pair=True)),
    ("stnp w1, w2, [x3, #-8]", Want(False, 4, 1, wnr=True, pair=True)),
    ("ldp q0, q1, [x0]", Want(False, 16, 0, simd=True, pair=True)),
    ("stp d0, d1, [x0], #16", Want(False, 8, 0, wnr=True, simd=True, pair=True, wb=True)),
    ("ldp s2, s3, [sp, #-8]!", Want(False, 4, 2, simd=True, pair=True, wb=True)),
    ("ldnp q4, q5, [x6]", Want(False, 16, 4, simd=True, pair=True)),
]

# Exclusives (ISV 0) and load-acquire/store-release (ISV 1, AR 1).
EXCLUSIVE_AND_ORDERED = [
    ("ldxr x1, [x2]", Want(False, 8, 1, sf=True, excl=True)),
    ("ldxr w1, [x2]", Want(False, 4, 1, excl=True)),
    ("ldaxrb w1, [x2]", Want(False, 1, 1, ar=True, excl=True)),
    ("ldxrh w1, [sp]", Want(False, 2, 1, excl=True)),
    ("stxr w4, x1, [x3]", Want(False, 8, 1, sf=True, wnr=True, excl=True)),
    ("stlxrh w4, w1, [x3]", Want(False, 2, 1, ar=True, wnr=True, excl=True)),
    ("stxrb w4, w1, [x3]", Want(False, 1, 1, wnr=True, excl=True)),
    ("ldxp x1, x2, [x3]", Want(False, 8, 1, sf=True, pair=True, excl=True)),
    ("ldaxp w1, w2, [x3]", Want(False, 4, 1, ar=True, pair=True, excl=True)),
    ("stlxp w5, x1, x2, [x3]", Want(False, 8, 1, sf=True, ar=True, wnr=True, pair=True, excl=True)),
    ("ldar x1, [x2]", Want(True, 8, 1, sf=True, ar=True)),
    ("ldar w1, [x2]", Want(True, 4, 1, ar=True)),
    ("ldarb w3, [sp]", Want(True, 1, 3, ar=True)),
    ("ldarh w3, [x4]", Want(True, 2, 3, ar=True)),
    ("stlr w1, [x2]", Want(True, 4, 1, ar=True, wnr=True)),
    ("stlr x30, [x2]", Want(True, 8, 30, sf=True, ar=True, wnr=True)),
    ("stlrb w1, [x2]", Want(True, 1, 1, ar=True, wnr=True)),
    ("stlrh wzr, [x2]", Want(True, 2, 31, ar=True, wnr=True)),
]

# SIMD&FP: ISV 0 for every form.
SIMD = [
    ("ldr q1, [x2]", Want(False, 16, 1, simd=True)),
    ("ldr d1, [x2, #8]", Want(False, 8, 1, simd=True)),
    ("ldr s1, [x2, x3, lsl #2]", Want(False, 4, 1, simd=True)),
    ("ldr h1, [x2]", Want(False, 2, 1, simd=True)),
    ("ldr b1, [x2]", Want(False, 1, 1, simd=True)),
    ("str q31, [sp, #16]", Want(False, 16, 31, wnr=True, simd=True)),
    ("str s0, [x1, w2, sxtw]", Want(False, 4, 0, wnr=True, simd=True)),
    ("ldur d1, [x2, #-8]", Want(False, 8, 1, simd=True)),
    ("stur q1, [x2, #1]", Want(False, 16, 1, wnr=True, simd=True)),
    ("ldr d1, [x2], #8", Want(False, 8, 1, simd=True, wb=True)),
    ("str q1, [x2, #-16]!", Want(False, 16, 1, wnr=True, simd=True, wb=True)),
    ("ld1 {v0.16b}, [x1]", Want(False, 1, 0, simd=True)),
    ("ld1 {v2.2d, v3.2d}, [x1], #32", Want(False, 8, 2, simd=True, wb=True)),
    ("st1 {v0.4s}, [x1]", Want(False, 4, 0, wnr=True, simd=True)),
    ("st2 {v0.8h, v1.8h}, [x1], x2", Want(False, 2, 0, wnr=True, simd=True, wb=True)),
    ("ld4 {v0.4s, v1.4s, v2.4s, v3.4s}, [x1]", Want(False, 4, 0, simd=True)),
    ("ld1 {v0.s}[1], [x1], #4", Want(False, 4, 0, simd=True, wb=True)),
    ("st1 {v5.d}[1], [x1]", Want(False, 8, 5, wnr=True, simd=True)),
    ("ld1 {v0.h}[3], [x1]", Want(False, 2, 0, simd=True)),
    ("ld1r {v0.4s}, [x1]", Want(False, 4, 0, simd=True)),
    ("ld2r {v0.8b, v1.8b}, [x1], #2", Want(False, 1, 0, simd=True, wb=True)),
]

# Encodings keystone cannot assemble (Armv8.1+), from the Arm ARM's encoding diagrams.
LATER_FEATURES = [
    # FEAT_LRCPC LDAPR{B,H}: a single register with acquire semantics
    ("ldapr x1, [x2]", 0xF8BFC041, Want(True, 8, 1, sf=True, ar=True)),
    ("ldapr w30, [x2]", 0xB8BFC05E, Want(True, 4, 30, ar=True)),
    ("ldaprb w1, [x2]", 0x38BFC041, Want(True, 1, 1, ar=True)),
    ("ldaprh w3, [sp]", 0x78BFC3E3, Want(True, 2, 3, ar=True)),
    # FEAT_LRCPC2 LDAPUR*/STLUR*: unscaled, acquire/release, with LDAPURS* sign extension
    ("ldapur w1, [x2, #3]", 0x99403041, Want(True, 4, 1, ar=True)),
    ("ldapurb w1, [x2]", 0x19400041, Want(True, 1, 1, ar=True)),
    ("ldapurh w1, [x2, #-2]", 0x595FE041, Want(True, 2, 1, ar=True)),
    ("ldapursb w1, [x2, #-1]", 0x19DFF041, Want(True, 1, 1, sse=True, ar=True)),
    ("ldapursh x5, [x2, #2]", 0x59802045, Want(True, 2, 5, sse=True, sf=True, ar=True)),
    ("ldapursw x1, [x2, #1]", 0x99801041, Want(True, 4, 1, sse=True, sf=True, ar=True)),
    ("stlur x1, [x2, #-8]", 0xD91F8041, Want(True, 8, 1, sf=True, ar=True, wnr=True)),
    ("stlur w9, [x2, #255]", 0x990FF049, Want(True, 4, 9, ar=True, wnr=True)),
    ("stlurh w1, [x2]", 0x59000041, Want(True, 2, 1, ar=True, wnr=True)),
    ("stlurb w7, [x2]", 0x19000047, Want(True, 1, 7, ar=True, wnr=True)),
    # FEAT_LOR LDLAR/STLLR: LoadLOAcquire / StoreLORelease
    ("ldlar x1, [x2]", 0xC8DF7C41, Want(True, 8, 1, sf=True, ar=True)),
    ("ldlarb w3, [x4]", 0x08DF7C83, Want(True, 1, 3, ar=True)),
    ("stllr w1, [x2]", 0x889F7C41, Want(True, 4, 1, ar=True, wnr=True)),
    ("stllrh w5, [sp]", 0x489F7FE5, Want(True, 2, 5, ar=True, wnr=True)),
    # FEAT_PAuth LDRAA/LDRAB: 64-bit single register; the pre-indexed form writes back
    ("ldraa x1, [x2, #16]", 0xF8202441, Want(True, 8, 1, sf=True)),
    ("ldraa x1, [x2, #-4096]", 0xF8600441, Want(True, 8, 1, sf=True)),
    ("ldraa xzr, [sp]", 0xF82007FF, Want(True, 8, 31, sf=True)),
    ("ldrab x1, [x2, #-16]!", 0xF8FFEC41, Want(False, 8, 1, sf=True, wb=True)),
    # FEAT_LSE atomics: read-modify-write, ISV 0 (reported as a read)
    ("ldadd w1, w2, [x3]", 0xB8210062, Want(False, 4, 2, atomic=True)),
    ("ldaddal x1, x2, [x3]", 0xF8E10062, Want(False, 8, 2, sf=True, ar=True, atomic=True)),
    ("ldaddb w1, w2, [x3]", 0x38210062, Want(False, 1, 2, atomic=True)),
    ("ldumaxl w1, w2, [x3]", 0xB8616062, Want(False, 4, 2, ar=True, atomic=True)),
    ("stadd w1, [x3]", 0xB821007F, Want(False, 4, 31, atomic=True)),
    ("swpb w1, w2, [x3]", 0x38218062, Want(False, 1, 2, atomic=True)),
    ("swpal x1, x2, [x3]", 0xF8E18062, Want(False, 8, 2, sf=True, ar=True, atomic=True)),
    ("cas x1, x2, [x3]", 0xC8A17C62, Want(False, 8, 2, sf=True, atomic=True)),
    ("casal w1, w2, [x3]", 0x88E1FC62, Want(False, 4, 2, ar=True, atomic=True)),
    ("casp w4, w5, w6, w7, [x8]", 0x08247D06, Want(False, 4, 6, pair=True, atomic=True)),
    (
        "caspal x0, x1, x2, x3, [x4]",
        0x4860FC82,
        Want(False, 8, 2, sf=True, ar=True, pair=True, atomic=True),
    ),
    # FEAT_MTE tag instructions, per 16-byte granule
    ("stg x1, [x2]", 0xD9200841, Want(False, 16, 1, sf=True, wnr=True, tag=True)),
    ("stg x1, [x2, #16]!", 0xD9201C41, Want(False, 16, 1, sf=True, wnr=True, wb=True, tag=True)),
    ("stzg x1, [x2], #32", 0xD9602441, Want(False, 16, 1, sf=True, wnr=True, wb=True, tag=True)),
    ("st2g sp, [x2, #-16]", 0xD9BFF85F, Want(False, 16, 31, sf=True, wnr=True, tag=True)),
    ("ldg x3, [x2, #16]", 0xD9601043, Want(False, 16, 3, sf=True, tag=True)),
    ("stgm x1, [x2]", 0xD9A00041, Want(False, 16, 1, sf=True, wnr=True, tag=True)),
    ("ldgm x1, [x2]", 0xD9E00041, Want(False, 16, 1, sf=True, tag=True)),
    ("stzgm x1, [x2]", 0xD9200041, Want(False, 16, 1, sf=True, wnr=True, tag=True)),
    (
        "stgp x1, x2, [x3, #32]!",
        0x69810861,
        Want(False, 8, 1, sf=True, wnr=True, pair=True, wb=True, tag=True),
    ),
]

KEYSTONE_CASES = (
    UNSIGNED_OFFSET
    + REGISTER_OFFSET
    + UNSCALED_AND_UNPRIVILEGED
    + WRITEBACK
    + LITERAL
    + PAIRS
    + EXCLUSIVE_AND_ORDERED
    + SIMD
)


@pytest.mark.parametrize(("text", "want"), KEYSTONE_CASES, ids=[c[0] for c in KEYSTONE_CASES])
def test_decode_assembled(text: str, want: Want) -> None:
    check(decode_data_abort(asm(text)), want)


@pytest.mark.parametrize(
    ("text", "word", "want"), LATER_FEATURES, ids=[c[0] for c in LATER_FEATURES]
)
def test_decode_later_features(text: str, word: int, want: Want) -> None:
    check(decode_data_abort(word), want)


NOT_MEMORY = [
    "add x1, x2, x3",
    "mov x0, #1",
    "movz w3, #0x1234, lsl #16",
    "nop",
    "b 0x100",
    "bl 0x100",
    "ret",
    "br x3",
    "cbz x1, 0x40",
    "adr x1, 0x40",
    "adrp x1, 0x1000",
    "svc #0",
    "hvc #0",
    "smc #0",
    "eret",
    "wfi",
    "mrs x1, tpidr_el0",
    "msr sctlr_el1, x2",
    "dc civac, x1",
    "dc zva, x1",
    "dmb ish",
    "isb",
    "fadd d0, d1, d2",
    "add v0.4s, v1.4s, v2.4s",
    "mul x1, x2, x3",
    "csel w1, w2, w3, eq",
    # prefetches are memory hints that never abort
    "prfm pldl1keep, [x1]",
    "prfm pstl2strm, [x1, x2]",
    "prfum pldl1keep, [x1, #-1]",
    "prfm plil1keep, 0x40",
]


@pytest.mark.parametrize("text", NOT_MEMORY)
def test_not_a_load_or_store(text: str) -> None:
    assert decode_data_abort(asm(text)) is None


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("st64b x0, [x1] (FEAT_LS64, not modelled)", 0xF83F9020),
        ("ld64b x0, [x1] (FEAT_LS64, not modelled)", 0xF83FD020),
        ("ldr z0, [x0] (SVE)", 0x85804000),
        ("ld1b {z0.b}, p0/z, [x0] (SVE)", 0xA400A000),
        ("ldrsw x1, [x2], #4 with opc 11 (unallocated)", 0xB8C04441),
        ("ldr with option<1> = 0 (unallocated)", 0xB8632841),
        ("ld2 {v0.1d, v1.1d} (size:Q = 110, unallocated)", 0x0C408C20),
        ("ld3 single structure, S lanes with size 10 (unallocated)", 0x0D40A820),
        ("all zeros (UDF #0)", 0x00000000),
    ],
)
def test_not_decoded(text: str, word: int) -> None:
    assert decode_data_abort(word) is None


@settings(max_examples=300)
@given(st.integers(0, 0xFFFF_FFFF))
def test_outside_load_store_space_is_none(word: int) -> None:
    """A64 top-level decode: loads and stores are op0 (bits [28:25]) = x1x0."""
    word = (word & ~(1 << 27)) if word & 1 else (word | (1 << 25))
    assert decode_data_abort(word) is None


@settings(max_examples=500)
@given(st.integers(0, 0xFFFF_FFFF))
def test_decode_invariants(word: int) -> None:
    access = decode_data_abort(word)
    if access is None:
        return
    assert 0 <= access.srt <= 31
    assert access.size_bytes == 1 << access.sas
    if access.isv:
        assert 0 <= access.sas <= 3
        assert not (
            access.is_simd
            or access.is_pair
            or access.writeback
            or access.is_exclusive
            or access.is_atomic
            or access.is_tag
        )
    iss = access.iss(0b000111)
    assert 0 <= iss < 1 << 25
    assert bool(iss >> 24) == access.isv


# ---------------------------------------------------------------------------------------
# Hypothesis: LDR{B,H,SB,SH,SW,} Rt, [Xn, #imm] and friends
# ---------------------------------------------------------------------------------------

# mnemonic -> (access size, sign-extends, destination widths allowed by the Arm ARM)
LOAD_FORMS = {
    "ldrb": (1, False, "w"),
    "ldrh": (2, False, "w"),
    "ldrsb": (1, True, "wx"),
    "ldrsh": (2, True, "wx"),
    "ldrsw": (4, True, "x"),
    "ldr": (0, False, "wx"),  # 4 for W, 8 for X
}
STORE_FORMS = {"strb": 1, "strh": 2, "str": 0}

registers = st.integers(0, 31)  # 31 is the zero register as Rt, SP as the base
bases = st.integers(0, 31)


def reg(width: str, number: int) -> str:
    return f"{width}zr" if number == 31 else f"{width}{number}"


def base(number: int) -> str:
    return "sp" if number == 31 else f"x{number}"


@st.composite
def load_forms(draw: st.DrawFn) -> tuple[str, int, bool, bool]:
    mnemonic = draw(st.sampled_from(sorted(LOAD_FORMS)))
    size, signed, widths = LOAD_FORMS[mnemonic]
    width = draw(st.sampled_from(widths))
    if size == 0:
        size = 8 if width == "x" else 4
    return mnemonic, size, width == "x", signed


@settings(max_examples=300)
@given(load_forms(), registers, bases, st.integers(0, 4095))
def test_hypothesis_unsigned_offset_loads(
    form: tuple[str, int, bool, bool], rt: int, rn: int, index: int
) -> None:
    mnemonic, size, sf, signed = form
    text = f"{mnemonic} {reg('x' if sf else 'w', rt)}, [{base(rn)}, #{index * size}]"
    access = decode_data_abort(asm(text))
    assert access is not None
    assert (access.isv, access.srt, access.sas, access.sse, access.sf, access.wnr) == (
        True,
        rt,
        size.bit_length() - 1,
        signed,
        sf,
        False,
    )


@settings(max_examples=200)
@given(st.sampled_from(sorted(STORE_FORMS)), st.booleans(), registers, bases, st.integers(0, 4095))
def test_hypothesis_unsigned_offset_stores(
    mnemonic: str, x: bool, rt: int, rn: int, index: int
) -> None:
    size = STORE_FORMS[mnemonic] or (8 if x else 4)
    sf = mnemonic == "str" and x
    text = f"{mnemonic} {reg('x' if sf else 'w', rt)}, [{base(rn)}, #{index * size}]"
    access = decode_data_abort(asm(text))
    assert access is not None
    assert (access.isv, access.srt, access.size_bytes, access.sse, access.sf, access.wnr) == (
        True,
        rt,
        size,
        False,
        sf,
        True,
    )


@settings(max_examples=300)
@given(
    load_forms(),
    registers,
    bases,
    st.integers(-256, 255),
    st.sampled_from(["unscaled", "pre", "post"]),
)
def test_hypothesis_imm9_loads(
    form: tuple[str, int, bool, bool], rt: int, rn: int, imm: int, mode: str
) -> None:
    mnemonic, size, sf, signed = form
    # Writeback with n == t (n != 31) is CONSTRAINED UNPREDICTABLE; assemblers reject it.
    assume(mode == "unscaled" or rt != rn or rn == 31)
    dst = reg("x" if sf else "w", rt)
    if mode == "unscaled":
        text = f"{mnemonic.replace('ldr', 'ldur')} {dst}, [{base(rn)}, #{imm}]"
    elif mode == "pre":
        text = f"{mnemonic} {dst}, [{base(rn)}, #{imm}]!"
    else:
        text = f"{mnemonic} {dst}, [{base(rn)}], #{imm}"
    access = decode_data_abort(asm(text))
    assert access is not None
    writeback = mode != "unscaled"
    assert (access.isv, access.writeback, access.srt, access.size_bytes, access.sse, access.sf) == (
        not writeback,
        writeback,
        rt,
        size,
        signed,
        sf,
    )


@settings(max_examples=200)
@given(
    load_forms(),
    registers,
    bases,
    st.integers(0, 31),
    st.sampled_from(["lsl", "uxtw", "sxtw", "sxtx"]),
    st.booleans(),
)
def test_hypothesis_register_offset_loads(
    form: tuple[str, int, bool, bool], rt: int, rn: int, rm: int, ext: str, shifted: bool
) -> None:
    mnemonic, size, sf, signed = form
    index = reg("w" if ext in ("uxtw", "sxtw") else "x", rm)
    amount = size.bit_length() - 1
    if ext == "lsl":
        suffix = f", lsl #{amount}" if shifted else ""
    else:
        suffix = f", {ext} #{amount}" if shifted else f", {ext}"
    text = f"{mnemonic} {reg('x' if sf else 'w', rt)}, [{base(rn)}, {index}{suffix}]"
    access = decode_data_abort(asm(text))
    assert access is not None
    assert (access.isv, access.srt, access.size_bytes, access.sse, access.sf) == (
        True,
        rt,
        size,
        signed,
        sf,
    )


# ---------------------------------------------------------------------------------------
# ISS and ESR of a data abort
# ---------------------------------------------------------------------------------------

DFSC_TRANSLATION_L3 = 0b000111


def test_iss_store_word_translation_fault() -> None:
    # STR W1, [X0]: ISV, SAS = 0b10 (word), SRT = 1, SF = 0, WnR = 1, DFSC = 0b000111
    access = decode_data_abort(asm("str w1, [x0]"))
    assert access is not None
    iss = access.iss(DFSC_TRANSLATION_L3)
    assert iss == (1 << 24) | (0b10 << 22) | (1 << 16) | (1 << 6) | 0b000111
    assert esr(EC_DABT_LOWER, iss) == 0x9381_0047


def test_iss_all_syndrome_fields() -> None:
    # LDRSH X30, [X1]: SAS = 0b01, SSE, SRT = 30, SF; LDAR X2: AR
    ldrsh = decode_data_abort(asm("ldrsh x30, [x1]"))
    ldar = decode_data_abort(asm("ldar x2, [x3]"))
    assert ldrsh is not None and ldar is not None
    assert ldrsh.iss(0b000101) == (1 << 24) | (1 << 22) | (1 << 21) | (30 << 16) | (1 << 15) | 5
    assert ldar.iss(0b001011) == (1 << 24) | (3 << 22) | (2 << 16) | (1 << 15) | (1 << 14) | 11


def test_iss_flags() -> None:
    access = decode_data_abort(asm("ldrb w3, [x4]"))
    assert access is not None
    base_iss = (1 << 24) | (3 << 16)
    assert access.iss(0b010000, ea=True) == base_iss | (1 << 9) | 0b010000
    assert access.iss(0b010000, fnv=True) == base_iss | (1 << 10) | 0b010000
    assert access.iss(0b000100, cm=True) == base_iss | (1 << 8) | 0b000100
    assert access.iss(0b000100, wnr=True) == base_iss | (1 << 6) | 0b000100
    # A stage 2 fault on the stage 1 walk is not the instruction's access: ISV = 0.
    assert access.iss(0b000111, s1ptw=True) == (1 << 7) | 0b000111
    # Stage 1 aborts carry no instruction syndrome.
    assert access.iss(0b000111, stage2=False) == 0b000111


@pytest.mark.parametrize(
    "text",
    [
        "ldr x1, [x2, #8]!",
        "ldp x1, x2, [x3]",
        "ldxr x1, [x2]",
        "ldr q1, [x2]",
        "stlxr w1, x2, [x3]",
    ],
)
def test_iss_without_instruction_syndrome(text: str) -> None:
    """ISV = 0: SAS, SSE, SRT, SF and AR are 0; WnR and DFSC remain."""
    access = decode_data_abort(asm(text))
    assert access is not None and not access.isv
    assert access.iss(0b000110) == (int(access.wnr) << 6) | 0b000110


def test_iss_atomic_write_permission_fault() -> None:
    ldadd = decode_data_abort(0xB8210062)
    assert ldadd is not None
    assert ldadd.iss(0b001111) == 0b001111  # reported as a read
    assert ldadd.iss(0b001111, wnr=True) == (1 << 6) | 0b001111


def test_iss_rejects_bad_dfsc() -> None:
    access = decode_data_abort(asm("ldr x1, [x2]"))
    assert access is not None
    with pytest.raises(ValueError):
        access.iss(64)
    with pytest.raises(ValueError):
        access.iss(-1)


def test_esr_layout_and_range() -> None:
    assert esr(0x3F, (1 << 25) - 1) == 0xFFFF_FFFF
    assert esr(0x24, 0, il=0) == 0x9000_0000
    for ec, iss, il in ((64, 0, 1), (-1, 0, 1), (0, 1 << 25, 1), (0, -1, 1), (0, 0, 2)):
        with pytest.raises(ValueError):
            esr(ec, iss, il)


# ---------------------------------------------------------------------------------------
# complete_load / store_value, against Unicorn executing the instruction
# ---------------------------------------------------------------------------------------

CODE = 0x10000
DATA = 0x11000


@cache
def _emulator() -> Uc:
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.mem_map(CODE, 0x2000)
    return uc


def run_one(word: int, *, x1: int, x2: int = DATA, memory: bytes = bytes(16)) -> tuple[int, bytes]:
    uc = _emulator()
    uc.mem_write(CODE, word.to_bytes(4, "little"))
    uc.mem_write(DATA, memory)
    uc.reg_write(A.UC_ARM64_REG_X1, x1)
    uc.reg_write(A.UC_ARM64_REG_X2, x2)
    uc.emu_start(CODE, CODE + 4)
    return uc.reg_read(A.UC_ARM64_REG_X1), bytes(uc.mem_read(DATA, 16))


LOADS_INTO_X1 = [
    "ldrb w1, [x2]",
    "ldrh w1, [x2]",
    "ldr w1, [x2]",
    "ldr x1, [x2]",
    "ldrsb w1, [x2]",
    "ldrsb x1, [x2]",
    "ldrsh w1, [x2]",
    "ldrsh x1, [x2]",
    "ldrsw x1, [x2]",
    "ldursh w1, [x2]",
    "ldtrsb x1, [x2]",
    "ldar w1, [x2]",
    "ldarb w1, [x2]",
]
STORES_FROM_X1 = [
    "strb w1, [x2]",
    "strh w1, [x2]",
    "str w1, [x2]",
    "str x1, [x2]",
    "stlrh w1, [x2]",
]

u64 = st.integers(0, (1 << 64) - 1)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(LOADS_INTO_X1), u64, u64)
def test_complete_load_matches_execution(text: str, value: int, garbage: int) -> None:
    word = asm(text)
    access = decode_data_abort(word)
    assert access is not None
    memory = value.to_bytes(8, "little") + bytes(8)
    executed, _ = run_one(word, x1=garbage, memory=memory)
    assert complete_load(access, value) == executed


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(STORES_FROM_X1), u64)
def test_store_value_matches_execution(text: str, value: int) -> None:
    word = asm(text)
    access = decode_data_abort(word)
    assert access is not None
    _, memory = run_one(word, x1=value, memory=b"\xa5" * 16)
    size = access.size_bytes
    assert store_value(access, value).to_bytes(size, "little") == memory[:size]
    assert memory[size:] == b"\xa5" * (16 - size)


@pytest.mark.parametrize("text", ["str xzr, [x2]", "strb wzr, [x2]", "stlr wzr, [x2]"])
def test_store_of_zero_register(text: str) -> None:
    word = asm(text)
    access = decode_data_abort(word)
    assert access is not None and access.srt == 31
    _, memory = run_one(word, x1=0, memory=b"\xa5" * 16)
    assert store_value(access, 0xFFFF_FFFF_FFFF_FFFF) == 0
    assert memory[: access.size_bytes] == bytes(access.size_bytes)


def reference_load(size: int, signed: bool, sf: bool, value: int) -> int:
    """Arm ARM: data = Mem[address, size]; X[t, regsize] = Sign/ZeroExtend(data, regsize),
    and writing W[t] zeroes bits [63:32]."""
    data = value.to_bytes(8, "little")[:size]
    number = int.from_bytes(data, "little", signed=signed)
    return number % (1 << (64 if sf else 32))


@settings(max_examples=500)
@given(
    st.sampled_from(
        [
            *[(1, False, False), (2, False, False), (4, False, False), (8, False, True)],
            *[
                (1, True, False),
                (1, True, True),
                (2, True, False),
                (2, True, True),
                (4, True, True),
            ],
        ]
    ),
    u64,
)
def test_complete_load_properties(shape: tuple[int, bool, bool], value: int) -> None:
    size, signed, sf = shape
    access = DataAccess(
        isv=True,
        sas=size.bit_length() - 1,
        sse=signed,
        srt=1,
        sf=sf,
        ar=False,
        wnr=False,
        size_bytes=size,
    )
    result = complete_load(access, value)
    assert result == reference_load(size, signed, sf, value)
    assert 0 <= result < (1 << (64 if sf else 32))
    assert result & ((1 << 8 * size) - 1) == value & ((1 << 8 * size) - 1)
    # bits above the access: copies of its top bit (signed) or zero (unsigned)
    top = (value >> (8 * size - 1)) & 1 if signed else 0
    width = 64 if sf else 32
    upper = result >> (8 * size)
    assert upper == (((1 << (width - 8 * size)) - 1) if top else 0)


@pytest.mark.parametrize("text", ["str x1, [x2]", "ldr q1, [x2]", "ldp x1, x2, [x3]"])
def test_complete_load_rejects_non_loads(text: str) -> None:
    access = decode_data_abort(asm(text))
    assert access is not None
    with pytest.raises(ValueError):
        complete_load(access, 0)


@pytest.mark.parametrize("text", ["ldr x1, [x2]", "str q1, [x2]", "stp x1, x2, [x3]"])
def test_store_value_rejects_non_stores(text: str) -> None:
    access = decode_data_abort(asm(text))
    assert access is not None
    with pytest.raises(ValueError):
        store_value(access, 0)


def test_atomic_is_not_emulated() -> None:
    access = decode_data_abort(0xB8210062)  # LDADD
    assert access is not None
    with pytest.raises(ValueError):
        complete_load(access, 0)


# ---------------------------------------------------------------------------------------
# classify: WFx, SVC/HVC/SMC, ERET, MRS/MSR/SYS
# ---------------------------------------------------------------------------------------

WFX_ISS_FROM_AARCH64 = (1 << 24) | (0b1110 << 20)  # CV = 1, COND = 0b1110


def test_wfi_wfe() -> None:
    wfi, wfe = classify(asm("wfi")), classify(asm("wfe"))
    assert (wfi.kind, wfe.kind) == (InsnKind.WFI, InsnKind.WFE)
    assert wfi.esr() == (0x01 << 26) | (1 << 25) | WFX_ISS_FROM_AARCH64 == 0x07E0_0000
    assert wfe.iss() == WFX_ISS_FROM_AARCH64 | 1  # TI = 0b01: WFE
    assert wfe.esr() == 0x07E0_0001


def test_wfit_wfet() -> None:
    # WFET X4 / WFIT X30 (FEAT_WFxT): TI = 0b11 / 0b10, RV = 1, RN = the register
    wfet, wfit = classify(0xD5031004), classify(0xD503103E)
    assert (wfet.kind, wfet.rt, wfit.kind, wfit.rt) == (InsnKind.WFET, 4, InsnKind.WFIT, 30)
    assert wfet.iss() == WFX_ISS_FROM_AARCH64 | (4 << 5) | (1 << 2) | 0b11
    assert wfit.iss() == WFX_ISS_FROM_AARCH64 | (30 << 5) | (1 << 2) | 0b10


@pytest.mark.parametrize(
    ("text", "kind", "ec"),
    [("svc", InsnKind.SVC, 0x15), ("hvc", InsnKind.HVC, 0x16), ("smc", InsnKind.SMC, 0x17)],
)
@pytest.mark.parametrize("imm", [0, 1, 0x1234, 0xFFFF])
def test_calls(text: str, kind: InsnKind, ec: int, imm: int) -> None:
    c = classify(asm(f"{text} #{imm}"))
    assert (c.kind, c.imm16, c.ec, c.iss()) == (kind, imm, ec, imm)
    assert c.esr() == (ec << 26) | (1 << 25) | imm


def test_call_esr_known_values() -> None:
    assert classify(asm("svc #0")).esr() == 0x5600_0000
    assert classify(asm("hvc #0")).esr() == 0x5A00_0000
    assert classify(asm("smc #0")).esr() == 0x5E00_0000


def test_eret() -> None:
    eret = classify(asm("eret"))
    assert (eret.kind, eret.esr()) == (InsnKind.ERET, (0x1A << 26) | (1 << 25))
    eretaa, eretab = classify(0xD69F0BFF), classify(0xD69F0FFF)
    assert (eretaa.kind, eretaa.iss()) == (InsnKind.ERETAA, 0b10)
    assert (eretab.kind, eretab.iss()) == (InsnKind.ERETAB, 0b11)


def sysreg_iss(op0: int, op1: int, crn: int, crm: int, op2: int, rt: int, read: bool) -> int:
    """EC 0x18 ISS: Op0 [21:20], Op2 [19:17], Op1 [16:14], CRn [13:10], Rt [9:5],
    CRm [4:1], Direction [0] (1 = read)."""
    return (
        (op0 << 20) | (op2 << 17) | (op1 << 14) | (crn << 10) | (rt << 5) | (crm << 1) | int(read)
    )


# System register encodings (op0, op1, CRn, CRm, op2) from the Arm ARM register descriptions.
SYSTEM = [
    ("mrs x1, tpidr_el0", InsnKind.MRS, (3, 3, 13, 0, 2), 1, True),
    ("mrs x3, cntvct_el0", InsnKind.MRS, (3, 3, 14, 0, 2), 3, True),
    ("mrs x30, id_aa64mmfr0_el1", InsnKind.MRS, (3, 0, 0, 7, 0), 30, True),
    ("msr sctlr_el1, x2", InsnKind.MSR_REG, (3, 0, 1, 0, 0), 2, False),
    ("msr ttbr0_el1, xzr", InsnKind.MSR_REG, (3, 0, 2, 0, 0), 31, False),
    ("msr mdscr_el1, x5", InsnKind.MSR_REG, (2, 0, 0, 2, 2), 5, False),
    ("mrs x6, oslsr_el1", InsnKind.MRS, (2, 0, 1, 1, 4), 6, True),
    ("dc civac, x1", InsnKind.SYS, (1, 3, 7, 14, 1), 1, False),
    ("dc zva, x9", InsnKind.SYS, (1, 3, 7, 4, 1), 9, False),
    ("tlbi vmalle1", InsnKind.SYS, (1, 0, 8, 7, 0), 31, False),
    ("sys #0, c7, c5, #0, x3", InsnKind.SYS, (1, 0, 7, 5, 0), 3, False),
    ("sysl x1, #0, c1, c2, #3", InsnKind.SYSL, (1, 0, 1, 2, 3), 1, True),
    ("msr daifset, #2", InsnKind.MSR_IMM, (0, 3, 4, 2, 6), 31, False),
]


@pytest.mark.parametrize(("text", "kind", "enc", "rt", "read"), SYSTEM, ids=[s[0] for s in SYSTEM])
def test_system_instructions(
    text: str, kind: InsnKind, enc: tuple[int, int, int, int, int], rt: int, read: bool
) -> None:
    c = classify(asm(text))
    op0, op1, crn, crm, op2 = enc
    assert (c.kind, c.op0, c.op1, c.crn, c.crm, c.op2, c.rt, c.is_read) == (
        kind,
        op0,
        op1,
        crn,
        crm,
        op2,
        rt,
        read,
    )
    assert c.ec == 0x18
    assert c.iss() == sysreg_iss(op0, op1, crn, crm, op2, rt, read)
    assert c.esr() == (0x18 << 26) | (1 << 25) | c.iss()


@pytest.mark.parametrize(
    "text",
    [
        "nop",
        "yield",
        "sev",
        "dmb ish",
        "dsb sy",
        "isb",
        "clrex",
        "add x1, x2, x3",
        "ldr x1, [x2]",
        "brk #1",
        "hlt #0",
        "b 0x40",
    ],
)
def test_other_instructions(text: str) -> None:
    c = classify(asm(text))
    assert c.kind is InsnKind.OTHER
    with pytest.raises(ValueError):
        c.iss()
    with pytest.raises(ValueError):
        _ = c.ec


def test_out_of_range_words() -> None:
    for bad in (-1, 1 << 32):
        with pytest.raises(ValueError):
            decode_data_abort(bad)
        with pytest.raises(ValueError):
            classify(bad)
