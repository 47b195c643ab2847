"""The Granule Protection Table in its architectural format (rme-hardware §2–§3).

Everything here is pure encoding/decoding: GPCCR_EL3 and GPTBR_EL3 fields, the GPT geometry
they imply, and level-0 / level-1 descriptors. The walk that reads these descriptors from
Root memory lives in :mod:`ccasim.arch.gpc`; the code that builds and changes tables is EL3
firmware (:mod:`ccasim.firmware.gpt_lib`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------
# GPI encodings (rme-hardware §2)


class Gpi(enum.IntEnum):
    """Granule Protection Information values implemented by base RME (+ NSO of GPC2)."""

    NO_ACCESS = 0b0000
    SECURE = 0b1000
    NON_SECURE = 0b1001
    ROOT = 0b1010
    REALM = 0b1011
    NSO = 0b1101  # FEAT_RME_GPC2, only valid when GPCCR_EL3.NSO = 1
    ANY = 0b1111


BASE_GPIS = frozenset({Gpi.NO_ACCESS, Gpi.SECURE, Gpi.NON_SECURE, Gpi.ROOT, Gpi.REALM, Gpi.ANY})


def gpi_is_valid(gpi: int, nso_enabled: bool = False) -> bool:
    """True if ``gpi`` is a defined encoding for this configuration (others are reserved)."""
    if gpi in BASE_GPIS:
        return True
    return nso_enabled and gpi == Gpi.NSO


# --------------------------------------------------------------------------------------
# GPCCR_EL3 (rme-hardware §3)

PPS_BITS = {0: 32, 1: 36, 2: 40, 3: 42, 4: 44, 5: 48, 6: 52}
PPS_ENCODING = {bits: enc for enc, bits in PPS_BITS.items()}
PGS_BITS = {0b00: 12, 0b01: 16, 0b10: 14}  # note the order: 0b01 is 64 KB
L0GPTSZ_BITS = {0: 30, 4: 34, 6: 36, 9: 39}
PARANGE_BITS = PPS_BITS  # ID_AA64MMFR0_EL1.PARange uses the same table

SH_NON_SHAREABLE = 0b00
SH_OUTER = 0b10
SH_INNER = 0b11
CACHE_NC = 0b00
CACHE_WB_RA_WA = 0b01


@dataclass(frozen=True)
class Gpccr:
    """GPCCR_EL3 fields."""

    pps: int = 0
    irgn: int = CACHE_WB_RA_WA
    orgn: int = CACHE_WB_RA_WA
    sh: int = SH_INNER
    pgs: int = 0
    gpc: bool = False
    gpcp: bool = False
    nso: bool = False
    l0gptsz: int = 0

    def encode(self) -> int:
        return (
            (self.pps & 0x7)
            | (self.irgn & 0x3) << 8
            | (self.orgn & 0x3) << 10
            | (self.sh & 0x3) << 12
            | (self.pgs & 0x3) << 14
            | int(self.gpc) << 16
            | int(self.gpcp) << 17
            | int(self.nso) << 19
            | (self.l0gptsz & 0xF) << 20
        )

    @classmethod
    def decode(cls, value: int) -> Gpccr:
        return cls(
            pps=value & 0x7,
            irgn=(value >> 8) & 0x3,
            orgn=(value >> 10) & 0x3,
            sh=(value >> 12) & 0x3,
            pgs=(value >> 14) & 0x3,
            gpc=bool((value >> 16) & 1),
            gpcp=bool((value >> 17) & 1),
            nso=bool((value >> 19) & 1),
            l0gptsz=(value >> 20) & 0xF,
        )

    def configuration_error(self, pa_range_bits: int) -> str | None:
        """Why this configuration is invalid (every checked access then takes a level-0
        GPT walk fault, rule R_JWCSM), or None if it is valid."""
        if self.pps not in PPS_BITS:
            return "reserved PPS"
        if PPS_BITS[self.pps] > pa_range_bits:
            return "PPS larger than ID_AA64MMFR0_EL1.PARange"
        if self.pgs not in PGS_BITS:
            return "reserved PGS"
        if self.sh == 0b01:
            return "reserved SH"
        if self.irgn == CACHE_NC and self.orgn == CACHE_NC and self.sh != SH_OUTER:
            return "non-cacheable GPT fetches require SH = outer shareable"
        if self.l0gptsz not in L0GPTSZ_BITS:
            return "reserved L0GPTSZ"
        return None


def gptbr_encode(l0_base: int) -> int:
    """GPTBR_EL3.BADDR[39:0] = PA[51:12] of the level-0 table."""
    return (l0_base >> 12) & ((1 << 40) - 1)


def gptbr_decode(value: int) -> int:
    return (value & ((1 << 40) - 1)) << 12


# --------------------------------------------------------------------------------------
# Geometry


@dataclass(frozen=True)
class GptGeometry:
    """P (granule bits), S (bits covered by one L0 entry), T (protected PA bits).

    L0 index = PA[T-1:S]; L1 index = PA[S-1:P+4]; GPI index = PA[P+3:P] (rme-hardware §2).
    The shifts and masks are also kept as plain integers (``l0_mask``, ``l1_shift``,
    ``l1_mask``) for the walks on hot paths: index = (PA >> shift) & mask.
    """

    p: int
    s: int
    t: int
    l0_mask: int = field(init=False, repr=False, compare=False)
    l1_shift: int = field(init=False, repr=False, compare=False)
    l1_mask: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # l0_entries is 1 when S >= T (a single L0 entry): the mask is then 0
        object.__setattr__(self, "l0_mask", self.l0_entries - 1)
        object.__setattr__(self, "l1_shift", self.p + 4)
        object.__setattr__(self, "l1_mask", self.l1_entries - 1)

    @classmethod
    def from_gpccr(cls, gpccr: Gpccr) -> GptGeometry:
        return cls(p=PGS_BITS[gpccr.pgs], s=L0GPTSZ_BITS[gpccr.l0gptsz], t=PPS_BITS[gpccr.pps])

    @property
    def granule_size(self) -> int:
        return 1 << self.p

    @property
    def l0_region_size(self) -> int:
        return 1 << self.s

    @property
    def l0_entries(self) -> int:
        return 1 << max(self.t - self.s, 0)

    @property
    def l0_table_size(self) -> int:
        """Bytes of the L0 table; it is aligned to its size, 4 KB at least."""
        return max(self.l0_entries * 8, 4096)

    @property
    def l1_entries(self) -> int:
        return 1 << (min(self.s, self.t) - self.p - 4)

    @property
    def l1_table_size(self) -> int:
        return self.l1_entries * 8

    def l0_index(self, pa: int) -> int:
        return (pa >> self.s) & self.l0_mask

    def l1_index(self, pa: int) -> int:
        return (pa >> self.l1_shift) & self.l1_mask

    def gpi_index(self, pa: int) -> int:
        return (pa >> self.p) & 0xF


# --------------------------------------------------------------------------------------
# Descriptors (rme-hardware §2)

L0_TYPE_BLOCK = 0b0001
L0_TYPE_TABLE = 0b0011
L0_TABLE_ADDR_MASK = ((1 << 52) - 1) & ~0xFFF  # bits [51:12]
L1_CONTIG_TYPE = 0b0001

CONTIG_SIZES = {0b01: 2 << 20, 0b10: 32 << 20, 0b11: 512 << 20}
CONTIG_ENCODING = {size: enc for enc, size in CONTIG_SIZES.items()}


class GptDescriptorError(ValueError):
    """A descriptor that the GPC would reject with a GPT walk fault."""


@dataclass(frozen=True)
class L0Block:
    gpi: int

    def encode(self) -> int:
        return L0_TYPE_BLOCK | (self.gpi & 0xF) << 4


@dataclass(frozen=True)
class L0Table:
    l1_base: int

    def encode(self) -> int:
        return L0_TYPE_TABLE | (self.l1_base & L0_TABLE_ADDR_MASK)


@dataclass(frozen=True)
class L1Granules:
    """Sixteen 4-bit GPIs, granule i at bits [4i+3:4i]."""

    gpis: tuple[int, ...]

    def encode(self) -> int:
        return l1_granules_encode(self.gpis)


@dataclass(frozen=True)
class L1Contig:
    gpi: int
    size: int

    def encode(self) -> int:
        return L1_CONTIG_TYPE | (self.gpi & 0xF) << 4 | CONTIG_ENCODING[self.size] << 8


def l1_granules_encode(gpis: tuple[int, ...] | list[int]) -> int:
    if len(gpis) != 16:
        raise ValueError("a granules descriptor holds exactly 16 GPIs")
    value = 0
    for i, gpi in enumerate(gpis):
        value |= (gpi & 0xF) << (4 * i)
    return value


def l1_uniform(gpi: int) -> int:
    """A granules descriptor giving all 16 granules the same GPI."""
    return (gpi & 0xF) * 0x1111_1111_1111_1111


def decode_l0(desc: int) -> L0Block | L0Table:
    kind = desc & 0xF
    if kind == L0_TYPE_BLOCK:
        if desc >> 8:
            raise GptDescriptorError("L0 block descriptor with RES0 bits set")
        return L0Block((desc >> 4) & 0xF)
    if kind == L0_TYPE_TABLE:
        if desc & ~(L0_TABLE_ADDR_MASK | 0xF):
            raise GptDescriptorError("L0 table descriptor with RES0 bits set")
        return L0Table(desc & L0_TABLE_ADDR_MASK)
    raise GptDescriptorError(f"invalid L0 descriptor type {kind:#06b}")


def decode_l1(desc: int) -> L1Granules | L1Contig:
    if desc & 0xF == L1_CONTIG_TYPE:
        # 0b0001 is never a valid GPI, so this cannot be a granules descriptor.
        contig = (desc >> 8) & 0x3
        if contig == 0 or desc >> 10:
            raise GptDescriptorError("invalid L1 contiguous descriptor")
        return L1Contig((desc >> 4) & 0xF, CONTIG_SIZES[contig])
    return L1Granules(tuple((desc >> (4 * i)) & 0xF for i in range(16)))


def gpi_admits(gpi: int, pas: int, state: int, nso_enabled: bool = False) -> bool:
    """Does ``gpi`` let an access to PAS ``pas`` from security state ``state`` pass?

    0b1111 passes everything; 0b10xx passes exactly PAS xx; NSO (GPC2) passes NS-PAS
    accesses from the Non-secure or Root state (values of the :mod:`security` enums).
    """
    if gpi == Gpi.ANY:
        return True
    if gpi & 0b1100 == 0b1000:
        return (gpi & 0b11) == pas
    if gpi == Gpi.NSO and nso_enabled:
        return pas == 1 and state in (1, 2)
    return False
