"""Misbehaving realms and stale translations, end to end (rmm-abi §7.2, §9; errata E-12,
E-18, E-17).

Bad guests: fetches and accesses where nothing may be reached, RSI buffers in shared memory,
unknown SMCs, HVC/SVC/UDF/BRK — each is answered inside the realm (an injected exception or a
status) or by an exit, and REC_ENTER never fails.

Stale translations: the engine caches translations (Unicorn's TLB acts as the realm's TLB);
these tests prove that a page the realm has *just* accessed becomes unreachable as soon as the
host changes stage 2 (DATA_DESTROY, RTT_SET_RIPAS to EMPTY, RTT_UNMAP_UNPROTECTED) or the GPT
(GRANULE_DELEGATE of an NS page mapped into the realm), even from another PE, and that code
replaced under the emulator runs as the new code.
"""

from __future__ import annotations

import pytest

from realm_rig import (
    EA,
    EMPTY_IPA,
    EMUL_MMIO,
    GUEST,
    IL,
    IMM_EXCEPTION,
    ISV,
    MMIO,
    RIPAS_CHANGE,
    RSI_ERROR_INPUT,
    RSI_HOST_CALL,
    RSI_IPA_STATE_SET,
    RSI_REALM_CONFIG,
    RSI_TOKEN_CONTINUE,
    RSI_TOKEN_INIT,
    S2SZ,
    SENTINEL,
    SUCCESS,
    SYNC,
    UNPROT,
    WNR,
    Exit,
    Guest,
    Rig,
    call,
    dump,
    ec,
    load_imm,
    u64,
)

FREE = GUEST + 0x2_0000  # RIPAS RAM, unassigned
NS_ATTR = (0b110 << 2) | (0b11 << 6)  # host descriptor bits: MemAttr, S2AP RW (§5.2)
IABT_SEA = 0x8600_0210  # EC 0x21 | IL | EA | FSC 0x10 (E-12)
UNDEF = 0x0200_0000  # EC 0 | IL


@pytest.fixture
def rig() -> Rig:
    return Rig()


def exception(g: Guest, **kw: object) -> Exit:
    """Run to the exception vector's dump."""
    ex = g.dump(imm=IMM_EXCEPTION, **kw)
    assert ex.x(27) == 0x200  # current EL (EL1h): the +0x200 vector
    return ex


def jump(target: int, imm: int = 1) -> str:
    return f"""\
    adr x21, back_{imm}
{load_imm("x9", target)}    br x9
back_{imm}:
{dump(imm)}"""


# ------------------------------------------------------------------ fetches


@pytest.mark.parametrize("target", [EMPTY_IPA, EMPTY_IPA + 0x1234, MMIO, UNPROT + 0x1000,
                                    1 << S2SZ, (1 << 47) + 0x40])
def test_fetch_where_nothing_can_run_injects_an_instruction_abort(rig: Rig,
                                                                  target: int) -> None:
    g = rig.realm(jump(target))
    ex = exception(g)
    assert ex.x(24) == IABT_SEA
    assert ex.x(26) == target  # ELR_EL1: where the fetch failed
    assert ex.x(25) == target  # FAR_EL1
    assert ex.x(23) & 0xF == 5  # SPSR_EL1: from EL1h
    g.dump(imm=1)  # no exit on the way: the next exit is the dump after the resume


def test_fetch_from_a_wild_address_is_answered_in_the_realm(rig: Rig) -> None:
    g = rig.realm(jump(0xFFFF_0000_DEAD_0000))
    ex = exception(g)
    assert ec(ex.x(24)) == 0x21
    assert ex.x(26) == 0xFFFF_0000_DEAD_0000
    g.dump(imm=1)


def test_fetch_from_unassigned_ram_exits_then_runs_what_the_host_maps(rig: Rig) -> None:
    g = rig.realm(jump(FREE + 0x10))
    ex = g.enter()
    # a protected IPA with RIPAS RAM: reported (EC 0x20, L3 translation fault), far = 0
    assert (ex.reason, ex.esr, ex.far, ex.hpfar) == (SYNC, 0x8000_0007, 0, (FREE >> 12) << 4)
    g.data_create_unknown(FREE)
    ex = exception(g)  # zeros decode as UDF #0: UNDEF at the fetched address
    assert (ex.x(24), ex.x(26)) == (UNDEF, FREE + 0x10)
    g.dump(imm=1)


