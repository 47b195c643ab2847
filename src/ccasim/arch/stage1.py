"""The hardware stage-1 translation walk of the EL1&0 regime (VMSAv8-64), as a PE performs
it for a realm guest's accesses when SCTLR_EL1.M = 1 (Arm ARM DDI0487 D8, "The AArch64
Virtual Memory System Architecture"; pseudocode J1.1.4 ``AArch64.S1Translate``,
``AArch64.S1Walk``, ``AArch64.S1DirectBasePermissions``).

The output of stage 1 is an IPA. Every translation table read is made through a callback:
the caller performs the stage-2 translation and the GPC for it and returns the descriptor,
or raises its own fault (a stage-2 fault on the walk, S1PTW = 1), which propagates unchanged.

What is modelled, with the order of checks of the pseudocode:

* SCTLR_EL1.M = 0: flat IPA = VA, RWX, with the level-0 address size fault for a VA beyond
  PAMax (``AArch64.S1DisabledOutput``; the size is the implemented PA size, not TCR_EL1.IPS).
* TTBR0/TTBR1 selection by VA[55]; T0SZ/T1SZ; TBI0/TBI1 with TBID0/TBID1 (FEAT_PAuth: TBIDx
  = 1 makes TBI apply to data accesses only); TG0/TG1 (4 KB, 16 KB, 64 KB granules, with
  their different encodings); EPD0/EPD1 and E0PD0/E0PD1 (level-0 translation faults);
  HPD0/HPD1 (FEAT_HPDS); TCR_EL1.IPS bounded by PAMax.
* Table, block and page descriptors; invalid and reserved encodings; address size, access
  flag and permission faults with the level they are reported at.
* AP[2:1], APTable, UXN/PXN, UXNTable/PXNTable, the implicit PXN of EL0-writable memory,
  SCTLR_EL1.WXN, PSTATE.PAN and SCTLR_EL1.EPAN (FEAT_PAN3), SCTLR_EL1.EE for walks.

Not modelled: FEAT_LPA2 (TCR_EL1.DS = 1) and FEAT_LPA's 52-bit output addresses with the
64 KB granule (both raise :class:`Stage1Unsupported`); FEAT_LVA / FEAT_TTST TxSZ ranges;
FEAT_HAFDBS (TCR_EL1.HA/HD are treated as 0, so AF = 0 always faults and no descriptor is
ever written); FEAT_S1PIE/S1POE, FEAT_D128, MTE; the Contiguous hint (a TLB matter: the
returned ``page_size`` is that of the descriptor itself, always a safe caching unit).
The Realm EL1&0 regime has no stage-1 NS bit: NS and NSTable are ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, fields

MASK64 = (1 << 64) - 1
OA_BITS_MAX = 48  # without FEAT_LPA2 / FEAT_LPA(64 KB) a descriptor holds OA[47:12]

# --------------------------------------------------------------------------------------
# SCTLR_EL1

SCTLR_M = 1 << 0
SCTLR_WXN = 1 << 19
SCTLR_EE = 1 << 25
SCTLR_EPAN = 1 << 57

# --------------------------------------------------------------------------------------
# TCR_EL1

TCR_T0SZ_SHIFT = 0
TCR_EPD0 = 1 << 7
TCR_TG0_SHIFT = 14
TCR_T1SZ_SHIFT = 16
TCR_EPD1 = 1 << 23
TCR_TG1_SHIFT = 30
TCR_IPS_SHIFT = 32
TCR_TBI0 = 1 << 37
TCR_TBI1 = 1 << 38
TCR_HA = 1 << 39  # FEAT_HAFDBS is not implemented: treated as 0
TCR_HPD0 = 1 << 41
TCR_HPD1 = 1 << 42
TCR_TBID0 = 1 << 51
TCR_TBID1 = 1 << 52
TCR_E0PD0 = 1 << 55
TCR_E0PD1 = 1 << 56
TCR_DS = 1 << 59

# TCR_EL1.{I}PS and ID_AA64MMFR0_EL1.PARange share this table (0b111 is 56 bits, FEAT_D128).
PS_BITS = {0b000: 32, 0b001: 36, 0b010: 40, 0b011: 42, 0b100: 44, 0b101: 48, 0b110: 52,
           0b111: 56}
PA_RANGES = frozenset({32, 36, 40, 42, 44, 48, 52})

# Without FEAT_LVA the minimum TxSZ is 16 (48-bit VA); without FEAT_TTST the maximum is 39.
MIN_TXSZ = 16
MAX_TXSZ = 39

# --------------------------------------------------------------------------------------
# Descriptors (D8.3)

DESC_VALID = 1 << 0
DESC_TABLE = 1 << 1  # with bit 0: table at levels 0-2, page at level 3
ATTRINDX_SHIFT = 2
AP_EL0 = 1 << 6  # AP[1]: EL0 access
AP_RO = 1 << 7  # AP[2]: read-only
AF = 1 << 10
PXN = 1 << 53
UXN = 1 << 54
PXN_TABLE = 1 << 59
UXN_TABLE = 1 << 60
AP_TABLE_NO_EL0 = 1 << 61  # APTable[0]
AP_TABLE_RO = 1 << 62  # APTable[1]
ADDR_MASK = (1 << OA_BITS_MAX) - 1

# Stage1Result.attr_index when stage 1 is disabled: no MAIR entry applies (data accesses
# are Device-nGnRnE, instruction fetches Normal, D8.2 "stage 1 translation disabled").
ATTR_INDEX_S1_DISABLED = -1


class TranslationGranule(enum.Enum):
    """Translation granule; the value is log2 of its size."""

    KB4 = 12
    KB16 = 14
    KB64 = 16

    @property
    def shift(self) -> int:
        return self.value

    @property
    def size(self) -> int:
        return 1 << self.value

    @property
    def stride(self) -> int:
        """Bits of input address resolved per level (an 8-byte descriptor per entry)."""
        return self.value - 3

    def level_shift(self, level: int) -> int:
        """log2 of the region one descriptor at ``level`` maps."""
        return self.shift + self.stride * (3 - level)

    def block_allowed(self, level: int) -> bool:
        """Whether 0b01 is a block descriptor at ``level`` (``AArch64.BlockDescSupported``
        without FEAT_LPA2 and with PAMax < 52): 4 KB at levels 1 and 2, 16 KB and 64 KB at
        level 2 only."""
        if self is TranslationGranule.KB4:
            return level in (1, 2)
        return level == 2


TG0_ENCODING = {
    0b00: TranslationGranule.KB4,
    0b01: TranslationGranule.KB64,
    0b10: TranslationGranule.KB16,
}
TG1_ENCODING = {
    0b01: TranslationGranule.KB16,
    0b10: TranslationGranule.KB4,
    0b11: TranslationGranule.KB64,
}
# Reserved encodings (TG0 = 0b11, TG1 = 0b00) select an IMPLEMENTATION DEFINED granule
# (``AArch64.S1DecodeTG0/TG1``); this model chooses 4 KB.
RESERVED_TG_GRANULE = TranslationGranule.KB4


# --------------------------------------------------------------------------------------
# Inputs, outputs, faults


@dataclass(frozen=True)
class Stage1Regs:
    """The EL1&0 stage-1 system registers the walk reads."""

    sctlr_el1: int
    tcr_el1: int
    ttbr0_el1: int
    ttbr1_el1: int
    mair_el1: int


class Stage1FaultKind(enum.Enum):
    """Fault classes; the value is the DFSC/IFSC of the class at level 0."""

    TRANSLATION = 0b000100
    ACCESS_FLAG = 0b001000
    PERMISSION = 0b001100
    ADDRESS_SIZE = 0b000000


# Level -1 exists only with FEAT_LPA2 (4 KB granule); its FSCs are not contiguous with the
# others. Access flag and permission faults are never reported at level -1.
_FSC_LEVEL_MINUS_1 = {
    Stage1FaultKind.TRANSLATION: 0b101011,
    Stage1FaultKind.ADDRESS_SIZE: 0b101001,
}


class Stage1Unsupported(NotImplementedError):
    """A configuration this model does not implement (FEAT_LPA2, 52-bit 64 KB OAs)."""


@dataclass(frozen=True)
class Stage1Fault(Exception):
    """A stage-1 fault: its class, the lookup level it is reported at, the faulting VA (as
    issued, tag included) and the kind of access.

    ``s1ptw`` is part of the record for callers that report a fault on the stage-2
    translation of a walk access this way; :func:`translate_stage1` itself always raises
    with ``s1ptw = False`` and lets whatever ``read_desc`` raises propagate unchanged.
    """

    kind: Stage1FaultKind
    level: int
    va: int
    s1ptw: bool = False
    write: bool = False
    fetch: bool = False

    def __post_init__(self) -> None:
        if not -1 <= self.level <= 3:
            raise ValueError(f"stage-1 fault level {self.level} out of range")
        Exception.__init__(self, str(self))

    def __str__(self) -> str:
        access = "fetch" if self.fetch else ("write" if self.write else "read")
        walk = " on a stage-1 table walk (S1PTW)" if self.s1ptw else ""
        return (f"stage-1 {self.kind.name.lower().replace('_', ' ')} fault, level "
                f"{self.level}, VA {self.va:#x} ({access}){walk}")

    def __reduce__(self) -> tuple[type[Stage1Fault], tuple[object, ...]]:
        return (type(self), (self.kind, self.level, self.va, self.s1ptw, self.write,
                             self.fetch))

    def fsc(self) -> int:
        """The DFSC/IFSC: address size 0b0000LL, translation 0b0001LL, access flag
        0b0010LL, permission 0b0011LL, LL the level (ESR_ELx ISS encoding, D24.2)."""
        if self.level == -1:
            try:
                return _FSC_LEVEL_MINUS_1[self.kind]
            except KeyError:
                raise ValueError(f"no level -1 encoding for {self.kind.name}") from None
        return self.kind.value | self.level


_FAULT_FIELDS = frozenset(f.name for f in fields(Stage1Fault))


def _fault_setattr(self: Stage1Fault, name: str, value: object) -> None:
    # The record is immutable, but the interpreter and the standard library (contextlib,
    # for one) assign exception bookkeeping attributes such as __traceback__.
    if name in _FAULT_FIELDS:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")
    BaseException.__setattr__(self, name, value)


Stage1Fault.__setattr__ = _fault_setattr  # type: ignore[method-assign,assignment]


@dataclass(frozen=True)
class Stage1Result:
    """A successful stage-1 translation.

    ``ipa`` is the output address of the access (block/page base plus the offset of the VA
    in it). ``readable``/``writable``/``executable`` are the stage-1 permissions of the
    mapping for the EL and PSTATE.PAN the translation was made with (PAN is folded into the
    data permissions). ``attr_index`` is AttrIndx[2:0], the MAIR_EL1 field to use (see
    :func:`mair_attr`), or ``ATTR_INDEX_S1_DISABLED`` when stage 1 is off. ``page_size``
    and ``level`` are those of the leaf descriptor (4 KB at level 3 when stage 1 is off).
    """

    ipa: int
    readable: bool
    writable: bool
    executable: bool
    attr_index: int
    page_size: int
    level: int


def mair_attr(mair_el1: int, attr_index: int) -> int:
    """The 8-bit MAIR_EL1.Attr<n> field a descriptor's AttrIndx selects."""
    if not 0 <= attr_index <= 7:
        raise ValueError(f"AttrIndx {attr_index} has no MAIR_EL1 field")
    return (mair_el1 >> (8 * attr_index)) & 0xFF


