"""The isolation matrix with a Secure world that takes memory at run time.

For each security state (NS, Secure, Realm, Root) and each PAS a granule can be in, which
accesses succeed — checked end to end on granules put in that PAS by real sequences (FF-A
lend / reclaim through the SPMC and the monitor, RMI delegate / undelegate through the
RMM), by the partitions' own AArch64 code and by a realm guest, and by a Hypothesis state
machine that mixes FF-A lending and RMI delegation on one pool of granules and checks the
whole matrix after every step.

The rule (rme-hardware §1, §4): an access succeeds iff its PAS is one the state can emit
and the granule's GPI admits exactly that PAS.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ccasim import PlatformConfig, SecurityState
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.secure import partitions as sp
from ccasim.secure.client import FfaDriver
from realm_rig import MMIO, SUCCESS, SYNC, Rig, dump, ec, load_imm
from secure_helpers import (
    DENIED,
    ECHO,
    EMITTABLE,
    FFA_MEM_DONATE_64,
    FFA_MEM_LEND_64,
    FFA_MEM_RECLAIM,
    FFA_MEM_SHARE_64,
    FFA_SUCCESS_32,
    GPI_NS,
    GPI_REALM,
    GPI_ROOT,
    GPI_SECURE,
    GRANULE,
    INVALID_PARAMETERS,
    KEYSTORE,
    MASK64,
    PERM_NX,
    PERM_RW,
    RMI_ERROR_INPUT,
    RMI_GRANULE_DELEGATE,
    RMI_GRANULE_UNDELEGATE,
    RMI_SUCCESS,
    World,
    can_access,
    descriptor,
    error_code,
    world,
)

NS, S, RL, RT = (SecurityState.NON_SECURE, SecurityState.SECURE, SecurityState.REALM,
                 SecurityState.ROOT)

# The matrix, written out: state -> granule's PAS -> the access PAS that succeeds (if any).
MATRIX: dict[SecurityState, dict[Pas, Pas | None]] = {
    NS: {Pas.NON_SECURE: Pas.NON_SECURE, Pas.SECURE: None, Pas.REALM: None, Pas.ROOT: None},
    S: {Pas.NON_SECURE: Pas.NON_SECURE, Pas.SECURE: Pas.SECURE, Pas.REALM: None,
        Pas.ROOT: None},
    RL: {Pas.NON_SECURE: Pas.NON_SECURE, Pas.SECURE: None, Pas.REALM: Pas.REALM,
         Pas.ROOT: None},
    RT: {Pas.NON_SECURE: Pas.NON_SECURE, Pas.SECURE: Pas.SECURE, Pas.REALM: Pas.REALM,
         Pas.ROOT: Pas.ROOT},
}
GPI_OF = {Pas.NON_SECURE: GPI_NS, Pas.SECURE: GPI_SECURE, Pas.REALM: GPI_REALM,
          Pas.ROOT: GPI_ROOT}


def check_matrix(w: World, granule: int, pas: Pas) -> None:
    """Every state, every PAS it can emit, read and write-back: only MATRIX's cell works."""
    assert w.gpi(granule) == GPI_OF[pas], hex(granule)
    for state, row in MATRIX.items():
        for access in EMITTABLE[state]:
            ok = access == row[pas]
            for write in (False, True):
                assert can_access(w.p, state, granule, access, write=write) == ok, (
                    hex(granule), pas.name, state.name, access.name, write)


