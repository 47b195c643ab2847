"""A hostile host against the RMI: a Hypothesis state machine over RMI 1.0 sequences.

The machine boots ``Platform(PlatformConfig(cpus=2))`` and plays a Normal-world hypervisor
that mixes well-formed realm management (create realms, build RTTs, add DATA and RECs,
activate, enter, tear down) with stale, aliased and garbage arguments: unaligned
addresses, Secure / Root / RMM-carve-out / MMIO addresses, addresses beyond DRAM and
beyond the PA space, ``2**64 - 1``, broken RmiRealmParams / RmiRecParams, bad levels and
IPAs, bad RTT descriptors and bad REC-entry GIC state. Every call goes through
``RmiClient.call`` on ``p.cpus[i].host`` (or the raw SMC for unknown FIDs and the SVE hint).

A reference model written from the spec digest (``shared/spec/rmm-abi.md`` §2-§6, §8, §10) —
not from the implementation — predicts, for every call, the exact x0 (status and index in
TF-RMM check order), the outputs the command defines, and the state change on success:
granule states, the contents of every RTT (as entry kinds), the RIM, the RECs. After every
call these are compared with the platform, together with the invariants:

(a) no Python exception escapes an SMC and x0 is a defined status: SUCCESS, an RMI error
    ``(index << 8) | status`` with status 1..4 (index = level for ERROR_RTT, 0/1 for
    ERROR_REALM from REC_ENTER, 0 otherwise), or SMC_UNKNOWN for unknown FIDs only;
(b) for every tracked pool granule: RMM tracker state != UNDELEGATED <=> GPI Realm (0xB),
    and UNDELEGATED <=> GPI NS (0x9); the GPIs of the garbage addresses never change;
(c) refcounts equal the references that exist: an RD's refcount is the number of RECs whose
    owner it is, an RTT's refcount the number of its 512 entries that are TABLE or ASSIGNED
    (protected) — counted from the RTT contents read through the Realm PAS, walking from
    each realm's root to know every table's level; DATA / REC_AUX / DELEGATED / NS granules
    and idle RECs have no references; every RTT granule is reachable from exactly one root;
(d) pool granules that were delegated and are undelegated again read back as zero from the
    Normal world (until the host writes them);
(e) a realm's RIM changes only on a successful REALM_CREATE, DATA_CREATE, REC_CREATE of a
    runnable REC or RTT_INIT_RIPAS — and then to the value §10 gives;
(f) DELEGATED granules are all zero (read through the Realm PAS); DATA granules hold what
    DATA_CREATE copied (zero for DATA_CREATE_UNKNOWN);
plus: a failed command leaves the granule tracker unchanged; the RMM's VMID set is the set
of VMIDs of live realms; every PE is back in the Normal world at EL2 after each SMC.

REC_ENTER really runs the REC. Realm memory only ever holds zeros and pages of
``UDF #imm16`` (``rmi_spec.udf_page``), so a vCPU can take only undefined-instruction and
abort exceptions: it never loads, stores or calls RSI/PSCI, and leaves the REC, realm and
DATA state alone; each run ends with IRQ (its time slice is over) or with a SYNC
instruction-abort exit.

``CCASIM_LONG=<n>`` scales the run up for fuzzing (n x 200 examples of 100 steps).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from ccasim import GranuleProtectionFault, Platform, PlatformConfig, SecurityState
from ccasim.arch.pe import ProcessingElement
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.host.rmi import FID, RmiClient, RmiResult
from ccasim.rmm import s2tt
from ccasim.rmm.granules import GranuleState
from ccasim.rmm.objects import Realm, Rec
from rmi_spec import (
    ASSIGNED,
    DESC_AF,
    DESC_NS,
    DESC_RAM_ATTRS,
    DESC_SH_IS,
    DESC_XN_10,
    DESTROYED,
    EC_IABT_LOWER,
    EMPTY,
    ENTER_EMUL_MMIO,
    ENTER_INJECT_SEA,
    ENTER_RIPAS_REJECT,
    ENTER_TRAP_WFE,
    ENTER_TRAP_WFI,
    ENTRIES,
    EXIT_IRQ,
    EXIT_SYNC,
    FLAG_LPA2,
    FLAG_PMU,
    FLAG_SVE,
    GPI_NS,
    GPI_REALM,
    GRANULE,
    HOST_ATTR_MASK,
    ICH_HCR_ALLOWED,
    INPUT,
    MASK64,
    MPIDR_VALID,
    NUM_AUX,
    OA_MASK_48,
    RAM,
    REALM,
    REC,
    RMI_V1_0,
    RTT,
    SMC_UNKNOWN,
    SUCCESS,
    SVE_HINT,
    TABLE,
    UNASSIGNED,
    ZERO_PAGE,
    level_shift,
    level_size,
    mpidr_of,
    oa_mask,
    pack_realm_params,
    pack_rec_enter,
    pack_rec_params,
    realm_fields,
    rec_index,
    rim_data,
    rim_init,
    rim_rec,
    rim_ripas,
    root_tables,
    start_level_valid,
    status_code,
    u32,
    u64,
    udf_page,
)

# ------------------------------------------------------------------------------ constants
# FNUMs that are not RMI 1.0 commands: holes in the RMI range, the RMM->EL3 completion
# FID, RSI and RMM<->EL3 FIDs (not callable from the Normal world).
UNKNOWN_FNUMS = (0x156, 0x160, 0x163, 0x16A, 0x18E, 0x18F, 0x190, 0x194, 0x1B0, 0x1B1, 0x1CF)

# Pools of host granules (offsets into ns_dram)
POOL_OFFSET = 0x0200_0000
POOL_SIZE = 40
AUX_OFFSET = POOL_OFFSET + 0x4_0000
AUX_SIZE = 48  # three RECs' worth
BUF_OFFSET = POOL_OFFSET + 0x8_0000
BUF_SIZE = 4

# (s2sz, rtt_level_start) pairs that are valid with PARange = 48 bits and no LPA2, and some
# that are not.
GOOD_GEOMETRIES = ((32, 1), (32, 2), (39, 1), (40, 1), (41, 1), (40, 0), (48, 0))
BAD_GEOMETRIES = ((31, 1), (49, 0), (40, 3), (40, -1), (35, 2), (44, 1), (39, 0))

Entry = tuple[str, int, int]  # (kind, ripas, pa / host bits); kinds U A UNS ANS T
U_EMPTY: Entry = ("U", EMPTY, 0)
U_RAM: Entry = ("U", RAM, 0)
UNS: Entry = ("UNS", 0, 0)
Key = tuple[int, int]  # (level, base IPA) of an RTT


# ------------------------------------------------------------------------------ RTT entries
def entry_of_desc(desc: int, level: int) -> Entry:
    """What an RTT descriptor means (rmm-abi §5.2), in the model's terms; valid descriptors
    (the ones the hardware walker consumes) must also be encoded exactly as §5.2 says."""
    kind = s2tt.classify(desc, level)
    page_or_block = 0b11 if level == 3 else 0b01
    if kind is s2tt.Rtte.TABLE:
        pa = desc & OA_MASK_48
        assert desc == pa | 0b11, f"TABLE descriptor {desc:#x}"
        return ("T", 0, pa)
    if kind is s2tt.Rtte.ASSIGNED_NS:
        bits = desc & (oa_mask(level) | HOST_ATTR_MASK)
        expected = bits | DESC_NS | DESC_XN_10 | DESC_SH_IS | DESC_AF | page_or_block
        assert desc == expected, f"ASSIGNED_NS descriptor {desc:#x} at level {level}"
        return ("ANS", 0, bits)
    if kind is s2tt.Rtte.UNASSIGNED_NS:
        return UNS
    ripas = int(s2tt.ripas_of(kind))
    if kind.is_assigned:
        pa = desc & oa_mask(level)
        if kind is s2tt.Rtte.ASSIGNED_RAM:
            expected = pa | DESC_RAM_ATTRS | page_or_block
            assert desc == expected, f"ASSIGNED_RAM descriptor {desc:#x} at level {level}"
        return ("A", ripas, pa)
    return ("U", ripas, 0)


def entry_view(e: Entry) -> tuple[int, int, int]:
    """(state, x3, ripas) that RMI_RTT_READ_ENTRY reports (rmm-abi §5.2, post-REL0 fix)."""
    kind = e[0]
    if kind == "T":
        return TABLE, e[2], EMPTY
    if kind == "ANS":
        return ASSIGNED, e[2], EMPTY
    if kind == "UNS":
        return UNASSIGNED, 0, EMPTY
    if kind == "A":
        return ASSIGNED, e[2], e[1]
    return UNASSIGNED, 0, e[1]


def is_live(e: Entry) -> bool:
    return e[0] in ("A", "ANS", "T")


def counts_as_ref(e: Entry) -> bool:
    return e[0] in ("A", "T")


def host_desc_valid(desc: int, level: int) -> bool:
    """RMI_RTT_MAP_UNPROTECTED's descriptor check (rmm-abi §5.2)."""
    if desc & ~(oa_mask(level) | HOST_ATTR_MASK):
        return False
    return (desc >> 2) & 0b111 != 0b100


