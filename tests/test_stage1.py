"""Stage-1 (EL1&0, VMSAv8-64) translation walk: tables built in a dict-backed fake IPA space
and walked as the hardware does (Arm ARM DDI0487 D8, pseudocode AArch64.S1Translate)."""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator
from dataclasses import FrozenInstanceError, dataclass, field

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ccasim.arch.stage1 import (
    ATTR_INDEX_S1_DISABLED,
    Stage1Fault,
    Stage1FaultKind,
    Stage1Regs,
    Stage1Result,
    Stage1Unsupported,
    TranslationGranule,
    mair_attr,
    translate_stage1,
)

K = Stage1FaultKind
KB4, KB16, KB64 = TranslationGranule.KB4, TranslationGranule.KB16, TranslationGranule.KB64

# Encodings written out independently of the module under test (D8, D24.2 TCR_EL1/SCTLR_EL1)
TG0 = {KB4: 0b00, KB64: 0b01, KB16: 0b10}
TG1 = {KB4: 0b10, KB64: 0b11, KB16: 0b01}
IPS = {32: 0, 36: 1, 40: 2, 42: 3, 44: 4, 48: 5, 52: 6}
M, WXN, EE, EPAN = 1 << 0, 1 << 19, 1 << 25, 1 << 57
EPD0, EPD1, TBI0, TBI1 = 1 << 7, 1 << 23, 1 << 37, 1 << 38
HPD0, HPD1, TBID0, TBID1 = 1 << 41, 1 << 42, 1 << 51, 1 << 52
E0PD0, E0PD1, DS = 1 << 55, 1 << 56, 1 << 59
AF, nG = 1 << 10, 1 << 11
PXN, UXN = 1 << 53, 1 << 54
PXN_TABLE, UXN_TABLE, APT_NO_EL0, APT_RO = 1 << 59, 1 << 60, 1 << 61, 1 << 62
AP = {0b00: 0, 0b01: 1 << 6, 0b10: 2 << 6, 0b11: 3 << 6}  # AP[2:1]

TOP = 0xFFFF_0000_0000_0000  # VA[63:48] of the TTBR1 range with T1SZ = 16


def tcr(*, t0sz: int = 16, t1sz: int = 16, tg0: TranslationGranule = KB4,
        tg1: TranslationGranule = KB4, ips: int = 48, extra: int = 0) -> int:
    return (t0sz | TG0[tg0] << 14 | t1sz << 16 | TG1[tg1] << 30 | IPS[ips] << 32 | extra)


class Memory:
    """A sparse IPA space of 64-bit descriptors that records every table read."""

    def __init__(self) -> None:
        self.words: dict[int, int] = {}
        self.reads: list[int] = []

    def read(self, ipa: int) -> int:
        assert ipa % 8 == 0
        self.reads.append(ipa)
        return self.words.get(ipa, 0)


def shift_of(g: TranslationGranule, level: int) -> int:
    return g.value + (g.value - 3) * (3 - level)


def start_level(g: TranslationGranule, iasize: int) -> int:
    """Independent statement of the start-level rule: the first level whose entries do not
    all need a further lookup to cover iasize bits."""
    level = 3
    while shift_of(g, level) + (g.value - 3) < iasize:
        level -= 1
    return level


@dataclass
class Tables:
    """A test-side table builder for one VA range."""

    mem: Memory
    granule: TranslationGranule
    iasize: int
    next_free: int = 0x4000_0000
    root: int = 0
    mappings: list[tuple[int, int, int]] = field(default_factory=list)  # (va, oa, level)

    def __post_init__(self) -> None:
        self.root = self.alloc()

    @property
    def start(self) -> int:
        return start_level(self.granule, self.iasize)

    def alloc(self) -> int:
        addr = self.next_free
        self.next_free += self.granule.size
        return addr

    def entry(self, table: int, va: int, level: int) -> int:
        shift = shift_of(self.granule, level)
        bits = self.iasize - shift if level == self.start else self.granule.value - 3
        return table + 8 * ((va >> shift) & ((1 << bits) - 1))

    def next_table(self, word: int) -> int:
        return word & ((1 << 48) - 1) & ~(self.granule.size - 1)

    def desc_addr(self, va: int, level: int) -> int:
        """Address of the descriptor used at ``level`` (the tables must exist)."""
        table = self.root
        for cur in range(self.start, level):
            table = self.next_table(self.mem.words[self.entry(table, va, cur)])
        return self.entry(table, va, level)

    def map(self, va: int, oa: int, level: int, attrs: int = AF | AP[0b00]) -> bool:
        """Map a block (level < 3) or page; False (leaf not written) if it would overlap."""
        table = self.root
        for cur in range(self.start, level):
            addr = self.entry(table, va, cur)
            word = self.mem.words.get(addr)
            if word is None:
                table = self.alloc()
                self.mem.words[addr] = table | 0b11
            elif word & 0b11 == 0b11:
                table = self.next_table(word)
            else:
                return False  # a block already covers va
        addr = self.entry(table, va, level)
        if addr in self.mem.words:
            return False
        self.mem.words[addr] = oa | attrs | (0b11 if level == 3 else 0b01)
        self.mappings.append((va, oa, level))
        return True


def regs(*, sctlr: int = M, tcr_value: int | None = None, ttbr0: int = 0, ttbr1: int = 0,
         mair: int = 0) -> Stage1Regs:
    return Stage1Regs(sctlr_el1=sctlr, tcr_el1=tcr() if tcr_value is None else tcr_value,
                      ttbr0_el1=ttbr0, ttbr1_el1=ttbr1, mair_el1=mair)