# ------------------------------------------------------------------ data accesses


@pytest.mark.parametrize(
    "insn, address, iss",
    [
        ("ldr w5, [x20]", EMPTY_IPA + 0x8, ISV | (2 << 22) | (5 << 16)),
        ("ldr x5, [x20]", 1 << S2SZ, ISV | (3 << 22) | (5 << 16) | (1 << 15)),
        ("str x6, [x20]", (1 << S2SZ) + 0x18, ISV | (3 << 22) | (6 << 16) | (1 << 15) | WNR),
        ("strb w6, [x20]", EMPTY_IPA + 0x33, ISV | (6 << 16) | WNR),
        ("ldp x5, x6, [x20]", EMPTY_IPA + 0x40, 0),  # no syndrome for a pair
    ],
)
def test_data_access_where_nothing_is_injects_a_data_abort(rig: Rig, insn: str, address: int,
                                                           iss: int) -> None:
    """E-12: EC 0x25, FSC 0x10, EA, the other ISS bits of the trap kept."""
    body = load_imm("x20", address) + load_imm("x5", SENTINEL) + f"the_access:\n    {insn}\n"
    g = rig.realm(body + dump(1))
    ex = exception(g)
    assert ex.x(24) == (0x25 << 26) | IL | iss | EA | 0x10
    assert ex.x(25) == address  # FAR_EL1
    assert ex.x(26) == g.sym("the_access")
    assert ex.x(5) == SENTINEL
    g.dump(imm=1)


def test_access_at_a_wild_address_is_answered_in_the_realm(rig: Rig) -> None:
    body = load_imm("x20", 0xFFFF_8000_0000_1000) + "    ldr x5, [x20]\n" + dump(1)
    g = rig.realm(body)
    ex = exception(g)
    assert ec(ex.x(24)) == 0x25
    g.dump(imm=1)


# ------------------------------------------------------------------ RSI with shared buffers


def test_rsi_buffers_in_shared_memory_are_refused(rig: Rig) -> None:
    shared = UNPROT + 0x2000
    body = (call(RSI_REALM_CONFIG, shared, imm=1) + call(RSI_HOST_CALL, shared + 0x100, imm=2)
            + call(RSI_TOKEN_INIT, imm=3) + call(RSI_TOKEN_CONTINUE, shared, 0, 0x100, imm=4))
    g = rig.realm(body, tables=(shared,))
    ns = rig.c.write_page(b"\x5a" * 0x1000)
    assert g.rmi("RTT_MAP_UNPROTECTED", g.handle.rd, shared, 3, ns | NS_ATTR).ok
    for imm in (1, 2, 3, 4):
        ex = g.dump(imm=imm)
        if imm != 3:  # (3 is TOKEN_INIT)
            assert ex.gprs[:4] == [RSI_ERROR_INPUT, 0, 0, 0], imm
    assert rig.p.host.read(ns, 0x1000) == b"\x5a" * 0x1000  # the RMM wrote nothing


# ------------------------------------------------------------------ SMC, HVC, SVC, UDF, BRK

UNKNOWN_FIDS = [0xC400_0150, 0xC400_015C, 0xC400_01B0, 0x8000_0001, 0x1234_5678, 0xC200_0000,
                0x8400_0015, 0xC400_01B0 | 0x1_0000, 0, u64(-1) & ~0xFFFF_0000]


def test_unknown_smcs_return_minus_one(rig: Rig) -> None:
    g = rig.realm("".join(call(fid, 1, 2, 3, 4, imm=i + 1) for i, fid in enumerate(UNKNOWN_FIDS)))
    for i, fid in enumerate(UNKNOWN_FIDS):
        ex = g.dump(imm=i + 1)
        assert ex.gprs[:5] == [u64(-1), 0, 0, 0, 4], hex(fid)  # x1..x3 zeroed (E-17)
        assert ex.gprs[5:21] == [SENTINEL | n for n in range(5, 21)]


def test_hvc_injects_undef(rig: Rig) -> None:
    g = rig.realm("hvc_at:\n    hvc #0x1234\n    nop\n" + dump(1))
    ex = exception(g)
    assert ex.x(24) == UNDEF
    assert ex.x(26) == g.sym("hvc_at") + 4  # ELR_EL1 = ELR_EL2: after the HVC (E-12)
    g.dump(imm=1)