def test_isolation_matrix_after_real_transitions() -> None:
    w = world()
    g_lent, g_realm, g_free, g_shared = (w.granule() for _ in range(4))
    check_matrix(w, g_free, Pas.NON_SECURE)
    check_matrix(w, w.p.region("secure_dram").base + 0x8_0000, Pas.SECURE)  # Secure at boot
    check_matrix(w, w.p.region("root").base + 0x10_0000, Pas.ROOT)
    check_matrix(w, w.p.region("rmm").base, Pas.REALM)
    # run-time transitions through the monitor
    h = w.d.lend(ECHO, [(g_lent, 1)])
    hs = w.d.share(ECHO, [(g_shared, 1)], permissions=PERM_RW)
    assert w.smc(RMI_GRANULE_DELEGATE, g_realm)[0] == RMI_SUCCESS
    check_matrix(w, g_lent, Pas.SECURE)
    check_matrix(w, g_shared, Pas.NON_SECURE)
    check_matrix(w, g_realm, Pas.REALM)
    # the partition (S-EL1 code under its stage 2) reaches lent and shared memory
    assert w.echo(sp.ECHO_RETRIEVE, h, 0, PERM_RW | PERM_NX)[0] == 0
    assert w.echo(sp.ECHO_RETRIEVE, hs, 0, PERM_RW | PERM_NX)[0] == 0
    assert w.echo(sp.ECHO_WRITE, g_lent, 0x1111)[:2] == (0, 0x1111)
    assert w.echo(sp.ECHO_WRITE, g_shared, 0x2222)[:2] == (0, 0x2222)
    # ... and not a realm's granule, which no stage 2 of the SPMC maps
    assert w.echo(sp.ECHO_READ, g_realm)[0] == sp.STATUS_FAULT & MASK64
    assert w.echo(sp.ECHO_RELINQUISH, h)[0] == 0
    w.d.reclaim(h)
    assert w.smc(RMI_GRANULE_UNDELEGATE, g_realm)[0] == RMI_SUCCESS
    for g in (g_lent, g_realm):
        check_matrix(w, g, Pas.NON_SECURE)
    assert w.p.host.read(g_lent, 8) == bytes(8)  # scrubbed


def test_a_shared_granule_delegated_to_a_realm_is_cut_off_from_the_partition() -> None:
    """The RMM does not know about FF-A shares: the host may delegate a granule it shared.
    The partition's mapping stays, but its Non-secure-PAS access now fails the GPC."""
    w = world()
    g = w.granule()
    w.p.host.write(g, (0xABCD).to_bytes(8, "little"))
    h = w.d.share(ECHO, [(g, 1)], permissions=PERM_RW)
    assert w.echo(sp.ECHO_RETRIEVE, h, 0, PERM_RW | PERM_NX)[0] == 0
    assert w.echo(sp.ECHO_READ, g)[:2] == (0, 0xABCD)
    assert w.smc(RMI_GRANULE_DELEGATE, g)[0] == RMI_SUCCESS
    r = w.echo(sp.ECHO_READ, g)
    assert r[0] == sp.STATUS_FAULT & MASK64 and r[2] == g  # a GPF, reflected as an abort
    check_matrix(w, g, Pas.REALM)
    assert w.smc(RMI_GRANULE_UNDELEGATE, g)[0] == RMI_SUCCESS
    assert w.echo(sp.ECHO_READ, g)[:2] == (0, 0)  # back, zeroed by the delegation
    assert w.echo(sp.ECHO_RELINQUISH, h)[0] == 0
    w.d.reclaim(h)


NS_ATTR = (0b110 << 2) | (0b11 << 6)  # RTT_MAP_UNPROTECTED descriptor: MemAttr, S2AP RW


def test_a_realm_guest_faults_on_a_granule_lent_to_the_secure_world() -> None:
    """A realm guest loads from an unprotected IPA backed by a Normal-world granule; the
    host lends that granule to a partition: the guest's NS-PAS access now fails the GPC
    (a granule protection fault exit). After the partition wrote it and the host
    reclaimed it, the guest reads the scrubbed granule."""
    rig = Rig()
    body = load_imm("x20", MMIO) + "".join("    ldr x5, [x20]\n" + dump(i) for i in (1, 2, 3))
    g = rig.realm(body)
    ns = rig.c.write_page((0xAAAA).to_bytes(8, "little"))
    assert g.rmi("RTT_MAP_UNPROTECTED", g.handle.rd, MMIO, 3, ns | NS_ATTR).ok
    assert g.dump(imm=1).x(5) == 0xAAAA
    d = FfaDriver(rig.p.host, rig.c.pool.alloc(), rig.c.pool.alloc())
    d.rxtx_map()
    h = d.lend(ECHO, [(ns, 1)])
    assert int(rig.p.el3.gpi(ns)) == GPI_SECURE
    ex = g.enter(cpu=1)
    assert ex.status == SUCCESS and ex.reason == SYNC
    assert ec(ex.esr) == 0x24 and ex.esr & 0x3F == 0x28  # granule protection fault
    assert d.direct_req(ECHO, sp.ECHO_RETRIEVE, h, 0, PERM_RW | PERM_NX)[0] == 0
    assert d.direct_req(ECHO, sp.ECHO_READ, ns)[:2] == (0, 0xAAAA)
    assert d.direct_req(ECHO, sp.ECHO_WRITE, ns, 0x5EC)[:2] == (0, 0x5EC)
    assert g.enter(cpu=1).reason == SYNC  # still cut off
    assert d.direct_req(ECHO, sp.ECHO_RELINQUISH, h)[0] == 0
    d.reclaim(h)
    assert g.dump(cpu=1, imm=2).x(5) == 0  # the retried load: Non-secure again, scrubbed
    rig.p.host.write(ns, (0xBBBB).to_bytes(8, "little"))
    assert g.dump(imm=3).x(5) == 0xBBBB


