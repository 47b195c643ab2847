"""GPT register and descriptor formats against rme-hardware §2–§3."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccasim.arch.gpt import (
    Gpccr,
    GptDescriptorError,
    GptGeometry,
    L0Block,
    L0Table,
    L1Contig,
    L1Granules,
    decode_l0,
    decode_l1,
    gptbr_decode,
    gptbr_encode,
    l1_granules_encode,
    l1_uniform,
)
from rme_helpers import bits

u64s = st.integers(min_value=0, max_value=(1 << 64) - 1)
nibbles = st.integers(min_value=0, max_value=15)

# GPCCR_EL3 fields of the base model (rme-hardware §3): PPS[2:0] IRGN[9:8] ORGN[11:10]
# SH[13:12] PGS[15:14] GPC[16] GPCP[17] NSO[19] L0GPTSZ[23:20].
GPCCR_FIELDS = {
    "pps": (2, 0),
    "irgn": (9, 8),
    "orgn": (11, 10),
    "sh": (13, 12),
    "pgs": (15, 14),
    "gpc": (16, 16),
    "gpcp": (17, 17),
    "nso": (19, 19),
    "l0gptsz": (23, 20),
}
GPCCR_MODELLED_MASK = sum(((1 << (hi - lo + 1)) - 1) << lo for hi, lo in GPCCR_FIELDS.values())

PPS_BITS = {0: 32, 1: 36, 2: 40, 3: 42, 4: 44, 5: 48, 6: 52}
PGS_BITS = {0b00: 12, 0b01: 16, 0b10: 14}
L0GPTSZ_BITS = {0: 30, 4: 34, 6: 36, 9: 39}
PARANGES = sorted(PPS_BITS.values())

gpccrs = st.builds(
    Gpccr,
    pps=st.integers(0, 7),
    irgn=st.integers(0, 3),
    orgn=st.integers(0, 3),
    sh=st.integers(0, 3),
    pgs=st.integers(0, 3),
    gpc=st.booleans(),
    gpcp=st.booleans(),
    nso=st.booleans(),
    l0gptsz=st.integers(0, 15),
)


# ------------------------------------------------------------------------------ GPCCR_EL3


@given(gpccrs)
def test_gpccr_encode_places_every_field_at_its_spec_bits(g: Gpccr) -> None:
    value = g.encode()
    for name, (hi, lo) in GPCCR_FIELDS.items():
        assert bits(value, hi, lo) == int(getattr(g, name)), name
    assert value & ~GPCCR_MODELLED_MASK == 0
    assert Gpccr.decode(value) == g


@given(u64s)
def test_gpccr_decode_then_encode_keeps_the_defined_fields(value: int) -> None:
    assert Gpccr.decode(value).encode() == value & GPCCR_MODELLED_MASK


@pytest.mark.parametrize(("pgs", "granule"), [(0b00, 4096), (0b01, 64 << 10), (0b10, 16 << 10)])
def test_pgs_order_is_4k_64k_16k(pgs: int, granule: int) -> None:
    geometry = GptGeometry.from_gpccr(Gpccr(pps=0, pgs=pgs, l0gptsz=0))
    assert geometry.granule_size == granule


def _spec_valid(g: Gpccr, parange_bits: int) -> bool:
    """rme-hardware §3: the invalid GPCCR configurations."""
    if g.pps not in PPS_BITS or PPS_BITS[g.pps] > parange_bits:
        return False
    if g.pgs == 0b11 or g.sh == 0b01:
        return False
    if g.irgn == 0 and g.orgn == 0 and g.sh != 0b10:
        return False
    return g.l0gptsz in L0GPTSZ_BITS


@given(gpccrs, st.sampled_from(PARANGES))
def test_configuration_error_iff_spec_says_invalid(g: Gpccr, parange_bits: int) -> None:
    error = g.configuration_error(parange_bits)
    assert (error is None) == _spec_valid(g, parange_bits), error


@pytest.mark.parametrize(
    ("fields", "parange"),
    [
        ({"pps": 7}, 52),  # reserved PPS
        ({"pps": 6}, 48),  # 4 PB PPS on a 48-bit PE
        ({"pps": 2}, 36),  # 1 TB PPS on a 36-bit PE
        ({"pgs": 0b11}, 48),  # reserved PGS
        ({"sh": 0b01}, 48),  # reserved SH
        ({"irgn": 0, "orgn": 0, "sh": 0b11}, 48),  # NC + inner shareable
        ({"irgn": 0, "orgn": 0, "sh": 0b00}, 48),  # NC + non-shareable
    ],
)
def test_configuration_error_cases(fields: dict[str, int], parange: int) -> None:
    assert Gpccr(**fields).configuration_error(parange) is not None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "parange"),
    [
        ({"pps": 5}, 48),  # PPS == PARange is fine
        ({"pps": 0, "pgs": 0b01}, 32),
        ({"irgn": 0, "orgn": 0, "sh": 0b10}, 48),  # NC needs outer shareable: ok
        ({"irgn": 0, "orgn": 1, "sh": 0b11}, 48),  # only inner NC: not the NC rule
        ({"sh": 0b00}, 48),  # non-shareable with cacheable fetches
    ],
)
def test_valid_configurations(fields: dict[str, int], parange: int) -> None:
    assert Gpccr(**fields).configuration_error(parange) is None  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ GPTBR_EL3


@given(st.integers(0, (1 << 40) - 1))
def test_gptbr_round_trip(page: int) -> None:
    l0_base = page << 12
    value = gptbr_encode(l0_base)
    assert value == page  # BADDR[39:0] = PA[51:12]
    assert gptbr_decode(value) == l0_base


@given(st.integers(0, (1 << 40) - 1), st.integers(1, (1 << 24) - 1))
def test_gptbr_decode_ignores_bits_above_baddr(page: int, high: int) -> None:
    assert gptbr_decode(page | (high << 40)) == page << 12


# ------------------------------------------------------------------------------ descriptors


@given(nibbles)
def test_l0_block_round_trip(gpi: int) -> None:
    desc = L0Block(gpi).encode()
    assert bits(desc, 3, 0) == 0b0001
    assert bits(desc, 7, 4) == gpi
    assert desc >> 8 == 0
    assert decode_l0(desc) == L0Block(gpi)


@given(st.integers(0, (1 << 40) - 1))
def test_l0_table_round_trip(page: int) -> None:
    l1_base = page << 12
    desc = L0Table(l1_base).encode()
    assert bits(desc, 3, 0) == 0b0011
    assert bits(desc, 51, 12) == page
    assert bits(desc, 11, 4) == 0 and desc >> 52 == 0
    assert decode_l0(desc) == L0Table(l1_base)


@given(u64s.filter(lambda d: d & 0xF not in (0b0001, 0b0011)))
def test_l0_invalid_type_is_rejected(desc: int) -> None:
    with pytest.raises(GptDescriptorError):
        decode_l0(desc)


@given(nibbles, st.integers(1, (1 << 56) - 1))
def test_l0_block_res0_bits_are_rejected(gpi: int, res0: int) -> None:
    with pytest.raises(GptDescriptorError):
        decode_l0(L0Block(gpi).encode() | res0 << 8)


@given(st.integers(0, (1 << 40) - 1), st.sampled_from([*range(4, 12), *range(52, 64)]))
def test_l0_table_res0_bits_are_rejected(page: int, bit: int) -> None:
    with pytest.raises(GptDescriptorError):
        decode_l0(L0Table(page << 12).encode() | 1 << bit)


granule_gpis = st.lists(nibbles, min_size=16, max_size=16).filter(lambda g: g[0] != 0b0001)


@given(granule_gpis)
def test_l1_granules_round_trip(gpis: list[int]) -> None:
    desc = l1_granules_encode(gpis)
    assert L1Granules(tuple(gpis)).encode() == desc
    for i, gpi in enumerate(gpis):
        assert bits(desc, 4 * i + 3, 4 * i) == gpi  # granule i at [4i+3:4i]
    assert decode_l1(desc) == L1Granules(tuple(gpis))


def test_l1_granules_needs_sixteen_gpis() -> None:
    with pytest.raises(ValueError):
        l1_granules_encode([0b1001] * 15)


@given(nibbles)
def test_l1_uniform_gives_every_granule_the_gpi(gpi: int) -> None:
    desc = l1_uniform(gpi)
    assert all(bits(desc, 4 * i + 3, 4 * i) == gpi for i in range(16))


@pytest.mark.parametrize(("size", "contig"), [(2 << 20, 0b01), (32 << 20, 0b10), (512 << 20, 0b11)])
@given(gpi=nibbles)
def test_l1_contiguous_round_trip(size: int, contig: int, gpi: int) -> None:
    desc = L1Contig(gpi, size).encode()
    assert bits(desc, 3, 0) == 0b0001
    assert bits(desc, 7, 4) == gpi
    assert bits(desc, 9, 8) == contig
    assert desc >> 10 == 0
    assert decode_l1(desc) == L1Contig(gpi, size)


@given(nibbles)
def test_l1_contiguous_with_contig_00_is_rejected(gpi: int) -> None:
    with pytest.raises(GptDescriptorError):
        decode_l1(0b0001 | gpi << 4)


@given(nibbles, st.integers(1, 3), st.integers(1, (1 << 54) - 1))
def test_l1_contiguous_res0_bits_are_rejected(gpi: int, contig: int, res0: int) -> None:
    with pytest.raises(GptDescriptorError):
        decode_l1(0b0001 | gpi << 4 | contig << 8 | res0 << 10)


# ------------------------------------------------------------------------------ geometry

VALID_COMBOS = [
    (pgs, l0, pps) for pgs in PGS_BITS for l0 in L0GPTSZ_BITS for pps in PPS_BITS
]


@given(st.sampled_from(VALID_COMBOS), st.data())
def test_geometry_indices_follow_the_spec_formula(
    combo: tuple[int, int, int], data: st.DataObject
) -> None:
    pgs, l0gptsz, pps = combo
    p, s, t = PGS_BITS[pgs], L0GPTSZ_BITS[l0gptsz], PPS_BITS[pps]
    g = GptGeometry.from_gpccr(Gpccr(pps=pps, pgs=pgs, l0gptsz=l0gptsz))
    assert (g.p, g.s, g.t) == (p, s, t)
    pa = data.draw(st.integers(0, (1 << t) - 1), label="pa")
    # L0 index = PA[T-1:S] (none if S >= T); L1 index = PA[S-1:P+4]; GPI index = PA[P+3:P]
    assert g.l0_index(pa) == (bits(pa, t - 1, s) if s < t else 0)
    assert g.l1_index(pa) == bits(pa, s - 1, p + 4)
    assert g.gpi_index(pa) == bits(pa, p + 3, p)
    assert g.l0_entries == (1 << (t - s) if s < t else 1)


@pytest.mark.parametrize(
    ("pgs", "l0gptsz", "pps", "pa", "l0", "l1", "gi"),
    [
        # 4 KB granules, 1 GB L0 regions, 4 GB PPS
        (0b00, 0, 0, 0x8765_4321, 2, 0x0765, 0x4),
        # 64 KB granules, 16 GB L0 regions, 1 TB PPS
        (0b01, 4, 2, 0xAB_CDEF_1234, 0x2A, 0x3CDE, 0xF),
        # 16 KB granules, 512 GB L0 regions, 256 TB PPS
        (0b10, 9, 5, 0xFF80_0000_C000, 0x1FF, 0, 0x3),
    ],
)
def test_geometry_worked_examples(
    pgs: int, l0gptsz: int, pps: int, pa: int, l0: int, l1: int, gi: int
) -> None:
    g = GptGeometry.from_gpccr(Gpccr(pps=pps, pgs=pgs, l0gptsz=l0gptsz))
    assert (g.l0_index(pa), g.l1_index(pa), g.gpi_index(pa)) == (l0, l1, gi)


def test_table_sizes_of_the_spec_example() -> None:
    # rme-hardware §2: PPS 4 GB with 1 GB L0 regions -> 4 L0 entries (32 bytes, table in a
    # 4 KB-aligned page); 4 KB granules -> 128 KB per L1 table, 16384 entries.
    g = GptGeometry.from_gpccr(Gpccr(pps=0, pgs=0, l0gptsz=0))
    assert g.l0_entries == 4
    assert g.l0_table_size == 4096
    assert g.l1_entries == 16384
    assert g.l1_table_size == 128 << 10


@pytest.mark.parametrize(("pgs", "l0gptsz"), [(pgs, l0) for pgs in PGS_BITS for l0 in (0, 4, 6)])
def test_l1_table_size_is_2_pow_s_minus_p_minus_1(pgs: int, l0gptsz: int) -> None:
    g = GptGeometry.from_gpccr(Gpccr(pps=5, pgs=pgs, l0gptsz=l0gptsz))
    assert g.l1_table_size == 1 << (L0GPTSZ_BITS[l0gptsz] - PGS_BITS[pgs] - 1)
    assert g.l0_table_size == max(8 << (48 - L0GPTSZ_BITS[l0gptsz]), 4096)
