"""The granule protection check (rme-hardware §1, §2, §4): truth table, end-to-end checks
through a booted platform's real GPT, the PAS-emission rules, fault attributes and MFAR_EL3."""

from __future__ import annotations

import enum

import pytest

from ccasim import (
    GptWalkFault,
    GranuleProtectionCheckException,
    GranuleProtectionFault,
    Platform,
    SecurityState,
)
from ccasim.arch.faults import AccessKind
from ccasim.arch.gpt import gpi_admits, gpi_is_valid
from ccasim.arch.security import SCR_GPF
from ccasim.arch.security import PhysicalAddressSpace as Pas
from rme_helpers import (
    BASE_GPIS,
    EMITTABLE,
    GPI_ANY,
    GPI_NO_ACCESS,
    GPI_NS,
    GPI_NSO,
    GPI_ONLY_PAS,
    GPI_REALM,
    GRANULE,
    STATE_PAS_PAIRS,
    at_el3,
    bits,
    ns_granule,
    write_gpi,
)

NS, S, RL, RT = (SecurityState.NON_SECURE, SecurityState.SECURE, SecurityState.REALM,
                 SecurityState.ROOT)


class Outcome(enum.Enum):
    PASS = "pass"
    GPF = "granule protection fault"
    WALK = "GPT walk fault"


def spec_outcome(gpi: int, pas: Pas, state: SecurityState, nso: bool = False) -> Outcome:
    """rme-hardware §2 GPI table and §4 step 7."""
    if gpi == GPI_ANY:
        return Outcome.PASS
    if gpi in GPI_ONLY_PAS:
        return Outcome.PASS if GPI_ONLY_PAS[gpi] == pas else Outcome.GPF
    if gpi == GPI_NO_ACCESS:
        return Outcome.GPF
    if gpi == GPI_NSO and nso:
        ok = pas == Pas.NON_SECURE and state in (NS, RT)
        return Outcome.PASS if ok else Outcome.GPF
    return Outcome.WALK


ALL_GPIS = list(range(16))


@pytest.fixture
def p() -> Platform:
    return Platform()


# ------------------------------------------------------------------------------ pure table


@pytest.mark.parametrize("nso", [False, True])
@pytest.mark.parametrize("gpi", ALL_GPIS)
@pytest.mark.parametrize(("state", "pas"), STATE_PAS_PAIRS)
def test_gpi_admits_truth_table(gpi: int, state: SecurityState, pas: Pas, nso: bool) -> None:
    expected = spec_outcome(gpi, pas, state, nso)
    assert gpi_admits(gpi, pas, state, nso) == (expected is Outcome.PASS)
    assert gpi_is_valid(gpi, nso) == (expected is not Outcome.WALK)


def test_only_six_base_gpis_are_valid_without_nso() -> None:
    assert {g for g in ALL_GPIS if gpi_is_valid(g)} == BASE_GPIS
    assert {g for g in ALL_GPIS if gpi_is_valid(g, nso_enabled=True)} == BASE_GPIS | {GPI_NSO}


# ------------------------------------------------------------------------------ end to end


def _expect(
    platform: Platform, state: SecurityState, pas: Pas, pa: int, outcome: Outcome, level: int
) -> None:
    port = platform.cpus[0].probe(state)
    payload = bytes(range(1, 9))
    before = platform.memory.read(pa, 8)
    if outcome is Outcome.PASS:
        port.write(pa, payload, pas)
        assert port.read(pa, 8, pas) == payload
        return
    fault_type = GranuleProtectionFault if outcome is Outcome.GPF else GptWalkFault
    for access in (AccessKind.READ, AccessKind.WRITE):
        with pytest.raises(GranuleProtectionCheckException) as info:
            if access is AccessKind.READ:
                port.read(pa, 8, pas)
            else:
                port.write(pa, payload, pas)
        fault = info.value
        assert type(fault) is fault_type
        assert (fault.pa, fault.pas, fault.security_state, fault.access, fault.level) == (
            pa, pas, state, access, level)
    assert platform.memory.read(pa, 8) == before  # the failed write reached no memory


