"""GPT caching and the RME maintenance instructions (rme-hardware §5): a GPT write is not
seen by a PE that cached the old GPI until a TLBI PA* reaches it; the instructions are
EL3-only."""

from __future__ import annotations

import pytest

from ccasim import GptWalkFault, GranuleProtectionFault, Platform, SecurityState
from ccasim.arch.faults import UndefinedInstruction
from ccasim.arch.pe import rpa_operand
from ccasim.arch.security import PhysicalAddressSpace as Pas
from rme_helpers import (
    GPI_NS,
    GPI_REALM,
    GPI_SECURE,
    GRANULE,
    MiB,
    at_el3,
    ns_granule,
    write_gpi,
)

# TLBI RPA*OS operand SIZE field (rme-hardware §5).
RPA_SIZE = {4 << 10: 0, 16 << 10: 1, 64 << 10: 2, 2 * MiB: 3, 32 * MiB: 4, 512 * MiB: 5,
            1 << 30: 6, 16 << 30: 7, 64 << 30: 8, 512 << 30: 9}


def xt(pa: int, size: int) -> int:
    """Xt = (PA >> 12) | (SIZE << 44)."""
    return (pa >> 12) | RPA_SIZE[size] << 44


@pytest.fixture
def p() -> Platform:
    return Platform()


def passes(platform: Platform, cpu: int, pa: int) -> bool:
    try:
        platform.cpus[cpu].host.read(pa, 8)
    except GranuleProtectionFault:
        return False
    return True


@pytest.mark.parametrize(("pa", "size"), [(0x8000_1000, 4096), (0x8020_0000, 2 * MiB),
                                          (0x1_2345_6000, 16 << 10), (0xC000_0000, 1 << 30)])
def test_rpa_operand_encoding(pa: int, size: int) -> None:
    assert rpa_operand(pa, size) == xt(pa, size)


def test_stale_gpi_until_tlbi_rpalos(p: Platform) -> None:
    g = ns_granule(p, 0x10)
    assert passes(p, 1, g)  # PE 1 caches the Non-secure GPI
    write_gpi(p, g, GPI_SECURE, tlbi=False)
    assert p.el3.gpi(g) == GPI_SECURE  # the table holds the new GPI...
    assert passes(p, 1, g)  # ...but PE 1 still uses what it cached
    assert not passes(p, 2, g)  # PE 2 never cached it: it walks the new table
    with at_el3(p) as pe:
        pe.tlbi_rpalos(xt(g, 4096))
    assert not passes(p, 1, g)
    p.cpus[1].probe(SecurityState.SECURE).read(g, 8)


def test_tlbi_by_range_only_invalidates_the_range(p: Platform) -> None:
    g, h = ns_granule(p, 0x20), ns_granule(p, 0x22)
    assert passes(p, 1, g) and passes(p, 1, h)
    write_gpi(p, g, GPI_REALM, tlbi=False)
    write_gpi(p, h, GPI_REALM, tlbi=False)
    with at_el3(p) as pe:
        pe.tlbi_rpalos(xt(g, 4096))
    assert not passes(p, 1, g)
    assert passes(p, 1, h)  # outside the invalidated range: still stale
    with at_el3(p) as pe:
        pe.tlbi_rpaos(xt(h, 4096))
    assert not passes(p, 1, h)


def test_tlbi_rpalos_with_a_2mb_range(p: Platform) -> None:
    base = p.region("ns_dram").base + 4 * MiB
    inside = [base, base + 0x8_0000, base + 2 * MiB - GRANULE]
    outside = base + 2 * MiB
    for pa in [*inside, outside]:
        assert passes(p, 3, pa)
        write_gpi(p, pa, GPI_SECURE, tlbi=False)
    with at_el3(p) as pe:
        pe.tlbi_rpalos(xt(base, 2 * MiB))
    assert not any(passes(p, 3, pa) for pa in inside)
    assert passes(p, 3, outside)


