"""GPT walk outcomes for corrupt tables, invalid GPCCR_EL3, the PPS boundary and holes
(rme-hardware §2–§4). Tables are corrupted by EL3 Root-state writes to the real GPT."""

from __future__ import annotations

import pytest

from ccasim import (
    ExternalAbort,
    GptAddressSizeFault,
    GptWalkFault,
    GranuleProtectionCheckException,
    GranuleProtectionFault,
    Platform,
    SecurityState,
)
from ccasim.arch.faults import AccessKind, GptExternalAbort
from ccasim.arch.security import PhysicalAddressSpace as Pas
from rme_helpers import (
    GPI_NS,
    GPI_SECURE,
    GRANULE,
    STATE_PAS_PAIRS,
    MiB,
    at_el3,
    l0_entry_pa,
    l1_entry_pa,
    ns_granule,
    root_read_u64,
    root_write_u64,
    tlbi_paallos,
)

GPCSC_ADDRESS_SIZE = 0b000000
GPCSC_WALK = {0: 0b000100, 1: 0b000101}
GPCSC_EABT = {0: 0b010100, 1: 0b010101}


@pytest.fixture
def p() -> Platform:
    return Platform()


def _walk_fault(platform: Platform, pa: int, level: int, cpu: int = 0) -> None:
    with pytest.raises(GptWalkFault) as info:
        platform.cpus[cpu].host.read(pa, 8)
    assert info.value.level == level
    assert info.value.gpcsc == GPCSC_WALK[level]
    assert info.value.pa == pa


# ------------------------------------------------------------------------------ level 0


@pytest.mark.parametrize("kind", [t for t in range(16) if t not in (0b0001, 0b0011)])
def test_invalid_l0_type_is_a_level0_walk_fault(kind: int) -> None:
    p = Platform()
    pa = ns_granule(p, 1)
    p.host.read(pa, 8)  # cached before the corruption
    root_write_u64(p, l0_entry_pa(p, pa), 0x90 | kind)
    p.host.read(pa, 8)  # still cached: no TLBI yet
    tlbi_paallos(p)
    _walk_fault(p, pa, 0)
    # Every granule of that 1 GB L0 region faults; the next region does not.
    _walk_fault(p, pa + 0x3000_0000, 0)
    p.host.read(pa + (1 << 30), 8)


@pytest.mark.parametrize("res0_bit", [8, 12, 40, 63])
def test_l0_block_with_res0_bits_is_a_level0_walk_fault(p: Platform, res0_bit: int) -> None:
    pa = ns_granule(p, 2)
    desc = root_read_u64(p, l0_entry_pa(p, pa))
    assert desc == 0b0001 | GPI_NS << 4  # ns_dram starts as a Non-secure block descriptor
    root_write_u64(p, l0_entry_pa(p, pa), desc | 1 << res0_bit)
    tlbi_paallos(p)
    _walk_fault(p, pa, 0)


@pytest.mark.parametrize("gpi", [0b0001, 0b0010, 0b0111, 0b1100, 0b1101, 0b1110])
def test_l0_block_with_reserved_gpi_is_a_level0_walk_fault(p: Platform, gpi: int) -> None:
    pa = ns_granule(p, 2)
    root_write_u64(p, l0_entry_pa(p, pa), 0b0001 | gpi << 4)
    tlbi_paallos(p)
    _walk_fault(p, pa, 0)


@pytest.mark.parametrize("res0_bit", [4, 11, 52, 63])
def test_l0_table_with_res0_bits_is_a_level0_walk_fault(p: Platform, res0_bit: int) -> None:
    pa = ns_granule(p, 2)
    l1_entry_pa(p, pa)  # turn the block into a table
    l0 = root_read_u64(p, l0_entry_pa(p, pa))
    root_write_u64(p, l0_entry_pa(p, pa), l0 | 1 << res0_bit)
    tlbi_paallos(p)
    _walk_fault(p, pa, 0)


@pytest.mark.parametrize("offset", [0x1000, 0x8000, 0x1_0000])
def test_misaligned_l1_table_pointer_is_a_level0_walk_fault(p: Platform, offset: int) -> None:
    # L1 tables are aligned to their size: 2^(S-P-1) = 128 KB for 4 KB granules, 1 GB regions.
    pa = ns_granule(p, 2)
    l1_entry_pa(p, pa)
    l0 = root_read_u64(p, l0_entry_pa(p, pa))
    root_write_u64(p, l0_entry_pa(p, pa), l0 + offset)
    tlbi_paallos(p)
    _walk_fault(p, pa, 0)


