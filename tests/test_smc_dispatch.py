"""SMC dispatch by the EL3 monitor (SMCCC, PSCI, rme-hardware §7)."""

from __future__ import annotations

import pytest

from ccasim import Platform, SecurityState
from ccasim.arch.faults import UndefinedInstruction
from rme_helpers import (
    E_RMM_OK,
    MASK64,
    RMM_GTSI_DELEGATE,
    RMM_GTSI_UNDELEGATE,
    SMC_UNKNOWN,
    ns_granule,
    realm,
)

SMCCC_VERSION = 0x8000_0000
SMCCC_ARCH_FEATURES = 0x8000_0001
SMCCC_ARCH_WORKAROUND_1 = 0x8000_8000
PSCI_VERSION = 0x8400_0000
PSCI_CPU_OFF = 0x8400_0002
PSCI_CPU_ON_64 = 0xC400_0003
PSCI_SYSTEM_RESET = 0x8400_0009
PSCI_FEATURES = 0x8400_000A
PSCI_NOT_SUPPORTED = MASK64  # -1
SVE_HINT = 1 << 16
RMM_RMI_REQ_COMPLETE = 0xC400_018F
RMM_BOOT_COMPLETE = 0xC400_01CF
ARGS = (0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666, 0x7777)


@pytest.fixture
def p() -> Platform:
    return Platform()


@pytest.mark.parametrize("cpu", [0, 1, 2, 3])
def test_psci_version_is_1_1_on_every_cpu(p: Platform, cpu: int) -> None:
    x = p.cpus[cpu].host.smc(PSCI_VERSION)
    assert x[0] == (1 << 16) | 1  # major 1, minor 1
    pe = p.pes[cpu]
    assert (pe.el, pe.security_state) == (2, SecurityState.NON_SECURE)


def test_psci_features_agrees_with_what_is_implemented(p: Platform) -> None:
    assert p.host.smc(PSCI_FEATURES, PSCI_VERSION)[0] == 0
    assert p.host.smc(PSCI_FEATURES, PSCI_FEATURES)[0] == 0
    assert p.host.smc(PSCI_FEATURES, SMCCC_VERSION)[0] == 0  # SMCCC >= 1.1 is discoverable
    assert p.host.smc(PSCI_FEATURES, 0x8700_0000)[0] == PSCI_NOT_SUPPORTED
    # A function PSCI_FEATURES calls unsupported must answer NOT_SUPPORTED when called.
    for fid in (PSCI_CPU_OFF, PSCI_CPU_ON_64, PSCI_SYSTEM_RESET):
        if p.host.smc(PSCI_FEATURES, fid)[0] == PSCI_NOT_SUPPORTED:
            assert p.host.smc(fid, 0, 0, 0)[0] == PSCI_NOT_SUPPORTED


@pytest.mark.parametrize("state", [SecurityState.NON_SECURE, SecurityState.SECURE,
                                   SecurityState.REALM])
def test_smccc_version_from_any_world(p: Platform, state: SecurityState) -> None:
    port = p.cpus[1].probe(state)
    assert port.smc(SMCCC_VERSION)[0] == (1 << 16) | 2  # SMCCC 1.2
    assert port.smc(SMCCC_ARCH_FEATURES, SMCCC_VERSION)[0] == 0
    assert port.smc(SMCCC_ARCH_FEATURES, SMCCC_ARCH_FEATURES)[0] == 0
    assert port.smc(SMCCC_ARCH_FEATURES, SMCCC_ARCH_WORKAROUND_1)[0] == MASK64


UNKNOWN_FIDS = [
    0xC200_0000,  # SiP service
    0x8300_0001,  # OEM service
    0xC500_0000,  # OEN 5
    0xC400_0100,  # standard service, unassigned number
    0xC400_0500,  # standard service above FIRME
    0x8600_FFFF,
    0x0400_0000,  # yielding call
    0xF000_0000,  # trusted OS
]


@pytest.mark.parametrize("fid", UNKNOWN_FIDS)
@pytest.mark.parametrize("state", [SecurityState.NON_SECURE, SecurityState.SECURE,
                                   SecurityState.REALM])
def test_unknown_fid_returns_smc_unknown_and_preserves_x1_to_x7(
    p: Platform, fid: int, state: SecurityState
) -> None:
    x = p.cpus[0].probe(state).smc(fid, *ARGS)
    assert x == (SMC_UNKNOWN, *ARGS)