def walk(r: Stage1Regs, mem: Memory, va: int, *, el: int = 1, write: bool = False,
         fetch: bool = False, pan: bool = False, pa_bits: int = 48) -> Stage1Result:
    return translate_stage1(r, va, el=el, write=write, fetch=fetch, pan=pan,
                            read_desc=mem.read, pa_bits=pa_bits)


@contextlib.contextmanager
def faults(kind: Stage1FaultKind, level: int) -> Iterator[None]:
    with pytest.raises(Stage1Fault) as info:
        yield
    assert (info.value.kind, info.value.level) == (kind, level), info.value
    assert info.value.s1ptw is False


def setup4k(extra_tcr: int = 0, sctlr: int = M) -> tuple[Memory, Tables, Stage1Regs]:
    mem = Memory()
    t = Tables(mem, KB4, 48)
    return mem, t, regs(sctlr=sctlr, tcr_value=tcr(extra=extra_tcr), ttbr0=t.root)


# ------------------------------------------------------------------------ MMU off


def test_mmu_off_is_flat_rwx() -> None:
    mem = Memory()
    r = regs(sctlr=0, tcr_value=tcr(ips=32))  # IPS does not bound the flat map
    for va in (0, 0x1234, 0xFFFF_FFFF_F000, 0x8000_1234_5678):
        for kw in ({}, {"write": True}, {"fetch": True}, {"el": 0}, {"pan": True}):
            res = walk(r, mem, va, **kw)
            assert res.ipa == va
            assert (res.readable, res.writable, res.executable) == (True, True, True)
            assert res.attr_index == ATTR_INDEX_S1_DISABLED
            assert res.page_size == 4096
    assert mem.reads == []


@pytest.mark.parametrize("pa_bits", [32, 40, 48, 52])
def test_mmu_off_address_size_fault_beyond_pamax(pa_bits: int) -> None:
    mem = Memory()
    r = regs(sctlr=0)
    assert walk(r, mem, (1 << pa_bits) - 1, pa_bits=pa_bits).ipa == (1 << pa_bits) - 1
    for va in (1 << pa_bits, 1 << 63, 0xFFFF_FFFF_FFFF_F000):
        with faults(K.ADDRESS_SIZE, 0):
            walk(r, mem, va, pa_bits=pa_bits)


def test_mmu_off_top_byte_ignore() -> None:
    mem = Memory()
    tagged = 0x5A00_0000_0000_1000
    with faults(K.ADDRESS_SIZE, 0):
        walk(regs(sctlr=0), mem, tagged)
    r = regs(sctlr=0, tcr_value=tcr(extra=TBI0))
    assert walk(r, mem, tagged).ipa == 0x1000
    assert walk(r, mem, tagged, fetch=True).ipa == 0x1000  # TBID0 = 0: fetches too
    r = regs(sctlr=0, tcr_value=tcr(extra=TBI0 | TBID0))
    assert walk(r, mem, tagged).ipa == 0x1000
    with faults(K.ADDRESS_SIZE, 0):
        walk(r, mem, tagged, fetch=True)
    # VA[55] = 1 selects TBI1, and is itself above PAMax
    with faults(K.ADDRESS_SIZE, 0):
        walk(regs(sctlr=0, tcr_value=tcr(extra=TBI0 | TBI1)), mem, 1 << 55)


# ------------------------------------------------------------------------ 4 KB walks


def test_4k_page_reads_one_descriptor_per_level() -> None:
    mem, t, r = setup4k()
    va = 0x0000_1234_5678_9ABC
    assert t.map(va & ~0xFFF, 0x8765_4000, 3, AF | AP[0b00] | 5 << 2)
    res = walk(r, mem, va)
    assert res == Stage1Result(ipa=0x8765_4ABC, readable=True, writable=True, executable=True,
                               attr_index=5, page_size=4096, level=3)
    assert mem.reads == [t.desc_addr(va, lvl) for lvl in range(4)]
    assert mem.reads[0] == t.root + 8 * ((va >> 39) & 511)


@pytest.mark.parametrize(("level", "size"), [(1, 1 << 30), (2, 2 << 20)])
def test_4k_blocks(level: int, size: int) -> None:
    mem, t, r = setup4k()
    va = 0x0000_0040_0000_0000 + 3 * size
    oa = 0x0000_00C0_0000_0000 & ~(size - 1)
    assert t.map(va, oa, level)
    off = size - 8
    res = walk(r, mem, va + off)
    assert (res.ipa, res.page_size, res.level) == (oa + off, size, level)
    assert len(mem.reads) == level + 1


def test_block_address_bits_below_the_block_size_are_ignored() -> None:
    # AArch64.S1LeafBase aligns the OA field to the block size (those bits are RES0, or nT)
    mem, t, r = setup4k()
    assert t.map(0x40_0000, 0x8020_0000, 2)
    mem.words[t.desc_addr(0x40_0000, 2)] |= 0x1F_F000
    assert walk(r, mem, 0x40_0010).ipa == 0x8020_0010


def test_4k_level0_block_is_a_translation_fault() -> None:
    mem, t, r = setup4k()
    mem.words[t.root] = 0x0 | AF | 0b01
    with faults(K.TRANSLATION, 0):
        walk(r, mem, 0x1000)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
@pytest.mark.parametrize("invalid", [0, 0b10, 0xFFFF_FFFF_FFFF_FFFE])
def test_invalid_descriptor_faults_at_its_level(level: int, invalid: int) -> None:
    mem, t, r = setup4k()
    va = 0x0000_0012_3456_7000
    assert t.map(va, 0x5000, 3, AF)
    mem.words[t.desc_addr(va, level)] = invalid
    with faults(K.TRANSLATION, level):
        walk(r, mem, va)
    assert len(mem.reads) == level + 1


