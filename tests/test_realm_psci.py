"""End-to-end realm PSCI (rmm-abi §9 "PSCI", §6 RMI_PSCI_COMPLETE, errata E-17..E-21): a
three-REC realm whose boot REC walks through every PSCI call while the host answers with raw
REC_ENTER / RMI_PSCI_COMPLETE and starts the secondaries on the second PE.
"""

from __future__ import annotations

import pytest

from realm_rig import (
    ERROR_INPUT,
    ERROR_REC,
    PSCI,
    PSCI_AFFINITY_INFO,
    PSCI_CPU_OFF,
    PSCI_CPU_ON,
    PSCI_CPU_SUSPEND,
    PSCI_FEATURES,
    PSCI_SYSTEM_OFF,
    PSCI_SYSTEM_RESET,
    PSCI_VERSION,
    S2SZ,
    SMCCC_VERSION,
    SUCCESS,
    UNPROT,
    Exit,
    Guest,
    Rig,
    call,
    dump,
    u64,
)

ALREADY_ON, DENIED, INVALID_PARAMS, NOT_SUPPORTED, INVALID_ADDRESS = -4, -3, -2, -1, -9
AFF_ON, AFF_OFF = 0, 1
SYSTEM_OFF_STATUS = (1 << 8) | 2  # (ERROR_REALM, index 1)

SECONDARY = f"""\
sec:
    mov x19, x0
    adr x28, hc2
    adr x9, vectors
    msr vbar_el1, x9
    isb
    mrs x5, mpidr_el1
    mov x0, x19
{dump(0x5EC)}
{call(PSCI_CPU_OFF, imm=0x5ED)}
    b hang
"""

SUPPORTED = [0x8400_0001, 0xC400_0001, 0x8400_0002, 0x8400_0003, 0xC400_0003, 0x8400_0004,
             0xC400_0004, 0x8400_0008, 0x8400_0009, 0x8400_000A, 0x8000_0000,
             0x1_C400_0003]  # PSCI_FEATURES looks at x1[31:0] only (E-20)
UNSUPPORTED = [PSCI_VERSION, 0x8400_0005, 0xC400_0005, 0x8400_000B, 0x8400_0012,
               0xC400_0190, 0xC400_015C, 0x8000_0001, 0, u64(-1)]


def psci_exit(ex: Exit, fid: int, target: int | None = None) -> None:
    """A PSCI exit: gprs[0] = FID, gprs[1] = target MPIDR (CPU_ON / AFFINITY_INFO)."""
    assert ex.status == SUCCESS and ex.reason == PSCI, ex
    regs = [fid] + ([target] if target is not None else [])
    assert ex.gprs == regs + [0] * (31 - len(regs)), [hex(g) for g in ex.gprs[:3]]