def effective_pa_size(tcr_el1: int, pa_bits: int) -> int:
    """The output address size of the walk: TCR_EL1.IPS bounded by PAMax and, without
    FEAT_LPA2 / 64 KB FEAT_LPA, by 48 bits (``AArch64.PhysicalAddressSize``)."""
    ips = PS_BITS[(tcr_el1 >> TCR_IPS_SHIFT) & 0b111]
    return min(ips, pa_bits, OA_BITS_MAX)


# --------------------------------------------------------------------------------------
# The walk


def _ones(n: int) -> int:
    return (1 << n) - 1 if n > 0 else 0


def _byteswap64(value: int) -> int:
    return int.from_bytes(value.to_bytes(8, "little"), "big")


def translate_stage1(
    regs: Stage1Regs,
    va: int,
    *,
    el: int,
    write: bool,
    fetch: bool,
    pan: bool,
    read_desc: Callable[[int], int],
    pa_bits: int = 48,
) -> Stage1Result:
    """Translate ``va`` for an access from ``el`` (0 or 1) in the EL1&0 regime.

    ``write``/``fetch`` give the access kind (neither: a data read); ``pan`` is PSTATE.PAN.
    ``read_desc(ipa)`` returns the 64-bit descriptor at ``ipa`` as a little-endian load
    would (it is byte-reversed here when SCTLR_EL1.EE = 1); its exceptions propagate.
    ``pa_bits`` is PAMax, the implemented PA size (ID_AA64MMFR0_EL1.PARange).

    Raises :class:`Stage1Fault` as the hardware would, :class:`Stage1Unsupported` for
    configurations outside the model.
    """
    if el not in (0, 1):
        raise ValueError(f"the EL1&0 regime translates EL0 and EL1 accesses, not EL{el}")
    if write and fetch:
        raise ValueError("an access is a data write or an instruction fetch, not both")
    if not 0 <= va <= MASK64:
        raise ValueError(f"VA {va:#x} is not a 64-bit value")
    if pa_bits not in PA_RANGES:
        raise ValueError(f"PAMax of {pa_bits} bits is not a PARange value")

    def fault(kind: Stage1FaultKind, level: int) -> Stage1Fault:
        return Stage1Fault(kind, level, va, s1ptw=False, write=write, fetch=fetch)

    tcr = regs.tcr_el1
    upper = bool((va >> 55) & 1)  # AArch64.GetVARange
    tbi = bool(tcr & (TCR_TBI1 if upper else TCR_TBI0))
    tbid = bool(tcr & (TCR_TBID1 if upper else TCR_TBID0))
    addrtop = 55 if tbi and not (fetch and tbid) else 63  # AArch64.AddrTop

    if not regs.sctlr_el1 & SCTLR_M:
        # AArch64.S1DisabledOutput: VA[addrtop:PAMax] must be zero
        if (va >> pa_bits) & _ones(addrtop + 1 - pa_bits):
            raise fault(Stage1FaultKind.ADDRESS_SIZE, 0)
        return Stage1Result(
            ipa=va & _ones(pa_bits),
            readable=True,
            writable=True,
            executable=True,
            attr_index=ATTR_INDEX_S1_DISABLED,
            page_size=TranslationGranule.KB4.size,
            level=3,
        )

    if tcr & TCR_DS:
        raise Stage1Unsupported("TCR_EL1.DS = 1: FEAT_LPA2 (52-bit addresses) is not modelled")

    if upper:
        tg = (tcr >> TCR_TG1_SHIFT) & 0b11
        granule = TG1_ENCODING.get(tg, RESERVED_TG_GRANULE)
        txsz = (tcr >> TCR_T1SZ_SHIFT) & 0x3F
    else:
        tg = (tcr >> TCR_TG0_SHIFT) & 0b11
        granule = TG0_ENCODING.get(tg, RESERVED_TG_GRANULE)
        txsz = (tcr >> TCR_T0SZ_SHIFT) & 0x3F
    if granule is TranslationGranule.KB64 and pa_bits >= 52:
        raise Stage1Unsupported(
            "64 KB granule with PAMax = 52: FEAT_LPA output addresses are not modelled")

    # AArch64.S1TxSZFaults: out-of-range TxSZ either faults or is clamped, IMPLEMENTATION
    # DEFINED; this model faults (as FEAT_LVA requires below the minimum).
    if not MIN_TXSZ <= txsz <= MAX_TXSZ:
        raise fault(Stage1FaultKind.TRANSLATION, 0)
    iasize = 64 - txsz

    # AArch64.VAIsOutOfRange: VA[addrtop:iasize] all zeros (TTBR0) or all ones (TTBR1)
    width = addrtop + 1 - iasize
    top = (va >> iasize) & _ones(width)
    if top != (_ones(width) if upper else 0):
        raise fault(Stage1FaultKind.TRANSLATION, 0)

    if el == 0 and tcr & (TCR_E0PD1 if upper else TCR_E0PD0):
        raise fault(Stage1FaultKind.TRANSLATION, 0)
    if tcr & (TCR_EPD1 if upper else TCR_EPD0):
        raise fault(Stage1FaultKind.TRANSLATION, 0)

    ps = effective_pa_size(tcr, pa_bits)
    hpd = bool(tcr & (TCR_HPD1 if upper else TCR_HPD0))
    big_endian = bool(regs.sctlr_el1 & SCTLR_EE)

    # AArch64.S1StartLevel / S1TTBaseAddress: BADDR = TTBR[47:1], aligned to the size of
    # the initial table (the RES0 low bits, CnP and the ASID are not address bits).
    start = 3 - (iasize - 1 - granule.shift) // granule.stride
    level = start
    ttbr = regs.ttbr1_el1 if upper else regs.ttbr0_el1
    top_bits = iasize - granule.level_shift(start)
    table = ttbr & ADDR_MASK & ~_ones(top_bits + 3)
    if table >> ps:
        raise fault(Stage1FaultKind.ADDRESS_SIZE, 0)

    ap_table_no_el0 = ap_table_ro = pxn_table = uxn_table = False
    while True:
        shift = granule.level_shift(level)
        index_bits = top_bits if level == start else granule.stride
        index = (va >> shift) & _ones(index_bits)
        desc = read_desc(table + 8 * index) & MASK64
        if big_endian:
            desc = _byteswap64(desc)
        if not desc & DESC_VALID:
            raise fault(Stage1FaultKind.TRANSLATION, level)
        if desc & DESC_TABLE and level < 3:
            table = desc & ADDR_MASK & ~_ones(granule.shift)
            if table >> ps:
                raise fault(Stage1FaultKind.ADDRESS_SIZE, level)
            if not hpd:
                ap_table_no_el0 |= bool(desc & AP_TABLE_NO_EL0)
                ap_table_ro |= bool(desc & AP_TABLE_RO)
                pxn_table |= bool(desc & PXN_TABLE)
                uxn_table |= bool(desc & UXN_TABLE)
            level += 1
            continue
        if not desc & DESC_TABLE and not granule.block_allowed(level):
            # 0b01 is reserved at level 3 and where the granule has no blocks
            raise fault(Stage1FaultKind.TRANSLATION, level)
        break

    # Leaf: address size before the access flag (AArch64.S1Walk), both before permissions.
    page_size = 1 << shift
    oa = desc & ADDR_MASK & ~_ones(shift)
    if oa >> ps:
        raise fault(Stage1FaultKind.ADDRESS_SIZE, level)
    if not desc & AF:
        raise fault(Stage1FaultKind.ACCESS_FLAG, level)

    # AArch64.S1DirectBasePermissions
    read_only = bool(desc & AP_RO) or ap_table_ro
    el0_access = bool(desc & AP_EL0) and not ap_table_no_el0
    pr, pw = True, not read_only
    ur, uw = el0_access, el0_access and not read_only
    px = not (desc & PXN or pxn_table or uw)  # EL0-writable memory is never EL1-executable
    ux = not (desc & UXN or uxn_table)
    wxn = bool(regs.sctlr_el1 & SCTLR_WXN)
    if el == 0:
        r, w, x = ur, uw, ux
    else:
        r, w, x = pr, pw, px
    x = x and not (wxn and w)
    if el == 1 and pan:
        # PAN restricts EL1 data accesses only; EPAN adds EL0-executable memory
        epan = bool(regs.sctlr_el1 & SCTLR_EPAN)
        if ur or uw or (epan and ux):
            r = w = False

    allowed = x if fetch else (w if write else r)
    if not allowed:
        raise fault(Stage1FaultKind.PERMISSION, level)
    return Stage1Result(
        ipa=oa | (va & (page_size - 1)),
        readable=r,
        writable=w,
        executable=x,
        attr_index=(desc >> ATTRINDX_SHIFT) & 0b111,
        page_size=page_size,
        level=level,
    )