def test_l1_table_pointer_beyond_pps_is_a_level0_walk_fault(p: Platform) -> None:
    pa = ns_granule(p, 2)
    assert p.monitor.gpt.geometry.t == 32
    root_write_u64(p, l0_entry_pa(p, pa), (1 << 32) | 0b0011)
    tlbi_paallos(p)
    _walk_fault(p, pa, 0)


def test_l1_table_in_a_hole_gives_an_external_abort_on_gpt_fetch(p: Platform) -> None:
    pa = ns_granule(p, 2)
    hole = 0x4000_0000  # between the Root region and the RMM carve-out; 128 KB aligned
    assert p.memory.map.find(hole) is None
    root_write_u64(p, l0_entry_pa(p, pa), hole | 0b0011)
    tlbi_paallos(p)
    with pytest.raises(GptExternalAbort) as info:
        p.host.read(pa, 8)
    assert info.value.level == 1 and info.value.gpcsc == GPCSC_EABT[1]


def test_l0_table_in_a_hole_gives_an_external_abort_on_gpt_fetch(p: Platform) -> None:
    with at_el3(p) as pe:
        pe.write_sysreg("GPTBR_EL3", 0x4000_0000 >> 12)
        pe.tlbi_paall()
    with pytest.raises(GptExternalAbort) as info:
        p.host.read(ns_granule(p), 8)
    assert info.value.level == 0 and info.value.gpcsc == GPCSC_EABT[0]


def test_gptbr_beyond_pps_is_an_address_size_fault(p: Platform) -> None:
    with at_el3(p) as pe:
        pe.write_sysreg("GPTBR_EL3", (1 << 32) >> 12)
        pe.tlbi_paall()
    with pytest.raises(GptAddressSizeFault) as info:
        p.host.read(ns_granule(p), 8)
    assert info.value.level == 0 and info.value.gpcsc == GPCSC_ADDRESS_SIZE
    p.cpus[1].host.read(ns_granule(p), 8)  # GPTBR_EL3 is per PE


# ------------------------------------------------------------------------------ level 1


def test_contiguous_descriptor_with_contig_00_is_a_level1_walk_fault(p: Platform) -> None:
    pa = ns_granule(p, 0x40)
    root_write_u64(p, l1_entry_pa(p, pa), 0b0001 | GPI_NS << 4)
    tlbi_paallos(p)
    _walk_fault(p, pa, 1)
    # The 16 granules of that L1 entry fault; the next entry's granules do not.
    _walk_fault(p, pa - (pa % (16 * GRANULE)) + 15 * GRANULE, 1)
    p.host.read(pa - (pa % (16 * GRANULE)) + 16 * GRANULE, 8)


def test_contiguous_descriptor_with_res0_bits_is_a_level1_walk_fault(p: Platform) -> None:
    pa = ns_granule(p, 0x40)
    root_write_u64(p, l1_entry_pa(p, pa), 0b0001 | GPI_NS << 4 | 0b01 << 8 | 1 << 10)
    tlbi_paallos(p)
    _walk_fault(p, pa, 1)