def test_reserved_level3_encoding() -> None:
    mem, t, r = setup4k()
    va = 0x7000
    assert t.map(va, 0x5000, 3, AF)
    mem.words[t.desc_addr(va, 3)] = 0x5000 | AF | 0b01
    with faults(K.TRANSLATION, 3):
        walk(r, mem, va)


def test_empty_table_entry_faults_at_lower_levels() -> None:
    mem, t, r = setup4k()
    assert t.map(0x1000, 0x2000, 3)
    with faults(K.TRANSLATION, 3):
        walk(r, mem, 0x5000)  # same L3 table, empty entry
    with faults(K.TRANSLATION, 2):
        walk(r, mem, 0x20_0000)  # same L2 table
    with faults(K.TRANSLATION, 1):
        walk(r, mem, 0x4000_0000)  # same L1 table
    with faults(K.TRANSLATION, 0):
        walk(r, mem, 0x80_0000_0000)  # root table


@pytest.mark.parametrize(("t0sz", "start"), [(16, 0), (24, 0), (25, 1), (33, 1), (34, 2),
                                             (39, 2)])
def test_4k_start_level_from_t0sz(t0sz: int, start: int) -> None:
    mem = Memory()
    t = Tables(mem, KB4, 64 - t0sz)
    assert t.start == start
    va = (1 << (64 - t0sz)) - 0x1000
    assert t.map(va, 0x3000, 3)
    r = regs(tcr_value=tcr(t0sz=t0sz), ttbr0=t.root)
    assert walk(r, mem, va + 0x10).ipa == 0x3010
    assert len(mem.reads) == 4 - start
    with faults(K.TRANSLATION, 0):
        walk(r, mem, va + 0x1000)  # just past the TTBR0 range


# ------------------------------------------------------------------------ 16 KB and 64 KB


@pytest.mark.parametrize(("t0sz", "start"), [(16, 0), (17, 1), (27, 1), (28, 2), (38, 2),
                                             (39, 3)])
def test_16k_translation_and_start_level(t0sz: int, start: int) -> None:
    mem = Memory()
    t = Tables(mem, KB16, 64 - t0sz)
    assert t.start == start
    va = ((1 << (64 - t0sz)) - 1) & ~0x3FFF
    assert t.map(va, 0x1_2340_0000 + 0x4000, 3)
    r = regs(tcr_value=tcr(t0sz=t0sz, tg0=KB16), ttbr0=t.root)
    res = walk(r, mem, va + 0x3FF8)
    assert (res.ipa, res.page_size, res.level) == (0x1_2340_4000 + 0x3FF8, 16 << 10, 3)
    assert len(mem.reads) == 4 - start


def test_16k_blocks_only_at_level2() -> None:
    mem = Memory()
    t = Tables(mem, KB16, 48)
    r = regs(tcr_value=tcr(tg0=KB16), ttbr0=t.root)
    assert t.map(0x2_0000_0000, 0x4200_0000, 2)  # 32 MB
    res = walk(r, mem, 0x2_01FF_FFF0)
    assert (res.ipa, res.page_size, res.level) == (0x43FF_FFF0, 32 << 20, 2)
    assert t.map(0x4000_0000_0000 + (64 << 30), 0x10_0000_0000, 1)  # would be 64 GB
    with faults(K.TRANSLATION, 1):
        walk(r, mem, 0x4000_0000_0000 + (64 << 30))


@pytest.mark.parametrize(("t0sz", "start"), [(16, 1), (21, 1), (22, 2), (34, 2), (35, 3),
                                             (39, 3)])
def test_64k_translation_and_start_level(t0sz: int, start: int) -> None:
    mem = Memory()
    t = Tables(mem, KB64, 64 - t0sz)
    assert t.start == start
    va = ((1 << (64 - t0sz)) - 1) & ~0xFFFF
    assert t.map(va, 0xAB_0000, 3)
    r = regs(tcr_value=tcr(t0sz=t0sz, tg0=KB64), ttbr0=t.root)
    res = walk(r, mem, va + 0xFFF0)
    assert (res.ipa, res.page_size, res.level) == (0xAB_FFF0, 64 << 10, 3)
    assert len(mem.reads) == 4 - start


def test_64k_blocks_only_at_level2() -> None:
    mem = Memory()
    t = Tables(mem, KB64, 48)
    r = regs(tcr_value=tcr(tg0=KB64), ttbr0=t.root)
    assert t.map(0x1_2000_0000, 0x8000_0000, 2)  # 512 MB
    res = walk(r, mem, 0x1_2000_0000 + 0x1234_5678)
    assert (res.ipa, res.page_size, res.level) == (0x8000_0000 + 0x1234_5678, 512 << 20, 2)
    assert t.map(0x400_0000_0000, 0x400_0000_0000, 1)  # 4 TB needs FEAT_LPA
    with faults(K.TRANSLATION, 1):
        walk(r, mem, 0x400_0000_0000)


def test_reserved_tg0_is_treated_as_4k() -> None:
    mem, t, _ = setup4k()
    assert t.map(0x1000, 0x9000, 3)
    r = regs(tcr_value=tcr() | 0b11 << 14, ttbr0=t.root)
    assert walk(r, mem, 0x1000).ipa == 0x9000


# ------------------------------------------------------------------------ TTBR1