def result(g: Guest, imm: int, value: int, rec: int = 0) -> Exit:
    ex = g.dump(rec, imm=imm)
    assert ex.gprs[:4] == [u64(value), 0, 0, 0], (imm, [hex(v) for v in ex.gprs[:4]])
    return ex


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_psci_version_features_and_immediate_errors(rig: Rig) -> None:
    body = call(PSCI_VERSION, imm=1) + call(SMCCC_VERSION, imm=2)
    body += "".join(call(PSCI_FEATURES, f, imm=0x100 + i) for i, f in enumerate(SUPPORTED))
    body += "".join(call(PSCI_FEATURES, f, imm=0x200 + i) for i, f in enumerate(UNSUPPORTED))
    body += (
        call(PSCI_CPU_ON, 1, UNPROT, 0, imm=3)  # entry outside the PAR
        + call(PSCI_CPU_ON, 1, 1 << S2SZ, 0, imm=4)
        + call(PSCI_CPU_ON, 0x100, "sec", 0, imm=5)  # index 16 >= rec_count (E-19)
        + call(PSCI_CPU_ON, 0x1_0000_0000, "sec", 0, imm=6)  # Aff3: index 1 << 20
        + call(PSCI_CPU_ON, 3, "sec", 0, imm=7)
        + call(PSCI_CPU_ON, 0, "sec", 0, imm=8)  # the caller itself
        + call(PSCI_CPU_ON, 0x10, "sec", 0, imm=9)  # MPIDR[7:4] ignored: REC 0 again
        + call(0x1_C400_0003, 0, "sec", 0, imm=10)  # x0[63:32] ignored: still CPU_ON
        + call(0xC401_0003, 1, "sec", 0, imm=11)  # SVE hint set: NOT_SUPPORTED, no exit
        + call(PSCI_AFFINITY_INFO, 1, 1, imm=12)  # lowest level != 0
        + call(PSCI_AFFINITY_INFO, 5, 0, imm=13)
        + call(PSCI_AFFINITY_INFO, 0, 0, imm=14)  # self: ON, no exit
        + call(PSCI_AFFINITY_INFO, 0x10, 0, imm=15)
        + call(0x8400_0014, imm=16)  # in the PSCI range, not implemented
        + call(0x8400_0015, imm=17)  # outside the PSCI range: an unknown SMC
    )
    g = rig.realm(body, text=SECONDARY, recs=3)
    result(g, 1, 0x1_0001)
    result(g, 2, 0x1_0002)
    for i in range(len(SUPPORTED)):
        result(g, 0x100 + i, 0)
    for i in range(len(UNSUPPORTED)):
        result(g, 0x200 + i, NOT_SUPPORTED)
    for imm, value in [(3, INVALID_ADDRESS), (4, INVALID_ADDRESS), (5, INVALID_PARAMS),
                       (6, INVALID_PARAMS), (7, INVALID_PARAMS), (8, ALREADY_ON),
                       (9, ALREADY_ON), (10, ALREADY_ON), (11, NOT_SUPPORTED),
                       (12, INVALID_PARAMS), (13, INVALID_PARAMS), (14, AFF_ON), (15, AFF_ON),
                       (16, NOT_SUPPORTED), (17, NOT_SUPPORTED)]:
        result(g, imm, value)
    # nothing was started
    for rec in (1, 2):
        assert g.enter(rec).status == ERROR_REC