def test_valid_2mb_contiguous_descriptor(p: Platform) -> None:
    block = p.region("ns_dram").base + 6 * MiB
    contig = 0b0001 | GPI_SECURE << 4 | 0b01 << 8  # 2 MB, Secure
    first = l1_entry_pa(p, block)
    for i in range(2 * MiB // (16 * GRANULE)):  # every L1 entry inside the block
        root_write_u64(p, first + 8 * i, contig)
    tlbi_paallos(p)
    sec = p.cpus[0].probe(SecurityState.SECURE)
    for pa in (block, block + 0x12_3000, block + 2 * MiB - 8):
        with pytest.raises(GranuleProtectionFault) as info:
            p.host.read(pa, 8)
        assert info.value.level == 1
        sec.read(pa, 8)
    p.host.read(block - 8, 8)
    p.host.read(block + 2 * MiB, 8)
    assert p.el3.gpi(block + MiB) == GPI_SECURE


def test_reserved_gpi_in_l1_is_a_walk_fault_only_for_that_granule(p: Platform) -> None:
    pa = ns_granule(p, 0x41)
    entry = l1_entry_pa(p, pa)
    desc = root_read_u64(p, entry)
    shift = 4 * ((pa >> 12) & 0xF)
    root_write_u64(p, entry, desc & ~(0xF << shift) | 0b0100 << shift)
    tlbi_paallos(p)
    _walk_fault(p, pa, 1)
    p.host.read(pa + GRANULE, 8)


# ------------------------------------------------------------------------------ GPCCR_EL3

INVALID_GPCCR = {
    "reserved PPS 7": lambda v: v & ~0x7 | 7,
    "PPS 52 bits > PARange 48": lambda v: v & ~0x7 | 6,
    "reserved PGS": lambda v: v | 0b11 << 14,
    "reserved SH": lambda v: v & ~(0b11 << 12) | 0b01 << 12,
    "NC + inner shareable": lambda v: v & ~(0xF << 8) | 0b11 << 12,
}


@pytest.mark.parametrize("why", list(INVALID_GPCCR))
def test_invalid_gpccr_makes_every_access_a_level0_walk_fault(why: str) -> None:
    p = Platform()
    with at_el3(p) as pe:
        pe.write_sysreg("GPCCR_EL3", INVALID_GPCCR[why](pe.read_sysreg("GPCCR_EL3")))
        pe.tlbi_paall()
    targets = [p.region(n).base for n in ("ns_dram", "root", "rmm", "secure_dram", "uart0")]
    targets += [0x1000, 1 << 33]  # a hole; beyond the PPS
    for state, pas in STATE_PAS_PAIRS:
        port = p.cpus[0].probe(state)
        for pa in targets:
            with pytest.raises(GptWalkFault) as info:
                port.read(pa, 4, pas)
            assert info.value.level == 0
    p.cpus[1].host.read(p.region("ns_dram").base, 4)  # PE 1 keeps its valid GPCCR_EL3


def test_gpc_disabled_passes_everything(p: Platform) -> None:
    with at_el3(p) as pe:
        pe.write_sysreg("GPCCR_EL3", pe.read_sysreg("GPCCR_EL3") & ~(1 << 16) | 0b11 << 14)
    p.host.read(p.region("rmm").base, 8)  # step 1 comes before the configuration check
    p.host.read(p.region("root").base, 8)
    with pytest.raises(GranuleProtectionFault):
        p.cpus[1].host.read(p.region("rmm").base, 8)


# ------------------------------------------------------------------------------ PPS and holes


@pytest.mark.parametrize(("state", "pas"), STATE_PAS_PAIRS)
def test_beyond_pps(state: SecurityState, pas: Pas) -> None:
    p = Platform()
    pps = 1 << p.monitor.gpt.geometry.t
    assert pps == 1 << 32 and p.pa_bits == 48  # 2 GiB at 2 GiB: PPS 4 GB, PA range 48 bits
    port = p.cpus[0].probe(state)
    for pa in (pps, pps + 0x1234_5000, (1 << 40) + 8):
        if pas == Pas.NON_SECURE:
            # NS accesses pass the GPC outside the PPS; nothing is there.
            with pytest.raises(ExternalAbort) as abort:
                port.read(pa, 8, pas)
            assert (abort.value.pa, abort.value.pas, abort.value.security_state) == (
                pa, pas, state)
            assert abort.value.fsc == 0b010000
            with pytest.raises(ExternalAbort):
                port.write(pa, b"x", pas)
        else:
            with pytest.raises(GptAddressSizeFault) as info:
                port.read(pa, 8, pas)
            f = info.value
            assert (f.level, f.gpcsc, f.pa, f.pas, f.security_state, f.access) == (
                0, GPCSC_ADDRESS_SIZE, pa, pas, state, AccessKind.READ)


HOLES = [0x0, 0x1000, 0x05FF_F000, 0x1C09_1000, 0x4000_0000, 0x7BFF_F000]


@pytest.mark.parametrize(("state", "pas"), STATE_PAS_PAIRS)
def test_holes_in_the_memory_map_are_external_aborts(state: SecurityState, pas: Pas) -> None:
    p = Platform()
    port = p.cpus[0].probe(state)
    for pa in HOLES:
        assert p.memory.map.find(pa) is None
        for op in ("read", "write"):
            with pytest.raises(ExternalAbort) as info:
                if op == "read":
                    port.read(pa, 8, pas)
                else:
                    port.write(pa, b"\1" * 8, pas)
            assert not isinstance(info.value, GranuleProtectionCheckException)
            assert info.value.pa == pa


def test_mmio_rejects_unsupported_access_sizes(p: Platform) -> None:
    with pytest.raises(ExternalAbort):
        p.host.read(p.region("uart0").base, 16)