# ------------------------------------------------------------------------------ the model
@dataclass
class RealmModel:
    """What the spec says a realm holds, as the host's reference model keeps it."""

    rd: int
    s2sz: int
    sl: int
    num_start: int
    rtt_base: int
    vmid: int
    algo: int
    rim: bytes
    active: bool = False
    rec_count: int = 0
    recs: list[int] = field(default_factory=list)
    # (level, base IPA) -> entries; the root (sl, 0) has 512 * num_start entries
    tables: dict[Key, list[Entry]] = field(default_factory=dict)
    table_pa: dict[Key, int] = field(default_factory=dict)  # non-root tables

    @property
    def par(self) -> int:
        return 1 << (self.s2sz - 1)

    @property
    def ipa_top(self) -> int:
        return 1 << self.s2sz

    @property
    def root(self) -> Key:
        return (self.sl, 0)

    @property
    def roots(self) -> list[int]:
        return [self.rtt_base + i * GRANULE for i in range(self.num_start)]

    def walk(self, ipa: int, target: int) -> tuple[int, Key, int]:
        """§5.3: descend through TABLE entries only, stopping at ``target`` or early."""
        level, key = self.sl, self.root
        idx = (ipa >> level_shift(level)) & (ENTRIES * self.num_start - 1)
        while True:
            e = self.tables[key][idx]
            if level >= target or e[0] != "T":
                return level, key, idx
            level += 1
            key = (level, ipa & ~(level_size(level - 1) - 1))
            idx = (ipa >> level_shift(level)) & (ENTRIES - 1)

    def top(self, level: int, key: Key, idx: int, ipa: int) -> int:
        """The "top of the non-live range" output (rmm-abi §6 DATA_DESTROY)."""
        size = level_size(level)
        table_base = ipa & ~(size * ENTRIES - 1)
        start = idx - idx % ENTRIES
        entries = self.tables[key]
        for i in range(idx % ENTRIES, ENTRIES):
            if is_live(entries[start + i]):
                return max(ipa, table_base + i * size)
        return table_base + ENTRIES * size

    def refcount(self, key: Key, granule: int = 0) -> int:
        entries = self.tables[key][granule * ENTRIES : (granule + 1) * ENTRIES]
        return sum(1 for e in entries if counts_as_ref(e))

    def root_refcount(self) -> int:
        return sum(self.refcount(self.root, g) for g in range(self.num_start))

    def granule_refcounts(self) -> dict[int, int]:
        out = {pa: self.refcount(self.root, g) for g, pa in enumerate(self.roots)}
        for key, pa in self.table_pa.items():
            out[pa] = self.refcount(key)
        return out

    def entries_with_ipa(self) -> Iterator[tuple[int, int, Entry]]:
        """(level, ipa, entry) of every entry in every table."""
        for (level, base), entries in self.tables.items():
            size = level_size(level)
            for i, e in enumerate(entries):
                yield level, base + i * size, e


@dataclass
class RecModel:
    pa: int
    rd: int
    aux: list[int]
    runnable: bool
    index: int


class Reject(Exception):
    """The model's verdict that a command fails (x0 and any outputs it defines)."""

    def __init__(self, status: int, index: int = 0, outputs: dict[int, int] | None = None):
        super().__init__(status, index)
        self.code = status_code(status, index)
        self.outputs = outputs or {}


def need(
    cond: bool, status: int = INPUT, index: int = 0, outputs: dict[int, int] | None = None
) -> None:
    if not cond:
        raise Reject(status, index, outputs)


@dataclass
class Expect:
    """The model's prediction for a call that succeeds."""

    outputs: dict[int, int] = field(default_factory=dict)
    apply: Callable[[RmiResult], None] | None = None