# ------------------------------------------------------------------------------ Hypothesis

POOL = 6
KINDS = {"lend": FFA_MEM_LEND_64, "share": FFA_MEM_SHARE_64, "donate": FFA_MEM_DONATE_64}
PERMS = {"lend": PERM_RW | PERM_NX, "share": PERM_RW, "donate": 0}


class Transaction:
    def __init__(self, kind: str, granules: list[int], borrower: int) -> None:
        self.kind = kind
        self.granules = granules
        self.borrower = borrower
        self.retrieved = False
        self.written = False


class FfaRmiPool(RuleBasedStateMachine):
    """One pool of Normal-world granules; FF-A share/lend/donate/retrieve/relinquish/
    reclaim and RMI delegate/undelegate in any order. The model says, per granule, which
    PAS it is in and what its first word holds; every step checks the GPT, the contents
    and the full isolation matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.w = world(PlatformConfig(cpus=1, dram_size=64 << 20))
        self.g = [self.w.granule() for _ in range(POOL)]
        self.pas = {g: Pas.NON_SECURE for g in self.g}
        self.word: dict[int, int] = {}
        for i, g in enumerate(self.g):
            self.word[g] = 0x600D_0000 + i
            self.w.p.host.write(g, self.word[g].to_bytes(8, "little"))
        self.live: dict[int, Transaction] = {}
        self.dead: list[int] = []
        self.donated: set[int] = set()
        self.mapped: dict[int, Pas] = {}  # granules the echo partition maps, and how

    def in_transaction(self, g: int) -> bool:
        return g in self.donated or any(g in t.granules for t in self.live.values())

    # -------------------------------------------------------------- FF-A
    @rule(i=st.integers(0, POOL - 1), n=st.integers(1, 2), kind=st.sampled_from(list(KINDS)),
          borrower=st.sampled_from([ECHO, ECHO, KEYSTORE]))
    def send(self, i: int, n: int, kind: str, borrower: int) -> None:
        gs = self.g[i : i + n]
        ok = all(self.pas[g] is Pas.NON_SECURE and not self.in_transaction(g) for g in gs)
        x = self.w.send_raw(KINDS[kind], descriptor(borrower, [(gs[0], len(gs))],
                                                    permissions=PERMS[kind]))
        if not ok:
            assert error_code(x) == DENIED, (kind, [hex(g) for g in gs])
            return
        assert x[0] == FFA_SUCCESS_32, error_code(x)
        self.live[x[2] | (x[3] << 32)] = Transaction(kind, gs, borrower)
        if kind != "share":
            for g in gs:
                self.pas[g] = Pas.SECURE

    @precondition(lambda self: any(t.borrower == ECHO and not t.retrieved
                                   for t in self.live.values()))
    @rule(data=st.data())
    def retrieve(self, data: st.DataObject) -> None:
        handle = data.draw(st.sampled_from(sorted(
            h for h, t in self.live.items() if t.borrower == ECHO and not t.retrieved)))
        t = self.live[handle]
        r = self.w.echo(sp.ECHO_RETRIEVE, handle, 0, PERM_RW | PERM_NX)
        assert r[:3] == (0, t.granules[0], len(t.granules))
        t.retrieved = True
        t.written = True
        for g in t.granules:
            self.mapped[g] = Pas.NON_SECURE if t.kind == "share" else Pas.SECURE
        if t.kind == "donate":
            del self.live[handle]
            self.dead.append(handle)
            self.donated.update(t.granules)

    @precondition(lambda self: any(t.retrieved for t in self.live.values()))
    @rule(data=st.data())
    def relinquish(self, data: st.DataObject) -> None:
        handle = data.draw(st.sampled_from(sorted(
            h for h, t in self.live.items() if t.retrieved)))
        assert self.w.echo(sp.ECHO_RELINQUISH, handle)[0] == 0
        t = self.live[handle]
        t.retrieved = False
        for g in t.granules:
            self.mapped.pop(g, None)

    @precondition(lambda self: self.live or self.dead)
    @rule(data=st.data())
    def reclaim(self, data: st.DataObject) -> None:
        handle = data.draw(st.sampled_from(sorted(self.live) + self.dead))
        x = self.w.smc(FFA_MEM_RECLAIM, handle & 0xFFFF_FFFF, handle >> 32, 0)
        t = self.live.get(handle)
        if t is None:
            assert error_code(x) == INVALID_PARAMETERS
            return
        if t.retrieved:
            assert error_code(x) == DENIED
            return
        assert x[0] == FFA_SUCCESS_32
        del self.live[handle]
        self.dead.append(handle)
        if t.kind != "share":
            for g in t.granules:
                self.pas[g] = Pas.NON_SECURE
                if t.written:
                    self.word[g] = 0  # scrubbed

    @precondition(lambda self: bool(self.mapped))
    @rule(data=st.data(), value=st.integers(1, MASK64))
    def partition_access(self, data: st.DataObject, value: int) -> None:
        g = data.draw(st.sampled_from(sorted(self.mapped)))
        ok = self.pas[g] is self.mapped[g]  # the GPC still admits the mapping's PAS
        r = self.w.echo(sp.ECHO_READ, g)
        assert r[:2] == ((0, self.word[g]) if ok else (sp.STATUS_FAULT & MASK64, r[1]))
        r = self.w.echo(sp.ECHO_WRITE, g, value)
        assert r[0] == (0 if ok else sp.STATUS_FAULT & MASK64)
        if ok:
            self.word[g] = value

    # -------------------------------------------------------------- RMI
    @rule(i=st.integers(0, POOL - 1))
    def delegate(self, i: int) -> None:
        g = self.g[i]
        x = self.w.smc(RMI_GRANULE_DELEGATE, g)
        if self.pas[g] is Pas.NON_SECURE:  # even if shared: the RMM cannot know
            assert x[0] == RMI_SUCCESS
            self.pas[g] = Pas.REALM
            self.word[g] = 0  # DELEGATE zero-fills (REL0)
        else:
            assert x[0] == RMI_ERROR_INPUT

    @rule(i=st.integers(0, POOL - 1))
    def undelegate(self, i: int) -> None:
        g = self.g[i]
        x = self.w.smc(RMI_GRANULE_UNDELEGATE, g)
        if self.pas[g] is Pas.REALM:
            assert x[0] == RMI_SUCCESS
            self.pas[g] = Pas.NON_SECURE
        else:
            assert x[0] == RMI_ERROR_INPUT

    # -------------------------------------------------------------- the matrix
    @invariant()
    def gpt_contents_and_matrix(self) -> None:
        w = self.w
        for g in self.g:
            pas = self.pas[g]
            assert w.gpi(g) == GPI_OF[pas], (hex(g), pas)
            assert w.p.el3.read_u64(g, pas) == self.word[g], hex(g)
            for state, row in MATRIX.items():
                for access in EMITTABLE[state]:
                    assert can_access(w.p, state, g, access) == (access == row[pas]), (
                        hex(g), pas.name, state.name, access.name)


FfaRmiPool.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
test_ffa_and_rmi_on_one_pool = FfaRmiPool.TestCase


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_send_kind_respects_realm_ownership(kind: str) -> None:
    """The deterministic core of the machine: a Realm granule cannot be sent, a sent
    (lent/donated) granule cannot be delegated, a shared one can."""
    w = world(PlatformConfig(cpus=1, dram_size=64 << 20))
    a, b = w.granule(), w.granule()
    assert w.smc(RMI_GRANULE_DELEGATE, a)[0] == RMI_SUCCESS
    x = w.send_raw(KINDS[kind], descriptor(ECHO, [(a, 1)], permissions=PERMS[kind]))
    assert error_code(x) == DENIED and w.gpi(a) == GPI_REALM
    assert w.send_raw(KINDS[kind], descriptor(ECHO, [(b, 1)], permissions=PERMS[kind]))[0] \
        == FFA_SUCCESS_32
    expected = RMI_SUCCESS if kind == "share" else RMI_ERROR_INPUT
    assert w.smc(RMI_GRANULE_DELEGATE, b)[0] == expected
    assert GRANULE == 0x1000