@pytest.mark.parametrize("granule", [KB4, KB16, KB64])
def test_ttbr1_high_addresses(granule: TranslationGranule) -> None:
    mem = Memory()
    low = Tables(mem, granule, 48)
    high = Tables(mem, granule, 48, next_free=0x8000_0000)
    va = TOP | 0x8000_1234_0000
    assert high.map(va & ~(granule.size - 1), 0x7700_0000, 3, AF | AP[0b00])
    assert low.map(va & ~TOP & ~(granule.size - 1), 0x1100_0000, 3, AF | AP[0b00])
    r = regs(tcr_value=tcr(tg0=granule, tg1=granule), ttbr0=low.root, ttbr1=high.root)
    assert walk(r, mem, va + 0x8).ipa == 0x7700_0000 + (va & (granule.size - 1)) + 0x8
    assert walk(r, mem, (va & ~TOP) + 0x8).ipa == 0x1100_0000 + (va & (granule.size - 1)) + 8
    assert mem.reads[0] == high.entry(high.root, va, high.start)


def test_tg1_encoding_differs_from_tg0() -> None:
    mem = Memory()
    high = Tables(mem, KB16, 48)
    va = TOP | 0x4000
    assert high.map(va, 0x8000, 3)
    # TG1 = 0b01 is 16 KB (TG0 = 0b01 would be 64 KB)
    tcr_value = 16 << 16 | 0b01 << 30 | 5 << 32
    r = regs(tcr_value=tcr_value, ttbr1=high.root)
    res = walk(r, mem, va + 4)
    assert (res.ipa, res.page_size) == (0x8004, 16 << 10)
    # TG1 = 0b00 is reserved: treated as 4 KB here, so the walk follows entry 0 of the 16 KB
    # tables down to level 3, where the 4 KB index VA[20:12] = 4 finds an empty slot (the
    # 16 KB page descriptor is at index VA[24:14] = 1)
    r = regs(tcr_value=16 << 16 | 5 << 32, ttbr1=high.root)
    with faults(K.TRANSLATION, 3):
        walk(r, mem, va + 4)


@pytest.mark.parametrize("t1sz", [16, 25, 39])
def test_ttbr1_range_and_gap(t1sz: int) -> None:
    mem = Memory()
    high = Tables(mem, KB4, 64 - t1sz)
    mask64 = (1 << 64) - 1
    lowest = mask64 & ~((1 << (64 - t1sz)) - 1)
    assert high.map(lowest, 0x6000, 3)
    r = regs(tcr_value=tcr(t1sz=t1sz), ttbr1=high.root)
    assert walk(r, mem, lowest + 0x10).ipa == 0x6010
    with faults(K.TRANSLATION, 0):
        walk(r, mem, lowest - 0x1000)  # the gap between the ranges
    with faults(K.TRANSLATION, 0):
        walk(r, mem, mask64 & ~((1 << 56) - 1))  # VA[55] = 0: TTBR0 range, out of it


def test_gap_faults_without_reading_tables() -> None:
    mem, _, r = setup4k()
    for va in (1 << 48, 0x00FF_FFFF_FFFF_F000, 0xFF00_0000_0000_0000, 0xFFFE_FFFF_FFFF_F000):
        with faults(K.TRANSLATION, 0):
            walk(r, mem, va)
    assert mem.reads == []


# ------------------------------------------------------------------------ TBI


def test_tbi0_ignores_the_tag_for_data_and_fetch_unless_tbid() -> None:
    mem = Memory()
    t = Tables(mem, KB4, 48)
    assert t.map(0x7000, 0x9000, 3)
    tagged = 0xA500_0000_0000_7010
    r = regs(tcr_value=tcr(), ttbr0=t.root)
    with faults(K.TRANSLATION, 0):
        walk(r, mem, tagged)
    r = regs(tcr_value=tcr(extra=TBI0), ttbr0=t.root)
    assert walk(r, mem, tagged).ipa == 0x9010
    assert walk(r, mem, tagged, fetch=True).ipa == 0x9010
    r = regs(tcr_value=tcr(extra=TBI0 | TBID0), ttbr0=t.root)
    assert walk(r, mem, tagged, write=True).ipa == 0x9010
    with faults(K.TRANSLATION, 0):
        walk(r, mem, tagged, fetch=True)
    # TBI1 does not apply to the TTBR0 range
    r = regs(tcr_value=tcr(extra=TBI1), ttbr0=t.root)
    with faults(K.TRANSLATION, 0):
        walk(r, mem, tagged)


def test_tbi1_for_the_upper_range() -> None:
    mem = Memory()
    high = Tables(mem, KB4, 48)
    assert high.map(TOP | 0x7000, 0x9000, 3)
    tagged = 0x12FF_0000_0000_7010  # VA[55] = 1, tag 0x12
    r = regs(tcr_value=tcr(extra=TBI1), ttbr1=high.root)
    assert walk(r, mem, tagged).ipa == 0x9010
    r = regs(tcr_value=tcr(extra=TBI0), ttbr1=high.root)
    with faults(K.TRANSLATION, 0):
        walk(r, mem, tagged)
    r = regs(tcr_value=tcr(extra=TBI1 | TBID1), ttbr1=high.root)
    with faults(K.TRANSLATION, 0):
        walk(r, mem, tagged, fetch=True)


# ------------------------------------------------------------------------ EPD, E0PD, TxSZ