def test_svc_udf_brk_are_taken_by_the_realm(rig: Rig) -> None:
    body = ("svc_at:\n    svc #5\n    nop\n" + dump(1) + "udf_at:\n    udf #0x42\n" + dump(2)
            + "brk_at:\n    brk #3\n" + dump(3))
    g = rig.realm(body)
    ex = exception(g)
    assert (ex.x(24), ex.x(26)) == ((0x15 << 26) | IL | 5, g.sym("svc_at") + 4)
    g.dump(imm=1)
    ex = exception(g)
    assert (ex.x(24), ex.x(26)) == (UNDEF, g.sym("udf_at"))
    g.dump(imm=2)
    ex = exception(g)
    assert (ex.x(24), ex.x(26)) == ((0x3C << 26) | IL | 3, g.sym("brk_at"))
    g.dump(imm=3)


# ------------------------------------------------------------------ stale translations


def victim_body() -> str:
    return ("    adr x20, victim\n    ldr x5, [x20]\n" + dump(1)
            + "    ldr x5, [x20]\n" + dump(2))


VICTIM = "    .balign 0x1000\nvictim:\n    .quad 0x1122334455667788\n    .balign 0x1000\n"


def test_data_destroy_cuts_off_a_page_just_used(rig: Rig) -> None:
    g = rig.realm(victim_body(), data=VICTIM)
    victim = g.sym("victim")
    assert g.dump(cpu=1, imm=1).x(5) == 0x1122_3344_5566_7788  # the page is in the TLB
    assert g.rmi("DATA_DESTROY", g.handle.rd, victim).ok  # issued on PE 0
    ex = g.enter(cpu=1)
    # protected, RIPAS DESTROYED: reported to the host (ISV cleared), nothing read
    assert (ex.reason, ex.esr, ex.far, ex.hpfar) == (SYNC, (0x24 << 26) | 0x07, 0,
                                                     (victim >> 12) << 4)
    granule = g.pa(victim)
    assert g.rmi("GRANULE_UNDELEGATE", granule).ok
    assert rig.p.host.read(granule, 8) == bytes(8)  # scrubbed before it left the realm
    assert g.enter(cpu=1).reason == SYNC  # still unreachable


def test_ripas_empty_cuts_off_a_page_just_used(rig: Rig) -> None:
    body = ("    adr x20, victim\n    ldr x5, [x20]\n" + dump(1)
            + call(RSI_IPA_STATE_SET, "victim", "victim_end", 0, 0, imm=2)
            + "    adr x20, victim\n" + load_imm("x5", SENTINEL) + "the_load:\n    ldr x5, [x20]\n"
            + dump(3))
    g = rig.realm(body, data=VICTIM + "victim_end:\n")
    victim = g.sym("victim")
    assert g.dump(imm=1).x(5) == 0x1122_3344_5566_7788
    ex = g.enter()
    assert (ex.reason, ex.ripas_base, ex.ripas_top) == (RIPAS_CHANGE, victim, victim + 0x1000)
    r = g.rmi("RTT_SET_RIPAS", g.handle.rd, g.recs[0], victim, victim + 0x1000)
    assert r.ok and r[1] == victim + 0x1000
    assert g.dump(imm=2).gprs[:3] == [0, victim + 0x1000, 0]
    ex = exception(g)  # RIPAS EMPTY (assigned): an SEA in the realm, no exit
    assert ex.x(24) == (0x25 << 26) | IL | ISV | (3 << 22) | (5 << 16) | (1 << 15) | EA | 0x10
    assert (ex.x(25), ex.x(26)) == (victim, g.sym("the_load"))
    assert ex.x(5) == SENTINEL
    g.dump(imm=3)


