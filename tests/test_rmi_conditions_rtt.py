"""Failure-condition tables for the RTT and DATA commands of RMI 1.0 (rmm-abi §2, §3, §5, §6,
§10, §16).

For every command each declared failure condition (``ccasim.rmm.rmi.rtt.CREATE`` & co.) gets a
stimulus that violates exactly that condition; the result must be
``x0 == (index << 8) | status`` (RTT errors carry the RTT level as index), the condition's
label must be reported in ``p.rmm.last_error.label``, the outputs the digest defines for that
failure must be returned, and nothing may change: the granule tracker (state and refcount of
every granule) and the content of every Realm-PAS granule (RDs, RECs, RTTs, DATA) are
compared before and after. Pairs of violated conditions prove the check order. Success cases
check the observable effects: RTT_READ_ENTRY outputs, refcounts (§3.1), granule states, the
"top" outputs, the RIM (§10, recomputed here with hashlib), stage-2 TLBIs where §5/§6 demand
them, and that a second identical call now fails.

Expected statuses, enumerations and sizes are written down from the digest here rather than
imported from the implementation. Realms use s2sz = 40 (start level 1, two concatenated root
tables) unless a case says s2sz = 48 (start level 0, one root table).

Test scaffolding (clearly not RMI): there is no guest execution yet, so a REC's pending RIPAS
change — which a realm would request with RSI_IPA_STATE_SET — is written straight into the
REC's RMM-private fields by a Realm-state PE (``Env.set_pending_ripas``), and "the REC is
running" is simulated by taking a reference on the REC granule (``Env.mark_running``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from ccasim import Platform, PlatformConfig, SecurityState
from ccasim.arch.pe import ProcessingElement
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.host.rmi import RealmBuilder, RealmHandle, RmiClient, RmiResult
from ccasim.rmm.errors import Conditions
from ccasim.rmm.objects import Realm, Rec
from ccasim.rmm.rmi import data as data_cmds
from ccasim.rmm.rmi import rtt as rtt_cmds

# ------------------------------------------------------------------ constants from the digest
GRANULE = 0x1000
MASK64 = (1 << 64) - 1
# RmiStatus (§2.2)
SUCCESS, INPUT, REALM, REC, RTT = 0, 1, 2, 3, 4
# RmiRttEntryState and RmiRipas (§2.3)
UNASSIGNED, ASSIGNED, TABLE = 0, 1, 2
EMPTY, RAM, DESTROYED = 0, 1, 2
# Granule states (§3.1)
G_NS, G_DELEGATED, G_RD, G_REC, G_REC_AUX, G_DATA, G_RTT = range(7)
# Bytes mapped by one entry at each level (§5.1)
SIZE = {0: 1 << 39, 1: 1 << 30, 2: 1 << 21, 3: 1 << 12}
GB = SIZE[1]
MB2 = SIZE[2]
K4 = SIZE[3]
ENTRIES = 512
# Host-controlled bits of an ASSIGNED_NS descriptor (§5.2): OA, MemAttr[4:2], S2AP[7:6]
NS_ATTR = (0b110 << 2) | (0b11 << 6)
NS_ATTR_ALT = (0b001 << 2) | (0b01 << 6)
NS_OA = 0xC000_0000  # a 1 GB-aligned NS output address (the RMM does not check it)
# FIRME (rme-hardware): move a granule between the NS and Secure PAS from Secure state
FIRME_GM_GPI_SET = 0xC400_0402
GPI_SECURE, GPI_NS = 0b1000, 0b1001


# ------------------------------------------------------------------ the test environment
class Env:
    """A booted one-PE platform with one realm built through the RMI."""

    def __init__(self, s2sz: int = 40) -> None:
        self.p = Platform(PlatformConfig(cpus=1))
        self.c = RmiClient(self.p)
        self.b = RealmBuilder(self.c)
        self.tlbis: list[tuple[int, int, int]] = []
        self.p.rmm.stage2_listeners.append(lambda v, i, s: self.tlbis.append((v, i, s)))
        self.vmid: dict[int, int] = {}
        dram = self.p.region("ns_dram")
        self.beyond = dram.base + dram.size  # aligned, outside tracked DRAM
        self.realm = self.new_realm(s2sz)

    # ---------------------------------------------------------------- realms
    def new_realm(self, s2sz: int = 40) -> RealmHandle:
        vmid = len(self.vmid) + 1
        realm = self.b.create(s2sz=s2sz, vmid=vmid)
        self.vmid[realm.rd] = vmid
        return realm

    @property
    def rd(self) -> int:
        return self.realm.rd

    @property
    def sl(self) -> int:
        return self.realm.start_level

    @property
    def par(self) -> int:
        """Start of the unprotected IPA space (end of the PAR)."""
        return 1 << (self.realm.s2sz - 1)

    @property
    def ipa_top(self) -> int:
        return 1 << self.realm.s2sz

    def activate(self, realm: RealmHandle | None = None) -> None:
        self.ok("REALM_ACTIVATE", (realm or self.realm).rd)

    def rec(self, realm: RealmHandle | None = None) -> int:
        return self.b.add_rec(realm or self.realm)

    # ---------------------------------------------------------------- RMI
    def call(self, name: str, *args: int) -> RmiResult:
        return self.c.call(name, *args)

    def ok(self, name: str, *args: int) -> RmiResult:
        r = self.call(name, *args)
        assert r.ok, f"{name}{tuple(hex(a) for a in args)}: {r[0]:#x} {self.p.rmm.last_error}"
        return r

    def entry(self, ipa: int, level: int, realm: RealmHandle | None = None) -> tuple[int, ...]:
        """RTT_READ_ENTRY outputs (x1 walk level, x2 state, x3 address/desc, x4 RIPAS)."""
        r = self.ok("RTT_READ_ENTRY", (realm or self.realm).rd, ipa, level)
        return (r[1], r[2], r[3], r[4])

    def table(self, ipa: int, level: int, realm: RealmHandle | None = None) -> int:
        """The RTT at ``level`` covering ``ipa``, created (with its parents) if missing."""
        realm = realm or self.realm
        if level == realm.start_level:
            return self.root(ipa, realm)
        pa = 0
        for lvl in range(realm.start_level + 1, level + 1):
            base = ipa & ~(SIZE[lvl - 1] - 1)
            walk, state, x3, _ = self.entry(base, lvl - 1, realm)
            if walk == lvl - 1 and state == TABLE:
                pa = x3
                continue
            pa = self.delegated()
            self.ok("RTT_CREATE", realm.rd, pa, base, lvl)
        return pa

    def root(self, ipa: int, realm: RealmHandle | None = None) -> int:
        """The start-level RTT granule covering ipa (concatenated tables are consecutive)."""
        realm = realm or self.realm
        return realm.rtt_base + ((ipa // SIZE[realm.start_level]) // ENTRIES) * GRANULE

    def delegated(self, count: int = 1) -> int:
        return self.c.new_delegated(count)

    def delegated_aligned(self, count: int, align: int) -> int:
        base = self.c.pool.alloc_aligned(count, align)
        for i in range(count):
            assert self.c.delegate(base + i * GRANULE).ok
        return base

    def undelegated(self) -> int:
        """A fresh NS DRAM granule (tracked, state NS)."""
        return self.c.pool.alloc()

    def ns_page(self, content: bytes = b"") -> int:
        return self.c.write_page(content)

    def data(self, ipa: int, content: bytes = b"", flags: int = 1,
             realm: RealmHandle | None = None) -> int:
        realm = realm or self.realm
        self.table(ipa, 3, realm)
        pa = self.delegated()
        self.ok("DATA_CREATE", realm.rd, pa, ipa, self.ns_page(content), flags)
        return pa

    def data_unknown(self, ipa: int, pa: int | None = None) -> int:
        self.table(ipa, 3)
        pa = self.delegated() if pa is None else pa
        self.ok("DATA_CREATE_UNKNOWN", self.rd, pa, ipa)
        return pa

    def destroyed(self, ipa: int) -> None:
        """Leave the level-3 entry at ipa UNASSIGNED_DESTROYED (DATA_CREATE + DATA_DESTROY)."""
        self.data(ipa)
        self.ok("DATA_DESTROY", self.rd, ipa)

    def init_ripas(self, base: int, top: int) -> None:
        r = self.ok("RTT_INIT_RIPAS", self.rd, base, top)
        assert r[1] == top

    def map_ns(self, ipa: int, level: int, desc: int, realm: RealmHandle | None = None) -> None:
        realm = realm or self.realm
        self.table(ipa, level, realm)
        self.ok("RTT_MAP_UNPROTECTED", realm.rd, ipa, level, desc)

    def map_ns_table(self, ipa: int, level: int, oa: int, attrs: int = NS_ATTR,
                     realm: RealmHandle | None = None) -> None:
        """Fill the level-``level`` table covering ipa with 512 contiguous ASSIGNED_NS entries."""
        realm = realm or self.realm
        self.table(ipa, level, realm)
        for i in range(ENTRIES):
            self.ok("RTT_MAP_UNPROTECTED", realm.rd, ipa + i * SIZE[level], level,
                    (oa + i * SIZE[level]) | attrs)

    # ---------------------------------------------------------------- inspection
    def refcount(self, pa: int) -> int:
        tracker = self.p.rmm.tracker
        idx = tracker.index(pa)
        assert idx is not None
        return tracker.refcount(idx)

    def gstate(self, pa: int) -> int:
        tracker = self.p.rmm.tracker
        idx = tracker.index(pa)
        assert idx is not None
        return int(tracker.state(idx))

    def realm_bytes(self, pa: int, size: int = GRANULE) -> bytes:
        return self.p.el3.read(pa, size, Pas.REALM)

    @contextmanager
    def realm_pe(self) -> Iterator[ProcessingElement]:
        with self.p.cpus[0].probe(SecurityState.REALM)._running() as pe:
            yield pe

    def rim(self, realm: RealmHandle | None = None) -> bytes:
        with self.realm_pe() as pe:
            return Realm.load(pe, (realm or self.realm).rd).rim

    def rec_field(self, rec: int, name: str) -> int:
        with self.realm_pe() as pe:
            return Rec.load(pe, rec)[name]

    def snapshot(self) -> tuple[object, ...]:
        """Everything an RMI failure must leave alone: every tracked granule's state and
        refcount, the content of every granule the RMM owns, and the VMIDs in use."""
        granules = self.p.rmm.tracker.nonzero()
        contents = {pa: self.realm_bytes(pa) for pa, state, _ in granules if state != G_NS}
        return granules, contents, frozenset(self.p.rmm.vmids)

    def tlbi_covers(self, ipa: int, realm: RealmHandle | None = None) -> bool:
        vmid = self.vmid[(realm or self.realm).rd]
        return any(v == vmid and i <= ipa < i + s for v, i, s in self.tlbis)

    # ---------------------------------------------------------------- scaffolding
    def set_pending_ripas(self, rec: int, base: int, top: int, value: int,
                          change_destroyed: bool = False) -> None:
        """TEST SCAFFOLDING standing in for RSI_IPA_STATE_SET (no guest execution exists
        yet): write the REC's pending RIPAS change straight into its RMM-private fields from
        a Realm-state PE, as the RMM would when the REC exits with a RIPAS_CHANGE."""
        with self.realm_pe() as pe:
            r = Rec.load(pe, rec)
            r["set_ripas_base"] = base
            r["set_ripas_top"] = top
            r["set_ripas_addr"] = base
            r["set_ripas_value"] = value
            r["set_ripas_change_destroyed"] = int(change_destroyed)
            r.store(pe)

    def mark_running(self, rec: int) -> None:
        """TEST SCAFFOLDING: a REC "executing on another PE" holds a reference (§3.1)."""
        tracker = self.p.rmm.tracker
        idx = tracker.index(rec)
        assert idx is not None
        tracker.get(idx)


# ------------------------------------------------------------------ measurement (§10)
def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _desc(desc_type: int, rim: bytes) -> bytearray:
    d = bytearray(0x100)
    d[0] = desc_type
    d[0x08:0x10] = (0x100).to_bytes(8, "little")
    d[0x10 : 0x10 + len(rim)] = rim
    return d


def rim_after_data(rim: bytes, ipa: int, flags: int, content: bytes) -> bytes:
    d = _desc(0, rim)
    d[0x50:0x58] = ipa.to_bytes(8, "little")
    d[0x58:0x60] = flags.to_bytes(8, "little")
    if flags:
        d[0x60:0x80] = _h(content.ljust(GRANULE, b"\0"))
    return _h(bytes(d))


def rim_after_ripas(rim: bytes, base: int, top: int) -> bytes:
    d = _desc(2, rim)
    d[0x50:0x58] = base.to_bytes(8, "little")
    d[0x58:0x60] = top.to_bytes(8, "little")
    return _h(bytes(d))


# ------------------------------------------------------------------ case tables
@dataclass(frozen=True)
class Stim:
    args: tuple[int, ...]
    out: dict[int, int] = field(default_factory=dict)  # expected x<n> besides x0


def S(*args: int, x1: int | None = None, x2: int | None = None) -> Stim:
    out = {n: v for n, v in ((1, x1), (2, x2)) if v is not None}
    return Stim(tuple(a & MASK64 for a in args), out)


@dataclass(frozen=True)
class Case:
    id: str
    label: str  # the condition that must be reported
    status: int
    build: Callable[[Env], Stim]
    index: int = 0  # RTT level for RMI_ERROR_RTT
    also: str | None = None  # a second violated condition, later in the declared order
    s2sz: int = 40
    setup: Callable[[Env], object] | None = None


def C(id: str, label: str, status: int, build: Callable[[Env], Stim], index: int = 0,
      also: str | None = None, s2sz: int = 40,
      setup: Callable[[Env], object] | None = None) -> Case:
    return Case(id, label, status, build, index, also, s2sz, setup)


# shared setups
def _t2(e: Env) -> None:
    e.table(0, 2)


def _t3(e: Env) -> None:
    e.table(0, 3)


def _t3_par(e: Env) -> None:
    e.table(e.par, 3)


def _active(e: Env) -> None:
    e.table(0, 3)
    e.activate()


# ------------------------------------------------------------------ RMI_RTT_CREATE
def _create_rtt_state_data(e: Env) -> Stim:
    return S(e.rd, e.data(0x3000), GB, 2)


def _create_pa_order_rtt_low(e: Env) -> Stim:
    rtt, rd = e.undelegated(), e.delegated()
    assert rtt < rd
    return S(rd, rtt, 0, 2)


def _create_pa_order_rd_low(e: Env) -> Stim:
    rd, rtt = e.delegated(), e.undelegated()
    assert rd < rtt
    return S(rd, rtt, 0, 2)


RTT_CREATE_CASES = [
    C("alias", "alias", INPUT, lambda e: S(e.rd, e.rd, 0, 2)),
    C("rtt_align", "rtt_align", INPUT, lambda e: S(e.rd, e.delegated() + 0x800, 0, 2)),
    C("rtt_bound", "rtt_bound", INPUT, lambda e: S(e.rd, e.beyond, 0, 2)),
    C("rtt_state_ns", "rtt_state", INPUT, lambda e: S(e.rd, e.undelegated(), 0, 2)),
    C("rtt_state_root_rtt", "rtt_state", INPUT, lambda e: S(e.rd, e.realm.rtt_base, 0, 2)),
    C("rtt_state_data", "rtt_state", INPUT, _create_rtt_state_data),
    C("rd_align", "rd_align", INPUT, lambda e: S(e.rd + 0x800, e.delegated(), 0, 2)),
    C("rd_bound", "rd_bound", INPUT, lambda e: S(e.beyond, e.delegated(), 0, 2)),
    C("rd_state_delegated", "rd_state", INPUT, lambda e: S(e.delegated(), e.delegated(), 0, 2)),
    C("rd_state_rec", "rd_state", INPUT, lambda e: S(e.rec(), e.delegated(), 0, 2)),
    C("level_bound_start", "level_bound", INPUT, lambda e: S(e.rd, e.delegated(), 0, 1)),
    C("level_bound_4", "level_bound", INPUT, lambda e: S(e.rd, e.delegated(), 0, 4)),
    C("level_bound_minus1", "level_bound", INPUT, lambda e: S(e.rd, e.delegated(), 0, -1)),
    C("level_bound_start_s48", "level_bound", INPUT, lambda e: S(e.rd, e.delegated(), 0, 0),
      s2sz=48),
    C("ipa_align_l2", "ipa_align", INPUT, lambda e: S(e.rd, e.delegated(), MB2, 2)),
    C("ipa_align_l3", "ipa_align", INPUT, lambda e: S(e.rd, e.delegated(), K4, 3), setup=_t2),
    C("ipa_align_l1_s48", "ipa_align", INPUT, lambda e: S(e.rd, e.delegated(), GB, 1), s2sz=48),
    C("ipa_bound", "ipa_bound", INPUT, lambda e: S(e.rd, e.delegated(), 1 << 40, 2)),
    C("ipa_bound_s48", "ipa_bound", INPUT, lambda e: S(e.rd, e.delegated(), 1 << 48, 1),
      s2sz=48),
    C("rtt_walk_l1", "rtt_walk", RTT, lambda e: S(e.rd, e.delegated(), 0, 3), index=1),
    C("rtt_walk_unprotected", "rtt_walk", RTT, lambda e: S(e.rd, e.delegated(), e.par, 3),
      index=1),
    C("rtt_walk_l0_s48", "rtt_walk", RTT, lambda e: S(e.rd, e.delegated(), 0, 3), index=0,
      s2sz=48),
    C("rtt_walk_l1_s48", "rtt_walk", RTT, lambda e: S(e.rd, e.delegated(), 0, 3), index=1,
      s2sz=48, setup=lambda e: e.table(0, 1)),
    C("rtte_state_l2", "rtte_state", RTT, lambda e: S(e.rd, e.delegated(), 0, 2), index=1,
      setup=_t2),
    C("rtte_state_l3", "rtte_state", RTT, lambda e: S(e.rd, e.delegated(), 0, 3), index=2,
      setup=_t3),
    C("rtte_state_unprotected", "rtte_state", RTT, lambda e: S(e.rd, e.delegated(), e.par, 2),
      index=1, setup=lambda e: e.table(e.par, 2)),
    C("rtte_state_l1_s48", "rtte_state", RTT, lambda e: S(e.rd, e.delegated(), 0, 1), index=0,
      s2sz=48, setup=lambda e: e.table(0, 1)),
    # order
    C("alias+level_bound", "alias", INPUT, lambda e: S(e.rd, e.rd, 0, 4), also="level_bound"),
    C("pa_order_rtt_low", "rtt_state", INPUT, _create_pa_order_rtt_low, also="rd_state"),
    C("pa_order_rd_low", "rd_state", INPUT, _create_pa_order_rd_low),
    C("rd_state+level_bound", "rd_state", INPUT,
      lambda e: S(e.delegated(), e.delegated(), 0, 4), also="level_bound"),
    C("level_bound+ipa_align", "level_bound", INPUT, lambda e: S(e.rd, e.delegated(), K4, 1),
      also="ipa_align"),
    C("ipa_align+ipa_bound", "ipa_align", INPUT,
      lambda e: S(e.rd, e.delegated(), (1 << 40) + MB2, 2), also="ipa_bound"),
    C("ipa_bound+rtt_walk", "ipa_bound", INPUT, lambda e: S(e.rd, e.delegated(), 1 << 40, 3),
      also="rtt_walk"),
    C("rtt_state+rtte_state", "rtt_state", INPUT, lambda e: S(e.rd, e.undelegated(), 0, 2),
      also="rtte_state", setup=_t2),
    C("level_bound+rtte_state", "level_bound", INPUT, lambda e: S(e.rd, e.delegated(), 0, 4),
      also="rtte_state", setup=_t3),
]

# ------------------------------------------------------------------ RMI_RTT_DESTROY
RTT_DESTROY_CASES = [
    C("rd_align", "rd_align", INPUT, lambda e: S(e.rd + 0x800, 0, 3, x2=0), setup=_t3),
    C("rd_bound", "rd_bound", INPUT, lambda e: S(e.beyond, 0, 3, x2=0), setup=_t3),
    C("rd_state", "rd_state", INPUT, lambda e: S(e.delegated(), 0, 3, x2=0), setup=_t3),
    C("rd_state_rtt", "rd_state", INPUT, lambda e: S(e.table(0, 2), 0, 3, x2=0), setup=_t3),
    C("level_bound_start", "level_bound", INPUT, lambda e: S(e.rd, 0, 1, x2=0), setup=_t3),
    C("level_bound_4", "level_bound", INPUT, lambda e: S(e.rd, 0, 4, x2=0), setup=_t3),
    C("level_bound_start_s48", "level_bound", INPUT, lambda e: S(e.rd, 0, 0, x2=0), s2sz=48,
      setup=_t3),
    C("ipa_align", "ipa_align", INPUT, lambda e: S(e.rd, K4, 3, x2=0), setup=_t3),
    C("ipa_bound", "ipa_bound", INPUT, lambda e: S(e.rd, 1 << 40, 2, x2=0)),
    # the walk stops at the root: top = next live root entry (the L2 table at 5 GB)
    C("rtt_walk_next_live", "rtt_walk", RTT, lambda e: S(e.rd, GB, 3, x2=5 * GB), index=1,
      setup=lambda e: e.table(5 * GB, 2)),
    # ... or the end of that (first concatenated) root table
    C("rtt_walk_end_of_root", "rtt_walk", RTT, lambda e: S(e.rd, 6 * GB, 3, x2=1 << 39),
      index=1, setup=lambda e: e.table(5 * GB, 2)),
    C("rtt_walk_second_root", "rtt_walk", RTT, lambda e: S(e.rd, e.par + GB, 3, x2=1 << 40),
      index=1),
    C("rtt_walk_s48", "rtt_walk", RTT, lambda e: S(e.rd, 0, 3, x2=1 << 48), index=0, s2sz=48),
    C("rtte_state_next_live", "rtte_state", RTT, lambda e: S(e.rd, MB2, 3, x2=3 * MB2),
      index=2, setup=lambda e: (e.table(0, 3), e.table(3 * MB2, 3))),
    C("rtte_state_end", "rtte_state", RTT, lambda e: S(e.rd, 4 * MB2, 3, x2=GB), index=2,
      setup=lambda e: (e.table(0, 3), e.table(3 * MB2, 3))),
    C("rtte_state_ns_block", "rtte_state", RTT, lambda e: S(e.rd, e.par, 3, x2=e.par),
      index=2, setup=lambda e: e.map_ns(e.par, 2, NS_OA | NS_ATTR)),
    C("rtt_live_data", "rtt_live", RTT, lambda e: S(e.rd, MB2, 3, x2=MB2), index=3,
      setup=lambda e: e.data(MB2 + 0x3000)),
    C("rtt_live_table", "rtt_live", RTT, lambda e: S(e.rd, GB, 2, x2=GB), index=2,
      setup=lambda e: e.table(GB, 3)),
    # order
    C("rd_state+level_bound", "rd_state", INPUT, lambda e: S(e.delegated(), 0, 4, x2=0),
      also="level_bound", setup=_t3),
    C("level_bound+ipa_align", "level_bound", INPUT, lambda e: S(e.rd, K4, 1, x2=0),
      also="ipa_align"),
    C("ipa_align+ipa_bound", "ipa_align", INPUT, lambda e: S(e.rd, (1 << 40) + K4, 3, x2=0),
      also="ipa_bound"),
    C("ipa_bound+rtt_walk", "ipa_bound", INPUT, lambda e: S(e.rd, 1 << 40, 3, x2=0),
      also="rtt_walk"),
    C("ipa_align+rtt_live", "ipa_align", INPUT, lambda e: S(e.rd, MB2 + K4, 3, x2=0),
      also="rtt_live", setup=lambda e: e.data(MB2 + 0x3000)),
]


# ------------------------------------------------------------------ RMI_RTT_FOLD
def _fold_ns_noncontiguous(e: Env) -> Stim:
    e.map_ns_table(e.par, 3, NS_OA)
    e.ok("RTT_UNMAP_UNPROTECTED", e.rd, e.par + 7 * K4, 3)
    e.ok("RTT_MAP_UNPROTECTED", e.rd, e.par + 7 * K4, 3, (NS_OA + 8 * K4) | NS_ATTR)
    return S(e.rd, e.par, 3)


def _fold_ns_attrs_differ(e: Env) -> Stim:
    e.map_ns_table(e.par, 3, NS_OA)
    e.ok("RTT_UNMAP_UNPROTECTED", e.rd, e.par + 9 * K4, 3)
    e.ok("RTT_MAP_UNPROTECTED", e.rd, e.par + 9 * K4, 3, (NS_OA + 9 * K4) | NS_ATTR_ALT)
    return S(e.rd, e.par, 3)


def _fold_ns_l1_attrs_differ_s48(e: Env) -> Stim:
    e.map_ns_table(e.par, 1, 0)
    e.ok("RTT_UNMAP_UNPROTECTED", e.rd, e.par + 3 * GB, 1)
    e.ok("RTT_MAP_UNPROTECTED", e.rd, e.par + 3 * GB, 1, (3 * GB) | NS_ATTR_ALT)
    return S(e.rd, e.par, 1)


RTT_FOLD_CASES = [
    C("rd_align", "rd_align", INPUT, lambda e: S(e.rd + 0x800, 0, 3), setup=_t3),
    C("rd_bound", "rd_bound", INPUT, lambda e: S(e.beyond, 0, 3), setup=_t3),
    C("rd_state", "rd_state", INPUT, lambda e: S(e.delegated(), 0, 3), setup=_t3),
    C("level_bound_start", "level_bound", INPUT, lambda e: S(e.rd, 0, 1), setup=_t3),
    C("level_bound_4", "level_bound", INPUT, lambda e: S(e.rd, 0, 4), setup=_t3),
    C("level_bound_start_s48", "level_bound", INPUT, lambda e: S(e.rd, 0, 0), s2sz=48,
      setup=_t3),
    C("ipa_align", "ipa_align", INPUT, lambda e: S(e.rd, K4, 3), setup=_t3),
    C("ipa_bound", "ipa_bound", INPUT, lambda e: S(e.rd, 1 << 40, 2)),
    C("rtt_walk", "rtt_walk", RTT, lambda e: S(e.rd, GB, 3), index=1, setup=_t3),
    C("rtt_walk_s48", "rtt_walk", RTT, lambda e: S(e.rd, 0, 3), index=0, s2sz=48),
    C("rtte_state", "rtte_state", RTT, lambda e: S(e.rd, MB2, 3), index=2, setup=_t3),
    C("rtte_state_ns_block", "rtte_state", RTT, lambda e: S(e.rd, e.par, 3), index=2,
      setup=lambda e: e.map_ns(e.par, 2, NS_OA | NS_ATTR)),
    C("rtte_homo_data", "rtte_homo", RTT, lambda e: S(e.rd, 0, 3), index=3,
      setup=lambda e: e.data(0x3000)),
    C("rtte_homo_empty_ram", "rtte_homo", RTT, lambda e: S(e.rd, 0, 3), index=3,
      setup=lambda e: (e.table(0, 3), e.init_ripas(0, K4))),
    C("rtte_homo_empty_destroyed", "rtte_homo", RTT, lambda e: S(e.rd, 0, 3), index=3,
      setup=lambda e: e.destroyed(0x3000)),
    C("rtte_homo_l2_with_table", "rtte_homo", RTT, lambda e: S(e.rd, 0, 2), index=2,
      setup=_t3),
    C("rtte_homo_ns_mixed", "rtte_homo", RTT, lambda e: S(e.rd, e.par, 3), index=3,
      setup=lambda e: e.map_ns(e.par + K4, 3, NS_OA | NS_ATTR)),
    C("rtte_homo_ns_noncontiguous", "rtte_homo", RTT, _fold_ns_noncontiguous, index=3),
    C("rtte_homo_ns_attrs_differ", "rtte_homo", RTT, _fold_ns_attrs_differ, index=3),
    C("rtte_homo_ns_unaligned", "rtte_homo", RTT, lambda e: S(e.rd, e.par, 3), index=3,
      setup=lambda e: e.map_ns_table(e.par, 3, NS_OA + K4)),
    C("rtte_homo_ns_l1_s48", "rtte_homo", RTT, _fold_ns_l1_attrs_differ_s48, index=1, s2sz=48),
    # a homogeneous, contiguous, aligned table of ASSIGNED_NS 1 GB blocks would make a
    # level-0 block: RTT(level - 1)
    C("fold_level_ns_s48", "fold_level", RTT, lambda e: S(e.rd, e.par, 1), index=0, s2sz=48,
      setup=lambda e: e.map_ns_table(e.par, 1, 0)),
    # order
    C("rd_state+level_bound", "rd_state", INPUT, lambda e: S(e.delegated(), 0, 4),
      also="level_bound", setup=_t3),
    C("level_bound+ipa_align", "level_bound", INPUT, lambda e: S(e.rd, K4, 1),
      also="ipa_align"),
    C("ipa_align+ipa_bound", "ipa_align", INPUT, lambda e: S(e.rd, (1 << 40) + K4, 3),
      also="ipa_bound"),
    C("ipa_bound+rtt_walk", "ipa_bound", INPUT, lambda e: S(e.rd, 1 << 40, 3),
      also="rtt_walk"),
    C("ipa_align+rtte_homo", "ipa_align", INPUT, lambda e: S(e.rd, K4, 3), also="rtte_homo",
      setup=lambda e: e.data(0x3000)),
]

# ------------------------------------------------------------------ RMI_RTT_READ_ENTRY
RTT_READ_ENTRY_CASES = [
    C("rd_align", "rd_align", INPUT, lambda e: S(e.rd + 0x800, 0, 1)),
    C("rd_bound", "rd_bound", INPUT, lambda e: S(e.beyond, 0, 1)),
    C("rd_state", "rd_state", INPUT, lambda e: S(e.delegated(), 0, 1)),
    C("rd_state_root_rtt", "rd_state", INPUT, lambda e: S(e.realm.rtt_base, 0, 1)),
    C("level_bound_below_start", "level_bound", INPUT, lambda e: S(e.rd, 0, 0)),
    C("level_bound_4", "level_bound", INPUT, lambda e: S(e.rd, 0, 4)),
    C("level_bound_minus1_s48", "level_bound", INPUT, lambda e: S(e.rd, 0, -1), s2sz=48),
    C("ipa_align", "ipa_align", INPUT, lambda e: S(e.rd, K4, 2)),
    C("ipa_align_l1", "ipa_align", INPUT, lambda e: S(e.rd, MB2, 1)),
    C("ipa_bound", "ipa_bound", INPUT, lambda e: S(e.rd, 1 << 40, 1)),
    C("ipa_bound_s48", "ipa_bound", INPUT, lambda e: S(e.rd, 1 << 48, 0), s2sz=48),
    # order
    C("rd_state+level_bound", "rd_state", INPUT, lambda e: S(e.delegated(), 0, 4),
      also="level_bound"),
    C("level_bound+ipa_align", "level_bound", INPUT, lambda e: S(e.rd, K4, 0),
      also="ipa_align"),
    C("ipa_align+ipa_bound", "ipa_align", INPUT, lambda e: S(e.rd, (1 << 40) + K4, 2),
      also="ipa_bound"),
]

# ------------------------------------------------------------------ RMI_RTT_MAP_UNPROTECTED
D3 = NS_OA | NS_ATTR  # a valid host descriptor for a page


def _map_twice(e: Env) -> Stim:
    e.map_ns(e.par, 3, D3)
    return S(e.rd, e.par, 3, D3 + K4)


RTT_MAP_CASES = [
    C("level_bound_0", "level_bound", INPUT, lambda e: S(e.rd, e.par, 0, D3), setup=_t3_par),
    C("level_bound_4", "level_bound", INPUT, lambda e: S(e.rd, e.par, 4, D3), setup=_t3_par),
    C("level_bound_0_s48", "level_bound", INPUT, lambda e: S(e.rd, e.par, 0, D3), s2sz=48),
    C("rd_align", "rd_align", INPUT, lambda e: S(e.rd + 0x800, e.par, 3, D3), setup=_t3_par),
    C("rd_bound", "rd_bound", INPUT, lambda e: S(e.beyond, e.par, 3, D3), setup=_t3_par),
    C("rd_state", "rd_state", INPUT, lambda e: S(e.delegated(), e.par, 3, D3), setup=_t3_par),
    *[
        C(f"desc_valid_{name}", "desc_valid", INPUT, lambda e, d=desc: S(e.rd, e.par, 3, d),
          setup=_t3_par)
        for name, desc in [
            ("valid_bit", D3 | 1),
            ("table_bit", D3 | 2),
            ("bit5", D3 | (1 << 5)),
            ("sh", D3 | (0b11 << 8)),
            ("af", D3 | (1 << 10)),
            ("oa_beyond_48", D3 | (1 << 48)),
            ("xn", D3 | (1 << 54)),
            ("ns_bit", D3 | (1 << 55)),
            ("bit63", D3 | (1 << 63)),
            ("memattr_100", NS_OA | (0b100 << 2) | (0b11 << 6)),
        ]
    ],
    C("desc_valid_oa_unaligned_l2", "desc_valid", INPUT,
      lambda e: S(e.rd, e.par, 2, (NS_OA + K4) | NS_ATTR)),
    C("ipa_align_l3", "ipa_align", INPUT, lambda e: S(e.rd, e.par + 0x800, 3, D3),
      setup=_t3_par),
    C("ipa_align_l2", "ipa_align", INPUT, lambda e: S(e.rd, e.par + K4, 2, D3),
      setup=_t3_par),
    C("ipa_bound", "ipa_bound", INPUT, lambda e: S(e.rd, 1 << 40, 3, D3)),
    C("ipa_par", "ipa_par", INPUT, lambda e: S(e.rd, 0x3000, 3, D3), setup=_t3),
    C("ipa_par_last_page", "ipa_par", INPUT, lambda e: S(e.rd, e.par - K4, 3, D3),
      setup=lambda e: e.table(e.par - K4, 3)),
    C("rtt_walk_l1", "rtt_walk", RTT, lambda e: S(e.rd, e.par + GB, 3, D3), index=1,
      setup=_t3_par),
    C("rtt_walk_l2", "rtt_walk", RTT, lambda e: S(e.rd, e.par + MB2, 3, D3), index=2,
      setup=_t3_par),
    C("rtt_walk_l0_s48", "rtt_walk", RTT, lambda e: S(e.rd, e.par, 1, D3), index=0, s2sz=48),
    C("rtte_state_mapped", "rtte_state", RTT, _map_twice, index=3),
    C("rtte_state_table", "rtte_state", RTT, lambda e: S(e.rd, e.par, 2, D3), index=2,
      setup=_t3_par),
    # order
    C("level_bound+rd_state", "level_bound", INPUT, lambda e: S(e.delegated(), e.par, 4, D3),
      also="rd_state"),
    C("rd_state+desc_valid", "rd_state", INPUT, lambda e: S(e.delegated(), e.par, 3, D3 | 1),
      also="desc_valid", setup=_t3_par),
    C("desc_valid+ipa_align", "desc_valid", INPUT,
      lambda e: S(e.rd, e.par + 0x800, 3, D3 | 1), also="ipa_align"),
    C("ipa_align+ipa_bound", "ipa_align", INPUT, lambda e: S(e.rd, (1 << 40) + 0x800, 3, D3),
      also="ipa_bound"),
    C("ipa_par+rtt_walk", "ipa_par", INPUT, lambda e: S(e.rd, GB, 3, D3), also="rtt_walk"),
    C("desc_valid+rtte_state", "desc_valid", INPUT, lambda e: S(e.rd, e.par, 3, D3 | 1),
      also="rtte_state", setup=lambda e: e.map_ns(e.par, 3, D3)),
]


# ------------------------------------------------------------------ RMI_RTT_UNMAP_UNPROTECTED
def _unmap_setup(e: Env) -> None:
    e.map_ns(e.par + K4, 3, D3)
    e.map_ns(e.par + 3 * K4, 3, D3 + 2 * K4)
    e.map_ns(e.par + 2 * MB2, 2, (NS_OA + MB2) | NS_ATTR)
    e.map_ns(e.par + 5 * GB, 1, (1 << 40) | NS_ATTR)


RTT_UNMAP_CASES = [
    C("level_bound_0", "level_bound", INPUT, lambda e: S(e.rd, e.par, 0), setup=_unmap_setup),
    C("level_bound_4", "level_bound", INPUT, lambda e: S(e.rd, e.par, 4), setup=_unmap_setup),
    C("rd_align", "rd_align", INPUT, lambda e: S(e.rd + 0x800, e.par + K4, 3),
      setup=_unmap_setup),
    C("rd_bound", "rd_bound", INPUT, lambda e: S(e.beyond, e.par + K4, 3), setup=_unmap_setup),
    C("rd_state", "rd_state", INPUT, lambda e: S(e.delegated(), e.par + K4, 3),
      setup=_unmap_setup),
    C("ipa_align", "ipa_align", INPUT, lambda e: S(e.rd, e.par + K4 + 0x800, 3),
      setup=_unmap_setup),
    C("ipa_align_l2", "ipa_align", INPUT, lambda e: S(e.rd, e.par + K4, 2),
      setup=_unmap_setup),
    C("ipa_bound", "ipa_bound", INPUT, lambda e: S(e.rd, 1 << 40, 3), setup=_unmap_setup),
    C("ipa_par", "ipa_par", INPUT, lambda e: S(e.rd, 0x3000, 3),
      setup=lambda e: (_unmap_setup(e), e.data(0x3000))),
    # the walk stops at a live level-2 block: top = ipa
    C("rtt_walk_block", "rtt_walk", RTT, lambda e: S(e.rd, e.par + 2 * MB2, 3, x1=e.par + 2 * MB2),
      index=2, setup=_unmap_setup),
    # the walk stops at an UNASSIGNED_NS level-2 entry: top = next live entry in that table
    C("rtt_walk_l2_next_live", "rtt_walk", RTT,
      lambda e: S(e.rd, e.par + MB2, 3, x1=e.par + 2 * MB2), index=2, setup=_unmap_setup),
    C("rtt_walk_l1_next_live", "rtt_walk", RTT,
      lambda e: S(e.rd, e.par + GB, 3, x1=e.par + 5 * GB), index=1, setup=_unmap_setup),
    C("rtt_walk_l1_end", "rtt_walk", RTT, lambda e: S(e.rd, e.par + 6 * GB, 3, x1=1 << 40),
      index=1, setup=_unmap_setup),
    C("rtte_state_next_live", "rtte_state", RTT,
      lambda e: S(e.rd, e.par + 2 * K4, 3, x1=e.par + 3 * K4), index=3, setup=_unmap_setup),
    C("rtte_state_end", "rtte_state", RTT,
      lambda e: S(e.rd, e.par + 4 * K4, 3, x1=e.par + MB2), index=3, setup=_unmap_setup),
    C("rtte_state_table", "rtte_state", RTT, lambda e: S(e.rd, e.par, 2, x1=e.par), index=2,
      setup=_unmap_setup),
    # order
    C("level_bound+rd_state", "level_bound", INPUT, lambda e: S(e.delegated(), e.par, 4),
      also="rd_state"),
    C("rd_state+ipa_align", "rd_state", INPUT, lambda e: S(e.delegated(), e.par + 0x800, 3),
      also="ipa_align"),
    C("ipa_align+ipa_bound", "ipa_align", INPUT, lambda e: S(e.rd, (1 << 40) + 0x800, 3),
      also="ipa_bound"),
    C("ipa_par+rtt_walk", "ipa_par", INPUT, lambda e: S(e.rd, GB, 3), also="rtt_walk"),
]

# ------------------------------------------------------------------ RMI_RTT_INIT_RIPAS
RTT_INIT_RIPAS_CASES = [
    C("size_valid_equal", "size_valid", INPUT, lambda e: S(e.rd, 2 * K4, 2 * K4), setup=_t3),
    C("size_valid_below", "size_valid", INPUT, lambda e: S(e.rd, 2 * K4, K4), setup=_t3),
    C("rd_align", "rd_align", INPUT, lambda e: S(e.rd + 0x800, 0, 2 * K4), setup=_t3),
    C("rd_bound", "rd_bound", INPUT, lambda e: S(e.beyond, 0, 2 * K4), setup=_t3),
    C("rd_state", "rd_state", INPUT, lambda e: S(e.delegated(), 0, 2 * K4), setup=_t3),
    C("base_gran_align", "base_gran_align", INPUT, lambda e: S(e.rd, 0x800, 2 * K4), setup=_t3),
    C("top_gran_align", "top_gran_align", INPUT, lambda e: S(e.rd, 0, 0x1800), setup=_t3),
    C("base_bound", "base_bound", INPUT, lambda e: S(e.rd, e.par, e.par + K4)),
    C("top_bound", "top_bound", INPUT, lambda e: S(e.rd, e.par - K4, e.par + K4),
      setup=lambda e: e.table(e.par - K4, 3)),
    C("top_bound_beyond_ipa", "top_bound", INPUT, lambda e: S(e.rd, 0, (1 << 40) + K4),
      setup=_t3),
    C("realm_state", "realm_state", REALM, lambda e: S(e.rd, 0, 2 * K4), setup=_active),
    C("base_align_l1", "base_align", RTT, lambda e: S(e.rd, GB + K4, GB + 2 * K4), index=1),
    C("base_align_l2", "base_align", RTT, lambda e: S(e.rd, MB2 + K4, MB2 + 2 * K4), index=2,
      setup=_t3),
    C("no_progress_assigned", "no_progress", RTT, lambda e: S(e.rd, 0, 2 * K4), index=3,
      setup=lambda e: e.data(0)),
    C("no_progress_destroyed", "no_progress", RTT, lambda e: S(e.rd, 0, K4), index=3,
      setup=lambda e: e.destroyed(0)),
    C("no_progress_block_beyond_top", "no_progress", RTT, lambda e: S(e.rd, GB, GB + K4),
      index=1),
    C("no_progress_l0_s48", "no_progress", RTT, lambda e: S(e.rd, 0, K4), index=0, s2sz=48),
    # order
    C("size_valid+rd_state", "size_valid", INPUT, lambda e: S(e.delegated(), K4, K4),
      also="rd_state"),
    C("rd_state+base_gran_align", "rd_state", INPUT, lambda e: S(e.delegated(), 0x800, K4),
      also="base_gran_align"),
    C("base_gran_align+top_gran_align", "base_gran_align", INPUT,
      lambda e: S(e.rd, 0x800, 0x1800), also="top_gran_align"),
    C("top_gran_align+base_bound", "top_gran_align", INPUT,
      lambda e: S(e.rd, e.par, e.par + 0x1800), also="base_bound"),
    C("base_bound+top_bound", "base_bound", INPUT, lambda e: S(e.rd, e.par, e.par + 2 * K4),
      also="top_bound"),
    C("top_bound+realm_state", "top_bound", INPUT, lambda e: S(e.rd, e.par - K4, e.par + K4),
      also="realm_state", setup=_active),
    C("realm_state+base_align", "realm_state", REALM, lambda e: S(e.rd, GB + K4, GB + 2 * K4),
      also="base_align", setup=_active),
    C("realm_state+no_progress", "realm_state", REALM, lambda e: S(e.rd, 0, 2 * K4),
      also="no_progress", setup=lambda e: (e.data(0), e.activate())),
]


# ------------------------------------------------------------------ RMI_RTT_SET_RIPAS
def _pending(e: Env, base: int = 0, top: int = 2 * K4, value: int = RAM,
             change_destroyed: bool = False) -> int:
    """A REC of the main realm (now ACTIVE) with a pending RIPAS change [base, top)."""
    rec = e.rec()
    e.activate()
    e.set_pending_ripas(rec, base, top, value, change_destroyed)
    return rec


def _other_rec(e: Env) -> int:
    other = e.new_realm()
    rec = e.rec(other)
    e.activate(other)
    return rec


def _sr(build: Callable[[Env, int], Stim], before: Callable[[Env], object] = _t3,
        **pending: int) -> Callable[[Env], Stim]:
    """Build a SET_RIPAS stimulus: ``before`` shapes the RTTs, then a REC with a pending
    change (default [0, 8K) -> RAM) is created and the realm activated."""

    def run(e: Env) -> Stim:
        before(e)
        return build(e, _pending(e, **pending))

    return run


def _sr_running(e: Env, rec: int) -> Stim:
    e.mark_running(rec)
    return S(e.rd, rec, 0, 2 * K4)


def _sr_other_running(e: Env, rec: int) -> Stim:
    other = _other_rec(e)
    e.mark_running(other)
    return S(e.rd, other, 0, 2 * K4)


def _sr_pa_order_rd_low(e: Env, rec: int) -> Stim:
    rd, bad_rec = e.delegated(), e.undelegated()
    assert rd < bad_rec
    return S(rd, bad_rec, 0, 2 * K4)


def _sr_pa_order_rec_low(e: Env, rec: int) -> Stim:
    bad_rec, rd = e.undelegated(), e.delegated()
    assert bad_rec < rd
    return S(rd, bad_rec, 0, 2 * K4)


def _sr_running_bad_rd(e: Env, rec: int) -> Stim:
    e.mark_running(rec)
    return S(e.delegated(), rec, 0, 2 * K4)


def _ns_table(e: Env) -> None:
    e.table(0, 3)
    e.table(e.par, 3)


def _ns_page(e: Env) -> None:
    e.table(0, 3)
    e.map_ns(e.par, 3, D3)


RTT_SET_RIPAS_CASES = [
    C("size_valid_equal", "size_valid", INPUT, _sr(lambda e, r: S(e.rd, r, 0, 0))),
    C("size_valid_below", "size_valid", INPUT, _sr(lambda e, r: S(e.rd, r, 2 * K4, K4))),
    C("top_gran_align", "top_gran_align", INPUT, _sr(lambda e, r: S(e.rd, r, 0, 0x1800))),
    C("alias", "alias", INPUT, _sr(lambda e, r: S(e.rd, e.rd, 0, 2 * K4))),
    C("rd_align", "rd_align", INPUT, _sr(lambda e, r: S(e.rd + 0x800, r, 0, 2 * K4))),
    C("rd_bound", "rd_bound", INPUT, _sr(lambda e, r: S(e.beyond, r, 0, 2 * K4))),
    C("rd_state", "rd_state", INPUT, _sr(lambda e, r: S(e.delegated(), r, 0, 2 * K4))),
    C("rd_state_rec", "rd_state", INPUT, _sr(lambda e, r: S(_other_rec(e), r, 0, 2 * K4))),
    C("rec_align", "rec_align", INPUT, _sr(lambda e, r: S(e.rd, r + 0x800, 0, 2 * K4))),
    C("rec_bound", "rec_bound", INPUT, _sr(lambda e, r: S(e.rd, e.beyond, 0, 2 * K4))),
    C("rec_state", "rec_state", INPUT, _sr(lambda e, r: S(e.rd, e.delegated(), 0, 2 * K4))),
    C("rec_state_rd", "rec_state", INPUT,
      _sr(lambda e, r: S(e.rd, e.new_realm().rd, 0, 2 * K4))),
    C("rec_running", "rec_running", REC, _sr(_sr_running)),
    C("rec_owner", "rec_owner", REC, _sr(lambda e, r: S(e.rd, _other_rec(e), 0, 2 * K4))),
    C("base_bound", "base_bound", INPUT, _sr(lambda e, r: S(e.rd, r, K4, 2 * K4))),
    # a REC that never requested a change (no scaffolding): top > set_ripas.top = 0
    C("top_bound_no_pending", "top_bound", INPUT,
      lambda e: (lambda r: S(e.rd, r, 0, 2 * K4))(e.rec()), setup=_t3),
    C("top_bound", "top_bound", INPUT, _sr(lambda e, r: S(e.rd, r, 0, 3 * K4))),
    C("base_align_l2", "base_align", RTT,
      _sr(lambda e, r: S(e.rd, r, MB2 + K4, MB2 + 2 * K4), base=MB2 + K4, top=MB2 + 2 * K4),
      index=2),
    C("base_align_l1", "base_align", RTT,
      _sr(lambda e, r: S(e.rd, r, GB + K4, GB + 2 * K4), base=GB + K4, top=GB + 2 * K4),
      index=1),
    C("no_progress_destroyed", "no_progress", RTT, _sr(lambda e, r: S(e.rd, r, 0, 2 * K4),
      before=lambda e: e.destroyed(0)), index=3),
    C("no_progress_block_beyond_top", "no_progress", RTT,
      _sr(lambda e, r: S(e.rd, r, MB2, MB2 + K4), base=MB2, top=MB2 + K4), index=2),
    # (beyond what RSI_IPA_STATE_SET allows: unprotected ranges reach the NS stop rule)
    C("no_progress_unassigned_ns", "no_progress", RTT,
      _sr(lambda e, r: S(e.rd, r, e.par, e.par + K4), before=_ns_table, base=1 << 39,
          top=(1 << 39) + K4), index=3),
    C("no_progress_assigned_ns", "no_progress", RTT,
      _sr(lambda e, r: S(e.rd, r, e.par, e.par + K4), before=_ns_page, base=1 << 39,
          top=(1 << 39) + K4), index=3),
    # order
    C("size_valid+top_gran_align", "size_valid", INPUT,
      _sr(lambda e, r: S(e.rd, r, 2 * K4, 0x1800)), also="top_gran_align"),
    C("top_gran_align+alias", "top_gran_align", INPUT,
      _sr(lambda e, r: S(e.rd, e.rd, 0, 0x1800)), also="alias"),
    C("pa_order_rd_low", "rd_state", INPUT, _sr(_sr_pa_order_rd_low), also="rec_state"),
    C("pa_order_rec_low", "rec_state", INPUT, _sr(_sr_pa_order_rec_low)),
    C("rd_state+rec_running", "rd_state", INPUT,
      _sr(_sr_running_bad_rd),
      also="rec_running"),
    C("rec_running+rec_owner", "rec_running", REC, _sr(_sr_other_running), also="rec_owner"),
    C("rec_owner+base_bound", "rec_owner", REC,
      _sr(lambda e, r: S(e.rd, _other_rec(e), K4, 2 * K4)), also="base_bound"),
    C("base_bound+top_bound", "base_bound", INPUT, _sr(lambda e, r: S(e.rd, r, K4, 3 * K4)),
      also="top_bound"),
    C("top_bound+no_progress", "top_bound", INPUT, _sr(lambda e, r: S(e.rd, r, 0, 3 * K4),
      before=lambda e: e.destroyed(0)), also="no_progress"),
]


# ------------------------------------------------------------------ RMI_DATA_CREATE
def _dc(e: Env, *, rd: int | None = None, data: int | None = None, ipa: int = 0x3000,
        src: int | None = None, flags: int = 1) -> Stim:
    """A DATA_CREATE stimulus valid in every argument not given (the L3 table at 0 exists)."""
    e.table(0, 3)
    return S(e.rd if rd is None else rd, e.delegated() if data is None else data, ipa,
             e.ns_page(b"payload") if src is None else src, flags)


def _secure_page(e: Env) -> int:
    """An NS-tracked granule that the Secure world has taken with FIRME_GM_GPI_SET."""
    src = e.ns_page(b"secret")
    r = e.p.cpus[0].probe(SecurityState.SECURE).smc(FIRME_GM_GPI_SET, src, 1, GPI_SECURE)
    assert r[0] == 0, hex(r[0])
    return src


DATA_CREATE_CASES = [
    C("flags_2", "flags", INPUT, lambda e: _dc(e, flags=2)),
    C("flags_top_bit", "flags", INPUT, lambda e: _dc(e, flags=1 << 63)),
    C("src_align", "src_align", INPUT, lambda e: _dc(e, src=e.ns_page() + 0x800)),
    C("src_bound", "src_bound", INPUT, lambda e: _dc(e, src=e.beyond)),
    C("src_state_delegated", "src_state", INPUT, lambda e: _dc(e, src=e.delegated())),
    C("src_state_rd", "src_state", INPUT, lambda e: _dc(e, src=e.rd)),
    C("alias", "alias", INPUT, lambda e: _dc(e, data=e.rd)),
    C("data_align", "data_align", INPUT, lambda e: _dc(e, data=e.delegated() + 0x800)),
    C("data_bound", "data_bound", INPUT, lambda e: _dc(e, data=e.beyond)),
    C("data_state_ns", "data_state", INPUT, lambda e: _dc(e, data=e.undelegated())),
    C("data_state_data", "data_state", INPUT, lambda e: _dc(e, data=e.data(0x5000))),
    C("rd_align", "rd_align", INPUT, lambda e: _dc(e, rd=e.rd + 0x800)),
    C("rd_bound", "rd_bound", INPUT, lambda e: _dc(e, rd=e.beyond)),
    C("rd_state", "rd_state", INPUT, lambda e: _dc(e, rd=e.delegated())),
    C("realm_state", "realm_state", REALM, lambda e: _dc(e), setup=_active),
    C("ipa_bound_unprotected", "ipa_bound", INPUT, lambda e: _dc(e, ipa=e.par)),
    C("ipa_bound_beyond", "ipa_bound", INPUT, lambda e: _dc(e, ipa=1 << 40)),
    C("ipa_align", "ipa_align", INPUT, lambda e: _dc(e, ipa=0x3800)),
    C("rtt_walk_l1", "rtt_walk", RTT, lambda e: _dc(e, ipa=GB), index=1),
    C("rtt_walk_l2", "rtt_walk", RTT, lambda e: _dc(e, ipa=MB2), index=2),
    C("rtt_walk_l0_s48", "rtt_walk", RTT,
      lambda e: S(e.rd, e.delegated(), 0, e.ns_page(), 1), index=0, s2sz=48),
    C("rtte_state_ram", "rtte_state", RTT, lambda e: _dc(e), index=3,
      setup=lambda e: e.data(0x3000)),
    C("rtte_state_empty", "rtte_state", RTT, lambda e: _dc(e), index=3,
      setup=lambda e: e.data_unknown(0x3000)),
    C("src_pas_secure", "src_pas", INPUT, lambda e: _dc(e, src=_secure_page(e))),
    # order
    C("flags+src_align", "flags", INPUT, lambda e: _dc(e, src=e.ns_page() + 0x800, flags=2),
      also="src_align"),
    C("src_state+alias", "src_state", INPUT, lambda e: _dc(e, src=e.delegated(), data=e.rd),
      also="alias"),
    C("src_state+data_state", "src_state", INPUT,
      lambda e: _dc(e, src=e.delegated(), data=e.undelegated()), also="data_state"),
    C("pa_order_data_low", "data_state", INPUT,
      lambda e: (lambda d, r: _dc(e, data=d, rd=r))(e.undelegated(), e.delegated()),
      also="rd_state"),
    C("pa_order_rd_low", "rd_state", INPUT,
      lambda e: (lambda r, d: _dc(e, data=d, rd=r))(e.delegated(), e.undelegated())),
    C("data_state+realm_state", "data_state", INPUT, lambda e: _dc(e, data=e.undelegated()),
      also="realm_state", setup=_active),
    C("realm_state+ipa_bound", "realm_state", REALM, lambda e: _dc(e, ipa=e.par),
      also="ipa_bound", setup=_active),
    C("ipa_bound+ipa_align", "ipa_bound", INPUT, lambda e: _dc(e, ipa=e.par + 0x800),
      also="ipa_align"),
    C("ipa_align+rtt_walk", "ipa_align", INPUT, lambda e: _dc(e, ipa=GB + 0x800),
      also="rtt_walk"),
    C("rtt_walk+src_pas", "rtt_walk", RTT, lambda e: _dc(e, ipa=GB, src=_secure_page(e)),
      index=1, also="src_pas"),
    C("rtte_state+src_pas", "rtte_state", RTT, lambda e: _dc(e, src=_secure_page(e)), index=3,
      also="src_pas", setup=lambda e: e.data(0x3000)),
]


# ------------------------------------------------------------------ RMI_DATA_CREATE_UNKNOWN
def _du(e: Env, *, rd: int | None = None, data: int | None = None, ipa: int = 0x3000) -> Stim:
    e.table(0, 3)
    return S(e.rd if rd is None else rd, e.delegated() if data is None else data, ipa)


DATA_CREATE_UNKNOWN_CASES = [
    C("alias", "alias", INPUT, lambda e: _du(e, data=e.rd)),
    C("data_align", "data_align", INPUT, lambda e: _du(e, data=e.delegated() + 0x800)),
    C("data_bound", "data_bound", INPUT, lambda e: _du(e, data=e.beyond)),
    C("data_state_ns", "data_state", INPUT, lambda e: _du(e, data=e.undelegated())),
    C("data_state_rtt", "data_state", INPUT, lambda e: _du(e, data=e.table(0, 3))),
    C("rd_align", "rd_align", INPUT, lambda e: _du(e, rd=e.rd + 0x800)),
    C("rd_bound", "rd_bound", INPUT, lambda e: _du(e, rd=e.beyond)),
    C("rd_state", "rd_state", INPUT, lambda e: _du(e, rd=e.delegated())),
    C("ipa_bound", "ipa_bound", INPUT, lambda e: _du(e, ipa=e.par)),
    C("ipa_align", "ipa_align", INPUT, lambda e: _du(e, ipa=0x3800)),
    C("rtt_walk_l1", "rtt_walk", RTT, lambda e: _du(e, ipa=GB), index=1),
    C("rtt_walk_l2", "rtt_walk", RTT, lambda e: _du(e, ipa=MB2), index=2),
    C("rtt_walk_l1_s48", "rtt_walk", RTT, lambda e: S(e.rd, e.delegated(), 0), index=1,
      s2sz=48, setup=lambda e: e.table(0, 1)),
    C("rtte_state", "rtte_state", RTT, lambda e: _du(e), index=3,
      setup=lambda e: e.data_unknown(0x3000)),
    # order
    C("alias+ipa_bound", "alias", INPUT, lambda e: _du(e, data=e.rd, ipa=e.par),
      also="ipa_bound"),
    C("pa_order_data_low", "data_state", INPUT,
      lambda e: (lambda d, r: _du(e, data=d, rd=r))(e.undelegated(), e.delegated()),
      also="rd_state"),
    C("pa_order_rd_low", "rd_state", INPUT,
      lambda e: (lambda r, d: _du(e, data=d, rd=r))(e.delegated(), e.undelegated())),
    C("rd_state+ipa_bound", "rd_state", INPUT, lambda e: _du(e, rd=e.delegated(), ipa=e.par),
      also="ipa_bound"),
    C("ipa_bound+ipa_align", "ipa_bound", INPUT, lambda e: _du(e, ipa=e.par + 0x800),
      also="ipa_align"),
    C("ipa_align+rtt_walk", "ipa_align", INPUT, lambda e: _du(e, ipa=GB + 0x800),
      also="rtt_walk"),
    C("data_state+rtte_state", "data_state", INPUT, lambda e: _du(e, data=e.undelegated()),
      also="rtte_state", setup=lambda e: e.data_unknown(0x3000)),
]


# ------------------------------------------------------------------ RMI_DATA_DESTROY
def _dd_setup(e: Env) -> None:
    e.data(0x3000)
    e.data(0x5000)
    e.table(3 * GB, 2)


DATA_DESTROY_CASES = [
    C("rd_align", "rd_align", INPUT, lambda e: S(e.rd + 0x800, 0x3000, x2=0),
      setup=_dd_setup),
    C("rd_bound", "rd_bound", INPUT, lambda e: S(e.beyond, 0x3000, x2=0),
      setup=_dd_setup),
    C("rd_state", "rd_state", INPUT, lambda e: S(e.delegated(), 0x3000, x2=0),
      setup=_dd_setup),
    C("rd_state_data", "rd_state", INPUT, lambda e: S(e.data(0x7000), 0x3000, x2=0),
      setup=_dd_setup),
    C("ipa_bound", "ipa_bound", INPUT, lambda e: S(e.rd, e.par, x2=0), setup=_dd_setup),
    C("ipa_bound_beyond", "ipa_bound", INPUT, lambda e: S(e.rd, 1 << 40, x2=0)),
    C("ipa_align", "ipa_align", INPUT, lambda e: S(e.rd, 0x3800, x2=0), setup=_dd_setup),
    C("rtt_walk_l1_next_live", "rtt_walk", RTT, lambda e: S(e.rd, GB, x2=3 * GB),
      index=1, setup=_dd_setup),
    C("rtt_walk_l1_end", "rtt_walk", RTT, lambda e: S(e.rd, 4 * GB, x2=1 << 39),
      index=1, setup=_dd_setup),
    C("rtt_walk_l2_end", "rtt_walk", RTT, lambda e: S(e.rd, MB2, x2=GB), index=2,
      setup=_dd_setup),
    C("rtt_walk_l0_s48", "rtt_walk", RTT, lambda e: S(e.rd, 0, x2=1 << 48), index=0,
      s2sz=48),
    C("rtte_state_next_live", "rtte_state", RTT, lambda e: S(e.rd, 0x4000, x2=0x5000),
      index=3, setup=_dd_setup),
    C("rtte_state_end", "rtte_state", RTT, lambda e: S(e.rd, 0x6000, x2=MB2), index=3,
      setup=_dd_setup),
    C("rtte_state_unassigned_ram", "rtte_state", RTT,
      lambda e: S(e.rd, 0x6000, x2=MB2), index=3,
      setup=lambda e: (_dd_setup(e), e.init_ripas(0x6000, 0x7000))),
    # order
    C("rd_state+ipa_bound", "rd_state", INPUT, lambda e: S(e.delegated(), e.par, x2=0),
      also="ipa_bound"),
    C("ipa_bound+ipa_align", "ipa_bound", INPUT, lambda e: S(e.rd, e.par + 0x800, x2=0),
      also="ipa_align"),
    C("ipa_align+rtt_walk", "ipa_align", INPUT, lambda e: S(e.rd, GB + 0x800, x2=0),
      also="rtt_walk", setup=_dd_setup),
    C("ipa_align+rtte_state", "ipa_align", INPUT, lambda e: S(e.rd, 0x4800, x2=0),
      also="rtte_state", setup=_dd_setup),
]

# ------------------------------------------------------------------ the tables
TABLES: dict[str, tuple[Conditions, list[Case]]] = {
    "RTT_CREATE": (rtt_cmds.CREATE, RTT_CREATE_CASES),
    "RTT_DESTROY": (rtt_cmds.DESTROY, RTT_DESTROY_CASES),
    "RTT_FOLD": (rtt_cmds.FOLD, RTT_FOLD_CASES),
    "RTT_READ_ENTRY": (rtt_cmds.READ_ENTRY, RTT_READ_ENTRY_CASES),
    "RTT_MAP_UNPROTECTED": (rtt_cmds.MAP_UNPROTECTED, RTT_MAP_CASES),
    "RTT_UNMAP_UNPROTECTED": (rtt_cmds.UNMAP_UNPROTECTED, RTT_UNMAP_CASES),
    "RTT_INIT_RIPAS": (rtt_cmds.INIT_RIPAS, RTT_INIT_RIPAS_CASES),
    "RTT_SET_RIPAS": (rtt_cmds.SET_RIPAS, RTT_SET_RIPAS_CASES),
    "DATA_CREATE": (data_cmds.CREATE, DATA_CREATE_CASES),
    "DATA_CREATE_UNKNOWN": (data_cmds.CREATE_UNKNOWN, DATA_CREATE_UNKNOWN_CASES),
    "DATA_DESTROY": (data_cmds.DESTROY, DATA_DESTROY_CASES),
}

# Conditions no stimulus can reach on any platform PlatformConfig describes: tracked DRAM
# ends far below 2^48, so a granule address >= 2^48 fails <x>_bound first.
UNREACHABLE = {
    "RTT_CREATE": {"rtt_bound2"},
    "DATA_CREATE": {"data_bound2"},
    "DATA_CREATE_UNKNOWN": {"data_bound2"},
}

# The order of the conditions as the digest lists them (§6, TF-RMM check order). Within a
# "lock two granules in PA order" group the declared order is only nominal: the lower address
# is looked up first (proved by the pa_order_* cases).
_RD_LABELS = ["rd_align", "rd_bound", "rd_state"]
SPEC_ORDER = {
    "RTT_CREATE": ["alias", "rtt_align", "rtt_bound", "rtt_state", *_RD_LABELS, "level_bound",
                   "ipa_align", "ipa_bound", "rtt_bound2", "rtt_walk", "rtte_state"],
    "RTT_DESTROY": [*_RD_LABELS, "level_bound", "ipa_align", "ipa_bound", "rtt_walk",
                    "rtte_state", "rtt_live"],
    "RTT_FOLD": [*_RD_LABELS, "level_bound", "ipa_align", "ipa_bound", "rtt_walk",
                 "rtte_state", "rtte_homo", "fold_level"],
    "RTT_READ_ENTRY": [*_RD_LABELS, "level_bound", "ipa_align", "ipa_bound"],
    "RTT_MAP_UNPROTECTED": ["level_bound", *_RD_LABELS, "desc_valid", "ipa_align",
                            "ipa_bound", "ipa_par", "rtt_walk", "rtte_state"],
    "RTT_UNMAP_UNPROTECTED": ["level_bound", *_RD_LABELS, "ipa_align", "ipa_bound",
                              "ipa_par", "rtt_walk", "rtte_state"],
    "RTT_INIT_RIPAS": ["size_valid", *_RD_LABELS, "base_gran_align", "top_gran_align",
                       "base_bound", "top_bound", "realm_state", "base_align", "no_progress"],
    "RTT_SET_RIPAS": ["size_valid", "top_gran_align", "alias", *_RD_LABELS, "rec_align",
                      "rec_bound", "rec_state", "rec_running", "rec_owner", "base_bound",
                      "top_bound", "base_align", "no_progress"],
    "DATA_CREATE": ["flags", "src_align", "src_bound", "src_state", "alias", "data_align",
                    "data_bound", "data_state", *_RD_LABELS, "realm_state", "ipa_bound",
                    "ipa_align", "data_bound2", "rtt_walk", "rtte_state", "src_pas"],
    "DATA_CREATE_UNKNOWN": ["alias", "data_align", "data_bound", "data_state", *_RD_LABELS,
                            "ipa_bound", "ipa_align", "data_bound2", "rtt_walk",
                            "rtte_state"],
    "DATA_DESTROY": [*_RD_LABELS, "ipa_bound", "ipa_align", "rtt_walk", "rtte_state"],
}
# Status of each condition (digest §6); RTT conditions carry a level index.
SPEC_STATUS = {
    "realm_state": REALM, "rec_running": REC, "rec_owner": REC,
    **{lbl: RTT for lbl in ("rtt_walk", "rtte_state", "rtt_live", "rtte_homo", "fold_level",
                            "base_align", "no_progress")},
}

ALL_CASES = [(cmd, case) for cmd, (_, cases) in TABLES.items() for case in cases]


@pytest.mark.parametrize("command", list(TABLES))
def test_declared_conditions_follow_the_digest(command: str) -> None:
    conds, _ = TABLES[command]
    assert conds.labels == SPEC_ORDER[command]
    for cond in conds:
        assert cond.status == SPEC_STATUS.get(cond.label, INPUT), cond.label


@pytest.mark.parametrize("command", list(TABLES))
def test_every_condition_has_a_stimulus(command: str) -> None:
    conds, cases = TABLES[command]
    single = {c.label for c in cases if c.also is None}
    assert single | UNREACHABLE.get(command, set()) == set(conds.labels)
    for c in cases:
        assert c.label in conds.labels
        if c.also is not None:  # an order pair: the reported condition is checked first
            assert conds.labels.index(c.label) < conds.labels.index(c.also), c.id


@pytest.mark.parametrize(("command", "case"), ALL_CASES,
                         ids=[f"{cmd}-{case.id}" for cmd, case in ALL_CASES])
def test_failure_condition(command: str, case: Case) -> None:
    e = Env(case.s2sz)
    if case.setup is not None:
        case.setup(e)
    stim = case.build(e)
    before = e.snapshot()
    tlbis = len(e.tlbis)
    r = e.call(command, *stim.args)
    assert r[0] == (case.index << 8) | case.status, (hex(r[0]), e.p.rmm.last_error)
    assert case.status == SPEC_STATUS.get(case.label, INPUT)
    err = e.p.rmm.last_error
    assert err is not None and err.label == case.label
    for reg, value in stim.out.items():
        assert r[reg] == value, f"x{reg} = {r[reg]:#x}, expected {value:#x}"
    assert e.snapshot() == before, "a failed command changed state"
    assert len(e.tlbis) == tlbis, "a failed command invalidated stage 2"


# ==================================================================== success cases
def expect_fail(e: Env, command: str, args: tuple[int, ...], label: str, status: int,
                index: int = 0) -> RmiResult:
    before = e.snapshot()
    r = e.call(command, *args)
    assert r[0] == (index << 8) | status, (hex(r[0]), e.p.rmm.last_error)
    err = e.p.rmm.last_error
    assert err is not None and err.label == label
    assert e.snapshot() == before
    return r


def assert_table(e: Env, ipa: int, level: int,
                 expect: Callable[[int], tuple[int, int, int, int]]) -> None:
    """All 512 entries of the level-``level`` table covering ipa."""
    base = ipa & ~(SIZE[level - 1] - 1)
    for i in range(ENTRIES):
        got = e.entry(base + i * SIZE[level], level)
        assert got == expect(i), f"entry {i}: {got} != {expect(i)}"


# ------------------------------------------------------------------ RTT_CREATE
@pytest.mark.parametrize("side", ["protected", "unprotected"])
@pytest.mark.parametrize("level", [2, 3])
def test_rtt_create_success(level: int, side: str) -> None:
    e = Env()
    ipa = 0 if side == "protected" else e.par
    if level == 3:
        ipa += 5 * MB2
    parent = e.table(ipa, level - 1)
    parent_ref = e.refcount(parent)
    rtt = e.delegated()
    r = e.ok("RTT_CREATE", e.rd, rtt, ipa, level)
    # x1..x3 carry no result (zero); x4 is the caller's, preserved (TF-RMM saves x4)
    assert r.regs[1:5] == (0, 0, 0, level)
    assert e.entry(ipa, level - 1) == (level - 1, TABLE, rtt, EMPTY)
    assert e.entry(ipa, level) == (level, UNASSIGNED, 0, EMPTY)
    assert e.gstate(rtt) == G_RTT and e.refcount(rtt) == 0
    assert e.refcount(parent) == parent_ref + 1  # a new TABLE entry (§3.1)
    # the identical call now fails: rtt is no longer DELEGATED ...
    expect_fail(e, "RTT_CREATE", (e.rd, rtt, ipa, level), "rtt_state", INPUT)
    # ... and with a fresh granule the parent entry is already a table
    expect_fail(e, "RTT_CREATE", (e.rd, e.delegated(), ipa, level), "rtte_state", RTT,
                level - 1)


def _make_unassigned(e: Env, kind: str, ipa: int, level: int) -> None:
    """Make the (level - 1) entry covering ipa UNASSIGNED_<kind>."""
    e.table(ipa, level - 1)
    size = SIZE[level - 1]
    if kind == "RAM":
        e.init_ripas(ipa, ipa + size)
    elif kind == "DESTROYED":
        e.table(ipa, level)
        e.ok("RTT_DESTROY", e.rd, ipa, level)


@pytest.mark.parametrize("level", [2, 3])
@pytest.mark.parametrize("kind", ["EMPTY", "RAM", "DESTROYED", "NS"])
def test_unfold_unassigned(kind: str, level: int) -> None:
    """§5.4: a new table under an UNASSIGNED_x entry is 512 x UNASSIGNED_x; parent +1."""
    e = Env()
    ipa = (e.par if kind == "NS" else 0) + 3 * SIZE[level - 1]
    _make_unassigned(e, kind, ipa, level)
    ripas = {"EMPTY": EMPTY, "RAM": RAM, "DESTROYED": DESTROYED, "NS": EMPTY}[kind]
    assert e.entry(ipa, level - 1) == (level - 1, UNASSIGNED, 0, ripas)
    parent = e.table(ipa, level - 1)
    parent_ref = e.refcount(parent)
    rtt = e.delegated()
    e.ok("RTT_CREATE", e.rd, rtt, ipa, level)
    assert e.refcount(parent) == parent_ref + 1
    assert e.refcount(rtt) == 0
    assert_table(e, ipa, level, lambda i: (level, UNASSIGNED, 0, ripas))
    if kind == "NS":  # they really are UNASSIGNED_NS: the host may map them
        e.ok("RTT_MAP_UNPROTECTED", e.rd, ipa, level, (NS_OA & ~(SIZE[level] - 1)) | NS_ATTR)
    else:  # ... and protected ones are not
        expect_fail(e, "RTT_MAP_UNPROTECTED", (e.rd, ipa, level, NS_ATTR), "ipa_par", INPUT)


def test_unfold_and_fold_assigned_ns_block() -> None:
    """§5.4: an ASSIGNED_NS block unfolds to 512 contiguous ASSIGNED_NS entries with the same
    attributes (parent +1, new table 0, break-before-make + TLBI) and folds back."""
    e = Env()
    ipa = e.par + 4 * MB2
    block = (NS_OA + 2 * MB2) | NS_ATTR
    e.map_ns(ipa, 2, block)
    l2 = e.table(ipa, 2)
    ref = e.refcount(l2)
    assert e.entry(ipa, 2) == (2, ASSIGNED, block, EMPTY)
    rtt = e.delegated()
    e.tlbis.clear()
    e.ok("RTT_CREATE", e.rd, rtt, ipa, 3)
    assert e.tlbi_covers(ipa)
    assert e.refcount(l2) == ref + 1 and e.refcount(rtt) == 0
    assert_table(e, ipa, 3, lambda i: (3, ASSIGNED, block + i * K4, EMPTY))
    # fold it back
    e.tlbis.clear()
    r = e.ok("RTT_FOLD", e.rd, ipa, 3)
    assert r[1] == rtt
    assert e.tlbi_covers(ipa)
    assert e.entry(ipa, 2) == (2, ASSIGNED, block, EMPTY)
    assert e.entry(ipa + 7 * K4, 3) == (2, ASSIGNED, block, EMPTY)
    assert e.refcount(l2) == ref
    assert e.gstate(rtt) == G_DELEGATED and e.realm_bytes(rtt) == bytes(GRANULE)


def test_fold_unfold_assigned_blocks() -> None:
    """The one expensive test: 512 DATA granules at level 3 fold into an ASSIGNED level-2
    block and unfold back, for RIPAS RAM (DATA_CREATE), DESTROYED and EMPTY
    (DATA_CREATE_UNKNOWN over UNASSIGNED_DESTROYED / _EMPTY entries), with the fold rules for
    non-contiguous, unaligned and mixed-RIPAS tables on the way (§5.4)."""
    e = Env()
    pa0 = e.delegated_aligned(ENTRIES + 1, MB2)  # 2 MB-aligned, contiguous (+1 spare)
    src = e.ns_page()

    def fill(at: int, kind: str, pa_base: int = pa0) -> None:
        for i in range(ENTRIES):
            if kind == "RAM":
                e.p.host.write(src, i.to_bytes(8, "little"))
                e.ok("DATA_CREATE", e.rd, pa_base + i * K4, at + i * K4, src, 0)
            else:
                e.ok("DATA_CREATE_UNKNOWN", e.rd, pa_base + i * K4, at + i * K4)

    def destroy_all(at: int, pa_base: int = pa0) -> None:
        for i in range(ENTRIES):
            r = e.ok("DATA_DESTROY", e.rd, at + i * K4)
            assert r[1] == pa_base + i * K4

    def fold_and_unfold(at: int, ripas: int) -> None:
        l2 = e.table(at, 2)
        l3 = e.table(at, 3)
        assert e.refcount(l3) == ENTRIES
        l2_ref = e.refcount(l2)
        r = e.ok("RTT_FOLD", e.rd, at, 3)
        assert r[1] == l3
        assert e.entry(at, 2) == (2, ASSIGNED, pa0, ripas)
        assert e.entry(at + 9 * K4, 3) == (2, ASSIGNED, pa0, ripas)  # the walk stops at 2
        assert e.refcount(l2) == l2_ref  # the ASSIGNED block replaces the TABLE entry
        assert e.gstate(l3) == G_DELEGATED and e.refcount(l3) == 0
        assert e.realm_bytes(l3) == bytes(GRANULE)
        assert all(e.gstate(pa0 + i * K4) == G_DATA for i in (0, 255, 511))
        # a block cannot be destroyed or overwritten page by page
        expect_fail(e, "DATA_DESTROY", (e.rd, at + K4), "rtt_walk", RTT, 2)
        expect_fail(e, "DATA_CREATE_UNKNOWN", (e.rd, e.delegated(), at + K4), "rtt_walk",
                    RTT, 2)
        # a second identical fold fails: the parent entry is no longer a table
        expect_fail(e, "RTT_FOLD", (e.rd, at, 3), "rtte_state", RTT, 2)
        # unfold
        rtt = e.delegated()
        e.tlbis.clear()
        e.ok("RTT_CREATE", e.rd, rtt, at, 3)
        if ripas == RAM:  # break-before-make of a valid block
            assert e.tlbi_covers(at)
        assert e.refcount(rtt) == ENTRIES and e.refcount(l2) == l2_ref
        assert_table(e, at, 3, lambda i: (3, ASSIGNED, pa0 + i * K4, ripas))

    # --- RAM: 512 x DATA_CREATE
    at = 3 * MB2
    e.table(at, 3)
    fill(at, "RAM")
    # not contiguous: page 5 backed by another granule -> RTT(3), nothing changes
    e.ok("DATA_DESTROY", e.rd, at + 5 * K4)
    e.ok("DATA_CREATE", e.rd, e.delegated(), at + 5 * K4, src, 0)
    expect_fail(e, "RTT_FOLD", (e.rd, at, 3), "rtte_homo", RTT, 3)
    e.ok("DATA_DESTROY", e.rd, at + 5 * K4)
    e.ok("DATA_CREATE", e.rd, pa0 + 5 * K4, at + 5 * K4, src, 0)
    fold_and_unfold(at, RAM)
    with e.realm_pe() as pe:  # the unfolded mapping still leads to the copied content
        assert int.from_bytes(pe.read(pa0 + 77 * K4, 8, Pas.REALM), "little") == 77
    destroy_all(at)  # ASSIGNED_RAM -> UNASSIGNED_DESTROYED

    # --- DESTROYED: DATA_CREATE_UNKNOWN keeps the RIPAS
    # mixed RIPAS (DATA_CREATE gives RAM even over DESTROYED) -> RTT(3)
    e.ok("DATA_CREATE", e.rd, pa0, at, src, 0)
    for i in range(1, ENTRIES):
        e.ok("DATA_CREATE_UNKNOWN", e.rd, pa0 + i * K4, at + i * K4)
    assert e.entry(at, 3) == (3, ASSIGNED, pa0, RAM)
    assert e.entry(at + K4, 3) == (3, ASSIGNED, pa0 + K4, DESTROYED)
    expect_fail(e, "RTT_FOLD", (e.rd, at, 3), "rtte_homo", RTT, 3)
    e.ok("DATA_DESTROY", e.rd, at)
    e.ok("DATA_CREATE_UNKNOWN", e.rd, pa0, at)
    fold_and_unfold(at, DESTROYED)
    destroy_all(at)

    # --- EMPTY: a fresh table elsewhere; contiguous but not 2 MB-aligned first -> RTT(3)
    at = 7 * MB2
    e.table(at, 3)
    fill(at, "EMPTY", pa0 + K4)
    expect_fail(e, "RTT_FOLD", (e.rd, at, 3), "rtte_homo", RTT, 3)
    destroy_all(at, pa0 + K4)
    fill(at, "EMPTY")
    fold_and_unfold(at, EMPTY)
    destroy_all(at)


# ------------------------------------------------------------------ RTT_FOLD
def _fold_setup(kind: str, e: Env) -> tuple[int, int, tuple[int, int, int]]:
    """Returns (ipa, level of the child table, expected parent (state, x3, ripas))."""
    if kind == "unassigned_empty_l3":
        e.table(0, 3)
        return 0, 3, (UNASSIGNED, 0, EMPTY)
    if kind == "unassigned_ram_l3":
        e.table(MB2, 3)
        e.init_ripas(MB2, 2 * MB2)
        return MB2, 3, (UNASSIGNED, 0, RAM)
    if kind == "unassigned_destroyed_l3":
        e.table(MB2, 3)
        e.ok("RTT_DESTROY", e.rd, MB2, 3)
        e.table(MB2, 3)  # unfold of UNASSIGNED_DESTROYED
        return MB2, 3, (UNASSIGNED, 0, DESTROYED)
    if kind == "unassigned_ns_l3":
        e.table(e.par + MB2, 3)
        return e.par + MB2, 3, (UNASSIGNED, 0, EMPTY)
    if kind == "assigned_ns_l3":
        e.map_ns_table(e.par + MB2, 3, NS_OA)
        return e.par + MB2, 3, (ASSIGNED, NS_OA | NS_ATTR, EMPTY)
    if kind == "unassigned_empty_l2":  # into a level-1 entry
        e.table(GB, 2)
        return GB, 2, (UNASSIGNED, 0, EMPTY)
    if kind == "unassigned_ram_l2":
        e.table(GB, 2)
        e.init_ripas(GB, 2 * GB)
        return GB, 2, (UNASSIGNED, 0, RAM)
    if kind == "assigned_ns_l2":  # 512 ASSIGNED_NS 2 MB blocks into a 1 GB block
        e.map_ns_table(e.par + GB, 2, GB)
        return e.par + GB, 2, (ASSIGNED, GB | NS_ATTR, EMPTY)
    if kind == "unassigned_empty_l1_s48":  # into a level-0 entry: allowed for UNASSIGNED
        e.table(0, 1)
        return 0, 1, (UNASSIGNED, 0, EMPTY)
    if kind == "unassigned_ns_l1_s48":
        e.table(e.par, 1)
        return e.par, 1, (UNASSIGNED, 0, EMPTY)
    raise AssertionError(kind)


FOLD_KINDS = ["unassigned_empty_l3", "unassigned_ram_l3", "unassigned_destroyed_l3",
              "unassigned_ns_l3", "assigned_ns_l3", "unassigned_empty_l2", "unassigned_ram_l2",
              "assigned_ns_l2", "unassigned_empty_l1_s48", "unassigned_ns_l1_s48"]


@pytest.mark.parametrize("kind", FOLD_KINDS)
def test_rtt_fold_success(kind: str) -> None:
    e = Env(48 if kind.endswith("s48") else 40)
    ipa, level, (state, x3, ripas) = _fold_setup(kind, e)
    child = e.table(ipa, level)
    parent = e.table(ipa, level - 1)
    parent_ref = e.refcount(parent)
    e.tlbis.clear()
    r = e.ok("RTT_FOLD", e.rd, ipa, level)
    assert r[1] == child
    assert e.entry(ipa, level - 1) == (level - 1, state, x3, ripas)
    assert e.entry(ipa, level) == (level - 1, state, x3, ripas)  # the walk stops above
    assert e.refcount(parent) == parent_ref - 1  # TABLE -> unassigned / ASSIGNED_NS
    assert e.gstate(child) == G_DELEGATED and e.refcount(child) == 0
    assert e.realm_bytes(child) == bytes(GRANULE)
    assert e.tlbi_covers(ipa)
    expect_fail(e, "RTT_FOLD", (e.rd, ipa, level), "rtte_state", RTT, level - 1)
    # the folded entry unfolds again into the same content
    e.ok("RTT_CREATE", e.rd, e.delegated(), ipa, level)
    if state == ASSIGNED:
        assert e.entry(ipa + 3 * SIZE[level], level) == (level, ASSIGNED,
                                                         x3 + 3 * SIZE[level], EMPTY)
    else:
        assert e.entry(ipa + 3 * SIZE[level], level) == (level, state, 0, ripas)


# ------------------------------------------------------------------ RTT_DESTROY
@pytest.mark.parametrize("side", ["protected", "unprotected"])
def test_rtt_destroy_success(side: str) -> None:
    e = Env()
    base = 0 if side == "protected" else e.par
    ipa = base + 2 * MB2
    child = e.table(ipa, 3)
    e.table(base + 6 * MB2, 3)  # the next live entry of the level-2 table
    if side == "protected":
        e.init_ripas(ipa, ipa + MB2)  # whatever the child's RIPAS, the parent is DESTROYED
    parent = e.table(ipa, 2)
    ref = e.refcount(parent)
    e.tlbis.clear()
    r = e.ok("RTT_DESTROY", e.rd, ipa, 3)
    assert (r[1], r[2]) == (child, base + 6 * MB2)
    if side == "protected":
        assert e.entry(ipa, 2) == (2, UNASSIGNED, 0, DESTROYED)
    else:  # UNASSIGNED_NS: the host may map it again
        assert e.entry(ipa, 2) == (2, UNASSIGNED, 0, EMPTY)
        e.ok("RTT_MAP_UNPROTECTED", e.rd, ipa, 2, NS_OA | NS_ATTR)
    assert e.refcount(parent) == ref - 1
    assert e.gstate(child) == G_DELEGATED and e.refcount(child) == 0
    assert e.tlbi_covers(ipa)
    assert e.ok("GRANULE_UNDELEGATE", child).ok
    assert e.p.host.read(child, GRANULE) == bytes(GRANULE)  # zeroed
    # the identical call now fails: the parent is no longer a table
    r = expect_fail(e, "RTT_DESTROY", (e.rd, ipa, 3), "rtte_state", RTT, 2)
    expected_top = ipa if side == "unprotected" else base + 6 * MB2
    assert r[2] == expected_top


def test_rtt_destroy_top_is_end_of_table() -> None:
    e = Env()
    child = e.table(5 * MB2, 3)
    r = e.ok("RTT_DESTROY", e.rd, 5 * MB2, 3)
    assert (r[1], r[2]) == (child, GB)


def test_rtt_destroy_ignores_assigned_ns_entries() -> None:
    """§3.1: ASSIGNED_NS entries are not counted in the RTT refcount, so a table holding
    only NS mappings is not "live" and RTT_DESTROY succeeds."""
    e = Env()
    ipa = e.par + MB2
    e.map_ns(ipa, 3, D3)
    e.map_ns(ipa + K4, 3, D3 + K4)
    child = e.table(ipa, 3)
    assert e.refcount(child) == 0
    r = e.ok("RTT_DESTROY", e.rd, ipa, 3)
    assert r[1] == child
    assert e.entry(ipa, 3) == (2, UNASSIGNED, 0, EMPTY)


# ------------------------------------------------------------------ RTT_READ_ENTRY
def _read_setup(kind: str, e: Env) -> tuple[int, int, tuple[int, int, int, int]]:
    """(ipa, level, expected x1..x4)."""
    ipa = 0x7000
    if kind == "root_only":
        return ipa & ~(MB2 - 1), 3, (1, UNASSIGNED, 0, EMPTY)
    if kind == "unassigned_empty":
        e.table(ipa, 3)
        return ipa, 3, (3, UNASSIGNED, 0, EMPTY)
    if kind == "unassigned_ram":
        e.table(ipa, 3)
        e.init_ripas(ipa, ipa + K4)
        return ipa, 3, (3, UNASSIGNED, 0, RAM)
    if kind == "unassigned_destroyed":
        e.destroyed(ipa)
        return ipa, 3, (3, UNASSIGNED, 0, DESTROYED)
    if kind == "assigned_ram":
        pa = e.data(ipa)
        return ipa, 3, (3, ASSIGNED, pa, RAM)
    if kind == "assigned_empty":
        pa = e.data_unknown(ipa)
        return ipa, 3, (3, ASSIGNED, pa, EMPTY)
    if kind == "assigned_destroyed":  # x3 = PA (the post-REL0 fix, §16)
        e.destroyed(ipa)
        pa = e.data_unknown(ipa)
        return ipa, 3, (3, ASSIGNED, pa, DESTROYED)
    if kind == "table":
        rtt = e.table(ipa, 3)
        return 0, 2, (2, TABLE, rtt, EMPTY)
    if kind == "unassigned_ns":
        e.table(e.par, 3)
        return e.par + ipa, 3, (3, UNASSIGNED, 0, EMPTY)
    if kind == "assigned_ns":
        e.map_ns(e.par + ipa, 3, D3)
        return e.par + ipa, 3, (3, ASSIGNED, D3, EMPTY)
    if kind == "assigned_ns_l1":
        desc = (4 * GB) | NS_ATTR_ALT
        e.map_ns(e.par + GB, 1, desc)
        return e.par + GB, 1, (1, ASSIGNED, desc, EMPTY)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["root_only", "unassigned_empty", "unassigned_ram",
                                  "unassigned_destroyed", "assigned_ram", "assigned_empty",
                                  "assigned_destroyed", "table", "unassigned_ns",
                                  "assigned_ns", "assigned_ns_l1"])
def test_rtt_read_entry(kind: str) -> None:
    e = Env()
    ipa, level, expected = _read_setup(kind, e)
    before = e.snapshot()
    r = e.ok("RTT_READ_ENTRY", e.rd, ipa, level)
    assert (r[1], r[2], r[3], r[4]) == expected
    assert e.snapshot() == before


# ------------------------------------------------------------------ MAP / UNMAP
@pytest.mark.parametrize(("s2sz", "level"), [(40, 1), (40, 2), (40, 3), (48, 1), (48, 3)])
def test_map_unprotected_success(s2sz: int, level: int) -> None:
    e = Env(s2sz)
    ipa = e.par + 3 * SIZE[level]
    desc = (NS_OA & ~(SIZE[level] - 1)) | NS_ATTR if level > 1 else (2 * GB) | NS_ATTR
    table = e.table(ipa, level)
    ref = e.refcount(table)
    e.ok("RTT_MAP_UNPROTECTED", e.rd, ipa, level, desc)
    assert e.entry(ipa, level) == (level, ASSIGNED, desc, EMPTY)
    assert e.refcount(table) == ref  # ASSIGNED_NS is not counted (§3.1)
    expect_fail(e, "RTT_MAP_UNPROTECTED", (e.rd, ipa, level, desc), "rtte_state", RTT, level)


def test_unmap_unprotected_success() -> None:
    e = Env()
    _unmap_setup(e)
    e.tlbis.clear()
    r = e.ok("RTT_UNMAP_UNPROTECTED", e.rd, e.par + K4, 3)
    assert r[1] == e.par + 3 * K4  # top: the next live entry
    assert e.entry(e.par + K4, 3) == (3, UNASSIGNED, 0, EMPTY)
    assert e.tlbi_covers(e.par + K4)
    r = e.ok("RTT_UNMAP_UNPROTECTED", e.rd, e.par + 3 * K4, 3)
    assert r[1] == e.par + MB2  # none left: the end of the table
    r = e.ok("RTT_UNMAP_UNPROTECTED", e.rd, e.par + 2 * MB2, 2)
    assert r[1] == e.par + GB
    r = e.ok("RTT_UNMAP_UNPROTECTED", e.rd, e.par + 5 * GB, 1)
    assert r[1] == 1 << 40
    assert e.tlbi_covers(e.par + 5 * GB + 7 * MB2)
    # the identical call now fails, still reporting top
    r = expect_fail(e, "RTT_UNMAP_UNPROTECTED", (e.rd, e.par + K4, 3), "rtte_state", RTT, 3)
    assert r[1] == e.par + MB2
    # ... and the entry may be mapped again
    e.ok("RTT_MAP_UNPROTECTED", e.rd, e.par + K4, 3, D3)


# ------------------------------------------------------------------ INIT_RIPAS
def test_init_ripas_success_and_measurement() -> None:
    e = Env()
    l3 = e.table(0, 3)
    rim = e.rim()
    r = e.ok("RTT_INIT_RIPAS", e.rd, 2 * K4, 5 * K4)
    assert r[1] == 5 * K4
    for i in range(2, 5):
        rim = rim_after_ripas(rim, i * K4, (i + 1) * K4)
        assert e.entry(i * K4, 3) == (3, UNASSIGNED, 0, RAM)
    assert e.entry(K4, 3) == (3, UNASSIGNED, 0, EMPTY)
    assert e.entry(5 * K4, 3) == (3, UNASSIGNED, 0, EMPTY)
    assert e.rim() == rim
    assert e.refcount(l3) == 0
    # an entry that is already RAM is measured again (§16): an identical call succeeds
    r = e.ok("RTT_INIT_RIPAS", e.rd, 2 * K4, 3 * K4)
    assert r[1] == 3 * K4
    assert e.rim() == rim_after_ripas(rim, 2 * K4, 3 * K4)


def test_init_ripas_progress_rules() -> None:
    e = Env()
    e.table(0, 3)
    e.table(MB2, 3)
    # one table per call: stops at the table boundary
    r = e.ok("RTT_INIT_RIPAS", e.rd, MB2 - 2 * K4, MB2 + 2 * K4)
    assert r[1] == MB2
    # stops before an entry that is neither UNASSIGNED_EMPTY nor _RAM
    e.data(MB2 + 3 * K4)
    r = e.ok("RTT_INIT_RIPAS", e.rd, MB2, MB2 + 8 * K4)
    assert r[1] == MB2 + 3 * K4
    # block-level entries: a level-2 entry is processed only when it ends <= top
    rim = e.rim()
    r = e.ok("RTT_INIT_RIPAS", e.rd, 4 * MB2, 6 * MB2 + K4)
    assert r[1] == 6 * MB2
    rim = rim_after_ripas(rim_after_ripas(rim, 4 * MB2, 5 * MB2), 5 * MB2, 6 * MB2)
    assert e.rim() == rim
    assert e.entry(5 * MB2, 2) == (2, UNASSIGNED, 0, RAM)
    assert e.entry(6 * MB2, 2) == (2, UNASSIGNED, 0, EMPTY)
    # ... and stops before a TABLE entry of the same table
    e.table(8 * MB2, 3)
    r = e.ok("RTT_INIT_RIPAS", e.rd, 7 * MB2, 9 * MB2)
    assert r[1] == 8 * MB2


# ------------------------------------------------------------------ SET_RIPAS
def _ripas_from(e: Env, kind: str, ipa: int) -> int:
    """Put the level-3 entry at ipa into state ``kind``; returns the DATA PA (or 0)."""
    e.table(ipa, 3)
    if kind == "UNASSIGNED_EMPTY":
        return 0
    if kind == "UNASSIGNED_RAM":
        e.init_ripas(ipa, ipa + K4)
        return 0
    if kind == "UNASSIGNED_DESTROYED":
        e.destroyed(ipa)
        return 0
    if kind == "ASSIGNED_EMPTY":
        return e.data_unknown(ipa)
    if kind == "ASSIGNED_RAM":
        return e.data(ipa)
    if kind == "ASSIGNED_DESTROYED":
        e.destroyed(ipa)
        return e.data_unknown(ipa)
    raise AssertionError(kind)


# (target, from, change_destroyed) -> resulting RIPAS, or None for "stop" (§6 table)
_TRANSITIONS: list[tuple[int, str, bool, int | None, bool]] = []
for _cd in (False, True):
    _TRANSITIONS += [
        (RAM, "UNASSIGNED_EMPTY", _cd, RAM, False),
        (RAM, "UNASSIGNED_DESTROYED", _cd, RAM if _cd else None, False),
        (RAM, "ASSIGNED_EMPTY", _cd, RAM, False),
        (RAM, "ASSIGNED_DESTROYED", _cd, RAM if _cd else None, False),
        (RAM, "UNASSIGNED_RAM", _cd, RAM, False),
        (RAM, "ASSIGNED_RAM", _cd, RAM, False),
        (EMPTY, "UNASSIGNED_RAM", _cd, EMPTY, False),
        (EMPTY, "UNASSIGNED_DESTROYED", _cd, EMPTY if _cd else None, False),
        (EMPTY, "ASSIGNED_RAM", _cd, EMPTY, True),
        (EMPTY, "ASSIGNED_DESTROYED", _cd, EMPTY if _cd else None, False),
        (EMPTY, "UNASSIGNED_EMPTY", _cd, EMPTY, False),
        (EMPTY, "ASSIGNED_EMPTY", _cd, EMPTY, False),
    ]


@pytest.mark.parametrize(
    ("target", "kind", "change_destroyed", "result", "tlbi"), _TRANSITIONS,
    ids=[f"{'RAM' if t == RAM else 'EMPTY'}-{k}-{'cd' if cd else 'nocd'}"
         for t, k, cd, _, _ in _TRANSITIONS])
def test_set_ripas_transition(target: int, kind: str, change_destroyed: bool,
                              result: int | None, tlbi: bool) -> None:
    e = Env()
    ipa = 0x9000
    pa = _ripas_from(e, kind, ipa)
    state = ASSIGNED if kind.startswith("ASSIGNED") else UNASSIGNED
    l3 = e.table(ipa, 3)
    ref = e.refcount(l3)
    rec = _pending(e, ipa, ipa + K4, target, change_destroyed)
    if result is None:  # the entry stops the loop before any progress
        expect_fail(e, "RTT_SET_RIPAS", (e.rd, rec, ipa, ipa + K4), "no_progress", RTT, 3)
        assert e.rec_field(rec, "set_ripas_addr") == ipa
        return
    rim = e.rim()
    e.tlbis.clear()
    r = e.ok("RTT_SET_RIPAS", e.rd, rec, ipa, ipa + K4)
    assert r[1] == ipa + K4
    assert e.entry(ipa, 3) == (3, state, pa, result)
    assert e.rec_field(rec, "set_ripas_addr") == ipa + K4
    assert e.refcount(l3) == ref
    assert e.rim() == rim  # not measured
    if tlbi:
        assert e.tlbi_covers(ipa)
    # the identical call now fails: the REC's progress moved on
    expect_fail(e, "RTT_SET_RIPAS", (e.rd, rec, ipa, ipa + K4), "base_bound", INPUT)


def test_set_ripas_progress() -> None:
    """Progress rules of §6/§16: one table per call, partial tops, stops at DESTROYED (without
    change_destroyed), at an entry ending beyond top and at a TABLE entry; x1 is the new
    rec.set_ripas.addr and the host must continue exactly there."""
    e = Env()
    e.table(0, 3)
    e.destroyed(5 * K4)
    e.table(5 * MB2, 3)
    rec = _pending(e, 2 * K4, 6 * MB2, RAM)
    # partial top
    assert e.ok("RTT_SET_RIPAS", e.rd, rec, 2 * K4, 4 * K4)[1] == 4 * K4
    # stops before a DESTROYED entry (no change_destroyed)
    assert e.ok("RTT_SET_RIPAS", e.rd, rec, 4 * K4, 6 * MB2)[1] == 5 * K4
    expect_fail(e, "RTT_SET_RIPAS", (e.rd, rec, 5 * K4, 6 * MB2), "no_progress", RTT, 3)
    # the host may not skip ahead
    expect_fail(e, "RTT_SET_RIPAS", (e.rd, rec, 6 * K4, 6 * MB2), "base_bound", INPUT)
    assert [e.entry(i * K4, 3)[3] for i in range(1, 7)] == [EMPTY, RAM, RAM, RAM,
                                                            DESTROYED, EMPTY]
    # (scaffolding) the realm asks again from 5K, now with change_destroyed
    e.set_pending_ripas(rec, 5 * K4, 6 * MB2, RAM, change_destroyed=True)
    # one table per call: up to the end of the level-3 table
    assert e.ok("RTT_SET_RIPAS", e.rd, rec, 5 * K4, 6 * MB2)[1] == MB2
    assert e.entry(5 * K4, 3) == (3, UNASSIGNED, 0, RAM)
    assert e.entry(MB2 - K4, 3) == (3, UNASSIGNED, 0, RAM)
    # level-2 entries, each only if it ends <= top
    assert e.ok("RTT_SET_RIPAS", e.rd, rec, MB2, 4 * MB2 + 3 * K4)[1] == 4 * MB2
    assert e.entry(3 * MB2, 2) == (2, UNASSIGNED, 0, RAM)
    expect_fail(e, "RTT_SET_RIPAS", (e.rd, rec, 4 * MB2, 4 * MB2 + 3 * K4), "no_progress",
                RTT, 2)
    # stops before the TABLE entry at 5 MB, then continues inside that table
    assert e.ok("RTT_SET_RIPAS", e.rd, rec, 4 * MB2, 6 * MB2)[1] == 5 * MB2
    assert e.ok("RTT_SET_RIPAS", e.rd, rec, 5 * MB2, 6 * MB2)[1] == 6 * MB2
    assert e.entry(5 * MB2 + 7 * K4, 3) == (3, UNASSIGNED, 0, RAM)
    assert e.rec_field(rec, "set_ripas_addr") == 6 * MB2
    expect_fail(e, "RTT_SET_RIPAS", (e.rd, rec, 5 * MB2, 6 * MB2), "base_bound", INPUT)


# ------------------------------------------------------------------ DATA_CREATE
@pytest.mark.parametrize("flags", [0, 1])
@pytest.mark.parametrize("prior", ["UNASSIGNED_EMPTY", "UNASSIGNED_RAM", "UNASSIGNED_DESTROYED"])
def test_data_create_success(prior: str, flags: int) -> None:
    e = Env()
    ipa = 0x4000
    _ripas_from(e, prior, ipa)
    l3 = e.table(ipa, 3)
    ref = e.refcount(l3)
    content = bytes(range(256)) * 16
    src = e.ns_page(content)
    data = e.delegated()
    rim = e.rim()
    r = e.ok("DATA_CREATE", e.rd, data, ipa, src, flags)
    # x1..x3 carry no result (zero); x4 is the caller's (src), preserved (TF-RMM saves x4)
    assert r.regs[1:5] == (0, 0, 0, src)
    # RAM whatever the previous RIPAS (§6, §16)
    assert e.entry(ipa, 3) == (3, ASSIGNED, data, RAM)
    assert e.refcount(l3) == ref + 1
    assert e.gstate(data) == G_DATA
    assert e.realm_bytes(data) == content
    assert e.rim() == rim_after_data(rim, ipa, flags, content)
    # the identical call now fails: data is no longer DELEGATED
    expect_fail(e, "DATA_CREATE", (e.rd, data, ipa, src, flags), "data_state", INPUT)
    # ... and with a fresh granule the entry is no longer UNASSIGNED
    expect_fail(e, "DATA_CREATE", (e.rd, e.delegated(), ipa, src, flags), "rtte_state", RTT, 3)


def test_data_create_src_in_secure_pas() -> None:
    """§6 step 10: the src granule is tracked NS but the Secure world took it (FIRME): the
    copy faults, RMM returns INPUT [src_pas], and the data granule stays DELEGATED and zero."""
    e = Env()
    e.table(0, 3)
    secure = e.p.cpus[0].probe(SecurityState.SECURE)
    src = e.ns_page(b"host page")
    assert secure.smc(FIRME_GM_GPI_SET, src, 1, GPI_SECURE)[0] == 0
    secure.write(src, b"secure secret".ljust(GRANULE, b"\0"), Pas.SECURE)
    data = e.delegated()
    rim = e.rim()
    expect_fail(e, "DATA_CREATE", (e.rd, data, 0x3000, src, 1), "src_pas", INPUT)
    assert e.gstate(data) == G_DELEGATED
    assert e.realm_bytes(data) == bytes(GRANULE)
    assert e.entry(0x3000, 3) == (3, UNASSIGNED, 0, EMPTY)
    assert e.rim() == rim
    # give it back to the Normal world: the same call now succeeds
    assert secure.smc(FIRME_GM_GPI_SET, src, 1, GPI_NS)[0] == 0
    e.p.host.write(src, b"host page again")
    e.ok("DATA_CREATE", e.rd, data, 0x3000, src, 1)
    assert e.realm_bytes(data, 15) == b"host page again"


# ------------------------------------------------------------------ DATA_CREATE_UNKNOWN
@pytest.mark.parametrize("active", [False, True])
@pytest.mark.parametrize(("prior", "ripas"), [("UNASSIGNED_EMPTY", EMPTY),
                                              ("UNASSIGNED_RAM", RAM),
                                              ("UNASSIGNED_DESTROYED", DESTROYED)])
def test_data_create_unknown_success(prior: str, ripas: int, active: bool) -> None:
    e = Env()
    ipa = 0x4000
    _ripas_from(e, prior, ipa)
    if active:  # no realm-state check
        e.activate()
    l3 = e.table(ipa, 3)
    ref = e.refcount(l3)
    data = e.delegated()
    rim = e.rim()
    e.ok("DATA_CREATE_UNKNOWN", e.rd, data, ipa)
    assert e.entry(ipa, 3) == (3, ASSIGNED, data, ripas)  # RIPAS kept
    assert e.refcount(l3) == ref + 1
    assert e.gstate(data) == G_DATA
    assert e.realm_bytes(data) == bytes(GRANULE)
    assert e.rim() == rim  # not measured
    expect_fail(e, "DATA_CREATE_UNKNOWN", (e.rd, data, ipa), "data_state", INPUT)
    expect_fail(e, "DATA_CREATE_UNKNOWN", (e.rd, e.delegated(), ipa), "rtte_state", RTT, 3)


# ------------------------------------------------------------------ DATA_DESTROY
@pytest.mark.parametrize(("prior", "after"), [("ASSIGNED_RAM", DESTROYED),
                                              ("ASSIGNED_EMPTY", EMPTY),
                                              ("ASSIGNED_DESTROYED", DESTROYED)])
def test_data_destroy_success(prior: str, after: int) -> None:
    e = Env()
    ipa = 0x4000
    data = _ripas_from(e, prior, ipa)
    e.data(0x9000)
    l3 = e.table(ipa, 3)
    ref = e.refcount(l3)
    e.activate()  # no realm-state check
    e.tlbis.clear()
    r = e.ok("DATA_DESTROY", e.rd, ipa)
    assert (r[1], r[2]) == (data, 0x9000)
    assert e.entry(ipa, 3) == (3, UNASSIGNED, 0, after)
    assert e.refcount(l3) == ref - 1
    assert e.gstate(data) == G_DELEGATED
    if prior == "ASSIGNED_RAM":  # the valid mapping is invalidated
        assert e.tlbi_covers(ipa)
    e.ok("GRANULE_UNDELEGATE", data)
    assert e.p.host.read(data, GRANULE) == bytes(GRANULE)
    r = expect_fail(e, "DATA_DESTROY", (e.rd, ipa), "rtte_state", RTT, 3)
    assert r[2] == 0x9000
    r = e.ok("DATA_DESTROY", e.rd, 0x9000)
    assert r[2] == MB2  # nothing live after it: the end of the table


# ------------------------------------------------------------------ s2sz = 48, start level 0
def test_start_level_0_realm() -> None:
    """One s2sz=48 realm: a single level-0 root table, tables down to level 3, DATA, the PAR
    boundary at 2^47, and RTT_DESTROY of every level back up to the root."""
    e = Env(48)
    assert (e.sl, e.realm.num_start) == (0, 1)
    ipa = (5 << 39) + (3 << 30) + (7 << 21) + (9 << 12)
    assert e.entry(0, 0) == (0, UNASSIGNED, 0, EMPTY)
    assert e.entry(e.par, 0) == (0, UNASSIGNED, 0, EMPTY)
    rtts = {lvl: e.table(ipa, lvl) for lvl in (1, 2, 3)}
    assert e.entry(ipa & ~(SIZE[0] - 1), 0) == (0, TABLE, rtts[1], EMPTY)
    assert e.refcount(e.realm.rtt_base) == 1
    data = e.data(ipa, b"s48")
    assert e.entry(ipa, 3) == (3, ASSIGNED, data, RAM)
    assert e.refcount(rtts[3]) == 1
    # the PAR ends at 2^47
    expect_fail(e, "DATA_CREATE", (e.rd, e.delegated(), e.par, e.ns_page(), 1), "ipa_bound",
                INPUT)
    e.map_ns(e.par + GB, 2, NS_OA | NS_ATTR)
    assert e.entry(e.par + GB, 2) == (2, ASSIGNED, NS_OA | NS_ATTR, EMPTY)
    # tear down
    e.ok("DATA_DESTROY", e.rd, ipa)
    for lvl in (3, 2, 1):
        base = ipa & ~(SIZE[lvl - 1] - 1)
        r = e.ok("RTT_DESTROY", e.rd, base, lvl)
        assert r[1] == rtts[lvl]
        # top: nothing live after it in the parent table, except the unprotected level-1
        # table in the root
        assert r[2] == ((ipa & ~(SIZE[lvl - 2] - 1)) + SIZE[lvl - 2] if lvl > 1 else e.par)
    assert e.entry(ipa, 3) == (0, UNASSIGNED, 0, DESTROYED)
    assert e.refcount(e.realm.rtt_base) == 1  # the unprotected level-1 table remains