def test_tlbi_paallos_reaches_every_pe(p: Platform) -> None:
    g = ns_granule(p, 0x30)
    assert all(passes(p, cpu, g) for cpu in range(4))
    write_gpi(p, g, GPI_SECURE, tlbi=False)
    assert all(passes(p, cpu, g) for cpu in range(4))
    with at_el3(p, cpu=3) as pe:
        pe.tlbi_paallos()
    assert not any(passes(p, cpu, g) for cpu in range(4))


def test_tlbi_paall_only_affects_the_issuing_pe(p: Platform) -> None:
    g = ns_granule(p, 0x31)
    assert passes(p, 0, g) and passes(p, 1, g)
    write_gpi(p, g, GPI_SECURE, tlbi=False)
    with at_el3(p, cpu=1) as pe:
        pe.tlbi_paall()
    assert not passes(p, 1, g)
    assert passes(p, 0, g)  # PE 0 keeps its stale entry
    with at_el3(p, cpu=0) as pe:
        pe.tlbi_paall()
    assert not passes(p, 0, g)


def test_stale_entry_can_also_deny_until_invalidated(p: Platform) -> None:
    g = ns_granule(p, 0x32)
    write_gpi(p, g, GPI_REALM)
    assert not passes(p, 1, g)  # PE 1 caches Realm
    write_gpi(p, g, GPI_NS, tlbi=False)
    assert not passes(p, 1, g)
    with at_el3(p) as pe:
        pe.tlbi_rpalos(xt(g, 4096))
    assert passes(p, 1, g)


def test_gpccr_write_does_not_invalidate_cached_gpt_information(p: Platform) -> None:
    g = ns_granule(p, 0x33)
    assert passes(p, 0, g)
    with at_el3(p) as pe:
        pe.write_sysreg("GPCCR_EL3", pe.read_sysreg("GPCCR_EL3") | 0b11 << 14)  # reserved PGS
    assert passes(p, 0, g)  # cached; an uncached granule takes the level-0 walk fault
    with at_el3(p) as pe:
        pe.tlbi_paall()
    with pytest.raises(GptWalkFault) as info:
        p.host.read(g, 8)
    assert info.value.level == 0


MAINTENANCE = {
    "TLBI PAALL": lambda pe: pe.tlbi_paall(),
    "TLBI PAALLOS": lambda pe: pe.tlbi_paallos(),
    "TLBI RPALOS": lambda pe: pe.tlbi_rpalos(xt(0x8000_0000, 4096)),
    "TLBI RPAOS": lambda pe: pe.tlbi_rpaos(xt(0x8000_0000, 4096)),
    "DC CIPAPA": lambda pe: pe.dc_cipapa(0x8000_0000, Pas.NON_SECURE),
    "MSR GPCCR_EL3": lambda pe: pe.write_sysreg("GPCCR_EL3", 0),
    "MSR GPTBR_EL3": lambda pe: pe.write_sysreg("GPTBR_EL3", 0),
    "MRS GPCCR_EL3": lambda pe: pe.read_sysreg("GPCCR_EL3"),
}


@pytest.mark.parametrize("op", list(MAINTENANCE))
@pytest.mark.parametrize(
    ("state", "el"),
    [(SecurityState.NON_SECURE, 2), (SecurityState.NON_SECURE, 1), (SecurityState.REALM, 2),
     (SecurityState.REALM, 1), (SecurityState.SECURE, 2), (SecurityState.SECURE, 1)],
)
def test_rme_maintenance_is_undefined_below_el3(op: str, state: SecurityState, el: int) -> None:
    p = Platform()
    g = ns_granule(p, 0x40)
    assert passes(p, 0, g)
    write_gpi(p, g, GPI_SECURE, tlbi=False)
    gpccr = p.el3.sysreg("GPCCR_EL3")
    with p.cpus[0].probe(state, el)._running() as pe:
        assert pe.el == el
        with pytest.raises(UndefinedInstruction):
            MAINTENANCE[op](pe)
    assert p.el3.sysreg("GPCCR_EL3") == gpccr
    assert passes(p, 0, g)  # nothing was invalidated


@pytest.mark.parametrize("op", list(MAINTENANCE))
def test_rme_maintenance_is_allowed_at_el3(op: str) -> None:
    p = Platform()
    with at_el3(p) as pe:
        MAINTENANCE[op](pe)