@pytest.mark.parametrize("gpi", ALL_GPIS)
@pytest.mark.parametrize(("state", "pas"), STATE_PAS_PAIRS)
def test_gpc_end_to_end(gpi: int, state: SecurityState, pas: Pas) -> None:
    p = Platform()
    pa = ns_granule(p, 5)
    write_gpi(p, pa, gpi)  # L1 granules descriptor, then TLBI PAALLOS
    _expect(p, state, pas, pa, spec_outcome(gpi, pas, state), level=1)
    # The neighbouring granules of the same L1 entry keep their Non-secure GPI.
    for other in (pa - GRANULE, pa + GRANULE):
        assert p.el3.gpi(other) == GPI_NS
        p.host.read(other, 8)


@pytest.mark.parametrize(("state", "pas"), STATE_PAS_PAIRS)
def test_nso_gpi_when_gpccr_nso_is_set(state: SecurityState, pas: Pas) -> None:
    p = Platform()
    pa = ns_granule(p, 9)
    with at_el3(p) as pe:
        pe.write_sysreg("GPCCR_EL3", pe.read_sysreg("GPCCR_EL3") | 1 << 19)  # NSO
    write_gpi(p, pa, GPI_NSO)
    _expect(p, state, pas, pa, spec_outcome(GPI_NSO, pas, state, nso=True), level=1)


@pytest.mark.parametrize(("state", "pas"), STATE_PAS_PAIRS)
def test_boot_pas_of_each_region_as_seen_from_every_state(state: SecurityState, pas: Pas) -> None:
    p = Platform()
    owner = {Pas.SECURE: "secure_dram", Pas.ROOT: "root", Pas.REALM: "rmm",
             Pas.NON_SECURE: "ns_dram"}
    port = p.cpus[1].probe(state)
    for region_pas, name in owner.items():
        r = p.region(name)
        for pa in (r.base, r.end - 8):
            if region_pas == pas:
                port.read(pa, 8, pas)
            else:
                with pytest.raises(GranuleProtectionFault):
                    port.read(pa, 8, pas)


# ------------------------------------------------------------------------------ emit rules


@pytest.mark.parametrize("state", list(SecurityState))
@pytest.mark.parametrize("pas", list(Pas))
def test_pas_emission_rules(state: SecurityState, pas: Pas) -> None:
    p = Platform()
    target = {Pas.SECURE: "secure_dram", Pas.ROOT: "root", Pas.REALM: "rmm",
              Pas.NON_SECURE: "ns_dram"}[pas]
    pa = p.region(target).base + 2 * GRANULE
    port = p.cpus[0].probe(state)
    if pas in EMITTABLE[state]:
        port.read(pa, 8, pas)  # a granule owned by that PAS: passes the GPC
    else:
        with pytest.raises(ValueError):
            port.read(pa, 8, pas)
        with pytest.raises(ValueError):
            port.write(pa, b"\0" * 8, pas)


def test_ns_cannot_request_realm_pas(p: Platform) -> None:
    with pytest.raises(ValueError):
        p.host.read(p.region("rmm").base, 8, Pas.REALM)


def test_root_can_emit_all_four(p: Platform) -> None:
    for pas, name in ((Pas.ROOT, "root"), (Pas.REALM, "rmm"), (Pas.SECURE, "secure_dram"),
                      (Pas.NON_SECURE, "ns_dram")):
        pa = p.region(name).base + 0x40
        p.el3.write(pa, b"root was here", pas)
        assert p.el3.read(pa, 13, pas) == b"root was here"


@pytest.mark.parametrize(
    ("state", "region", "natural"),
    [(NS, "ns_dram", Pas.NON_SECURE), (S, "secure_dram", Pas.SECURE), (RL, "rmm", Pas.REALM)],
)
def test_default_pas_is_the_natural_pas_of_the_state(
    state: SecurityState, region: str, natural: Pas
) -> None:
    p = Platform()
    port = p.cpus[0].probe(state)
    port.read(p.region(region).base, 8)
    if state is not NS:
        # Its own region passes; Non-secure DRAM through the natural (non-NS) PAS faults.
        with pytest.raises(GranuleProtectionFault) as info:
            port.read(p.region("ns_dram").base, 8)
        assert info.value.pas == natural


# ------------------------------------------------------------------------------ fault attributes

GPCSC_GPF = {0: 0b001100, 1: 0b001101}
GPCSC_WALK = {0: 0b000100, 1: 0b000101}