@pytest.mark.parametrize(("bit", "va"), [(EPD0, 0x1000), (EPD1, TOP | 0x1000)])
def test_epd_is_a_level0_translation_fault(bit: int, va: int) -> None:
    mem = Memory()
    low, high = Tables(mem, KB4, 48), Tables(mem, KB4, 48, next_free=0x8000_0000)
    assert low.map(0x1000, 0x2000, 3) and high.map(TOP | 0x1000, 0x3000, 3)
    r = regs(tcr_value=tcr(extra=bit), ttbr0=low.root, ttbr1=high.root)
    with faults(K.TRANSLATION, 0):
        walk(r, mem, va)
    assert mem.reads == []
    other = TOP | 0x1000 if bit == EPD0 else 0x1000
    assert walk(r, mem, other).ipa in (0x2000, 0x3000)


@pytest.mark.parametrize(("bit", "va"), [(E0PD0, 0x1000), (E0PD1, TOP | 0x1000)])
def test_e0pd_faults_el0_only(bit: int, va: int) -> None:
    mem = Memory()
    low, high = Tables(mem, KB4, 48), Tables(mem, KB4, 48, next_free=0x8000_0000)
    assert low.map(0x1000, 0x2000, 3, AF | AP[0b01]) and high.map(TOP | 0x1000, 0x3000, 3,
                                                                   AF | AP[0b01])
    r = regs(tcr_value=tcr(extra=bit), ttbr0=low.root, ttbr1=high.root)
    with faults(K.TRANSLATION, 0):
        walk(r, mem, va, el=0)
    assert walk(r, mem, va, el=1).ipa in (0x2000, 0x3000)


@pytest.mark.parametrize("t0sz", [0, 8, 15, 40, 48, 63])
def test_txsz_out_of_range_faults_at_level0(t0sz: int) -> None:
    mem, t, _ = setup4k()
    assert t.map(0, 0x2000, 3)
    r = regs(tcr_value=tcr(t0sz=t0sz), ttbr0=t.root)
    with faults(K.TRANSLATION, 0):
        walk(r, mem, 0)
    assert mem.reads == []


# ------------------------------------------------------------------------ address size


def test_ttbr_beyond_ips_is_a_level0_address_size_fault() -> None:
    mem = Memory()
    t = Tables(mem, KB4, 39, next_free=1 << 40)  # tables at 1 TB, start level 1
    assert t.map(0x1000, 0x2000, 3)
    r = regs(tcr_value=tcr(t0sz=25, ips=40), ttbr0=t.root)
    with faults(K.ADDRESS_SIZE, 0):
        walk(r, mem, 0x1000)
    assert mem.reads == []
    r = regs(tcr_value=tcr(t0sz=25, ips=42), ttbr0=t.root)
    assert walk(r, mem, 0x1000).ipa == 0x2000


@pytest.mark.parametrize("level", [0, 1, 2])
def test_table_address_beyond_ips_faults_at_the_table_descriptor(level: int) -> None:
    mem, t, _ = setup4k()
    va = 0x0000_0001_0020_3000
    assert t.map(va, 0x2000, 3)
    addr = t.desc_addr(va, level)
    mem.words[addr] |= 1 << 36
    r = regs(tcr_value=tcr(ips=36), ttbr0=t.root)
    with faults(K.ADDRESS_SIZE, level):
        walk(r, mem, va)
    assert len(mem.reads) == level + 1


@pytest.mark.parametrize("level", [1, 2, 3])
def test_output_address_beyond_ips_faults_at_the_leaf(level: int) -> None:
    mem, t, _ = setup4k()
    va = 0x4000_0000
    assert t.map(va, 1 << 40, level, attrs=0)  # AF = 0 as well: address size wins
    r = regs(tcr_value=tcr(ips=40), ttbr0=t.root)
    with faults(K.ADDRESS_SIZE, level):
        walk(r, mem, va)
    r = regs(tcr_value=tcr(ips=42), ttbr0=t.root)
    with faults(K.ACCESS_FLAG, level):
        walk(r, mem, va)


def test_ips_is_bounded_by_pamax_and_48_bits() -> None:
    mem, t, _ = setup4k()
    assert t.map(0x1000, 1 << 44, 3)
    # IPS = 48 bits but PAMax = 44: the OA is out of range
    r = regs(tcr_value=tcr(ips=48), ttbr0=t.root)
    with faults(K.ADDRESS_SIZE, 3):
        walk(r, mem, 0x1000, pa_bits=44)
    assert walk(r, mem, 0x1000, pa_bits=48).ipa == 1 << 44
    # IPS = 52 with a 4 KB granule and no FEAT_LPA2: 48 bits, descriptor bits [51:48]
    # are not address bits
    r = regs(tcr_value=tcr(ips=52), ttbr0=t.root)
    assert walk(r, mem, 0x1000, pa_bits=52).ipa == 1 << 44
    mem.words[t.desc_addr(0x1000, 3)] |= 0xF << 48
    assert walk(r, mem, 0x1000, pa_bits=52).ipa == 1 << 44


def test_ttbr_low_bits_asid_and_cnp_are_not_address_bits() -> None:
    mem, t, _ = setup4k()
    assert t.map(0x1000, 0x2000, 3)
    ttbr = t.root | 0xABCD << 48 | 1 | 0xFF0
    r = regs(ttbr0=ttbr)
    assert walk(r, mem, 0x1000).ipa == 0x2000
    assert mem.reads[0] == t.root


# ------------------------------------------------------------------------ access flag


@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("kw", [{}, {"write": True}, {"fetch": True}])
def test_access_flag_fault(level: int, kw: dict[str, bool]) -> None:
    mem, t, r = setup4k(extra_tcr=1 << 39)  # TCR_EL1.HA without FEAT_HAFDBS: no effect
    va = 0x8000_0000
    assert t.map(va, 0x8000_0000, level, attrs=AP[0b00])
    before = dict(mem.words)
    with faults(K.ACCESS_FLAG, level):
        walk(r, mem, va, **kw)
    assert mem.words == before