def test_unmap_unprotected_cuts_off_a_shared_page_just_used(rig: Rig) -> None:
    body = load_imm("x20", MMIO) + "".join("    ldr x5, [x20]\n" + dump(i) for i in (1, 2, 3))
    g = rig.realm(body)
    host = rig.p.host
    ns = rig.c.write_page((0xAAAA).to_bytes(8, "little"))
    rd = g.handle.rd
    assert g.rmi("RTT_MAP_UNPROTECTED", rd, MMIO, 3, ns | NS_ATTR).ok
    assert g.dump(imm=1).x(5) == 0xAAAA
    host.write(ns, (0xBBBB).to_bytes(8, "little"))  # shared memory: the realm sees it
    assert g.dump(imm=2).x(5) == 0xBBBB
    assert g.rmi("RTT_UNMAP_UNPROTECTED", rd, MMIO, 3).ok
    ex = g.enter()  # now an emulatable MMIO load
    assert (ex.reason, ex.esr, ex.far, ex.hpfar) == (
        SYNC, (0x24 << 26) | ISV | (3 << 22) | (1 << 15) | 0x07, 0, (MMIO >> 12) << 4)
    other = rig.c.write_page((0xCCCC).to_bytes(8, "little"))
    assert g.rmi("RTT_MAP_UNPROTECTED", rd, MMIO, 3, other | NS_ATTR).ok
    assert g.dump(imm=3).x(5) == 0xCCCC  # re-executed against the new mapping


def test_gpt_change_cuts_off_a_shared_page_just_used(rig: Rig) -> None:
    """The host delegates the NS granule it had mapped into the realm: the GPT now says
    Realm PAS, the realm's NS-PAS access must fault (on PE 1, delegated from PE 0)."""
    body = load_imm("x20", MMIO) + "".join("    ldr x5, [x20]\n" + dump(i) for i in (1, 2, 3))
    g = rig.realm(body)
    ns = rig.c.write_page((0xAAAA).to_bytes(8, "little"))
    assert g.rmi("RTT_MAP_UNPROTECTED", g.handle.rd, MMIO, 3, ns | NS_ATTR).ok
    assert g.dump(cpu=1, imm=1).x(5) == 0xAAAA
    assert g.rmi("GRANULE_DELEGATE", ns).ok
    ex = g.enter(cpu=1)
    assert ex.status == SUCCESS and ex.reason == SYNC
    assert ec(ex.esr) == 0x24 and ex.esr & 0x3F == 0x28  # granule protection fault
    assert ex.gprs == [0] * 31
    assert g.rmi("GRANULE_UNDELEGATE", ns).ok
    assert g.dump(cpu=1, imm=2).x(5) == 0  # the load is retried: scrubbed by the delegation
    rig.p.host.write(ns, (0xDDDD).to_bytes(8, "little"))
    assert g.dump(cpu=1, imm=3).x(5) == 0xDDDD


def test_code_replaced_under_the_emulator_runs_as_new_code(rig: Rig) -> None:
    """Realm A runs code from granule G; G is DATA_DESTROYed, realm A torn down, and realm
    B (same VMID, same IPA, same PE) gets new code DATA_CREATEd into the same G."""
    old = load_imm("x5", 0xAAAA) + dump(1)
    new = load_imm("x5", 0xBBBB) + dump(1)
    a = rig.realm(old, vmid=9)
    assert a.dump(imm=1).x(5) == 0xAAAA
    assert a.dump(imm=0xD0DE).x(5) == 0xAAAA
    g = a.pa(GUEST)
    assert a.rmi("DATA_DESTROY", a.handle.rd, GUEST).ok
    del a.handle.data[GUEST]
    rig.b.destroy(a.handle)  # everything else of realm A
    b = rig.realm(new, vmid=9, granules={GUEST: g})
    assert b.pa(GUEST) == g
    assert b.dump(imm=1).x(5) == 0xBBBB


def test_emul_mmio_is_not_confused_by_a_remapped_page(rig: Rig) -> None:
    """An MMIO exit, then the host maps a page there and completes the emulation: the
    load is completed with the host's value, not re-executed against the new page."""
    body = load_imm("x20", MMIO) + "    ldr x5, [x20]\n" + dump(1)
    g = rig.realm(body)
    assert g.enter().reason == SYNC
    ns = rig.c.write_page((0xEEEE).to_bytes(8, "little"))
    assert g.rmi("RTT_MAP_UNPROTECTED", g.handle.rd, MMIO, 3, ns | NS_ATTR).ok
    assert g.dump(flags=EMUL_MMIO, gprs=[0x1234], imm=1).x(5) == 0x1234
