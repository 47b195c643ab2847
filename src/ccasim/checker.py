"""The invariant checker: what the architecture promises, verified while the model runs.

``Platform(config, check_invariants=True)`` (``--check`` on ``ccasim demo`` and ``ccasim
run``) attaches an :class:`InvariantChecker`. It verifies the invariants below after every
SMC that EL3 handles (the outermost one: nested RMM -> EL3 calls inside an RMI command are
part of that command), at every REC exit, and after every GPT transition made outside an
SMC, and raises :class:`InvariantViolation` with a precise report at the first violation.

Invariants (the names used in :class:`Violation`):

``gpi_state``
    Every RMM-tracked granule's state agrees with its GPI: not UNDELEGATED ⇔ GPI Realm (an
    UNDELEGATED granule is Non-secure, or Secure when the SPMC owns it).
``secure_owner``
    The Secure granules of the delegable (RMM-tracked) DRAM are exactly those the SPMC owns,
    and every granule the SPMC claims is Secure. Checked only when the platform has an
    ``spmc`` attribute: an object with ``owned_granules() -> set[int]`` returning the
    granule-aligned PAs it currently holds in the Secure PAS (granules of the static Secure
    carve-out may be included or not; the reverse direction is only checked inside the
    tracked DRAM).
``refcount``
    Reference counts equal the references that exist: an RD counts its RECs, an RTT its
    TABLE and protected ASSIGNED entries (rmm-abi §3.1), a REC is 1 while it runs and 0
    otherwise, every other granule 0.
``rtt_output``
    Every RTT entry's output address is a granule of that realm in the right state: the
    starting-level tables and every TABLE entry's target are RTT granules, every granule
    under a protected ASSIGNED entry (page or block) is DATA. (ASSIGNED_NS entries map
    host memory the GPC protects at access time; their addresses are not constrained.)
``delegated_zero``
    DELEGATED granules are all zero.
``no_sharing``
    No two realms share a DATA, RTT, REC, REC_AUX or RD granule, and no realm maps one
    DATA granule or links one RTT twice.
``ownership``
    Every DATA, RTT, REC and REC_AUX granule belongs to a live realm (mapped by its RTTs or
    listed by one of its RECs), and every REC's owner is an RD.
``cached_translation``
    Every cached translation agrees with the current tables: each entry of each PE's GPT
    cache (``gpc._cache``) equals an uncached walk (``gpc.lookup``). The execution
    engines' TLBs live inside Unicorn and cannot be listed, so for them the checker verifies
    the stage-2 context instead: an engine's VTTBR/VTCR (``engine.stage2``) must describe
    the realm that owns its VMID (RTT base, IPA width, start level, number of start
    tables), and at a REC exit it must be the context of the realm that just ran. An
    engine whose VMID no longer names a live realm is dormant (RMI_REALM_DESTROY flushed
    its TLB; the next run reprograms it) and is not compared, even if the VMID is reused.

Cost. The default (incremental) mode checks the granules the checker knows to be live (the
RMM tracks them as not UNDELEGATED, or their GPI is not Non-secure) plus those a GPT
transition touched since the last check, walks the RTTs of every live realm, and compares
only the GPT-cache entries that are new or changed since the last check or belong to a
touched granule. A correct model changes granule state only through these paths; a fault
injected behind the model's back (a tracker word, a GPT descriptor or a cache entry written
directly) is found by the full mode (``full=True``), which scans the whole tracking array
and the GPT over the tracked DRAM and compares every cached GPT entry — meant for tests.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .arch.gpt import (
    L0_TABLE_ADDR_MASK,
    L0_TYPE_BLOCK,
    L0_TYPE_TABLE,
    L1_CONTIG_TYPE,
    Gpi,
    l1_uniform,
)
from .arch.memory import GRANULE_SIZE
from .rmm import s2tt
from .rmm.granules import GranuleState
from .rmm.objects import NUM_REC_AUX, RD_LAYOUT, REC_LAYOUT
from .rmm.s2tt import Rtte
from .trace import fid_name

if TYPE_CHECKING:
    from .arch.pe import ProcessingElement
    from .platform import Platform
    from .rmm.objects import Realm, Rec

INVARIANTS: dict[str, str] = {
    "gpi_state": "a tracked granule is not UNDELEGATED exactly when its GPI is Realm",
    "secure_owner": "the Secure granules are exactly those the SPMC owns",
    "refcount": "reference counts equal the references that exist",
    "rtt_output": "every RTT entry's output address is a granule of the realm in the right "
                  "state",
    "delegated_zero": "DELEGATED granules are all zero",
    "no_sharing": "no two realms share a DATA, RTT, REC, REC_AUX or RD granule",
    "ownership": "every DATA, RTT, REC and REC_AUX granule belongs to a live realm",
    "cached_translation": "every cached translation agrees with the current tables",
}

_ZERO = bytes(GRANULE_SIZE)
_TABLE = struct.Struct(f"<{s2tt.ENTRIES}Q")
_LIVE_BITS = s2tt.DESC_VALID | s2tt.HIPAS_MASK  # valid, or HIPAS ASSIGNED
_NS = int(Gpi.NON_SECURE)
_REALM = int(Gpi.REALM)
_SECURE = int(Gpi.SECURE)
_STATES = {int(s): s for s in GranuleState}
_REC_OWNER = REC_LAYOUT.fields["owner"]
_REC_NUM_AUX = REC_LAYOUT.fields["num_aux"]
_REC_AUX = REC_LAYOUT.fields["aux"]


class SpmcOwnership(Protocol):
    """What the checker needs from ``platform.spmc`` (the Secure world), if it exists."""

    def owned_granules(self) -> set[int]: ...


@dataclass(frozen=True)
class Violation:
    """One broken invariant: its name (a key of :data:`INVARIANTS`), the granule or PA
    concerned (None when the violation is not about one address) and what was found."""

    invariant: str
    pa: int | None
    details: str

    def __str__(self) -> str:
        where = f" at {self.pa:#x}" if self.pa is not None else ""
        return f"[{self.invariant}]{where}: {self.details}"


class InvariantViolation(Exception):
    """Raised by an attached checker at the first check that finds a violation."""

    def __init__(self, violations: list[Violation], when: str) -> None:
        self.violations = list(violations)
        self.when = when
        first = self.violations[0]
        more = len(self.violations) - 1
        others = ", ".join(sorted({v.invariant for v in self.violations[1:]}))
        tail = f" (and {more} more: {others})" if more else ""
        super().__init__(f"invariant {first.invariant} violated after {when}: {first}{tail}")

    @property
    def invariants(self) -> set[str]:
        return {v.invariant for v in self.violations}


@dataclass
class _Owner:
    rd: int
    what: str
    where: str


@dataclass
class _Pass:
    """The working state of one check."""

    checker: InvariantChecker
    full: bool
    running_rec: int | None
    running_pe: int | None
    violations: list[Violation] = field(default_factory=list)
    states: dict[int, tuple[int, int]] = field(default_factory=dict)  # pa -> (state, ref)
    gpis: dict[int, int | None] = field(default_factory=dict)
    owners: dict[int, _Owner] = field(default_factory=dict)
    rtt_refs: dict[int, int] = field(default_factory=dict)
    rd_recs: dict[int, int] = field(default_factory=dict)
    realms: dict[int, dict[str, int | bytes]] = field(default_factory=dict)

    # ------------------------------------------------------------------ helpers
    def fail(self, invariant: str, pa: int | None, details: str) -> None:
        if len(self.violations) < self.checker.limit:
            self.violations.append(Violation(invariant, pa, details))

    def state(self, pa: int) -> tuple[int, int] | None:
        """(raw state, refcount) of a tracked granule, None if ``pa`` is not tracked."""
        known = self.states.get(pa)
        if known is not None:
            return known
        tracker = self.checker.platform.rmm.tracker
        idx = tracker.index(pa)
        if idx is None:
            return None
        known = self.states[pa] = (tracker.raw_state(idx), tracker.refcount(idx))
        return known

    def state_name(self, pa: int) -> str:
        st = self.state(pa)
        if st is None:
            return "untracked"
        s = _STATES.get(st[0])
        return s.name if s is not None else f"invalid state {st[0]}"

    def gpi(self, pa: int) -> int | None:
        """The GPI of ``pa`` from an uncached walk (None, and a violation, if it faults)."""
        if pa in self.gpis:
            return self.gpis[pa]
        value: int | None
        try:
            value = self.checker.lookup(0, pa)[0]
        except Exception as err:  # a GPT walk fault: the tables are broken
            self.fail("gpi_state", pa, f"the GPT walk faults: {err}")
            value = None
        self.gpis[pa] = value
        return value

    def claim(self, pa: int, rd: int, what: str, where: str) -> bool:
        prev = self.owners.get(pa)
        if prev is not None:
            if prev.rd == rd:
                detail = (f"{what} granule of realm {rd:#x} ({where}) is also its {prev.what} "
                          f"({prev.where})")
            else:
                detail = (f"{what} granule of realm {rd:#x} ({where}) is also {prev.what} of "
                          f"realm {prev.rd:#x} ({prev.where})")
            self.fail("no_sharing", pa, detail)
            return False
        self.owners[pa] = _Owner(rd, what, where)
        return True

    # ------------------------------------------------------------------ the check
    def run(self, candidates: set[int]) -> set[int]:
        """Check everything; returns the granules to keep watching."""
        platform = self.checker.platform
        tracker = platform.rmm.tracker
        if tracker is not None:
            self.granules(candidates)
            self.secure(candidates)
            self.structure(candidates)
        self.gpt_caches()
        self.engines()
        keep = set()
        for pa in candidates:
            st = self.states.get(pa)
            if st is None:
                continue
            if st[0] != GranuleState.UNDELEGATED or st[1] or self.gpis.get(pa, _NS) != _NS:
                keep.add(pa)
        return keep

    def granules(self, candidates: set[int]) -> None:
        memory = self.checker.platform.memory
        for pa in sorted(candidates):
            st = self.state(pa)
            if st is None:
                continue
            raw, _ref = st
            gpi = self.gpi(pa)
            if raw not in _STATES:
                self.fail("gpi_state", pa, f"tracker holds an invalid state {raw}")
                continue
            state = _STATES[raw]
            if gpi is not None:
                if state is GranuleState.UNDELEGATED:
                    if gpi not in (_NS, _SECURE):
                        self.fail("gpi_state", pa, f"UNDELEGATED granule has GPI "
                                  f"{_gpi_name(gpi)} (expected NON_SECURE, or SECURE when "
                                  "the SPMC owns it)")
                elif gpi != _REALM:
                    self.fail("gpi_state", pa, f"{state.name} granule has GPI "
                              f"{_gpi_name(gpi)}, not REALM")
            if state is GranuleState.DELEGATED:
                data = memory.read(pa, GRANULE_SIZE)
                if data != _ZERO:
                    offset = next(i for i, b in enumerate(data) if b)
                    self.fail("delegated_zero", pa, f"DELEGATED granule is not zero: byte "
                              f"{offset:#x} is {data[offset]:#04x}")

    def secure(self, candidates: set[int]) -> None:
        spmc: Any = getattr(self.checker.platform, "spmc", None)
        if spmc is None or not hasattr(spmc, "owned_granules"):
            return
        owned = {int(pa) for pa in spmc.owned_granules()}
        for pa in sorted(owned):
            if pa % GRANULE_SIZE:
                self.fail("secure_owner", pa, "the SPMC claims an address that is not "
                          "granule aligned")
                continue
            gpi = self.gpi(pa)
            if gpi is not None and gpi != _SECURE:
                self.fail("secure_owner", pa, f"the SPMC owns this granule but its GPI is "
                          f"{_gpi_name(gpi)}, not SECURE")
        for pa in sorted(candidates - owned):
            if self.state(pa) is not None and self.gpi(pa) == _SECURE:
                self.fail("secure_owner", pa, "Secure granule of the delegable DRAM that the "
                          "SPMC does not own")

    def structure(self, candidates: set[int]) -> None:
        """Realms, their RTTs and RECs: rtt_output, no_sharing, ownership, refcount."""
        memory = self.checker.platform.memory
        by_state: dict[int, list[int]] = {}
        for pa in sorted(candidates):
            st = self.state(pa)
            if st is not None:
                by_state.setdefault(st[0], []).append(pa)
        for rd in by_state.get(GranuleState.RD, []):
            self.owners[rd] = _Owner(rd, "RD", "its descriptor")
            self.realm(rd)
        for rec in by_state.get(GranuleState.REC, []):
            image = memory.read(rec, REC_LAYOUT.size)
            owner = int.from_bytes(image[_REC_OWNER.offset : _REC_OWNER.end], "little")
            num_aux = int.from_bytes(image[_REC_NUM_AUX.offset : _REC_NUM_AUX.end], "little")
            if self.state_name(owner) != "RD":
                self.fail("ownership", rec, f"REC's owner {owner:#x} is "
                          f"{self.state_name(owner)}, not an RD")
            self.rd_recs[owner] = self.rd_recs.get(owner, 0) + 1
            self.claim(rec, owner, "REC", "a REC")
            if num_aux > NUM_REC_AUX:
                self.fail("ownership", rec, f"REC lists {num_aux} auxiliary granules "
                          f"(at most {NUM_REC_AUX})")
                num_aux = NUM_REC_AUX
            aux_raw = image[_REC_AUX.offset : _REC_AUX.offset + 8 * num_aux]
            for i, aux in enumerate(struct.unpack(f"<{num_aux}Q", aux_raw)):
                if self.state_name(aux) != "REC_AUX":
                    self.fail("ownership", aux, f"auxiliary granule {i} of REC {rec:#x} is "
                              f"{self.state_name(aux)}, not REC_AUX")
                self.claim(aux, owner, "REC_AUX", f"aux {i} of REC {rec:#x}")
        for state in (GranuleState.DATA, GranuleState.RTT, GranuleState.REC_AUX):
            for pa in by_state.get(state, []):
                if pa not in self.owners:
                    what = {GranuleState.DATA: "mapped by no realm's RTTs",
                            GranuleState.RTT: "linked into no realm's RTTs",
                            GranuleState.REC_AUX: "listed by no REC"}[state]
                    self.fail("ownership", pa, f"{state.name} granule {what}")
        for pa in sorted(candidates):
            st = self.state(pa)
            if st is None:
                continue
            raw, ref = st
            expected: int | None = 0
            why = ""
            if raw == GranuleState.RD:
                expected, why = self.rd_recs.get(pa, 0), "RECs of the realm"
            elif raw == GranuleState.RTT:
                expected = self.rtt_refs.get(pa)
                why = "TABLE and protected ASSIGNED entries"
            elif raw == GranuleState.REC:
                expected = int(pa == self.running_rec)
                why = "running" if expected else "not running"
            if expected is not None and ref != expected:
                name = _STATES[raw].name if raw in _STATES else str(raw)
                self.fail("refcount", pa, f"{name} granule has refcount {ref}, expected "
                          f"{expected}" + (f" ({why})" if why else ""))

    def realm(self, rd: int) -> None:
        memory = self.checker.platform.memory
        try:
            values = RD_LAYOUT.unpack(memory.read(rd, RD_LAYOUT.size))
        except Exception as err:
            self.fail("rtt_output", rd, f"the RD cannot be read: {err}")
            return
        self.realms[rd] = values
        rtt_base = int(values["rtt_base"])
        sl = int(values["rtt_level_start"])
        sl = sl - (1 << 64) if sl >> 63 else sl
        num_start = int(values["rtt_num_start"])
        if not 0 <= sl <= 3 or not 1 <= num_start <= 16 or rtt_base % GRANULE_SIZE:
            self.fail("rtt_output", rd, f"the RD describes no valid RTT (base "
                      f"{rtt_base:#x}, start level {sl}, {num_start} start tables)")
            return
        for t in range(num_start):
            root = rtt_base + t * GRANULE_SIZE
            where = f"starting-level table {t}"
            if self.state_name(root) != "RTT":
                self.fail("rtt_output", root, f"{where} of realm {rd:#x} is "
                          f"{self.state_name(root)}, not RTT")
                continue
            if self.claim(root, rd, "RTT", where):
                self.table(rd, root, sl, t * s2tt.ENTRIES * s2tt.level_size(sl))

    def table(self, rd: int, table_pa: int, level: int, base_ipa: int) -> None:
        """One RTT: count its references, check every live entry's output address."""
        descs = _TABLE.unpack(self.checker.platform.memory.read(table_pa, GRANULE_SIZE))
        size = s2tt.level_size(level)
        refs = 0
        for i, desc in enumerate(descs):
            if not desc & _LIVE_BITS:
                continue
            ipa = base_ipa + i * size
            try:
                kind = s2tt.classify(desc, level)
            except ValueError as err:
                self.fail("rtt_output", table_pa + 8 * i, f"realm {rd:#x}: level-{level} entry "
                          f"for IPA {ipa:#x} cannot be decoded: {err}")
                continue
            if kind is Rtte.TABLE:
                refs += 1
                child = s2tt.table_address(desc)
                where = f"level-{level + 1} table for IPA {ipa:#x}"
                if self.state_name(child) != "RTT":
                    self.fail("rtt_output", child, f"realm {rd:#x}: level-{level} TABLE entry "
                              f"for IPA {ipa:#x} points to a {self.state_name(child)} "
                              "granule, not an RTT")
                elif self.claim(child, rd, "RTT", where):
                    self.table(rd, child, level + 1, ipa)
            elif kind.is_assigned:
                refs += 1
                oa = s2tt.output_address(desc, level)
                for off in range(0, size, GRANULE_SIZE):
                    data = oa + off
                    where = f"IPA {ipa + off:#x}"
                    if self.state_name(data) != "DATA":
                        self.fail("rtt_output", data, f"realm {rd:#x}: level-{level} "
                                  f"{kind.name} entry for IPA {ipa:#x} maps a "
                                  f"{self.state_name(data)} granule, not DATA")
                    else:
                        self.claim(data, rd, "DATA", where)
        self.rtt_refs[table_pa] = refs

    # ------------------------------------------------------------------ caches
    def gpt_caches(self) -> None:
        checker = self.checker
        for pe in checker.platform.pes:
            gpc = pe.gpc
            if not gpc.enabled or gpc.geometry is None:
                continue
            cache = gpc._cache
            shift = gpc._shift
            if self.full:
                entries = list(cache.items())
            else:
                prev = checker.cache_snapshots.get(pe.index, {})
                entries = list(cache.items() - prev.items())
                for pa in checker.touched:
                    g = pa >> shift
                    entry = cache.get(g)
                    if entry is not None:
                        entries.append((g, entry))
            for g, entry in entries:
                pa = g << shift
                try:
                    actual: tuple[int, int] | str = checker.lookup(pe.index, pa)
                except Exception as err:
                    actual = f"a walk fault ({err})"
                if actual != entry:
                    shown = (f"GPI {_gpi_name(actual[0])} from level {actual[1]}"
                             if isinstance(actual, tuple) else actual)
                    self.fail("cached_translation", pa, f"PE {pe.index} caches GPI "
                              f"{_gpi_name(entry[0])} (level {entry[1]}) but the GPT walk "
                              f"gives {shown}")
            checker.cache_snapshots[pe.index] = dict(cache)

    def engines(self) -> None:
        checker = self.checker
        runner = checker.platform.rmm.runner
        if runner is None:
            return
        by_vmid = {int(v["vmid"]): (rd, v) for rd, v in self.realms.items()}
        for index, engine in sorted(runner.engines.items()):
            cfg = engine.stage2
            if cfg is None:
                continue
            if checker.dormant.get(index) is cfg and index != self.running_pe:
                continue
            found = by_vmid.get(cfg.vmid)
            if found is None:
                if index == self.running_pe:
                    self.fail("cached_translation", None, f"the engine of PE {index} runs "
                              f"with VMID {cfg.vmid}, which no live realm has")
                else:
                    checker.dormant[index] = cfg  # the realm is gone, its TLB was flushed
                continue
            rd, v = found
            sl = int(v["rtt_level_start"])
            sl = sl - (1 << 64) if sl >> 63 else sl
            want = (int(v["rtt_base"]), int(v["s2sz"]), sl, int(v["rtt_num_start"]),
                    engine.pe.pa_bits, int(v["vmid"]))
            have = (cfg.base, cfg.ipa_bits, cfg.start_level, cfg.num_start, cfg.pa_bits,
                    cfg.vmid)
            if have != want:
                self.fail("cached_translation", rd, f"the engine of PE {index} translates "
                          f"VMID {cfg.vmid} with stage 2 (base {cfg.base:#x}, {cfg.ipa_bits}-bit "
                          f"IPA, start level {cfg.start_level}, {cfg.num_start} start tables, "
                          f"{cfg.pa_bits}-bit PA) but realm {rd:#x} has (base {want[0]:#x}, "
                          f"{want[1]}-bit IPA, start level {want[2]}, {want[3]} start "
                          f"tables, {want[4]}-bit PA)")