def test_access_flag_before_permission() -> None:
    mem, t, r = setup4k()
    assert t.map(0x1000, 0x2000, 3, attrs=AP[0b11] | UXN | PXN)
    with faults(K.ACCESS_FLAG, 3):
        walk(r, mem, 0x1000, write=True)


# ------------------------------------------------------------------------ permissions


def expected_permissions(ap: int, el: int, pan: bool, uxn: bool, pxn: bool,
                         wxn: bool) -> tuple[bool, bool, bool]:
    """(read, write, execute) from the Arm ARM's tables, written as tables."""
    el1_data = {0b00: "rw", 0b01: "rw", 0b10: "r", 0b11: "r"}[ap]
    el0_data = {0b00: "", 0b01: "rw", 0b10: "", 0b11: "r"}[ap]
    if el == 0:
        data = el0_data
        execute = not uxn and not (wxn and "w" in el0_data)
    else:
        data = el1_data
        execute = not pxn and "w" not in el0_data and not (wxn and "w" in el1_data)
        if pan and el0_data:
            data = ""
    return "r" in data, "w" in data, execute


@pytest.mark.parametrize("ap", [0b00, 0b01, 0b10, 0b11])
@pytest.mark.parametrize("el", [0, 1])
@pytest.mark.parametrize("pan", [False, True])
@pytest.mark.parametrize("uxn", [False, True])
@pytest.mark.parametrize("pxn", [False, True])
@pytest.mark.parametrize("wxn", [False, True])
def test_permission_matrix(ap: int, el: int, pan: bool, uxn: bool, pxn: bool,
                           wxn: bool) -> None:
    mem = Memory()
    t = Tables(mem, KB4, 48)
    attrs = AF | AP[ap] | (UXN if uxn else 0) | (PXN if pxn else 0)
    assert t.map(0x20_0000, 0x40_0000, 2, attrs)
    r = regs(sctlr=M | (WXN if wxn else 0), ttbr0=t.root)
    want = expected_permissions(ap, el, pan, uxn, pxn, wxn)
    for i, access in enumerate(({}, {"write": True}, {"fetch": True})):
        if want[i]:
            res = walk(r, mem, 0x20_0040, el=el, pan=pan, **access)
            assert (res.readable, res.writable, res.executable) == want
            assert res.ipa == 0x40_0040
        else:
            with faults(K.PERMISSION, 2):
                walk(r, mem, 0x20_0040, el=el, pan=pan, **access)


def test_permission_fault_records_the_access() -> None:
    mem, t, r = setup4k()
    assert t.map(0x1000, 0x2000, 3, AF | AP[0b11])
    with pytest.raises(Stage1Fault) as info:
        walk(r, mem, 0x1008, write=True)
    f = info.value
    assert (f.kind, f.level, f.va, f.write, f.fetch, f.s1ptw) == (
        K.PERMISSION, 3, 0x1008, True, False, False)
    assert f.fsc() == 0b001111


def test_el0_execute_only_and_read_only() -> None:
    mem, t, r = setup4k()
    assert t.map(0x1000, 0x2000, 3, AF | AP[0b00] | PXN)  # EL1 RW, EL0 execute-only
    assert walk(r, mem, 0x1000, el=0, fetch=True).executable
    with faults(K.PERMISSION, 3):
        walk(r, mem, 0x1000, el=0)
    with faults(K.PERMISSION, 3):
        walk(r, mem, 0x1000, el=1, fetch=True)


def test_epan_extends_pan_to_el0_executable_memory() -> None:
    mem, t, _ = setup4k()
    assert t.map(0x1000, 0x2000, 3, AF | AP[0b00])  # no EL0 data access, EL0-executable
    assert t.map(0x3000, 0x4000, 3, AF | AP[0b00] | UXN)
    r = regs(sctlr=M | EPAN, ttbr0=t.root)
    with faults(K.PERMISSION, 3):
        walk(r, mem, 0x1000, pan=True)
    assert walk(r, mem, 0x1000, pan=False).writable
    assert walk(r, mem, 0x1000, pan=True, fetch=True).executable
    assert walk(r, mem, 0x3000, pan=True, write=True).ipa == 0x4000
    r = regs(sctlr=M, ttbr0=t.root)
    assert walk(r, mem, 0x1000, pan=True).readable


def test_result_permissions_reflect_pan_for_fetches_too() -> None:
    mem, t, r = setup4k()
    assert t.map(0x1000, 0x2000, 3, AF | AP[0b11])  # RO for both ELs
    res = walk(r, mem, 0x1000, pan=True, fetch=True)
    assert (res.readable, res.writable, res.executable) == (False, False, True)


# ------------------------------------------------------------------------ hierarchical


# (leaf AP, table bit, access, allowed, allowed with HPD = 1)
HIERARCHICAL_CASES = [
    (0b01, APT_NO_EL0, {"el": 0}, False, True),
    (0b01, APT_NO_EL0, {"el": 1, "pan": True}, True, False),  # no EL0 access: PAN moot
    (0b00, APT_RO, {"write": True}, False, True),
    (0b01, APT_RO, {"write": True, "el": 0}, False, True),
    (0b01, APT_RO, {"el": 0}, True, True),
    (0b00, PXN_TABLE, {"fetch": True}, False, True),
    (0b00, PXN_TABLE, {"fetch": True, "el": 0}, True, True),
    (0b00, UXN_TABLE, {"fetch": True, "el": 0}, False, True),
    (0b00, UXN_TABLE, {"fetch": True}, True, True),
]


