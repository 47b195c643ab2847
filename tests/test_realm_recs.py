"""Several RECs per realm and RECs on several PEs, end to end (rmm-abi §4.2, §9 CPU_ON,
errata E-7, E-19): a REC's vCPU context moves between PEs with it, RECs on different PEs share
realm memory, each REC reads its own MPIDR, and a CPU_ON by MPIDR reaches REC 16.
"""

from __future__ import annotations

import pytest

from realm_rig import (
    HOST_CALL,
    PSCI,
    PSCI_CPU_ON,
    RIPAS_CHANGE,
    RSI_HOST_CALL,
    RSI_IPA_STATE_SET,
    Rig,
    call,
    dump,
    load_imm,
)


@pytest.fixture
def rig() -> Rig:
    return Rig(cpus=3)


def test_a_rec_moves_between_pes(rig: Rig) -> None:
    body = load_imm("x10", 0xABCD_EF01_2345_6789) + "    adr x12, counter\n    mov x19, #1\n"
    for i in range(1, 5):
        body += "    str x19, [x12]\n" + dump(i) + "    ldr x19, [x12]\n    add x19, x19, #1\n"
    g = rig.realm(body, data="    .balign 8\ncounter:\n    .quad 0\n")
    for i, cpu in enumerate((0, 1, 2, 0), start=1):
        ex = g.dump(cpu=cpu, imm=i)
        assert (ex.x(19), ex.x(10)) == (i, 0xABCD_EF01_2345_6789)
        assert ex.x(28) == g.sym("hc")


SECONDARY = f"""\
sec:
    mov x19, x0
    adr x28, hc2
    mrs x5, mpidr_el1
    mov x0, x19
{dump(0x5EC)}
    adr x12, flag
    ldr x6, [x12]
    add x6, x6, #0x10
    str x6, [x12]
{dump(0x5ED)}
sec_hang:
    b sec_hang
"""


def test_recs_on_two_pes_share_memory_and_read_their_mpidr(rig: Rig) -> None:
    body = ("    mrs x5, mpidr_el1\n    adr x12, flag\n    mov x6, #1\n    str x6, [x12]\n"
            + dump(1) + call(PSCI_CPU_ON, 1, "sec", 0x77, imm=2, fill=False)
            + "    adr x12, flag\n    ldr x6, [x12]\n" + dump(3))
    g = rig.realm(body, text=SECONDARY, data="    .balign 8\nflag:\n    .quad 0\n", recs=2)
    ex = g.dump(0, cpu=0, imm=1)
    assert ex.x(5) == 0x8000_0000  # REC 0's MPIDR, bit 31 set
    ex = g.enter(0, cpu=0)
    assert (ex.reason, ex.gprs[0], ex.gprs[1]) == (PSCI, PSCI_CPU_ON, 1)
    assert g.rmi("PSCI_COMPLETE", g.recs[0], g.recs[1], 0).ok
    assert g.dump(0, cpu=0, imm=2).x(0) == 0
    ex = g.dump(1, cpu=1, imm=0x5EC)
    assert (ex.x(0), ex.x(5)) == (0x77, 0x8000_0001)
    assert g.dump(1, cpu=1, imm=0x5ED).x(6) == 0x11  # saw REC 0's store, from PE 1
    assert g.dump(0, cpu=2, imm=3).x(6) == 0x11  # REC 0 on PE 2 sees REC 1's store


def test_cpu_on_by_mpidr_reaches_rec_16(rig: Rig) -> None:
    """REC 16 has RmiRecMpidr Aff1 = 1, Aff0 = 0: the realm names it 0x100 and reads
    MPIDR_EL1 = 0x80000100."""
    body = (call(PSCI_CPU_ON, 0x10F, "sec", 1, imm=1)  # index 31 (Aff1 1, Aff0 15): none
            + call(PSCI_CPU_ON, 0x100, "sec", 16, imm=2))
    text = SECONDARY.replace("flag", "hc2")
    g = rig.realm(body, text=text, recs=17)
    assert g.dump(imm=1).x(0) == (1 << 64) - 2  # INVALID_PARAMS
    ex = g.enter()
    assert (ex.reason, ex.gprs[0], ex.gprs[1]) == (PSCI, PSCI_CPU_ON, 0x100)
    assert g.rmi("PSCI_COMPLETE", g.recs[0], g.recs[15], 0).status == 1  # not REC 16
    assert g.rmi("PSCI_COMPLETE", g.recs[0], g.recs[16], 0).ok
    assert g.dump(imm=2).x(0) == 0
    ex = g.dump(16, cpu=1, imm=0x5EC)
    assert (ex.x(0), ex.x(5)) == (16, 0x8000_0100)


def test_host_call_completion_into_an_empty_page_leaves_x0(rig: Rig) -> None:
    """E-7 / §7.1 step 7: another REC turns the host-call page EMPTY before the host
    completes the call: nothing is copied and x0 keeps the RSI_HOST_CALL FID."""
    body = f"""\
    mrs x9, mpidr_el1
    and x9, x9, #0xff
    cbnz x9, rec1_path
    adr x1, hcpage
{load_imm("x0", RSI_HOST_CALL)}    smc #0
{dump(1)}
rec1_path:
    adr x28, hc2
{call(RSI_IPA_STATE_SET, "hcpage", "hcpage_end", 0, 0, imm=2, fill=False)}
"""
    data = "    .balign 0x1000\nhcpage:\n    .skip 0x1000\nhcpage_end:\n"
    g = rig.realm(body, data=data, recs=2, runnable=[True, True])
    page = g.sym("hcpage")
    assert g.enter(0).reason == HOST_CALL
    ex = g.enter(1, cpu=1)
    assert (ex.reason, ex.ripas_base, ex.ripas_top) == (RIPAS_CHANGE, page, page + 0x1000)
    r = g.rmi("RTT_SET_RIPAS", g.handle.rd, g.recs[1], page, page + 0x1000)
    assert r.ok and r[1] == page + 0x1000
    assert g.dump(1, cpu=1, imm=2).gprs[:3] == [0, page + 0x1000, 0]
    ex = g.dump(0, gprs=[9] * 31, imm=1)
    assert ex.x(0) == RSI_HOST_CALL
    assert g.realm_read(page, 0x100) == bytes(0x100)