def test_psci_cpu_on_affinity_info_cpu_off_and_system_off(rig: Rig) -> None:
    body = (
        call(PSCI_CPU_ON, 1, "sec", 0x42, imm=1)
        + call(PSCI_CPU_ON, 0x11, "sec", 0x43, imm=2)  # names REC 1, which is on
        + call(PSCI_CPU_ON, 1, "sec", 0x43, imm=3)  # host DENIES an already-on target
        + call(0x8400_0003, 2, "sec", 0x44, imm=4)  # SMC32 CPU_ON, host DENIES
        + call(0x8400_0003, 2, "sec", 0x44, imm=5)  # SMC32 CPU_ON, host accepts
        + call(PSCI_AFFINITY_INFO, 2, 0, imm=6)
        + call(PSCI_AFFINITY_INFO, 1, 0, imm=7)
        + call(PSCI_CPU_SUSPEND, imm=8)
        + call(PSCI_SYSTEM_OFF, imm=9)
    )
    g = rig.realm(body, text=SECONDARY, recs=3)
    rec0, rec1, rec2 = g.recs

    # --- CPU_ON(1): pending until the host completes it
    psci_exit(g.enter(0), PSCI_CPU_ON, 1)
    assert g.enter(0).status == ERROR_REC  # PSCI request pending
    assert g.enter(1).status == ERROR_REC  # not runnable yet
    for args in [(rec0, rec2, 0),  # not the REC the realm named
                 (rec0, rec1, 1), (rec0, rec1, u64(-1)),  # CPU_ON: SUCCESS or DENIED only
                 (rec1, rec0, 0),  # nothing pending on rec1
                 (rec0, rec0, 0)]:  # the same granule twice
        r = g.rmi("PSCI_COMPLETE", *args)
        assert r.status == ERROR_INPUT, args
    assert g.rmi("PSCI_COMPLETE", rec0, rec1, 0).ok
    assert g.rmi("PSCI_COMPLETE", rec0, rec1, 0).status == ERROR_INPUT  # no longer pending
    result(g, 1, 0)
    # the secondary starts at the entry point with x0 = context id, on the second PE
    ex = g.dump(1, cpu=1, imm=0x5EC)
    assert ex.x(0) == 0x42
    assert ex.x(5) == 0x8000_0001  # MPIDR_EL1 = the REC's MPIDR with bit 31 set

    # --- CPU_ON(0x11) of a running target: ALREADY_ON, whatever the host says
    psci_exit(g.enter(0), PSCI_CPU_ON, 0x11)
    assert g.rmi("PSCI_COMPLETE", rec0, rec1, 0).ok
    result(g, 2, ALREADY_ON)
    psci_exit(g.enter(0), PSCI_CPU_ON, 1)
    # quirk: DENIED for a target that is on fails with INPUT but completes the request
    assert g.rmi("PSCI_COMPLETE", rec0, rec1, u64(DENIED)).status == ERROR_INPUT
    result(g, 3, ALREADY_ON)

    # --- SMC32 CPU_ON(2): denied, then accepted
    psci_exit(g.enter(0), 0x8400_0003, 2)
    assert g.rmi("PSCI_COMPLETE", rec0, rec2, u64(DENIED)).ok
    result(g, 4, DENIED)
    assert g.enter(2).status == ERROR_REC
    psci_exit(g.enter(0), 0x8400_0003, 2)
    assert g.rmi("PSCI_COMPLETE", rec0, rec2, 0).ok
    result(g, 5, 0)
    ex = g.dump(2, cpu=1, imm=0x5EC)
    assert (ex.x(0), ex.x(5)) == (0x44, 0x8000_0002)

    # --- AFFINITY_INFO(2): ON (runnable)
    psci_exit(g.enter(0), PSCI_AFFINITY_INFO, 2)
    assert g.rmi("PSCI_COMPLETE", rec0, rec2, u64(DENIED)).status == ERROR_INPUT
    assert g.rmi("PSCI_COMPLETE", rec0, rec2, 0).ok
    result(g, 6, AFF_ON)

    # --- CPU_OFF of REC 1, then AFFINITY_INFO(1): OFF
    psci_exit(g.enter(1, cpu=1), PSCI_CPU_OFF)
    assert g.enter(1).status == ERROR_REC
    assert g.enter(1, cpu=1).status == ERROR_REC
    psci_exit(g.enter(0), PSCI_AFFINITY_INFO, 1)
    assert g.rmi("PSCI_COMPLETE", rec0, rec1, 0).ok
    result(g, 7, AFF_OFF)

    # --- CPU_SUSPEND: exits, the host need not complete it
    psci_exit(g.enter(0), PSCI_CPU_SUSPEND)
    result(g, 8, 0)

    # --- SYSTEM_OFF: every REC of the realm is now refused with (ERROR_REALM, 1)
    psci_exit(g.enter(0), PSCI_SYSTEM_OFF)
    assert g.enter(0).status == SYSTEM_OFF_STATUS
    assert g.enter(2, cpu=1).status == SYSTEM_OFF_STATUS
    assert g.rmi("REC_DESTROY", rec2).ok


def test_psci_system_reset(rig: Rig) -> None:
    g = rig.realm(call(PSCI_SYSTEM_RESET, imm=1))
    psci_exit(g.enter(), PSCI_SYSTEM_RESET)
    assert g.enter().status == SYSTEM_OFF_STATUS


def test_psci_cpu_off_of_the_only_rec(rig: Rig) -> None:
    g = rig.realm(call(PSCI_CPU_OFF, imm=1))
    psci_exit(g.enter(), PSCI_CPU_OFF)
    assert g.enter().status == ERROR_REC


def test_psci_target_destroyed_while_pending(rig: Rig) -> None:
    """E-21: REC_DESTROY of the target succeeds; the caller can never be completed."""
    g = rig.realm(call(PSCI_CPU_ON, 1, "sec", 0, imm=1), text=SECONDARY, recs=2)
    psci_exit(g.enter(0), PSCI_CPU_ON, 1)
    assert g.rmi("REC_DESTROY", g.recs[1]).ok
    assert g.enter(0).status == ERROR_REC
    assert g.rmi("PSCI_COMPLETE", g.recs[0], g.recs[1], 0).status == ERROR_INPUT
    assert g.enter(0).status == ERROR_REC
