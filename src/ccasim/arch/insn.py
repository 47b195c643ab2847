"""A64 instruction decoding for exception syndromes.

Unicorn executes realm guests but reports no exception syndromes, so the model builds them
from the faulting instruction word itself:

* :func:`decode_data_abort` decodes a load/store into a :class:`DataAccess`, whose
  :meth:`DataAccess.iss` is the ISS of a Data Abort (Arm ARM, ESR_EL2, "ISS encoding for an
  exception from a Data Abort"). For an emulatable MMIO access (``isv``),
  :func:`complete_load` produces the destination register's value from the host's data and
  :func:`store_value` the data a store writes.
* :func:`classify` recognises WFI/WFE(/WFIT/WFET), SVC/HVC/SMC, ERET(AA/AB) and
  MRS/MSR/SYS/SYSL, and :meth:`InsnClass.iss` / :meth:`InsnClass.esr` give the syndromes of
  their traps (EC 0x01, 0x15-0x17, 0x18, 0x1A).
* :func:`esr` assembles EC, IL and ISS.

Which accesses have a valid instruction syndrome (ISV = 1) follows the Arm ARM's ISV rule:
"AArch64 loads and stores of a single general-purpose register (including the register
specified with 0b11111, including those with Acquire/Release semantics, but excluding Load
Exclusive or Store Exclusive and excluding those with writeback)". That gives ISV = 1 for
LDR/STR/LDRB/STRB/LDRH/STRH/LDRSB/LDRSH/LDRSW with unsigned-offset, register-offset and
unscaled (LDUR/STUR) addressing, the unprivileged LDTR/STTR family, LDR/LDRSW (literal),
LDAR/STLR and LDLAR/STLLR, LDAPR, LDAPUR/STLUR, and LDRAA/LDRAB without writeback; and
ISV = 0 for pre/post-indexed forms, pairs (LDP/STP/LDNP/STNP/LDPSW/STGP), exclusives
(LDXR/STXR/LDAXR/STLXR and their pairs), LSE atomics (LDADD.../SWP/CAS/CASP), all SIMD&FP
loads/stores and the MTE tag instructions. (For LDR literal the ISV prose, QEMU and gem5 all
give ISV = 1; Arm's executable pseudocode records no load/store syndrome for it.)

Not decoded (:func:`decode_data_abort` returns None): non-memory instructions, prefetches
(PRFM/PRFUM, which never abort), unallocated encodings, and memory instructions of features
this model's PE does not have: FEAT_LS64 (LD64B/ST64B...), FEAT_LRCPC3, FEAT_LSE128, FEAT_THE,
FEAT_MOPS, SVE and SME. Cache maintenance by VA (DC/IC) is a System instruction: see
:func:`classify`; its Data Abort reports ISV = 0, CM = 1, WnR = 1.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# Exception classes (ESR_ELx.EC).
EC_UNKNOWN = 0x00
EC_WFX = 0x01
EC_SVC64 = 0x15
EC_HVC64 = 0x16
EC_SMC64 = 0x17
EC_SYSREG = 0x18
EC_ERET = 0x1A
EC_IABT_LOWER = 0x20
EC_IABT_CUR = 0x21
EC_DABT_LOWER = 0x24
EC_DABT_CUR = 0x25

ESR_EC_SHIFT = 26
ESR_IL = 1 << 25
ISS_MASK = (1 << 25) - 1

# Data Abort ISS fields (ESR_ELx, "ISS encoding for an exception from a Data Abort").
ISS_ISV = 1 << 24
ISS_SAS_SHIFT = 22
ISS_SSE = 1 << 21
ISS_SRT_SHIFT = 16
ISS_SF = 1 << 15
ISS_AR = 1 << 14
ISS_VNCR = 1 << 13
ISS_SET_SHIFT = 11
ISS_FNV = 1 << 10
ISS_EA = 1 << 9
ISS_CM = 1 << 8
ISS_S1PTW = 1 << 7
ISS_WNR = 1 << 6

_MASK64 = (1 << 64) - 1


def _bits(value: int, hi: int, lo: int) -> int:
    return (value >> lo) & ((1 << (hi - lo + 1)) - 1)


def esr(ec: int, iss: int, il: int = 1) -> int:
    """ESR_ELx value: EC [31:26], IL [25] (1 for a 32-bit instruction), ISS [24:0]."""
    if not 0 <= ec <= 0x3F:
        raise ValueError(f"EC {ec:#x} out of range")
    if not 0 <= iss <= ISS_MASK:
        raise ValueError(f"ISS {iss:#x} does not fit in 25 bits")
    if il not in (0, 1):
        raise ValueError(f"IL must be 0 or 1, not {il}")
    return (ec << ESR_EC_SHIFT) | (il << 25) | iss


# ---------------------------------------------------------------------------------------
# Data aborts
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataAccess:
    """What a load/store tells a Data Abort syndrome.

    ``sas`` is log2 of ``size_bytes``, the bytes moved for one register (an element for
    SIMD structures; each of the two registers of a pair). It is 4 only for 128-bit SIMD&FP
    registers and MTE tag granules, which never have ISV = 1. ``srt`` is the transfer
    register (``Rt``; 31 is XZR/WZR for general-purpose registers, a V register for SIMD&FP).
    ``sf`` says the general-purpose register is 64-bit, ``sse`` that the load sign-extends,
    ``ar`` that the access has acquire/release semantics, ``wnr`` that it writes. For an
    atomic read-modify-write ``wnr`` is False: the Arm ARM reports such an access as a read
    unless only its write would fault (a Permission fault on a read-only page) — pass
    ``wnr=True`` to :meth:`iss` for that case.

    ``isv`` is whether the hardware reports an instruction syndrome (SAS/SSE/SRT/SF/AR) for
    a stage 2 abort; the remaining flags are for information.
    """

    isv: bool
    sas: int
    sse: bool
    srt: int
    sf: bool
    ar: bool
    wnr: bool
    size_bytes: int
    is_simd: bool = False
    is_pair: bool = False
    writeback: bool = False
    is_exclusive: bool = False
    is_atomic: bool = False
    is_tag: bool = False

    def iss(
        self,
        dfsc: int,
        *,
        fnv: bool = False,
        ea: bool = False,
        cm: bool = False,
        s1ptw: bool = False,
        wnr: bool | None = None,
        stage2: bool = True,
    ) -> int:
        """ISS [24:0] of a Data Abort caused by this access.

        ``dfsc`` is the fault status code (e.g. 0b0001LL translation fault at level LL).
        ISV is reported only for a stage 2 abort (``stage2``) on the access itself: never for
        a stage 2 fault on a stage 1 translation table walk (``s1ptw``), and never for stage 1
        aborts. When ISV is 0, SAS/SSE/SRT/SF/AR are 0. VNCR and SET are 0. ``wnr`` overrides
        the access's own direction (see the class note on atomics).
        """
        if not 0 <= dfsc <= 0x3F:
            raise ValueError(f"DFSC {dfsc:#x} out of range")
        value = dfsc
        if self.wnr if wnr is None else wnr:
            value |= ISS_WNR
        if s1ptw:
            value |= ISS_S1PTW
        if cm:
            value |= ISS_CM
        if ea:
            value |= ISS_EA
        if fnv:
            value |= ISS_FNV
        if self.isv and stage2 and not s1ptw:
            value |= ISS_ISV | (self.sas << ISS_SAS_SHIFT) | (self.srt << ISS_SRT_SHIFT)
            if self.sse:
                value |= ISS_SSE
            if self.sf:
                value |= ISS_SF
            if self.ar:
                value |= ISS_AR
        return value


def _gpr_load_store(
    size: int, opc: int, rt: int, *, isv: bool, writeback: bool = False, ar: bool = False
) -> DataAccess | None:
    """The common general-purpose decode of size:opc (Arm ARM "Shared decode for all
    encodings" of LDR/STR and their byte, halfword and signed variants). Returns None for
    the prefetch (size 11, opc 10) and unallocated encodings."""
    if opc == 0b00:  # store
        wnr, signed, sf = True, False, size == 0b11
    elif opc == 0b01:  # load, zero-extending to the register
        wnr, signed, sf = False, False, size == 0b11
    elif opc == 0b10:  # load signed into X (size 11: PRFM)
        if size == 0b11:
            return None
        wnr, signed, sf = False, True, True
    else:  # load signed into W
        if size >= 0b10:
            return None
        wnr, signed, sf = False, True, False
    return DataAccess(
        isv=isv and not writeback,
        sas=size,
        sse=signed,
        srt=rt,
        sf=sf,
        ar=ar,
        wnr=wnr,
        size_bytes=1 << size,
        writeback=writeback,
    )


def _simd_load_store(size: int, opc: int, rt: int, writeback: bool) -> DataAccess | None:
    """SIMD&FP LDR/STR (B/H/S/D/Q): scale = opc<1>:size, opc<0> = load."""
    scale = ((opc >> 1) << 2) | size
    if scale > 4:
        return None
    return DataAccess(
        isv=False,
        sas=scale,
        sse=False,
        srt=rt,
        sf=False,
        ar=False,
        wnr=not opc & 1,
        size_bytes=1 << scale,
        is_simd=True,
        writeback=writeback,
    )


def _decode_register(insn: int) -> DataAccess | None:
    """Load/store register: bits [29:27] = 111, [25:24] = 0x (all single-register forms,
    atomics and LDRA*)."""
    size = _bits(insn, 31, 30)
    v = _bits(insn, 26, 26)
    opc = _bits(insn, 23, 22)
    rt = _bits(insn, 4, 0)
    if _bits(insn, 24, 24):  # unsigned immediate
        if v:
            return _simd_load_store(size, opc, rt, writeback=False)
        return _gpr_load_store(size, opc, rt, isv=True)
    op4 = _bits(insn, 11, 10)
    if not _bits(insn, 21, 21):
        # imm9 forms: 00 unscaled, 01 post-index, 10 unprivileged, 11 pre-index
        writeback = op4 in (0b01, 0b11)
        if v:
            if op4 == 0b10:
                return None
            return _simd_load_store(size, opc, rt, writeback)
        if op4 != 0b00 and size == 0b11 and opc == 0b10:
            return None  # no PRFM with writeback or unprivileged
        return _gpr_load_store(size, opc, rt, isv=True, writeback=writeback)
    if op4 == 0b10:  # register offset
        if not _bits(insn, 14, 14):  # option<1> == 0 is unallocated
            return None
        if v:
            return _simd_load_store(size, opc, rt, writeback=False)
        return _gpr_load_store(size, opc, rt, isv=True)
    if v:
        return None
    if op4 == 0b00:
        return _decode_atomic(insn)
    # LDRAA/LDRAB (FEAT_PAuth): size 11, M = bit 23, S = bit 22, W = bit 11
    if size != 0b11:
        return None
    writeback = bool(op4 & 0b10)
    return DataAccess(
        isv=not writeback,
        sas=3,
        sse=False,
        srt=rt,
        sf=True,
        ar=False,
        wnr=False,
        size_bytes=8,
        writeback=writeback,
    )


def _decode_atomic(insn: int) -> DataAccess | None:
    """Atomic memory operations (FEAT_LSE) and LDAPR (FEAT_LRCPC)."""
    size = _bits(insn, 31, 30)
    acquire = _bits(insn, 23, 23)
    release = _bits(insn, 22, 22)
    rs = _bits(insn, 20, 16)
    o3 = _bits(insn, 15, 15)
    opc = _bits(insn, 14, 12)
    rt = _bits(insn, 4, 0)
    if o3 and opc == 0b100:  # LDAPR{B,H}
        if not acquire or release or rs != 31:
            return None
        return DataAccess(
            isv=True,
            sas=size,
            sse=False,
            srt=rt,
            sf=size == 0b11,
            ar=True,
            wnr=False,
            size_bytes=1 << size,
        )
    if o3 and opc != 0b000:  # LS64, RCW*, ...: not modelled
        return None
    # LDADD, LDCLR, LDEOR, LDSET, LD{S,U}{MAX,MIN} (o3 = 0) and SWP (o3 = 1, opc = 000)
    return DataAccess(
        isv=False,
        sas=size,
        sse=False,
        srt=rt,
        sf=size == 0b11,
        ar=bool(acquire or release),
        wnr=False,
        size_bytes=1 << size,
        is_atomic=True,
    )


def _decode_exclusive_ordered(insn: int) -> DataAccess | None:
    """Bits [29:24] = 001000: exclusives, LDAR/STLR, LDLAR/STLLR, CAS and CASP."""
    size = _bits(insn, 31, 30)
    o2 = _bits(insn, 23, 23)
    load = _bits(insn, 22, 22)
    o1 = _bits(insn, 21, 21)
    o0 = _bits(insn, 15, 15)
    rt2 = _bits(insn, 14, 10)
    rt = _bits(insn, 4, 0)
    if o2 and not o1:
        # LDAR/STLR (o0 = 1) and LDLAR/STLLR (o0 = 0, FEAT_LOR): single register,
        # acquire/release (LoadLOAcquire/StoreLORelease are reported with AR = 1 too).
        return DataAccess(
            isv=True,
            sas=size,
            sse=False,
            srt=rt,
            sf=size == 0b11,
            ar=True,
            wnr=not load,
            size_bytes=1 << size,
        )
    if o2:  # CAS{A}{L}{B,H}: L = acquire, o0 = release
        if rt2 != 31:
            return None
        return DataAccess(
            isv=False,
            sas=size,
            sse=False,
            srt=rt,
            sf=size == 0b11,
            ar=bool(load or o0),
            wnr=False,
            size_bytes=1 << size,
            is_atomic=True,
        )
    if o1 and not size & 0b10:  # CASP{A}{L}: size<0> selects W or X pairs
        if rt2 != 31 or rt & 1 or _bits(insn, 20, 16) & 1:
            return None
        pair_size = 2 + (size & 1)
        return DataAccess(
            isv=False,
            sas=pair_size,
            sse=False,
            srt=rt,
            sf=pair_size == 3,
            ar=bool(load or o0),
            wnr=False,
            size_bytes=1 << pair_size,
            is_pair=True,
            is_atomic=True,
        )
    # LDXR/STXR/LDAXR/STLXR (o1 = 0) and LDXP/STXP/LDAXP/STLXP (o1 = 1, size 1x)
    if o1:
        elem = 2 + (size & 1)
        return DataAccess(
            isv=False,
            sas=elem,
            sse=False,
            srt=rt,
            sf=elem == 3,
            ar=bool(o0),
            wnr=not load,
            size_bytes=1 << elem,
            is_pair=True,
            is_exclusive=True,
        )
    return DataAccess(
        isv=False,
        sas=size,
        sse=False,
        srt=rt,
        sf=size == 0b11,
        ar=bool(o0),
        wnr=not load,
        size_bytes=1 << size,
        is_exclusive=True,
    )


def _decode_literal(insn: int) -> DataAccess | None:
    """LDR/LDRSW (literal) and LDR (literal, SIMD&FP); PRFM (literal) is None."""
    opc = _bits(insn, 31, 30)
    rt = _bits(insn, 4, 0)
    if _bits(insn, 26, 26):
        if opc == 0b11:
            return None
        return DataAccess(
            isv=False,
            sas=2 + opc,
            sse=False,
            srt=rt,
            sf=False,
            ar=False,
            wnr=False,
            size_bytes=4 << opc,
            is_simd=True,
        )
    if opc == 0b11:
        return None
    size = 3 if opc == 0b01 else 2
    return DataAccess(
        isv=True,
        sas=size,
        sse=opc == 0b10,
        srt=rt,
        sf=opc != 0b00,
        ar=False,
        wnr=False,
        size_bytes=1 << size,
    )


def _decode_pair(insn: int) -> DataAccess | None:
    """LDP/STP/LDNP/STNP/LDPSW (general and SIMD&FP) and STGP; bits [29:27] = 101,
    bit 25 = 0; index [24:23]: 00 non-temporal offset, 01 post, 10 offset, 11 pre."""
    opc = _bits(insn, 31, 30)
    v = _bits(insn, 26, 26)
    index = _bits(insn, 24, 23)
    load = _bits(insn, 22, 22)
    rt = _bits(insn, 4, 0)
    writeback = index in (0b01, 0b11)
    if opc == 0b11:
        return None
    if v:
        return DataAccess(
            isv=False,
            sas=2 + opc,
            sse=False,
            srt=rt,
            sf=False,
            ar=False,
            wnr=not load,
            size_bytes=4 << opc,
            is_simd=True,
            is_pair=True,
            writeback=writeback,
        )
    if opc == 0b01:
        if index == 0b00:
            return None  # no LDNPSW / non-temporal STGP
        if load:  # LDPSW
            return DataAccess(
                isv=False,
                sas=2,
                sse=True,
                srt=rt,
                sf=True,
                ar=False,
                wnr=False,
                size_bytes=4,
                is_pair=True,
                writeback=writeback,
            )
        return DataAccess(  # STGP (FEAT_MTE): two X registers and the tag
            isv=False,
            sas=3,
            sse=False,
            srt=rt,
            sf=True,
            ar=False,
            wnr=True,
            size_bytes=8,
            is_pair=True,
            writeback=writeback,
            is_tag=True,
        )
    size = 2 + (opc >> 1)
    return DataAccess(
        isv=False,
        sas=size,
        sse=False,
        srt=rt,
        sf=size == 3,
        ar=False,
        wnr=not load,
        size_bytes=1 << size,
        is_pair=True,
        writeback=writeback,
    )


def _decode_simd_structures(insn: int) -> DataAccess | None:
    """AdvSIMD LD1-4/ST1-4 (multiple and single structures, LDnR), bit 23 = post-index."""
    single = _bits(insn, 24, 24)
    post = _bits(insn, 23, 23)
    load = _bits(insn, 22, 22)
    opcode = _bits(insn, 15, 13)
    s = _bits(insn, 12, 12)
    size = _bits(insn, 11, 10)
    rm = _bits(insn, 20, 16)
    rt = _bits(insn, 4, 0)
    if not post and rm != 0:
        return None
    if not single:
        opcode4 = _bits(insn, 15, 12)
        if _bits(insn, 21, 21) or opcode4 not in (0, 2, 4, 6, 7, 8, 10):
            return None
        # LD2/LD3/LD4 (opcode 0000, 0100, 1000) have no .1D arrangement (size:Q = 110)
        if size == 0b11 and not _bits(insn, 30, 30) and opcode4 in (0, 4, 8):
            return None
        scale = size
    else:
        scale = opcode >> 1
        if scale == 3:  # LDnR: replicate, element size from size
            if not load or s:
                return None
            scale = size
        elif scale == 2:  # size 00: word lanes; size 01, S 0: doubleword lanes
            if size == 0b01 and not s:
                scale = 3
            elif size != 0b00:
                return None
        elif scale == 1 and size & 1:
            return None
    return DataAccess(
        isv=False,
        sas=scale,
        sse=False,
        srt=rt,
        sf=False,
        ar=False,
        wnr=not load,
        size_bytes=1 << scale,
        is_simd=True,
        writeback=bool(post),
    )


def _decode_tags(insn: int) -> DataAccess | None:
    """MTE: STG/STZG/ST2G/STZ2G (post/offset/pre), LDG, STGM/STZGM/LDGM (bits [31:24] =
    0xD9, bit 21 = 1). Sizes are per 16-byte tag granule."""
    opc = _bits(insn, 23, 22)
    op2 = _bits(insn, 11, 10)
    rt = _bits(insn, 4, 0)
    if op2 == 0b00:
        if opc != 0b01 and _bits(insn, 20, 12) != 0:
            return None  # STZGM/STGM/LDGM have imm9 == 0
        load = opc in (0b01, 0b11)  # LDG, LDGM
        writeback = False
    else:
        load = False
        writeback = op2 in (0b01, 0b11)
    return DataAccess(
        isv=False,
        sas=4,
        sse=False,
        srt=rt,
        sf=True,
        ar=False,
        wnr=not load,
        size_bytes=16,
        writeback=writeback,
        is_tag=True,
    )


def _decode_rcpc2(insn: int) -> DataAccess | None:
    """LDAPUR*/STLUR* (FEAT_LRCPC2): bits [29:24] = 011001, bit 21 = 0, bits [11:10] = 00;
    the same size:opc decode as LDUR/STUR, with acquire/release semantics."""
    size = _bits(insn, 31, 30)
    opc = _bits(insn, 23, 22)
    return _gpr_load_store(size, opc, _bits(insn, 4, 0), isv=True, ar=True)


def decode_data_abort(insn: int) -> DataAccess | None:
    """Decode the A64 instruction word ``insn`` as a memory access, or None if it is not one
    (or one this model does not decode: see the module docstring)."""
    if not 0 <= insn <= 0xFFFF_FFFF:
        raise ValueError(f"instruction word {insn:#x} out of range")
    # Loads and stores: op0 bits [28:25] = x1x0.
    if _bits(insn, 27, 27) != 1 or _bits(insn, 25, 25) != 0:
        return None
    group = _bits(insn, 29, 24)
    if group in (0b111000, 0b111001, 0b111100, 0b111101):
        return _decode_register(insn)
    if group == 0b001000:
        return _decode_exclusive_ordered(insn)
    if group in (0b011000, 0b011100):
        return _decode_literal(insn)
    if _bits(insn, 29, 27) == 0b101:
        return _decode_pair(insn)
    if group in (0b001100, 0b001101) and not _bits(insn, 31, 31):
        return _decode_simd_structures(insn)
    if group == 0b011001:
        if _bits(insn, 21, 21):
            return _decode_tags(insn) if _bits(insn, 31, 30) == 0b11 else None
        if _bits(insn, 11, 10) == 0b00:
            return _decode_rcpc2(insn)
    return None


def complete_load(access: DataAccess, value: int) -> int:
    """The 64-bit register value a general-purpose load of ``value`` leaves in Xt: ``value``
    masked to the access size, sign-extended to 32 or 64 bits if the load sign-extends (to
    the register width, ``sf``), and a 32-bit result zero-extended to 64 bits.

    A load with ``srt`` == 31 targets XZR: the caller discards the value."""
    if access.wnr or access.is_simd or access.is_pair or access.is_atomic or access.is_tag:
        raise ValueError("complete_load needs a single general-purpose register load")
    bits = 8 * access.size_bytes
    data = value & ((1 << bits) - 1)
    if access.sse and data >> (bits - 1):
        data -= 1 << bits
    return data & (_MASK64 if access.sf else 0xFFFF_FFFF)


def store_value(access: DataAccess, reg_value: int) -> int:
    """The data a general-purpose store writes: Rt's value masked to the access size
    (Rt = 31 is XZR, which reads as zero)."""
    if not access.wnr or access.is_simd or access.is_pair or access.is_atomic or access.is_tag:
        raise ValueError("store_value needs a single general-purpose register store")
    if access.srt == 31:
        return 0
    return reg_value & ((1 << (8 * access.size_bytes)) - 1)


# ---------------------------------------------------------------------------------------
# Trapped instructions
# ---------------------------------------------------------------------------------------


class InsnKind(enum.Enum):
    WFI = "wfi"
    WFE = "wfe"
    WFIT = "wfit"
    WFET = "wfet"
    SVC = "svc"
    HVC = "hvc"
    SMC = "smc"
    ERET = "eret"
    ERETAA = "eretaa"
    ERETAB = "eretab"
    MRS = "mrs"
    MSR_REG = "msr"
    MSR_IMM = "msr_imm"
    SYS = "sys"
    SYSL = "sysl"
    OTHER = "other"


_WFX_TI = {InsnKind.WFI: 0b00, InsnKind.WFE: 0b01, InsnKind.WFIT: 0b10, InsnKind.WFET: 0b11}
_SYSTEM_KINDS = frozenset(
    {InsnKind.MRS, InsnKind.MSR_REG, InsnKind.MSR_IMM, InsnKind.SYS, InsnKind.SYSL}
)
_EC = {
    **dict.fromkeys(_WFX_TI, EC_WFX),
    InsnKind.SVC: EC_SVC64,
    InsnKind.HVC: EC_HVC64,
    InsnKind.SMC: EC_SMC64,
    **dict.fromkeys((InsnKind.ERET, InsnKind.ERETAA, InsnKind.ERETAB), EC_ERET),
    **dict.fromkeys(_SYSTEM_KINDS, EC_SYSREG),
}


@dataclass(frozen=True, slots=True)
class InsnClass:
    """An instruction as far as exception syndromes care.

    ``imm16`` is the SVC/HVC/SMC immediate. For MRS/MSR/SYS/SYSL (and MSR immediate, with
    op0 = 0, CRn = 0b0100 and the immediate in CRm) ``op0``..``op2`` and ``rt`` are the
    encoding fields and ``is_read`` the trap direction (1 for MRS and SYSL). For WFIT/WFET
    ``rt`` is the timeout register.
    """

    kind: InsnKind
    imm16: int = 0
    op0: int = 0
    op1: int = 0
    crn: int = 0
    crm: int = 0
    op2: int = 0
    rt: int = 0
    is_read: bool = False

    @property
    def ec(self) -> int:
        """The exception class of this instruction's trap (ValueError for OTHER)."""
        try:
            return _EC[self.kind]
        except KeyError:
            raise ValueError(f"{self.kind.name} has no trap syndrome") from None

    def iss(self) -> int:
        """ISS of the trap (of the call, for SVC/HVC/SMC) taken from AArch64 state."""
        if self.kind in _WFX_TI:
            # CV = 1 and COND = 0b1110 for exceptions from AArch64; RV/RN for WFxT.
            value = (1 << 24) | (0b1110 << 20) | _WFX_TI[self.kind]
            if self.kind in (InsnKind.WFIT, InsnKind.WFET):
                value |= (self.rt << 5) | (1 << 2)
            return value
        if self.kind in (InsnKind.SVC, InsnKind.HVC, InsnKind.SMC):
            return self.imm16
        if self.kind is InsnKind.ERET:
            return 0b00
        if self.kind is InsnKind.ERETAA:
            return 0b10
        if self.kind is InsnKind.ERETAB:
            return 0b11
        if self.kind in _SYSTEM_KINDS:
            return (
                (self.op0 << 20)
                | (self.op2 << 17)
                | (self.op1 << 14)
                | (self.crn << 10)
                | (self.rt << 5)
                | (self.crm << 1)
                | int(self.is_read)
            )
        raise ValueError(f"{self.kind.name} has no trap syndrome")

    def esr(self) -> int:
        return esr(self.ec, self.iss())


def classify(insn: int) -> InsnClass:
    """Recognise the instructions whose traps or calls carry an instruction syndrome."""
    if not 0 <= insn <= 0xFFFF_FFFF:
        raise ValueError(f"instruction word {insn:#x} out of range")
    if insn & 0xFFE0_001F in (0xD400_0001, 0xD400_0002, 0xD400_0003):
        kind = (InsnKind.SVC, InsnKind.HVC, InsnKind.SMC)[(insn & 3) - 1]
        return InsnClass(kind, imm16=_bits(insn, 20, 5))
    if insn == 0xD69F_03E0:
        return InsnClass(InsnKind.ERET)
    if insn == 0xD69F_0BFF:
        return InsnClass(InsnKind.ERETAA)
    if insn == 0xD69F_0FFF:
        return InsnClass(InsnKind.ERETAB)
    if insn == 0xD503_207F:
        return InsnClass(InsnKind.WFI)
    if insn == 0xD503_205F:
        return InsnClass(InsnKind.WFE)
    if insn & 0xFFFF_FFE0 == 0xD503_1000:
        return InsnClass(InsnKind.WFET, rt=_bits(insn, 4, 0))
    if insn & 0xFFFF_FFE0 == 0xD503_1020:
        return InsnClass(InsnKind.WFIT, rt=_bits(insn, 4, 0))
    if _bits(insn, 31, 22) != 0b1101010100:
        return InsnClass(InsnKind.OTHER)
    # System instruction class: L [21], op0 [20:19], op1 [18:16], CRn [15:12], CRm [11:8],
    # op2 [7:5], Rt [4:0].
    read = bool(_bits(insn, 21, 21))
    op0 = _bits(insn, 20, 19)
    crn = _bits(insn, 15, 12)
    rt = _bits(insn, 4, 0)
    if op0 >= 2:
        kind = InsnKind.MRS if read else InsnKind.MSR_REG
    elif op0 == 1:
        kind = InsnKind.SYSL if read else InsnKind.SYS
    elif not read and crn == 0b0100 and rt == 31:
        kind = InsnKind.MSR_IMM
    else:
        return InsnClass(InsnKind.OTHER)  # hints, barriers, CLREX, ...
    return InsnClass(
        kind,
        op0=op0,
        op1=_bits(insn, 18, 16),
        crn=crn,
        crm=_bits(insn, 11, 8),
        op2=_bits(insn, 7, 5),
        rt=rt,
        is_read=read,
    )