def test_gpf_attributes_for_an_ns_write_to_realm_memory(p: Platform) -> None:
    pa = p.region("rmm").base + 3 * GRANULE + 0x18
    with pytest.raises(GranuleProtectionFault) as info:
        p.host.write(pa, b"\xaa" * 8)
    f = info.value
    assert (f.pa, f.pas, f.security_state, f.access) == (
        pa, Pas.NON_SECURE, NS, AccessKind.WRITE)
    assert f.level == 1  # the rmm carve-out shares its 1 GB L0 region: an L1 table
    assert f.gpcsc == GPCSC_GPF[1]
    assert f.fsc == 0b101000


def test_gpf_level_0_from_an_l0_block(p: Platform) -> None:
    # ns_dram starts as L0 block descriptors (whole 1 GB regions).
    pa = p.region("ns_dram").base + 0x1234_5000
    with pytest.raises(GranuleProtectionFault) as info:
        p.cpus[2].probe(RL).read(pa, 4, Pas.REALM)
    f = info.value
    assert (f.level, f.gpcsc, f.pas, f.security_state, f.access) == (
        0, GPCSC_GPF[0], Pas.REALM, RL, AccessKind.READ)


def test_walk_fault_gpcsc_on_reserved_gpi(p: Platform) -> None:
    pa = ns_granule(p, 3)
    write_gpi(p, pa, 0b0110)
    with pytest.raises(GptWalkFault) as info:
        p.host.read(pa, 1)
    assert info.value.level == 1 and info.value.gpcsc == GPCSC_WALK[1]


def test_access_straddling_into_a_denied_granule_reports_the_first_denied_byte(
    p: Platform,
) -> None:
    a = ns_granule(p, 20)
    b = a + GRANULE
    write_gpi(p, b, GPI_REALM)
    p.host.read(b - 8, 8)
    with pytest.raises(GranuleProtectionFault) as info:
        p.host.read(b - 8, 16)
    assert info.value.pa == b


def _mfar(pa: int, pas: Pas) -> int:
    """MFAR_EL3: FPA[51:12] = PA[51:12]; {NSE [62], NS [63]} = S 00, NS 01, Root 10, Realm 11."""
    nse, ns = {Pas.SECURE: (0, 0), Pas.NON_SECURE: (0, 1), Pas.ROOT: (1, 0),
               Pas.REALM: (1, 1)}[pas]
    return bits(pa, 51, 12) << 12 | nse << 62 | ns << 63


@pytest.mark.parametrize(("state", "pas"), STATE_PAS_PAIRS)
def test_walk_faults_latch_mfar_el3(state: SecurityState, pas: Pas) -> None:
    p = Platform()
    pa = ns_granule(p, 7) + 0xABC
    write_gpi(p, pa, 0b0011)  # reserved
    with pytest.raises(GptWalkFault) as info:
        p.cpus[0].probe(state).read(pa, 4, pas)
    assert info.value.mfar_el3 == _mfar(pa, pas)
    assert p.el3.sysreg("MFAR_EL3") == _mfar(pa, pas)


def test_gpf_at_el3_latches_mfar_el3(p: Platform) -> None:
    pa = p.region("rmm").base + 0x5678
    with pytest.raises(GranuleProtectionFault):
        p.el3.read(pa, 8, Pas.NON_SECURE)  # Realm granule through the NS PAS
    assert p.el3.sysreg("MFAR_EL3") == _mfar(pa, Pas.NON_SECURE)
    with pytest.raises(GranuleProtectionFault):
        p.el3.read(p.region("ns_dram").base, 8, Pas.ROOT)
    assert p.el3.sysreg("MFAR_EL3") == _mfar(p.region("ns_dram").base, Pas.ROOT)


def test_lower_el_gpf_goes_to_el3_only_with_scr_el3_gpf(p: Platform) -> None:
    pe = p.pes[1]
    host = p.cpus[1].host
    pa = p.region("secure_dram").base + 0x2000
    before = pe.sysregs["MFAR_EL3"]
    with pytest.raises(GranuleProtectionFault):
        host.read(pa, 8)
    assert pe.sysregs["MFAR_EL3"] == before  # SCR_EL3.GPF = 0: an ordinary abort below EL3
    assert pe.sysregs["SCR_EL3"] & SCR_GPF == 0
    pe.sysregs["SCR_EL3"] |= SCR_GPF
    with pytest.raises(GranuleProtectionFault):
        host.read(pa, 8)
    assert pe.sysregs["MFAR_EL3"] == _mfar(pa, Pas.NON_SECURE)