class InvariantChecker:
    """Checks the platform's invariants; :meth:`attach` makes it run automatically.

    ``full`` selects the full scan for every automatic check (slow on large platforms);
    :meth:`check` takes ``full`` per call. ``limit`` caps the violations one check
    collects.
    """

    def __init__(self, platform: Platform, *, full: bool = False, limit: int = 64) -> None:
        self.platform = platform
        self.full = full
        self.limit = limit
        self.watched: set[int] = set()
        self.touched: set[int] = set()
        self.cache_snapshots: dict[int, dict[int, tuple[int, int]]] = {}
        self.dormant: dict[int, object] = {}
        self.checks = 0
        self._depth = 0
        self._vectors: dict[int, Callable[[ProcessingElement], None] | None] = {}
        self._attached = False

    # ------------------------------------------------------------------ hooks
    def attach(self) -> InvariantChecker:
        """Install the hooks (the EL3 SMC vector of every PE, the GPT library's transition
        listeners, the RMM's REC-exit listeners) after a full check of the current state;
        raises :class:`InvariantViolation` if that check fails."""
        if self._attached:
            return self
        self.verify("attaching the checker", full=True)
        p = self.platform
        for pe in p.pes:
            self._vectors[pe.index] = pe.smc_vector
            pe.smc_vector = self._vector(pe.smc_vector)
        p.monitor.gpt.listeners.append(self._on_transition)
        p.rmm.rec_exit_listeners.append(self._on_rec_exit)
        self._attached = True
        return self

    def detach(self) -> None:
        if not self._attached:
            return
        p = self.platform
        for pe in p.pes:
            pe.smc_vector = self._vectors.get(pe.index)
        p.monitor.gpt.listeners.remove(self._on_transition)
        p.rmm.rec_exit_listeners.remove(self._on_rec_exit)
        self._attached = False

    def _vector(
        self, inner: Callable[[ProcessingElement], None] | None
    ) -> Callable[[ProcessingElement], None]:
        def vector(pe: ProcessingElement) -> None:
            if inner is None:
                raise RuntimeError("SMC with no EL3 firmware")
            fid = pe.x[0]
            self._depth += 1
            try:
                inner(pe)
            finally:
                self._depth -= 1
            if self._depth == 0:
                self.verify(f"{fid_name(fid)} (SMC on PE {pe.index})")

        return vector

    def _on_transition(self, pe: ProcessingElement, pa: int, old: int, new: int) -> None:
        self.touched.add(pa)
        if self._depth == 0:
            self.verify(f"GPT transition of {pa:#x} {_gpi_name(old)} -> {_gpi_name(new)} on "
                        f"PE {pe.index}")

    def _on_rec_exit(self, pe: ProcessingElement, realm: Realm, rec: Rec) -> None:
        self.verify(f"REC exit on PE {pe.index} (REC {rec.pa:#x} of realm {realm.pa:#x})",
                    running_rec=rec.pa, running_pe=pe.index)

    # ------------------------------------------------------------------ checks
    def verify(self, when: str, *, full: bool | None = None, running_rec: int | None = None,
               running_pe: int | None = None) -> None:
        """Check and raise :class:`InvariantViolation` on the first violation."""
        violations = self.check(full=full, running_rec=running_rec, running_pe=running_pe)
        if violations:
            raise InvariantViolation(violations, when)

    def check(self, *, full: bool | None = None, running_rec: int | None = None,
              running_pe: int | None = None) -> list[Violation]:
        """Every violation found now (at most ``limit``); an empty list when all holds."""
        full = self.full if full is None else full
        self.checks += 1
        work = _Pass(self, full, running_rec, running_pe)
        candidates = self._full_candidates() if full else self.watched | self.touched
        self.watched = work.run(candidates)
        self.touched.clear()
        return work.violations

    def lookup(self, pe_index: int, pa: int) -> tuple[int, int]:
        """An uncached GPT walk by PE ``pe_index``'s checker (its walk counter untouched)."""
        gpc = self.platform.pes[pe_index].gpc
        walks = gpc.walks
        try:
            return gpc.lookup(pa)
        finally:
            gpc.walks = walks

    def _full_candidates(self) -> set[int]:
        p = self.platform
        tracker = p.rmm.tracker
        if tracker is None:
            return set()
        out = {pa for pa, _state, _ref in tracker.nonzero()}
        for base, size in tracker.banks:
            out.update(pa for pa, _gpi in self._scan_gpt(base, base + size))
        out |= self.watched | self.touched
        spmc: Any = getattr(p, "spmc", None)
        if spmc is not None and hasattr(spmc, "owned_granules"):
            out |= {int(pa) for pa in spmc.owned_granules()}
        return out

    def _scan_gpt(self, base: int, end: int) -> Iterator[tuple[int, int]]:
        """(PA, GPI) of every granule in [base, end) whose GPI is not Non-secure, read from
        the tables in bulk (an undecodable descriptor yields GPI -1)."""
        gpc = self.platform.pes[0].gpc
        g = gpc.geometry
        if g is None:
            return
        memory = self.platform.memory
        gran = g.granule_size
        span = 16 * gran
        ns_uniform = l1_uniform(_NS)
        pa = base
        while pa < end:
            region_end = min(((pa >> g.s) + 1) << g.s, end)
            l0 = memory.read_u64(gpc.l0_base + 8 * g.l0_index(pa))
            if l0 & 0xF == L0_TYPE_BLOCK:
                gpi = (l0 >> 4) & 0xF
                if gpi != _NS:
                    for q in range(pa, region_end, gran):
                        yield q, gpi
                pa = region_end
                continue
            if l0 & 0xF != L0_TYPE_TABLE:
                for q in range(pa, region_end, gran):
                    yield q, -1
                pa = region_end
                continue
            l1 = l0 & L0_TABLE_ADDR_MASK
            first = g.l1_index(pa)
            count = -(-(region_end - (pa & ~(span - 1))) // span)
            raw = memory.read(l1 + 8 * first, 8 * count)
            for i, desc in enumerate(struct.unpack(f"<{count}Q", raw)):
                if desc == ns_uniform:
                    continue
                entry_base = (pa & ~(span - 1)) + i * span
                for k in range(16):
                    q = entry_base + k * gran
                    if not pa <= q < region_end:
                        continue
                    gpi = (desc >> 4) & 0xF if desc & 0xF == L1_CONTIG_TYPE else (
                        desc >> (4 * k)) & 0xF
                    if gpi != _NS:
                        yield q, gpi
            pa = region_end


def _gpi_name(gpi: int) -> str:
    try:
        return Gpi(gpi).name
    except ValueError:
        return f"{gpi:#06b}"


__all__ = ["INVARIANTS", "InvariantChecker", "InvariantViolation", "SpmcOwnership",
           "Violation"]