@pytest.mark.parametrize("table_level", [0, 1, 2])
@pytest.mark.parametrize("hpd", [False, True])
@pytest.mark.parametrize(("ap", "bit", "kw", "ok", "ok_hpd"), HIERARCHICAL_CASES)
def test_hierarchical_controls(table_level: int, hpd: bool, ap: int, bit: int,
                               kw: dict[str, object], ok: bool, ok_hpd: bool) -> None:
    mem = Memory()
    t = Tables(mem, KB4, 48)
    assert t.map(0x1000, 0x2000, 3, AF | AP[ap])
    mem.words[t.desc_addr(0x1000, table_level)] |= bit
    r = regs(tcr_value=tcr(extra=HPD0 if hpd else 0), ttbr0=t.root)
    if ok_hpd if hpd else ok:
        assert walk(r, mem, 0x1000, **kw).ipa == 0x2000  # type: ignore[arg-type]
    else:
        with faults(K.PERMISSION, 3):
            walk(r, mem, 0x1000, **kw)  # type: ignore[arg-type]


def test_aptable_no_el0_removes_implicit_pxn() -> None:
    mem, t, r = setup4k()
    assert t.map(0x1000, 0x2000, 3, AF | AP[0b01])
    with faults(K.PERMISSION, 3):
        walk(r, mem, 0x1000, fetch=True)  # EL0-writable
    mem.words[t.desc_addr(0x1000, 1)] |= APT_NO_EL0
    assert walk(r, mem, 0x1000, fetch=True).executable


def test_hierarchical_controls_accumulate_over_levels() -> None:
    mem, t, r = setup4k()
    assert t.map(0x1000, 0x2000, 3, AF | AP[0b01])
    mem.words[t.desc_addr(0x1000, 0)] |= APT_RO
    mem.words[t.desc_addr(0x1000, 2)] |= APT_NO_EL0
    res = walk(r, mem, 0x1000)
    assert (res.readable, res.writable, res.executable) == (True, False, True)
    with faults(K.PERMISSION, 3):
        walk(r, mem, 0x1000, el=0)


def test_hpd1_applies_to_ttbr1_only() -> None:
    mem = Memory()
    high = Tables(mem, KB4, 48)
    assert high.map(TOP | 0x1000, 0x2000, 3, AF | AP[0b00])
    mem.words[high.desc_addr(TOP | 0x1000, 1)] |= APT_RO
    r = regs(tcr_value=tcr(extra=HPD0), ttbr1=high.root)
    with faults(K.PERMISSION, 3):
        walk(r, mem, TOP | 0x1000, write=True)
    r = regs(tcr_value=tcr(extra=HPD1), ttbr1=high.root)
    assert walk(r, mem, TOP | 0x1000, write=True).writable


# ------------------------------------------------------------------------ misc behaviour


def test_big_endian_descriptors() -> None:
    mem, t, r = setup4k(sctlr=M | EE)
    assert t.map(0x1000, 0x2000, 3, AF | AP[0b00] | 3 << 2)
    mem.words = {a: int.from_bytes(w.to_bytes(8, "little"), "big")
                 for a, w in mem.words.items()}
    res = walk(r, mem, 0x1008)
    assert (res.ipa, res.attr_index) == (0x2008, 3)


def test_mair_attr() -> None:
    mair = 0x44_FF_04_00_BB_AA_EE_0C
    assert [mair_attr(mair, i) for i in range(8)] == [0x0C, 0xEE, 0xAA, 0xBB, 0x00, 0x04,
                                                      0xFF, 0x44]
    with pytest.raises(ValueError):
        mair_attr(mair, ATTR_INDEX_S1_DISABLED)


def test_ng_and_contiguous_bits_do_not_change_the_translation() -> None:
    mem, t, r = setup4k()
    assert t.map(0x1000, 0x2000, 3, AF | nG | 1 << 52)
    res = walk(r, mem, 0x1FF8)
    assert (res.ipa, res.page_size) == (0x2FF8, 4096)


class WalkAbort(Exception):
    pass


def test_read_desc_exceptions_propagate_unchanged() -> None:
    mem, t, r = setup4k()
    assert t.map(0x1000, 0x2000, 3)
    boom = WalkAbort("stage-2 fault on the walk")
    seen: list[int] = []

    def read(ipa: int) -> int:
        seen.append(ipa)
        if len(seen) == 3:
            raise boom
        return mem.read(ipa)

    with pytest.raises(WalkAbort) as info:
        translate_stage1(r, 0x1000, el=1, write=False, fetch=False, pan=False,
                         read_desc=read)
    assert info.value is boom
    assert seen == [t.desc_addr(0x1000, lvl) for lvl in range(3)]

    s1ptw = Stage1Fault(K.TRANSLATION, 1, 0x1000, s1ptw=True)

    def read_s1ptw(ipa: int) -> int:
        raise s1ptw

    with pytest.raises(Stage1Fault) as info2:
        translate_stage1(r, 0x1000, el=1, write=False, fetch=False, pan=False,
                         read_desc=read_s1ptw)
    assert info2.value is s1ptw and info2.value.s1ptw


def test_unsupported_configurations() -> None:
    mem, t, _ = setup4k()
    with pytest.raises(Stage1Unsupported):
        walk(regs(tcr_value=tcr(extra=DS), ttbr0=t.root), mem, 0x1000)
    with pytest.raises(Stage1Unsupported):
        walk(regs(tcr_value=tcr(tg0=KB64), ttbr0=t.root), mem, 0x1000, pa_bits=52)
    assert isinstance(Stage1Unsupported("x"), NotImplementedError)
    # DS with the MMU off does not matter
    assert walk(regs(sctlr=0, tcr_value=tcr(extra=DS)), mem, 0x1000).ipa == 0x1000