class HostileHost(RuleBasedStateMachine):
    """The Normal-world hypervisor from hell, with a reference model of the RMM."""

    def __init__(self) -> None:
        super().__init__()
        self.p = Platform(PlatformConfig(cpus=2))
        self.clients = [RmiClient(self.p, cpu.host) for cpu in self.p.cpus]
        ns = self.p.region("ns_dram")
        self.ns_base, self.ns_end = ns.base, ns.base + ns.size
        base = ns.base + POOL_OFFSET
        self.pool = [base + i * GRANULE for i in range(POOL_SIZE)]
        self.aux_pool = [ns.base + AUX_OFFSET + i * GRANULE for i in range(AUX_SIZE)]
        self.bufs = [ns.base + BUF_OFFSET + i * GRANULE for i in range(BUF_SIZE)]
        self.tracked = [*self.pool, *self.aux_pool, *self.bufs, self.ns_end - GRANULE]
        self.tracked_set = frozenset(self.tracked)
        sec, root, rmm = (self.p.region(n).base for n in ("secure_dram", "root", "rmm"))
        uart = self.p.region("uart0").base
        self.garbage = [
            base + 1,
            base + 0x800,
            base + GRANULE - 8,
            0,
            sec,
            sec + GRANULE,
            uart,
            root,
            rmm,
            rmm + 0x10_0000,
            self.ns_end,
            ns.base - GRANULE,
            1 << 40,
            (1 << 48) - GRANULE,
            1 << 48,
            1 << 52,
            MASK64 - GRANULE + 1,
            MASK64,
        ]
        for g in self.garbage:
            assert not self.rmm_tracked(g), hex(g)
        self.gpi_watch = {a: self.p.el3.gpi(a) for a in (0, sec, uart, root, rmm, ns.base)}
        # model state
        self.state: dict[int, GranuleState] = {}
        self.scrubbed: set[int] = set()  # undelegated again and not written since
        self.realms: dict[int, RealmModel] = {}
        self.recs: dict[int, RecModel] = {}
        self.data_content: dict[int, bytes] = {}
        self.vmids: set[int] = set()
        self.calls = 0
        # RMI_FEATURES register 0 (rmm-abi §6): what this platform must advertise
        feat = self.clients[0].call("FEATURES", 0)
        assert feat.ok
        reg = feat[1]
        self.feat_s2sz = reg & 0xFF
        self.feat_lpa2 = (reg >> 8) & 1
        self.feat_sve = (reg >> 9) & 1
        self.feat_sve_vl = (reg >> 10) & 0xF
        self.feat_bps = (reg >> 14) & 0x3F
        self.feat_wps = (reg >> 20) & 0x3F
        self.feat_pmu_ctrs = (reg >> 27) & 0x1F
        self.feat_lrs = ((reg >> 34) & 0xF) + 1
        self.feat_reg0 = reg
        assert self.feat_s2sz == 48 and not self.feat_lpa2 and (reg >> 26) & 1
        assert (reg >> 32) & 0b11 == 0b11 and (reg >> 38) & 0xF == 10
        self.check_all()

    # ------------------------------------------------------------------ model helpers
    def rmm_tracked(self, pa: int) -> bool:
        return pa % GRANULE == 0 and self.ns_base <= pa < self.ns_end

    def state_of(self, pa: int) -> GranuleState:
        return self.state.get(pa, GranuleState.UNDELEGATED)

    def is_state(self, pa: int, state: GranuleState) -> bool:
        return self.rmm_tracked(pa) and self.state_of(pa) == state

    def set_state(self, pa: int, state: GranuleState) -> None:
        assert pa in self.tracked_set, f"{pa:#x} changed state outside the pools"
        self.state[pa] = state

    def ns_readable(self, pa: int) -> bool:
        """An NS buffer pointer the RMM accepts: aligned, tracked, UNDELEGATED (§3.2)."""
        return self.is_state(pa, GranuleState.UNDELEGATED)

    def peek(self, pa: int, size: int = GRANULE) -> bytes:
        return self.p.host.read(pa, size)

    def with_state(self, state: GranuleState, pool: Sequence[int] | None = None) -> list[int]:
        return [
            a for a in (pool if pool is not None else self.tracked) if self.state_of(a) == state
        ]

    def realm(self, rd: int) -> RealmModel:
        need(rd in self.realms)
        return self.realms[rd]

    def lock_two(self, a: int, sa: GranuleState, b: int, sb: GranuleState) -> None:
        """Two external granules locked in PA order: alias or either lookup fails -> INPUT."""
        need(a != b and self.is_state(a, sa) and self.is_state(b, sb))

    def host_write(self, cpu: int, pa: int, image: bytes) -> None:
        """The host writes one of its structures; a granule it gave away must fault."""
        if not self.rmm_tracked(pa):
            return
        gave_away = self.state_of(pa) != GranuleState.UNDELEGATED
        try:
            self.p.cpus[cpu].host.write(pa, image)
        except GranuleProtectionFault:
            assert gave_away, f"host write to its own granule {pa:#x} faulted"
            return
        assert not gave_away, f"host wrote granule {pa:#x} in state {self.state_of(pa).name}"
        self.scrubbed.discard(pa)

    # ------------------------------------------------------------------ the call
    def rmi(self, cpu: int, name: str, *args: int, hint: bool = False) -> RmiResult:
        """One RMI call, checked against the model and followed by every invariant."""
        model = getattr(self, "m_" + name.lower())
        try:
            expect: Expect | Reject = model(*args)
        except Reject as rej:
            expect = rej
        tracker = self.p.rmm.tracker
        before = tracker.nonzero()
        rims_before = self.actual_rims()
        what = f"{name}({', '.join(hex(a) for a in args)}) on cpu{cpu}"
        try:
            if hint:
                port = self.clients[cpu].port
                res = RmiResult(port.smc(FID[name] | SVE_HINT, *args))
            else:
                res = self.clients[cpu].call(name, *args)
        except Exception as exc:  # (a): nothing may escape an SMC
            raise AssertionError(f"{what}: {type(exc).__name__} escaped the SMC: {exc}") from exc
        self.calls += 1
        x0 = res[0]
        self.check_status_defined(name, x0, what)
        if isinstance(expect, Reject):
            assert x0 == expect.code, f"{what}: x0 {x0:#x}, the model says {expect.code:#x}"
            for reg, value in expect.outputs.items():
                assert res[reg] == value, f"{what}: x{reg} {res[reg]:#x}, expected {value:#x}"
            assert tracker.nonzero() == before, f"{what} failed but changed granule states"
        else:
            assert x0 == SUCCESS, f"{what}: x0 {x0:#x}, the model says SUCCESS"
            for reg, value in expect.outputs.items():
                assert res[reg] == value, f"{what}: x{reg} {res[reg]:#x}, expected {value:#x}"
            if expect.apply is not None:
                expect.apply(res)
        self.check_rims(name, args, res, rims_before, what)
        self.check_all()
        return res

    @staticmethod
    def check_status_defined(name: str, x0: int, what: str) -> None:
        """(a): SUCCESS, or (index << 8) | status with status 1..4 and a meaningful index."""
        if x0 == SUCCESS:
            return
        assert x0 != SMC_UNKNOWN, f"{what}: SMC_UNKNOWN for an RMI 1.0 command"
        status, index = x0 & 0xFF, (x0 >> 8) & 0xFF
        assert x0 >> 16 == 0 and 1 <= status <= 4, f"{what}: undefined status {x0:#x}"
        if status == RTT:
            assert index <= 3, f"{what}: ERROR_RTT with level {index}"
        elif status == REALM and name == "REC_ENTER":
            assert index in (0, 1), f"{what}: ERROR_REALM index {index}"
        else:
            assert index == 0, f"{what}: index {index} with status {status}"

    def actual_rims(self) -> dict[int, bytes]:
        tracker = self.p.rmm.tracker
        with self.realm_pe() as pe:
            return {
                pa: Realm.load(pe, pa).rim
                for pa in self.tracked
                if tracker.state(tracker.index(pa)) == GranuleState.RD
            }

    def check_rims(
        self, name: str, args: Sequence[int], res: RmiResult, before: dict[int, bytes], what: str
    ) -> None:
        """(e): a RIM changes only on the four measuring commands, when they succeed."""
        after = self.actual_rims()
        for rd, rim in before.items():
            if rd in after and after[rd] != rim:
                assert res.ok and name in (
                    "DATA_CREATE",
                    "REC_CREATE",
                    "RTT_INIT_RIPAS",
                ), f"{what} changed the RIM of {rd:#x}"
                assert args[0] == rd, f"{what} changed the RIM of another realm {rd:#x}"
                if name == "REC_CREATE":
                    assert self.recs[args[1]].runnable, f"{what}: non-runnable REC measured"

    @contextmanager
    def realm_pe(self) -> Iterator[ProcessingElement]:
        with self.p.cpus[0].probe(SecurityState.REALM)._running() as pe:
            yield pe

    # ------------------------------------------------------------------ invariants
    def check_all(self) -> None:
        p = self.p
        tracker = p.rmm.tracker
        for pe in p.pes:
            assert (pe.el, pe.security_state) == (2, SecurityState.NON_SECURE)
        outside = [
            (hex(pa), s.name, r) for pa, s, r in tracker.nonzero() if pa not in self.tracked_set
        ]
        assert not outside, f"granules outside the pools are tracked: {outside}"
        for addr, gpi in self.gpi_watch.items():
            assert p.el3.gpi(addr) == gpi, f"GPI of {addr:#x} changed"
        expected_ref: dict[int, int] = {}
        for r in self.realms.values():
            expected_ref[r.rd] = len(r.recs)
            expected_ref.update(r.granule_refcounts())
        states: dict[int, GranuleState] = {}
        for pa in self.tracked:
            idx = tracker.index(pa)
            state, ref = tracker.state(idx), tracker.refcount(idx)
            states[pa] = state
            assert state == self.state_of(pa), (
                f"{pa:#x}: tracker {state.name}, model {self.state_of(pa).name}"
            )
            assert ref == expected_ref.get(pa, 0), f"{pa:#x} {state.name}: refcount {ref}"
            gpi = p.el3.gpi(pa)  # (b)
            if state == GranuleState.UNDELEGATED:
                assert gpi == GPI_NS, f"undelegated {pa:#x} has GPI {gpi:#x}"
            else:
                assert gpi == GPI_REALM, f"{state.name} {pa:#x} has GPI {gpi:#x}"
        with self.realm_pe() as pe:
            for pa, state in states.items():
                if state == GranuleState.DELEGATED:  # (f)
                    assert pe.read(pa, GRANULE, Pas.REALM) == ZERO_PAGE, (
                        f"DELEGATED {pa:#x} not zero"
                    )
                elif state == GranuleState.DATA:
                    assert pe.read(pa, GRANULE, Pas.REALM) == self.data_content[pa], (
                        f"DATA {pa:#x} does not hold what DATA_CREATE copied"
                    )
            self.check_recs(pe, states)
            self.check_realms(pe, states)
        for pa, state in states.items():  # (d)
            if state == GranuleState.UNDELEGATED and pa in self.scrubbed:
                assert self.peek(pa) == ZERO_PAGE, f"undelegated {pa:#x} leaks Realm data"
        assert p.rmm.vmids == self.vmids, f"RMM VMIDs {p.rmm.vmids}, model {self.vmids}"

    def check_recs(self, pe: ProcessingElement, states: dict[int, GranuleState]) -> None:
        """(c) for RDs: refcount = number of RECs owned; RECs idle; aux lists consistent."""
        tracker = self.p.rmm.tracker
        owners: Counter[int] = Counter()
        aux_seen: list[int] = []
        for pa, state in states.items():
            if state != GranuleState.REC:
                continue
            rec = Rec.load(pe, pa)
            model = self.recs[pa]
            owners[rec.owner] += 1
            assert rec.owner == model.rd, f"REC {pa:#x} owner {rec.owner:#x}"
            assert rec.aux == model.aux, f"REC {pa:#x} aux list"
            assert rec.runnable == model.runnable and rec.rec_idx == model.index
            aux_seen.extend(rec.aux)
        for pa, state in states.items():
            if state == GranuleState.RD:
                assert tracker.refcount(tracker.index(pa)) == owners[pa], f"RD {pa:#x} refcount"
        assert sorted(aux_seen) == sorted(a for a, s in states.items() if s == GranuleState.REC_AUX)
        assert set(owners) <= {a for a, s in states.items() if s == GranuleState.RD}

    def check_realms(self, pe: ProcessingElement, states: dict[int, GranuleState]) -> None:
        """RDs against the model, and (c) for RTTs from the tables' contents."""
        tracker = self.p.rmm.tracker
        reached: list[int] = []
        data_refs: list[int] = []
        for rd, state in states.items():
            if state != GranuleState.RD:
                continue
            r = self.realms[rd]
            realm = Realm.load(pe, rd)
            got = (
                realm.state.value,
                realm.rec_count,
                realm.vmid,
                realm.s2sz,
                realm.rtt_level_start,
                realm.rtt_num_start,
                realm.rtt_base,
                int(realm.hash_algo),
            )
            want = (
                int(r.active),
                r.rec_count,
                r.vmid,
                r.s2sz,
                r.sl,
                r.num_start,
                r.rtt_base,
                r.algo,
            )
            assert got == want, f"RD {rd:#x}: {got} != {want}"
            assert realm.rim == r.rim, f"RD {rd:#x}: RIM differs from the §10 computation"
            assert realm.measurements[0][len(r.rim) :] == bytes(64 - len(r.rim))
            # walk the real tables from the root(s); levels come from the walk
            todo: list[tuple[int, int, int, Key, int]] = [
                (pa, realm.rtt_level_start, g * ENTRIES * level_size(r.sl), r.root, g)
                for g, pa in enumerate(
                    realm.rtt_base + i * GRANULE for i in range(realm.rtt_num_start)
                )
            ]
            while todo:
                pa, level, base_ipa, key, granule = todo.pop()
                reached.append(pa)
                assert states.get(pa) == GranuleState.RTT, f"table {pa:#x} is not an RTT granule"
                actual = [entry_of_desc(d, level) for d in s2tt.read_table(pe, pa)]
                model = r.tables[key][granule * ENTRIES : (granule + 1) * ENTRIES]
                if actual != model:
                    diff = next(i for i in range(ENTRIES) if actual[i] != model[i])
                    raise AssertionError(
                        f"realm {rd:#x} RTT {pa:#x} level {level} entry {diff}: "
                        f"{actual[diff]} != model {model[diff]}"
                    )
                refs = sum(1 for e in actual if counts_as_ref(e))
                assert tracker.refcount(tracker.index(pa)) == refs, f"RTT {pa:#x} refcount"
                size = level_size(level)
                for i, e in enumerate(actual):
                    ipa = base_ipa + i * size
                    protected = ipa < r.par
                    assert (e[0] in ("U", "A", "T")) if protected else (e[0] in ("UNS", "ANS", "T"))
                    if e[0] == "T":
                        assert level < 3
                        todo.append((e[2], level + 1, ipa, (level + 1, ipa), 0))
                    elif e[0] == "A":
                        data_refs.extend(e[2] + j * GRANULE for j in range(size // GRANULE))
        rtts = sorted(a for a, s in states.items() if s == GranuleState.RTT)
        assert sorted(reached) == rtts, "RTT granules not reachable from exactly one root"
        datas = sorted(a for a, s in states.items() if s == GranuleState.DATA)
        assert sorted(data_refs) == datas, "DATA granules not mapped exactly once"

    # ------------------------------------------------------------------ model: granules
    def m_granule_delegate(self, addr: int) -> Expect:
        need(self.is_state(addr, GranuleState.UNDELEGATED))

        def apply(res: RmiResult) -> None:
            self.set_state(addr, GranuleState.DELEGATED)
            self.scrubbed.add(addr)

        return Expect(apply=apply)

    def m_granule_undelegate(self, addr: int) -> Expect:
        need(self.is_state(addr, GranuleState.DELEGATED))
        return Expect(apply=lambda res: self.set_state(addr, GranuleState.UNDELEGATED))

    # ------------------------------------------------------------------ model: realms
    def m_realm_create(self, rd: int, params: int) -> Expect:
        need(self.ns_readable(params))
        img = self.peek(params)
        flags, s2sz = u64(img, 0), u32(img, 0x8)
        sve_vl, bps, wps, pmu = u32(img, 0x10), u32(img, 0x18), u32(img, 0x20), u32(img, 0x28)
        algo, vmid = img[0x30], int.from_bytes(img[0x800:0x802], "little")
        rtt_base, sl, n = u64(img, 0x808), u64(img, 0x810), u32(img, 0x818)
        sl = sl - (1 << 64) if sl >> 63 else sl
        need(not flags & FLAG_LPA2 or bool(self.feat_lpa2))
        need(32 <= s2sz <= self.feat_s2sz)
        need(1 <= bps <= self.feat_bps)
        need(1 <= wps <= self.feat_wps)
        if flags & FLAG_SVE:
            need(bool(self.feat_sve) and sve_vl <= self.feat_sve_vl)
        if flags & FLAG_PMU:
            need(0 < pmu <= self.feat_pmu_ctrs)
        need(start_level_valid(s2sz, sl))
        need(n == root_tables(s2sz, sl))
        need(algo in (0, 1))
        need(vmid not in self.vmids)
        need(not rtt_base <= rd < rtt_base + n * GRANULE)
        need(rtt_base % (n * GRANULE) == 0)
        need(self.is_state(rd, GranuleState.DELEGATED))
        roots = [rtt_base + i * GRANULE for i in range(n)]
        for pa in roots:
            need(self.is_state(pa, GranuleState.DELEGATED))

        def apply(res: RmiResult) -> None:
            r = RealmModel(rd, s2sz, sl, n, rtt_base, vmid, algo, rim_init(algo, img))
            size = level_size(sl)
            r.tables[r.root] = [U_EMPTY if i * size < r.par else UNS for i in range(ENTRIES * n)]
            self.realms[rd] = r
            self.vmids.add(vmid)
            self.set_state(rd, GranuleState.RD)
            for pa in roots:
                self.set_state(pa, GranuleState.RTT)

        return Expect(apply=apply)

    def m_realm_activate(self, rd: int) -> Expect:
        r = self.realm(rd)
        need(not r.active, REALM)

        def apply(res: RmiResult) -> None:
            r.active = True

        return Expect(apply=apply)

    def m_realm_destroy(self, rd: int) -> Expect:
        r = self.realm(rd)
        need(not r.recs, REALM)
        need(r.root_refcount() == 0, REALM)

        def apply(res: RmiResult) -> None:
            del self.realms[rd]
            self.vmids.discard(r.vmid)
            for pa in (rd, *r.roots):
                self.set_state(pa, GranuleState.DELEGATED)

        return Expect(apply=apply)

    def m_rec_aux_count(self, rd: int) -> Expect:
        self.realm(rd)
        return Expect(outputs={1: NUM_AUX})

    def m_version(self, version: int) -> Expect:
        need(version == RMI_V1_0, outputs={1: RMI_V1_0, 2: RMI_V1_0})
        return Expect(outputs={1: RMI_V1_0, 2: RMI_V1_0})

    def m_features(self, index: int) -> Expect:
        return Expect(outputs={1: self.feat_reg0 if index == 0 else 0})

    # ------------------------------------------------------------------ model: RECs
    def m_rec_create(self, rd: int, rec: int, params: int) -> Expect:
        need(self.ns_readable(params))
        img = self.peek(params)
        flags, mpidr, num_aux = u64(img, 0), u64(img, 0x100), u64(img, 0x800)
        need(num_aux <= NUM_AUX)
        aux = [u64(img, 0x808 + 8 * i) for i in range(num_aux)]
        claimed: set[int] = set()
        for a in aux:  # each aux is claimed in turn, so a duplicate fails
            need(self.is_state(a, GranuleState.DELEGATED) and a not in claimed)
            claimed.add(a)
        need(rec != rd and rec not in claimed)
        self.lock_two(rec, GranuleState.DELEGATED, rd, GranuleState.RD)
        r = self.realms[rd]
        need(not r.active, REALM)
        need(not mpidr & ~MPIDR_VALID and rec_index(mpidr) == r.rec_count)
        need(num_aux == NUM_AUX)

        def apply(res: RmiResult) -> None:
            runnable = bool(flags & 1)
            self.recs[rec] = RecModel(rec, rd, aux, runnable, r.rec_count)
            r.recs.append(rec)
            r.rec_count += 1
            if runnable:
                r.rim = rim_rec(r.algo, r.rim, img)
            self.set_state(rec, GranuleState.REC)
            for a in aux:
                self.set_state(a, GranuleState.REC_AUX)

        return Expect(apply=apply)

    def m_rec_destroy(self, rec: int) -> Expect:
        need(rec in self.recs)
        model = self.recs[rec]

        def apply(res: RmiResult) -> None:
            del self.recs[rec]
            self.realms[model.rd].recs.remove(rec)
            for a in (rec, *model.aux):
                self.set_state(a, GranuleState.DELEGATED)

        return Expect(apply=apply)

    def gic_valid(self, hcr: int, lrs: Sequence[int]) -> bool:
        """§7.3 (the LRs generated here use no priority bits and small vINTIDs)."""
        if hcr & ~ICH_HCR_ALLOWED:
            return False
        seen: set[int] = set()
        for lr in lrs[: self.feat_lrs]:
            if not (lr >> 62) & 0b11:
                continue
            vintid = lr & 0xFFFF_FFFF
            if (lr >> 61) & 1 or (lr >> 32) & 0x1FFF & ~(1 << 9) or vintid in seen:
                return False
            if not (vintid <= 1019 or 8192 <= vintid < 1 << 16):
                return False
            seen.add(vintid)
        return True

    def m_rec_enter(self, rec: int, run: int) -> Expect:
        need(self.ns_readable(run))
        need(rec in self.recs)
        model = self.recs[rec]
        enter = self.peek(run, 0x800)
        need(self.realms[model.rd].active, REALM, 0)
        need(model.runnable, REC)
        lrs = [u64(enter, 0x308 + 8 * i) for i in range(16)]
        need(self.gic_valid(u64(enter, 0x300), lrs), REC)
        flags = u64(enter, 0)
        # the last exit was an IRQ (or none): neither an SEA nor an MMIO emulation is legal
        need(not flags & ENTER_INJECT_SEA, REC)
        need(not flags & ENTER_EMUL_MMIO, REC)

        def apply(res: RmiResult) -> None:
            # Realm memory holds only UDF pages (udf_page) and zeros, so the vCPU can only
            # take undefined-instruction and abort exceptions: it exits with IRQ (its time
            # slice) or SYNC for an instruction abort the host must resolve.
            self.scrubbed.discard(run)
            exit_ = self.peek(run)[0x800:]
            reason, esr = u64(exit_, 0), u64(exit_, 0x100)
            if reason == EXIT_SYNC:
                assert esr >> 26 == EC_IABT_LOWER, f"REC exit: SYNC with ESR {esr:#x}"
            else:
                assert reason == EXIT_IRQ, f"REC exit reason {reason}"
                assert (esr, u64(exit_, 0x108), u64(exit_, 0x110)) == (0, 0, 0)

        return Expect(apply=apply)

    def m_psci_complete(self, calling: int, target: int, status: int) -> Expect:
        # Nothing here ever leaves a PSCI request pending, so every call fails with INPUT
        # (alignment, alias, lookups, "pending" are all INPUT).
        raise Reject(INPUT)

    def m_rtt_set_ripas(self, rd: int, rec: int, base: int, top: int) -> Expect:
        need(top > base)
        need(top % GRANULE == 0)
        self.lock_two(rd, GranuleState.RD, rec, GranuleState.REC)
        need(self.recs[rec].rd == rd, REC)
        # no RIPAS change is ever pending: set_ripas.addr = top = 0 and top > 0 here
        raise Reject(INPUT)

    # ------------------------------------------------------------------ model: RTTs
    def m_rtt_create(self, rd: int, rtt: int, ipa: int, level: int) -> Expect:
        self.lock_two(rtt, GranuleState.DELEGATED, rd, GranuleState.RD)
        r = self.realms[rd]
        need(r.sl + 1 <= level <= 3)
        need(ipa % level_size(level - 1) == 0)
        need(ipa < r.ipa_top)
        lvl, key, idx = r.walk(ipa, level - 1)
        need(lvl == level - 1, RTT, lvl)
        parent = r.tables[key][idx]
        need(parent[0] != "T", RTT, level - 1)

        def apply(res: RmiResult) -> None:
            size = level_size(level)
            kind, ripas, val = parent
            if kind == "A":
                child = [("A", ripas, val + i * size) for i in range(ENTRIES)]
            elif kind == "ANS":
                attrs, oa = val & HOST_ATTR_MASK, val & ~0xFFF
                child = [("ANS", 0, attrs | (oa + i * size)) for i in range(ENTRIES)]
            else:
                child = [parent] * ENTRIES
            r.tables[key][idx] = ("T", 0, rtt)
            r.tables[(level, ipa)] = child
            r.table_pa[(level, ipa)] = rtt
            self.set_state(rtt, GranuleState.RTT)

        return Expect(apply=apply)

    def _table_checks(
        self, rd: int, ipa: int, level: int, outputs: bool
    ) -> tuple[RealmModel, Key, int, int]:
        """RTT_DESTROY / RTT_FOLD up to "the parent entry is a TABLE"."""
        zero = {2: 0} if outputs else None
        need(rd in self.realms, outputs=zero)
        r = self.realms[rd]
        need(r.sl + 1 <= level <= 3, outputs=zero)
        need(ipa % level_size(level - 1) == 0, outputs=zero)
        need(ipa < r.ipa_top, outputs=zero)
        lvl, key, idx = r.walk(ipa, level - 1)
        top = {2: r.top(lvl, key, idx, ipa)} if outputs else None
        need(lvl == level - 1, RTT, lvl, top)
        need(r.tables[key][idx][0] == "T", RTT, level - 1, top)
        child = r.tables[key][idx][2]
        assert r.table_pa[(level, ipa)] == child
        return r, key, idx, child

    def m_rtt_destroy(self, rd: int, ipa: int, level: int) -> Expect:
        r, key, idx, child = self._table_checks(rd, ipa, level, outputs=True)
        need(r.refcount((level, ipa)) == 0, RTT, level)

        def apply(res: RmiResult) -> None:
            r.tables[key][idx] = ("U", DESTROYED, 0) if ipa < r.par else UNS
            del r.tables[(level, ipa)], r.table_pa[(level, ipa)]
            self.set_state(child, GranuleState.DELEGATED)
            assert res[1] == child, f"RTT_DESTROY x1 {res[1]:#x} != {child:#x}"
            lvl, k, i = r.walk(ipa, level - 1)
            assert res[2] == r.top(lvl, k, i, ipa), f"RTT_DESTROY top {res[2]:#x}"

        return Expect(apply=apply)

    def m_rtt_fold(self, rd: int, ipa: int, level: int) -> Expect:
        r, key, idx, child = self._table_checks(rd, ipa, level, outputs=False)
        entries = r.tables[(level, ipa)]
        refs = r.refcount((level, ipa))
        first = entries[0]
        size = level_size(level)
        new: Entry | None = None
        if refs == 0 and first[0] in ("U", "UNS") and all(e == first for e in entries):
            new = first
        elif refs == 0 and all(e[0] == "ANS" for e in entries):
            attrs, base = first[2] & HOST_ATTR_MASK, first[2] & ~0xFFF
            if base % level_size(level - 1) == 0 and all(
                e[2] == attrs | (base + i * size) for i, e in enumerate(entries)
            ):
                need(level >= 2, RTT, level - 1)
                new = ("ANS", 0, first[2])
        elif refs == ENTRIES and all(e[0] == "A" and e[1] == first[1] for e in entries):
            base = first[2]
            if base % level_size(level - 1) == 0 and all(
                e[2] == base + i * size for i, e in enumerate(entries)
            ):
                need(level >= 2, RTT, level - 1)
                new = ("A", first[1], base)
        need(new is not None, RTT, level)
        assert new is not None

        def apply(res: RmiResult) -> None:
            r.tables[key][idx] = new
            del r.tables[(level, ipa)], r.table_pa[(level, ipa)]
            self.set_state(child, GranuleState.DELEGATED)
            assert res[1] == child, f"RTT_FOLD x1 {res[1]:#x} != {child:#x}"

        return Expect(apply=apply)

    def m_rtt_read_entry(self, rd: int, ipa: int, level: int) -> Expect:
        r = self.realm(rd)
        need(r.sl <= level <= 3)
        need(ipa % level_size(level) == 0)
        need(ipa < r.ipa_top)
        lvl, key, idx = r.walk(ipa, level)
        state, x3, ripas = entry_view(r.tables[key][idx])
        return Expect(outputs={1: lvl, 2: state, 3: x3, 4: ripas})

    def m_rtt_map_unprotected(self, rd: int, ipa: int, level: int, desc: int) -> Expect:
        need(1 <= level <= 3)
        r = self.realm(rd)
        need(host_desc_valid(desc, level))
        need(ipa % level_size(level) == 0)
        need(ipa < r.ipa_top)
        need(ipa >= r.par)
        lvl, key, idx = r.walk(ipa, level)
        # TF-RMM: "wi.last_level != level" -> RTT(last_level); the walk never goes above
        # the start level, so a level above it reports the start level.
        need(lvl == level, RTT, lvl)
        need(r.tables[key][idx] == UNS, RTT, level)

        def apply(res: RmiResult) -> None:
            r.tables[key][idx] = ("ANS", 0, desc)

        return Expect(apply=apply)

    def m_rtt_unmap_unprotected(self, rd: int, ipa: int, level: int) -> Expect:
        need(1 <= level <= 3)
        r = self.realm(rd)
        need(ipa % level_size(level) == 0)
        need(ipa < r.ipa_top)
        need(ipa >= r.par)
        lvl, key, idx = r.walk(ipa, level)
        top = {1: r.top(lvl, key, idx, ipa)}
        need(lvl == level and r.tables[key][idx][0] == "ANS", RTT, lvl, top)

        def apply(res: RmiResult) -> None:
            r.tables[key][idx] = UNS
            lvl2, k, i = r.walk(ipa, level)
            assert res[1] == r.top(lvl2, k, i, ipa), f"UNMAP top {res[1]:#x}"

        return Expect(apply=apply)

    def m_rtt_init_ripas(self, rd: int, base: int, top: int) -> Expect:
        need(top > base)
        r = self.realm(rd)
        need(base % GRANULE == 0 and top % GRANULE == 0)
        need(base < r.par and top - GRANULE < r.par)
        need(not r.active, REALM)
        lvl, key, idx = r.walk(base, 3)
        size = level_size(lvl)
        need(base % size == 0, RTT, lvl)
        entries = r.tables[key]
        end = idx - idx % ENTRIES + ENTRIES
        addr, i, rim, changed = base, idx, r.rim, []
        while i < end and addr + size <= top:
            if entries[i] == U_EMPTY:
                changed.append(i)
            elif entries[i] != U_RAM:
                break
            rim = rim_ripas(r.algo, rim, addr, addr + size)  # RAM entries are re-measured
            addr += size
            i += 1
        need(addr > base, RTT, lvl)

        def apply(res: RmiResult) -> None:
            for j in changed:
                entries[j] = U_RAM
            r.rim = rim

        return Expect(outputs={1: addr}, apply=apply)

    # ------------------------------------------------------------------ model: DATA
    def _data_checks(self, rd: int, data: int, ipa: int) -> tuple[RealmModel, Key, int]:
        r = self.realms[rd]
        need(ipa < r.par)
        need(ipa % GRANULE == 0)
        lvl, key, idx = r.walk(ipa, 3)
        need(lvl == 3, RTT, lvl)
        need(r.tables[key][idx][0] == "U", RTT, 3)
        return r, key, idx

    def m_data_create(self, rd: int, data: int, ipa: int, src: int, flags: int) -> Expect:
        need(flags in (0, 1))
        need(self.ns_readable(src))
        self.lock_two(data, GranuleState.DELEGATED, rd, GranuleState.RD)
        need(not self.realms[rd].active, REALM)
        r, key, idx = self._data_checks(rd, data, ipa)
        content = self.peek(src)

        def apply(res: RmiResult) -> None:
            r.tables[key][idx] = ("A", RAM, data)
            r.rim = rim_data(r.algo, r.rim, ipa, flags, content)
            self.data_content[data] = content
            self.set_state(data, GranuleState.DATA)

        return Expect(apply=apply)

    def m_data_create_unknown(self, rd: int, data: int, ipa: int) -> Expect:
        self.lock_two(data, GranuleState.DELEGATED, rd, GranuleState.RD)
        r, key, idx = self._data_checks(rd, data, ipa)
        ripas = r.tables[key][idx][1]

        def apply(res: RmiResult) -> None:
            r.tables[key][idx] = ("A", ripas, data)
            self.data_content[data] = ZERO_PAGE
            self.set_state(data, GranuleState.DATA)

        return Expect(apply=apply)

    def m_data_destroy(self, rd: int, ipa: int) -> Expect:
        need(rd in self.realms, outputs={2: 0})
        r = self.realms[rd]
        need(ipa < r.par and ipa % GRANULE == 0, outputs={2: 0})
        lvl, key, idx = r.walk(ipa, 3)
        top = {2: r.top(lvl, key, idx, ipa)}
        need(lvl == 3, RTT, lvl, top)
        e = r.tables[key][idx]
        need(e[0] == "A", RTT, 3, top)

        def apply(res: RmiResult) -> None:
            r.tables[key][idx] = ("U", EMPTY if e[1] == EMPTY else DESTROYED, 0)
            del self.data_content[e[2]]
            self.set_state(e[2], GranuleState.DELEGATED)
            assert res[1] == e[2], f"DATA_DESTROY x1 {res[1]:#x} != {e[2]:#x}"
            lvl2, k, i = r.walk(ipa, 3)
            assert res[2] == r.top(lvl2, k, i, ipa), f"DATA_DESTROY top {res[2]:#x}"

        return Expect(apply=apply)

    # ------------------------------------------------------------------ drawing arguments
    def pick(self, data: st.DataObject, items: Sequence[int]) -> int:
        return data.draw(st.sampled_from(list(items)))

    def draw_obj(self, data: st.DataObject, preferred: Sequence[int] = ()) -> int:
        """An object address: mostly ``preferred``, else any pool granule, else garbage."""
        k = data.draw(st.integers(0, 15))
        if preferred and k < 10:
            return self.pick(data, sorted(preferred))
        if k < 13:
            return self.pick(data, self.pool)
        if k < 14:
            return self.pick(data, self.tracked)
        return self.pick(data, self.garbage)

    def draw_buf(self, data: st.DataObject) -> int:
        """An NS structure pointer: mostly a host buffer page."""
        k = data.draw(st.integers(0, 15))
        if k < 12:
            return self.pick(data, self.bufs)
        if k < 14:
            return self.pick(data, self.pool)
        return self.pick(data, self.garbage)

    def draw_rd(self, data: st.DataObject) -> tuple[int, RealmModel | None]:
        rd = self.draw_obj(data, sorted(self.realms))
        return rd, self.realms.get(rd)

    def draw_level(self, data: st.DataObject, lo: int, hi: int) -> int:
        if lo <= hi and data.draw(st.integers(0, 7)):
            return data.draw(st.integers(lo, hi))
        return self.pick(data, [0, 1, 2, 3, 4, 5, MASK64, 1 << 63])

    def ipa_anchors(self, r: RealmModel | None) -> list[int]:
        s2sz = r.s2sz if r is not None else 40
        par, top = 1 << (s2sz - 1), 1 << s2sz
        out = {0, 0x1000, 0x2000, 0x3000, 0x1F_F000, 0x20_0000, 0x20_1000, 0x4000_0000}
        out |= {0x4000_1000, par - 0x1000, par - 0x20_0000, par - 0x4000_0000}
        out |= {par, par + 0x1000, par + 0x2000, par + 0x20_0000, par + 0x4000_0000}
        out |= {top - 0x1000, top - 0x20_0000, 1 << 39, par + (1 << 39)}
        return sorted(a for a in out if 0 <= a < top)

    def draw_ipa(self, data: st.DataObject, r: RealmModel | None, align: int = 0) -> int:
        k = data.draw(st.integers(0, 15))
        if r is not None and k < 5:
            known = sorted(
                {ipa for (lvl, ipa), _ in r.table_pa.items()}
                | {ipa for lvl, ipa, e in r.entries_with_ipa() if e[0] in ("A", "ANS")}
            )
            ipa = self.pick(data, known) if known else 0
            ipa += self.pick(data, [0, 0, 0x1000, 0x2000, 0x20_0000])
        elif k < 14:
            ipa = self.pick(data, self.ipa_anchors(r))
        else:
            top = 1 << (r.s2sz if r is not None else 40)
            return self.pick(
                data, [0x800, 0x1001, top, top + 0x1000, 1 << 52, MASK64 - 0xFFF, MASK64]
            )
        if align and data.draw(st.integers(0, 3)):
            ipa &= ~(align - 1)
        return ipa

    def free_granule(self, cpu: int, exclude: Sequence[int] = ()) -> int | None:
        """A DELEGATED pool granule nobody uses (delegating one if needed)."""
        for state in (GranuleState.DELEGATED, GranuleState.UNDELEGATED):
            for a in self.pool:
                if self.state_of(a) == state and a not in exclude:
                    if state == GranuleState.UNDELEGATED:
                        assert self.rmi(cpu, "GRANULE_DELEGATE", a).ok
                    return a
        return None

    def free_buf(self) -> int | None:
        bufs = self.with_state(GranuleState.UNDELEGATED, self.bufs)
        return bufs[0] if bufs else None

    # ------------------------------------------------------------------ rules: a good host
    @rule(cpu=st.integers(0, 1), data=st.data())
    def good_realm(self, cpu: int, data: st.DataObject) -> None:
        """A VMM creates a realm: delegate RD and root RTTs, write params, REALM_CREATE."""
        if len(self.realms) >= 3:
            return
        s2sz, sl = data.draw(st.sampled_from(GOOD_GEOMETRIES))
        n = root_tables(s2sz, sl)
        free = {GranuleState.UNDELEGATED, GranuleState.DELEGATED}
        runs = [
            a
            for a in self.pool
            if a % (n * GRANULE) == 0
            and all(
                a + i * GRANULE in self.pool and self.state_of(a + i * GRANULE) in free
                for i in range(n)
            )
        ]
        vmids = [v for v in range(4) if v not in self.vmids]
        buf = self.free_buf()
        if not runs or not vmids or buf is None:
            return
        rtt_base = self.pick(data, runs)
        roots = [rtt_base + i * GRANULE for i in range(n)]
        rds = [a for a in self.pool if self.state_of(a) in free and a not in roots]
        if not rds:
            return
        rd = self.pick(data, rds)
        for a in (rd, *roots):
            if self.state_of(a) == GranuleState.UNDELEGATED:
                assert self.rmi(cpu, "GRANULE_DELEGATE", a).ok
        fields = realm_fields(
            s2sz=s2sz,
            sl=sl,
            rtt_base=rtt_base,
            vmid=self.pick(data, vmids),
            hash_algo=data.draw(st.integers(0, 1)),
            num_bps=self.feat_bps,
            num_wps=self.feat_wps,
        )
        self.host_write(cpu, buf, pack_realm_params(fields, data.draw(st.binary(max_size=64))))
        assert self.rmi(cpu, "REALM_CREATE", rd, buf).ok

    @initialize(cpu=st.integers(0, 1), data=st.data(), count=st.integers(0, 2))
    def some_realms(self, cpu: int, data: st.DataObject, count: int) -> None:
        """Start most runs with realms to attack."""
        for _ in range(count):
            self.good_realm(cpu, data)
            r = self.draw_realm(data)
            if r is not None and data.draw(st.booleans()):
                self.good_data(cpu, data)

    def draw_realm(self, data: st.DataObject) -> RealmModel | None:
        if not self.realms:
            return None
        return self.realms[self.pick(data, sorted(self.realms))]

    def build_tables(self, cpu: int, r: RealmModel, ipa: int, level: int) -> bool:
        """RTT_CREATE down to a table at ``level`` covering ``ipa``."""
        while True:
            lvl, _key, _idx = r.walk(ipa, level)
            if lvl >= level:
                return True
            rtt = self.free_granule(cpu)
            if rtt is None:
                return False
            base = ipa & ~(level_size(lvl) - 1)
            assert self.rmi(cpu, "RTT_CREATE", r.rd, rtt, base, lvl + 1).ok

    @rule(cpu=st.integers(0, 1), data=st.data())
    def good_tables(self, cpu: int, data: st.DataObject) -> None:
        r = self.draw_realm(data)
        if r is None or r.sl == 3:
            return
        ipa = self.pick(data, self.ipa_anchors(r))
        self.build_tables(cpu, r, ipa, data.draw(st.integers(r.sl + 1, 3)))

    @rule(cpu=st.integers(0, 1), data=st.data())
    def good_ripas(self, cpu: int, data: st.DataObject) -> None:
        """INIT_RIPAS over a range, adding tables where the walk stops too high."""
        r = self.draw_realm(data)
        if r is None or r.active:
            return
        base = self.pick(data, [a for a in self.ipa_anchors(r) if a < r.par])
        top = min(base + self.pick(data, [GRANULE, 2 * GRANULE, 0x20_0000, 0x4000_0000]), r.par)
        addr = base
        for _ in range(4):
            if addr >= top:
                break
            res = self.rmi(cpu, "RTT_INIT_RIPAS", r.rd, addr, top)
            if res.status == RTT and res.index < 3:
                if not self.build_tables(cpu, r, addr, res.index + 1):
                    break
            elif res.ok:
                addr = res[1]
            else:
                break

    @rule(cpu=st.integers(0, 1), data=st.data())
    def good_data(self, cpu: int, data: st.DataObject) -> None:
        r = self.draw_realm(data)
        if r is None:
            return
        ipa = self.pick(data, [a for a in self.ipa_anchors(r) if a < r.par])
        if not self.build_tables(cpu, r, ipa, 3):
            return
        _lvl, key, idx = r.walk(ipa, 3)
        if r.tables[key][idx][0] != "U":
            return
        granule = self.free_granule(cpu)
        if granule is None:
            return
        src = self.free_buf()
        if not r.active and src is not None and data.draw(st.booleans()):
            self.host_write(cpu, src, udf_page(data.draw(st.integers(0, 0xFFFF))))
            measure = data.draw(st.integers(0, 1))
            assert self.rmi(cpu, "DATA_CREATE", r.rd, granule, ipa, src, measure).ok
        else:
            assert self.rmi(cpu, "DATA_CREATE_UNKNOWN", r.rd, granule, ipa).ok

    @rule(cpu=st.integers(0, 1), data=st.data())
    def good_ns_map(self, cpu: int, data: st.DataObject) -> None:
        r = self.draw_realm(data)
        if r is None:
            return
        level = data.draw(st.integers(max(2, r.sl), 3))
        ipa = self.pick(data, [a for a in self.ipa_anchors(r) if a >= r.par])
        ipa &= ~(level_size(level) - 1)
        if not self.build_tables(cpu, r, ipa, level):
            return
        _lvl, key, idx = r.walk(ipa, level)
        if r.tables[key][idx] != UNS:
            return
        oa = self.pick(data, [*self.bufs, self.ns_base, self.ns_base + 0x20_0000])
        desc = (oa & oa_mask(level)) | (0b101 << 2) | (0b11 << 6)
        assert self.rmi(cpu, "RTT_MAP_UNPROTECTED", r.rd, ipa, level, desc).ok

    @rule(cpu=st.integers(0, 1), data=st.data())
    def good_rec(self, cpu: int, data: st.DataObject) -> None:
        r = self.draw_realm(data)
        free = {GranuleState.UNDELEGATED, GranuleState.DELEGATED}
        aux = [a for a in self.aux_pool if self.state_of(a) in free][:NUM_AUX]
        buf = self.free_buf()
        if r is None or r.active or len(aux) < NUM_AUX or buf is None:
            return
        for a in aux:
            if self.state_of(a) == GranuleState.UNDELEGATED:
                assert self.rmi(cpu, "GRANULE_DELEGATE", a).ok
        rec = self.free_granule(cpu)
        if rec is None:
            return
        params = pack_rec_params(
            flags=int(data.draw(st.booleans())),
            mpidr=mpidr_of(r.rec_count),
            pc=data.draw(st.sampled_from([0, 0x1000, 0x8000_0000])),
            gprs=data.draw(st.lists(st.integers(0, MASK64), max_size=8)),
            num_aux=NUM_AUX,
            aux=aux,
        )
        self.host_write(cpu, buf, params)
        assert self.rmi(cpu, "REC_CREATE", r.rd, rec, buf).ok

    @rule(cpu=st.integers(0, 1), data=st.data())
    def good_enter(self, cpu: int, data: st.DataObject) -> None:
        if not any(m.runnable for m in self.recs.values()):
            self.good_rec(cpu, data)
        runnable = sorted(pa for pa, m in self.recs.items() if m.runnable)
        run = self.free_buf()
        if not runnable or run is None:
            return
        rec = self.pick(data, runnable)
        r = self.realms[self.recs[rec].rd]
        if not r.active:
            assert self.rmi(cpu, "REALM_ACTIVATE", r.rd).ok
        self.host_write(cpu, run, pack_rec_enter(0, 0, []))
        assert self.rmi(cpu, "REC_ENTER", rec, run).ok

    @rule(cpu=st.integers(0, 1), data=st.data())
    def good_teardown(self, cpu: int, data: st.DataObject) -> None:
        """Destroy everything of one realm in the order the spec allows, then the realm."""
        r = self.draw_realm(data)
        if r is None:
            return
        for rec in list(r.recs):
            assert self.rmi(cpu, "REC_DESTROY", rec).ok
        for level, ipa, e in list(r.entries_with_ipa()):
            if e[0] == "A":
                assert level == 3
                assert self.rmi(cpu, "DATA_DESTROY", r.rd, ipa).ok
        for level, ipa in sorted(r.table_pa, reverse=True):
            assert self.rmi(cpu, "RTT_DESTROY", r.rd, ipa, level).ok
        assert self.rmi(cpu, "REALM_DESTROY", r.rd).ok

    @rule(cpu=st.integers(0, 1))
    def undelegate_all(self, cpu: int) -> None:
        for a in self.with_state(GranuleState.DELEGATED):
            assert self.rmi(cpu, "GRANULE_UNDELEGATE", a).ok

    @rule(cpu=st.integers(0, 1), data=st.data())
    def scribble(self, cpu: int, data: st.DataObject) -> None:
        """The host fills one of its granules with junk (delegation must scrub it)."""
        free = self.with_state(GranuleState.UNDELEGATED, self.pool)
        if free:
            self.host_write(cpu, self.pick(data, free), bytes([0xA5]) * GRANULE)

    # ------------------------------------------------------------------ rules: hostile
    @rule(cpu=st.integers(0, 1), data=st.data(), hint=st.booleans())
    def granule(self, cpu: int, data: st.DataObject, hint: bool) -> None:
        if data.draw(st.booleans()):
            addr = self.draw_obj(data, self.with_state(GranuleState.UNDELEGATED))
            self.rmi(cpu, "GRANULE_DELEGATE", addr, hint=hint)
        else:
            addr = self.draw_obj(data, self.with_state(GranuleState.DELEGATED))
            self.rmi(cpu, "GRANULE_UNDELEGATE", addr, hint=hint)

    @rule(cpu=st.integers(0, 1), data=st.data())
    def realm_create(self, cpu: int, data: st.DataObject) -> None:
        s2sz, sl = data.draw(st.sampled_from(GOOD_GEOMETRIES + BAD_GEOMETRIES))
        n = root_tables(s2sz, sl) if 0 <= sl <= 3 else 1
        delegated = self.with_state(GranuleState.DELEGATED)
        runs = [
            a
            for a in delegated
            if a % (n * GRANULE) == 0 and all(a + i * GRANULE in delegated for i in range(n))
        ]
        fields = realm_fields(
            s2sz=s2sz,
            sl=sl,
            rtt_base=self.draw_obj(data, runs),
            vmid=data.draw(st.integers(0, 3)),
            hash_algo=data.draw(st.integers(0, 1)),
            num_bps=self.feat_bps,
            num_wps=self.feat_wps,
        )
        fields["rtt_num_start"] = n
        rd = self.draw_obj(
            data,
            [
                a
                for a in delegated
                if not fields["rtt_base"] <= a < fields["rtt_base"] + n * GRANULE
            ],
        )
        mutation = data.draw(
            st.sampled_from(
                [
                    "",
                    "",
                    "",
                    "lpa2",
                    "sve",
                    "pmu",
                    "pmu1",
                    "bps0",
                    "bps+",
                    "wps0",
                    "wps+",
                    "hash2",
                    "hash255",
                    "s2sz31",
                    "s2sz49",
                    "s2sz_hi",
                    "num+1",
                    "num0",
                    "sl-1",
                    "sl+1",
                    "sl_big",
                    "rtt+1",
                    "rd_alias",
                    "flags8",
                ]
            )
        )
        f = fields
        match mutation:
            case "lpa2" | "sve" | "pmu":
                f["flags"] = {"lpa2": FLAG_LPA2, "sve": FLAG_SVE, "pmu": FLAG_PMU}[mutation]
            case "pmu1":
                f["flags"], f["pmu_num_ctrs"] = FLAG_PMU, 1
            case "bps0" | "wps0":
                f["num_" + mutation[:3]] = 0
            case "bps+" | "wps+":
                f["num_" + mutation[:3]] += 1
            case "hash2" | "hash255":
                f["hash_algo"] = int(mutation[4:])
            case "s2sz31" | "s2sz49":
                f["s2sz"] = int(mutation[4:])
            case "s2sz_hi":
                f["s2sz"] |= 0x100  # a stray byte at 0x009
            case "num+1":
                f["rtt_num_start"] += 1
            case "num0":
                f["rtt_num_start"] = 0
            case "sl-1" | "sl+1":
                f["rtt_level_start"] += 1 if mutation == "sl+1" else -1
            case "sl_big":
                f["rtt_level_start"] = 1 << 63
            case "rtt+1":
                f["rtt_base"] += GRANULE
            case "rd_alias":
                rd = f["rtt_base"] + GRANULE * data.draw(st.integers(0, n - 1))
            case "flags8":
                f["flags"] = 8  # not an RMI 1.0 flag
        buf = self.draw_buf(data)
        self.host_write(cpu, buf, pack_realm_params(f))
        self.rmi(cpu, "REALM_CREATE", rd, buf)

    @rule(cpu=st.integers(0, 1), data=st.data(), hint=st.booleans())
    def realm_simple(self, cpu: int, data: st.DataObject, hint: bool) -> None:
        name = data.draw(
            st.sampled_from(["REALM_ACTIVATE", "REALM_DESTROY", "REC_AUX_COUNT", "REC_DESTROY"])
        )
        arg = self.draw_obj(
            data, sorted(self.recs) if name == "REC_DESTROY" else sorted(self.realms)
        )
        self.rmi(cpu, name, arg, hint=hint)

    @rule(cpu=st.integers(0, 1), data=st.data(), hint=st.booleans())
    def system(self, cpu: int, data: st.DataObject, hint: bool) -> None:
        if data.draw(st.booleans()):
            v = self.pick(data, [RMI_V1_0, 0x1_0001, 0x2_0000, 0x0, MASK64])
            self.rmi(cpu, "VERSION", v, hint=hint)
        else:
            self.rmi(cpu, "FEATURES", self.pick(data, [0, 0, 1, 2, MASK64]), hint=hint)

    @rule(
        cpu=st.integers(0, 1),
        fnum=st.sampled_from(UNKNOWN_FNUMS),
        hint=st.booleans(),
        args=st.lists(st.integers(0, MASK64), max_size=5),
    )
    def unknown_fid(self, cpu: int, fnum: int, hint: bool, args: list[int]) -> None:
        """(a): SMC_UNKNOWN, and only for FIDs that are not RMI 1.0 commands."""
        before = self.p.rmm.tracker.nonzero()
        fid = 0xC400_0000 | fnum | (SVE_HINT if hint else 0)
        x = self.p.cpus[cpu].host.smc(fid, *args)
        assert x[0] == SMC_UNKNOWN, f"FID {fid:#x}: x0 {x[0]:#x}"
        assert self.p.rmm.tracker.nonzero() == before
        self.check_all()

    @rule(cpu=st.integers(0, 1), data=st.data())
    def rec_create(self, cpu: int, data: st.DataObject) -> None:
        rd, r = self.draw_rd(data)
        aux = self.with_state(GranuleState.DELEGATED, self.aux_pool)[:NUM_AUX]
        aux += self.with_state(GranuleState.DELEGATED, self.pool)[: NUM_AUX - len(aux)]
        rec = self.draw_obj(
            data, [a for a in self.with_state(GranuleState.DELEGATED) if a not in aux]
        )
        num_aux = len(aux)
        mutation = data.draw(
            st.sampled_from(
                ["", "", "", "drop", "extra", "zero", "dup", "garbage", "rd", "rec", "huge"]
            )
        )
        k = data.draw(st.integers(0, NUM_AUX - 1))
        match mutation:
            case "drop":
                aux, num_aux = aux[:-1], num_aux - 1
            case "extra":
                num_aux = NUM_AUX + 1
            case "zero":
                num_aux = 0
            case "dup" if len(aux) > 1:
                aux[k % len(aux)] = aux[(k + 1) % len(aux)]
            case "garbage" if aux:
                aux[k % len(aux)] = self.pick(data, self.garbage)
            case "rd" if aux:
                aux[k % len(aux)] = rd
            case "rec" if aux:
                aux[k % len(aux)] = rec
            case "huge":
                num_aux = MASK64
        index = r.rec_count if r is not None else 0
        mpidr = self.pick(
            data,
            [mpidr_of(index)] * 3
            + [mpidr_of(index + 1), 1 << 4, 1 << 32, mpidr_of(max(index - 1, 0)) | 1 << 31],
        )
        params = pack_rec_params(
            flags=self.pick(data, [0, 1, 1, 3]),
            mpidr=mpidr,
            pc=self.pick(data, [0, 0x4000, MASK64]),
            gprs=data.draw(st.lists(st.integers(0, MASK64), max_size=8)),
            num_aux=num_aux,
            aux=aux,
        )
        buf = self.draw_buf(data)
        self.host_write(cpu, buf, params)
        self.rmi(cpu, "REC_CREATE", rd, rec, buf)

    @rule(cpu=st.integers(0, 1), data=st.data())
    def rec_enter(self, cpu: int, data: st.DataObject) -> None:
        rec = self.draw_obj(data, sorted(self.recs))
        run = self.draw_buf(data)
        flags = self.pick(
            data,
            [
                0,
                0,
                0,
                ENTER_TRAP_WFI,
                ENTER_TRAP_WFE,
                ENTER_RIPAS_REJECT,
                ENTER_EMUL_MMIO,
                ENTER_INJECT_SEA,
                ENTER_EMUL_MMIO | ENTER_INJECT_SEA,
            ],
        )
        hcr = self.pick(data, [0, 0, 1 << 1, 1 << 14, 1 << 0, 1 << 8, 1 << 31])
        pending = 1 << 62
        lrs = data.draw(
            st.sampled_from(
                [
                    [],
                    [pending | 32],
                    [pending | 32, pending | (1 << 60) | 33],
                    [pending | 1 << 61 | 32],  # HW
                    [pending | 32, pending | 32],  # duplicate vINTID
                    [pending | 1020],  # special INTID
                    [pending | 1 << 32 | 32],  # pINTID bits
                    [pending | 1 << 41 | 40],  # EOI is allowed
                    [0] * 15 + [pending | 1 << 61],  # beyond the implemented LRs
                ]
            )
        )
        self.host_write(cpu, run, pack_rec_enter(flags, hcr, lrs))
        self.rmi(cpu, "REC_ENTER", rec, run)

    @rule(cpu=st.integers(0, 1), data=st.data())
    def rtt_create(self, cpu: int, data: st.DataObject) -> None:
        rd, r = self.draw_rd(data)
        rtt = self.draw_obj(data, self.with_state(GranuleState.DELEGATED))
        sl = r.sl if r is not None else 1
        level = self.draw_level(data, sl + 1, 3)
        align = level_size(level - 1) if 1 <= level <= 4 else 0
        self.rmi(cpu, "RTT_CREATE", rd, rtt, self.draw_ipa(data, r, align), level)

    @rule(cpu=st.integers(0, 1), data=st.data(), fold=st.booleans())
    def rtt_destroy_fold(self, cpu: int, data: st.DataObject, fold: bool) -> None:
        rd, r = self.draw_rd(data)
        if r is not None and r.table_pa and data.draw(st.integers(0, 3)):
            level, ipa = data.draw(st.sampled_from(sorted(r.table_pa)))
        else:
            level = self.draw_level(data, (r.sl if r else 1) + 1, 3)
            align = level_size(level - 1) if 1 <= level <= 4 else 0
            ipa = self.draw_ipa(data, r, align)
        self.rmi(cpu, "RTT_FOLD" if fold else "RTT_DESTROY", rd, ipa, level)

    @rule(cpu=st.integers(0, 1), data=st.data(), hint=st.booleans())
    def rtt_read_entry(self, cpu: int, data: st.DataObject, hint: bool) -> None:
        rd, r = self.draw_rd(data)
        level = self.draw_level(data, r.sl if r else 1, 3)
        align = level_size(level) if 0 <= level <= 3 else 0
        self.rmi(cpu, "RTT_READ_ENTRY", rd, self.draw_ipa(data, r, align), level, hint=hint)

    @rule(cpu=st.integers(0, 1), data=st.data())
    def rtt_map_unprotected(self, cpu: int, data: st.DataObject) -> None:
        rd, r = self.draw_rd(data)
        level = self.draw_level(data, 1, 3)
        size = level_size(level) if 0 <= level <= 3 else GRANULE
        ipa = self.draw_ipa(data, r, size)
        if r is not None and data.draw(st.booleans()):
            ipa = (ipa | r.par) & (r.ipa_top - 1) & ~(size - 1)
        oa = self.pick(data, [*self.bufs, *self.pool[:2], self.ns_base, 0x4000_0000, 1 << 47])
        desc = (
            (oa & ~(size - 1))
            | data.draw(st.integers(0, 7)) << 2
            | data.draw(st.integers(0, 3)) << 6
        )
        desc |= self.pick(
            data, [0] * 6 + [1, 0b11, 1 << 5, DESC_AF, DESC_SH_IS, DESC_NS, 1 << 48, 0x800]
        )
        self.rmi(cpu, "RTT_MAP_UNPROTECTED", rd, ipa, level, desc)

    @rule(cpu=st.integers(0, 1), data=st.data())
    def rtt_unmap_unprotected(self, cpu: int, data: st.DataObject) -> None:
        rd, r = self.draw_rd(data)
        mapped = [(lvl, ipa) for lvl, ipa, e in r.entries_with_ipa() if e[0] == "ANS"] if r else []
        if mapped and data.draw(st.integers(0, 2)):
            level, ipa = data.draw(st.sampled_from(sorted(mapped)))
            level = self.pick(data, [level] * 4 + [level - 1, level + 1])
        else:
            level = self.draw_level(data, 1, 3)
            ipa = self.draw_ipa(data, r, level_size(level) if 0 <= level <= 3 else 0)
        self.rmi(cpu, "RTT_UNMAP_UNPROTECTED", rd, ipa, level)

    @rule(cpu=st.integers(0, 1), data=st.data())
    def rtt_init_ripas(self, cpu: int, data: st.DataObject) -> None:
        rd, r = self.draw_rd(data)
        base = self.draw_ipa(data, r, GRANULE)
        delta = self.pick(
            data, [GRANULE, 2 * GRANULE, 3 * GRANULE, 0x20_0000, 0x4000_0000, 0, -GRANULE, 0x800]
        )
        self.rmi(cpu, "RTT_INIT_RIPAS", rd, base, (base + delta) & MASK64)

    @rule(cpu=st.integers(0, 1), data=st.data())
    def pending_only(self, cpu: int, data: st.DataObject) -> None:
        """RTT_SET_RIPAS and PSCI_COMPLETE need a request from the realm: none exists."""
        rec = self.draw_obj(data, sorted(self.recs))
        if data.draw(st.booleans()):
            rd, r = self.draw_rd(data)
            base = self.draw_ipa(data, r, GRANULE)
            top = (base + self.pick(data, [GRANULE, 0, 0x800])) & MASK64
            self.rmi(cpu, "RTT_SET_RIPAS", rd, rec, base, top)
        else:
            target = self.draw_obj(data, sorted(self.recs))
            status = self.pick(data, [0, -3 & MASK64, 1])
            self.rmi(cpu, "PSCI_COMPLETE", rec, target, status)

    @rule(cpu=st.integers(0, 1), data=st.data())
    def data_create(self, cpu: int, data: st.DataObject) -> None:
        rd, r = self.draw_rd(data)
        granule = self.draw_obj(data, self.with_state(GranuleState.DELEGATED))
        ipa = self.draw_ipa(data, r, GRANULE)
        if data.draw(st.booleans()):
            src = self.draw_buf(data)
            self.host_write(cpu, src, udf_page(data.draw(st.integers(0, 0xFFFF))))
            flags = self.pick(data, [0, 1, 0, 1, 2, MASK64])
            self.rmi(cpu, "DATA_CREATE", rd, granule, ipa, src, flags)
        else:
            self.rmi(cpu, "DATA_CREATE_UNKNOWN", rd, granule, ipa)

    @rule(cpu=st.integers(0, 1), data=st.data())
    def data_destroy(self, cpu: int, data: st.DataObject) -> None:
        rd, r = self.draw_rd(data)
        assigned = [ipa for _, ipa, e in r.entries_with_ipa() if e[0] == "A"] if r else []
        if assigned and data.draw(st.integers(0, 2)):
            ipa = self.pick(data, sorted(assigned))
        else:
            ipa = self.draw_ipa(data, r, GRANULE)
        self.rmi(cpu, "DATA_DESTROY", rd, ipa)


_LONG = int(os.environ.get("CCASIM_LONG", "0") or 0)

TestHostileHost = HostileHost.TestCase
TestHostileHost.settings = settings(
    max_examples=200 * _LONG if _LONG else 30,
    stateful_step_count=100 if _LONG else 50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_map_unprotected_above_start_level() -> None:
    """RMI_RTT_MAP_UNPROTECTED at a level above the realm's start level (here level 1 in a
    realm whose RTTs start at level 2) has no table to write into. TF-RMM checks
    ``wi.last_level != level`` and returns RMI_ERROR_RTT with the level the walk reached (2);
    the walk itself asserts ``level >= start_level``. (ccasim used to check
    ``w.level < level``, succeed, and write a 1 GB descriptor into a 2 MB slot of the
    level-2 table.)"""
    p = Platform(PlatformConfig(cpus=1))
    c = RmiClient(p)
    base = p.region("ns_dram").base + POOL_OFFSET
    rd, roots, params = base, base + 4 * GRANULE, base + 8 * GRANULE  # roots 4-aligned
    for a in (rd, *(roots + i * GRANULE for i in range(4))):
        assert c.delegate(a).ok
    p.host.write(params, pack_realm_params(realm_fields(s2sz=32, sl=2, rtt_base=roots, vmid=1)))
    assert c.call("REALM_CREATE", rd, params).ok
    ipa = 1 << 31  # the first unprotected IPA, 1 GB aligned
    res = c.call("RTT_MAP_UNPROTECTED", rd, ipa, 1, p.region("ns_dram").base)
    assert res[0] == status_code(RTT, 2), hex(res[0])



def test_rmi_preserves_x4_to_x7() -> None:
    """SMCCC 1.2: registers that carry no result are preserved. On the RMI return path TF-A
    (``rmmd_smc_forward``) writes only x0..x4 back into the Normal world's context, and
    TF-RMM's ``rmm_handler`` saves x4 and hands it back unless the command outputs it (in
    1.0 only RMI_RTT_READ_ENTRY does). TFTF's RMI wrapper checks exactly this."""
    p = Platform(PlatformConfig(cpus=1))
    regs = [0x4444, 0x5555, 0x6666, 0x7777]
    x = p.host.smc(FID["VERSION"], RMI_V1_0, 0x2222, 0x3333, *regs)
    assert x[:3] == (SUCCESS, RMI_V1_0, RMI_V1_0)
    assert list(x[4:8]) == regs, [hex(v) for v in x]
    x = p.host.smc(FID["REC_AUX_COUNT"], 0x1000, 0x2222, 0x3333, *regs)  # not an RD
    assert x[0] == INPUT
    assert list(x[4:8]) == regs, [hex(v) for v in x]