RMI_FIDS = [0xC400_0150, 0xC400_0151, 0xC400_0152, 0xC400_018E, 0xC400_01D0, 0xC400_02CF]


@pytest.mark.parametrize("fid", RMI_FIDS)
@pytest.mark.parametrize("state", [SecurityState.SECURE, SecurityState.REALM])
def test_rmi_from_outside_the_normal_world_is_unknown(
    p: Platform, fid: int, state: SecurityState
) -> None:
    g = ns_granule(p, 9)
    x = p.cpus[2].probe(state).smc(fid, g, *ARGS[1:])
    assert x == (SMC_UNKNOWN, g, *ARGS[1:])
    assert p.el3.gpi(g) == 0b1001


def test_rmm_el3_calls_from_the_normal_world_are_unknown(p: Platform) -> None:
    for fid in (RMM_RMI_REQ_COMPLETE, RMM_BOOT_COMPLETE, RMM_GTSI_DELEGATE):
        assert p.host.smc(fid, *ARGS) == (SMC_UNKNOWN, *ARGS)
    assert p.el3.rmm_boot_status == 0


def test_req_complete_outside_an_rmi_call_is_unknown(p: Platform) -> None:
    assert realm(p).smc(RMM_RMI_REQ_COMPLETE, 0)[0] == SMC_UNKNOWN


def test_unimplemented_rmi_is_forwarded_and_returns_to_the_host(p: Platform) -> None:
    # 0xC40002CF is the last number of the reserved RMI range: no REL0 command.
    calls = p.monitor.smc_count
    x = p.host.smc(0xC400_02CF, *ARGS)
    assert x[0] == SMC_UNKNOWN
    assert p.monitor.smc_count == calls + 2  # the host's SMC and the RMM's REQ_COMPLETE
    assert (p.pes[0].el, p.pes[0].security_state) == (2, SecurityState.NON_SECURE)


def test_sve_hint_bit_is_ignored_for_dispatch(p: Platform) -> None:
    assert p.host.smc(PSCI_VERSION | SVE_HINT)[0] == 0x1_0001
    assert p.host.smc(SMCCC_VERSION | SVE_HINT)[0] == 0x1_0002
    assert p.host.smc(PSCI_FEATURES | SVE_HINT, PSCI_VERSION)[0] == 0
    g = ns_granule(p, 0x44)
    assert realm(p).smc(RMM_GTSI_DELEGATE | SVE_HINT, g)[0] == E_RMM_OK
    assert p.el3.gpi(g) == 0b1011
    assert realm(p).smc(RMM_GTSI_UNDELEGATE | SVE_HINT, g)[0] == E_RMM_OK
    assert p.host.smc(0xC200_0000 | SVE_HINT, *ARGS) == (SMC_UNKNOWN, *ARGS)


def test_fid_is_taken_from_w0(p: Platform) -> None:
    assert p.host.smc((0xDEAD << 32) | PSCI_VERSION)[0] == 0x1_0001


def test_per_cpu_host_ports_have_their_own_registers(p: Platform) -> None:
    p.cpus[1].host.smc(0xC200_0000, *ARGS)
    x0 = p.cpus[0].host.smc(0xC200_0000)
    assert x0[0] == SMC_UNKNOWN
    assert p.pes[1].x[1:8] == list(ARGS)
    assert p.pes[0].x[1:8] != list(ARGS)
    assert [c.mpidr & 0xFF for c in p.cpus] == [0, 1, 2, 3]
    assert len({c.mpidr for c in p.cpus}) == 4


def test_probe_returns_the_pe_to_the_normal_world(p: Platform) -> None:
    pe = p.pes[0]
    scr = pe.sysregs["SCR_EL3"]
    for state in (SecurityState.SECURE, SecurityState.REALM, SecurityState.ROOT):
        p.cpus[0].probe(state).smc(SMCCC_VERSION)
        assert (pe.el, pe.security_state, pe.sysregs["SCR_EL3"]) == (
            2, SecurityState.NON_SECURE, scr)


def test_smc_from_el0_is_undefined(p: Platform) -> None:
    with pytest.raises(UndefinedInstruction):
        p.cpus[0].probe(SecurityState.NON_SECURE, el=0).smc(PSCI_VERSION)


def test_smccc_allows_at_most_17_arguments(p: Platform) -> None:
    assert p.host.smc(0xC200_0000, *range(17))[0] == SMC_UNKNOWN
    with pytest.raises(ValueError):
        p.host.smc(0xC200_0000, *range(18))