@pytest.mark.parametrize("kw", [{"el": 2}, {"el": -1}, {"write": True, "fetch": True},
                                {"pa_bits": 47}])
def test_bad_arguments(kw: dict[str, object]) -> None:
    mem, _, r = setup4k()
    args: dict[str, object] = {"el": 1, "write": False, "fetch": False, "pan": False,
                               "read_desc": mem.read, "pa_bits": 48}
    args.update(kw)
    with pytest.raises(ValueError):
        translate_stage1(r, 0x1000, **args)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        translate_stage1(r, 1 << 64, el=1, write=False, fetch=False, pan=False,
                         read_desc=mem.read)


# ------------------------------------------------------------------------ the fault record


def test_fsc_encodings() -> None:
    for level in range(4):
        assert Stage1Fault(K.ADDRESS_SIZE, level, 0).fsc() == 0b000000 | level
        assert Stage1Fault(K.TRANSLATION, level, 0).fsc() == 0b000100 | level
        assert Stage1Fault(K.ACCESS_FLAG, level, 0).fsc() == 0b001000 | level
        assert Stage1Fault(K.PERMISSION, level, 0).fsc() == 0b001100 | level
    assert Stage1Fault(K.TRANSLATION, -1, 0).fsc() == 0b101011
    assert Stage1Fault(K.ADDRESS_SIZE, -1, 0).fsc() == 0b101001
    with pytest.raises(ValueError):
        Stage1Fault(K.PERMISSION, -1, 0).fsc()
    with pytest.raises(ValueError):
        Stage1Fault(K.PERMISSION, 4, 0)


def test_fault_is_a_frozen_exception() -> None:
    f = Stage1Fault(K.PERMISSION, 3, 0x1234, write=True)
    assert isinstance(f, Exception)
    assert "permission" in str(f) and "0x1234" in str(f)
    with pytest.raises(FrozenInstanceError):
        f.level = 2  # type: ignore[misc]
    assert f == Stage1Fault(K.PERMISSION, 3, 0x1234, write=True)
    assert pickle.loads(pickle.dumps(f)) == f

    @contextlib.contextmanager
    def passthrough() -> Iterator[None]:
        yield

    # contextlib assigns __traceback__ while the exception passes through
    with pytest.raises(Stage1Fault) as info, passthrough():
        raise f
    assert info.value is f
    try:
        raise RuntimeError("inner")
    except RuntimeError as inner:
        try:
            raise f from inner
        except Stage1Fault as outer:
            assert outer.__cause__ is inner


# ------------------------------------------------------------------------ property


leaf_levels = {KB4: [1, 2, 3], KB16: [2, 3], KB64: [2, 3]}


@st.composite
def mapping_sets(draw: st.DrawFn) -> tuple[TranslationGranule, bool, int, list[tuple[
        int, int, int, int]]]:
    granule = draw(st.sampled_from([KB4, KB16, KB64]))
    upper = draw(st.booleans())
    txsz = draw(st.integers(16, 39))
    iasize = 64 - txsz
    start = start_level(granule, iasize)
    entries = []
    for _ in range(draw(st.integers(1, 6))):
        level = draw(st.sampled_from([lvl for lvl in leaf_levels[granule] if lvl >= start]
                                     or [3]))
        shift = shift_of(granule, level)
        va = draw(st.integers(0, (1 << iasize) - 1)) & ~((1 << shift) - 1)
        oa = draw(st.integers(0, (1 << 48) - 1)) & ~((1 << shift) - 1)
        attrs = draw(st.integers(0, 7)) << 2
        entries.append((va, oa, level, attrs))
    return granule, upper, txsz, entries


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapping_sets(), st.data())
def test_translation_returns_what_was_mapped(
        case: tuple[TranslationGranule, bool, int, list[tuple[int, int, int, int]]],
        data: st.DataObject) -> None:
    granule, upper, txsz, entries = case
    iasize = 64 - txsz
    mem = Memory()
    t = Tables(mem, granule, iasize, next_free=1 << 47)  # tables out of the OAs' way
    mapped = [(va, oa, level, attrs) for va, oa, level, attrs in entries
              if t.map(va, oa, level, AF | AP[0b01] | attrs)]
    assume(mapped)
    high = ((1 << 64) - 1) & ~((1 << iasize) - 1) if upper else 0
    tcr_value = tcr(t0sz=txsz, t1sz=txsz, tg0=granule, tg1=granule)
    r = regs(tcr_value=tcr_value, ttbr0=0 if upper else t.root, ttbr1=t.root if upper else 0)
    for va, oa, level, attrs in mapped:
        size = 1 << shift_of(granule, level)
        offset = data.draw(st.integers(0, size - 1))
        res = walk(r, mem, high | va | offset, el=0, write=True)
        assert res == Stage1Result(ipa=oa + offset, readable=True, writable=True,
                                   executable=True, attr_index=attrs >> 2,
                                   page_size=size, level=level)
    # an address no mapping covers is a translation fault somewhere on the walk
    probe = data.draw(st.integers(0, (1 << iasize) - 1))
    covered = any(va <= probe < va + (1 << shift_of(granule, level))
                  for va, _, level, _ in mapped)
    if not covered:
        with pytest.raises(Stage1Fault) as info:
            walk(r, mem, high | probe)
        assert info.value.kind is K.TRANSLATION
