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

Cost. Checks are incremental: the checker keeps a snapshot of the RMM's tracking array
and of the GPT over the tracked DRAM, and at each check compares them with the current ones
(a memory comparison, then a closer look only where bytes differ) to find the granules
whose state, refcount or GPI changed, whoever wrote them; only those are checked. What
each realm claims is remembered per source — the RD, every RTT, every REC — and a source is
rebuilt only when a granule it claims changed or (for an RTT) its contents did; every
RTT's contents are compared with the copy it was built from at each check. A GPT-cache
entry is correct when the walker makes it and can only go stale when its granule's GPI
changes, so the cache entries of the granules whose GPI changed are compared. A check thus
costs a few memory comparisons plus work in proportion to what changed, and faults
injected behind the model's back are still found: a tracker word, a GPT descriptor (with
or without the TLBI) or an RTT entry written directly. Not found incrementally: a store
into a DELEGATED granule that is not also a state change (DELEGATED granules are checked
when they become DELEGATED), a rewritten RD or REC (their fields are immutable once
created), an entry written straight into a GPT cache and, on platforms whose tracking
array exceeds 16 MB or whose GPT over the tracked DRAM exceeds 8 MB, changes other than
through the model's paths. The full mode (``check(full=True)``, also the first check
after attaching) looks at every live granule, scans the GPT over the whole tracked DRAM and
compares every cached GPT entry.
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


Key = tuple[str, int]  # ("realm" | "table" | "rec", PA)
_OBJECT_STATES = {
    GranuleState.DATA: "mapped by no realm's RTTs",
    GranuleState.RTT: "linked into no realm's RTTs",
    GranuleState.REC_AUX: "listed by no REC",
}
_RMI_REC_ENTER = 0xC400_015C
_TRACKER_DIFF_MAX = 16 << 20  # tracking arrays up to this size are diffed at every check
_GPT_DIFF_MAX = 8 << 20  # GPT bytes over the tracked DRAM diffed at every check


@dataclass
class _Source:
    """Something that claims granules for a realm: its RD (the realm itself), one RTT, or
    one REC. Sources are rebuilt when what they depend on changes."""

    kind: str  # "realm", "table" or "rec"
    pa: int
    rd: int
    claimed: set[int] = field(default_factory=set)
    children: dict[int, tuple[int, int]] = field(default_factory=dict)  # table -> (lvl, ipa)
    level: int = 0
    base_ipa: int = 0
    refs: int = 0  # a table: its TABLE and protected ASSIGNED entries
    raw: bytes = b""  # a table: the contents it was built from
    info: dict[str, int | bytes] = field(default_factory=dict)  # a realm: its RD fields

    @property
    def key(self) -> Key:
        return (self.kind, self.pa)


@dataclass
class _Claim:
    source: Key
    what: str
    where: str


class _Pass:
    """One check: the violations found and what was read (each granule's tracker word and
    GPI are read at most once per check)."""

    def __init__(self, checker: InvariantChecker, running_rec: int | None,
                 running_pe: int | None) -> None:
        self.checker = checker
        self.running_rec = running_rec
        self.running_pe = running_pe
        self.violations: list[Violation] = []
        self.states: dict[int, tuple[int, int] | None] = {}
        self.gpis: dict[int, int | None] = {}
        self.claims_changed: set[int] = set()  # granules claimed or released in this check
        self.released: set[int] = set()
        self.refcheck: set[int] = set()

    def fail(self, invariant: str, pa: int | None, details: str) -> None:
        if len(self.violations) < self.checker.limit:
            self.violations.append(Violation(invariant, pa, details))

    def state(self, pa: int) -> tuple[int, int] | None:
        """(raw state, refcount) of a tracked granule, None if ``pa`` is not tracked."""
        if pa in self.states:
            return self.states[pa]
        tracker = self.checker.platform.rmm.tracker
        idx = tracker.index(pa) if tracker is not None else None
        known = None if idx is None else (tracker.raw_state(idx), tracker.refcount(idx))
        self.states[pa] = known
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


class _Model:
    """What the checker remembers between checks: snapshots of the tracking array and of
    the GPT over the tracked DRAM (to find what changed), and the granules each realm's RD,
    RTTs and RECs claim (rebuilt only where something changed)."""

    def __init__(self, checker: InvariantChecker) -> None:
        self.checker = checker
        self.tracker_snapshot: bytes | None = None
        self.known: dict[int, tuple[int, int]] = {}  # large trackers: the live granules
        self.gpt_snapshot: dict[tuple[int, int], tuple[int, bytes]] | None = None
        self.sources: dict[Key, _Source] = {}
        self.claims: dict[int, _Claim] = {}
        self.rd_recs: dict[int, int] = {}
        self.owned: set[int] = set()

    # ------------------------------------------------------------------ what changed
    def tracker_changes(self, full: bool) -> set[int]:
        """Granules whose tracker word changed since the last check (every live granule
        when ``full``)."""
        tracker = self.checker.platform.rmm.tracker
        if tracker is None:
            return set()
        view = tracker._desc.cast("B")
        if len(view) > _TRACKER_DIFF_MAX:
            return self._known_changes(full)
        cur = view.tobytes()
        prev, self.tracker_snapshot = self.tracker_snapshot, cur
        if full or prev is None or len(prev) != len(cur):
            prev = bytes(len(cur))
        if cur == prev:
            return set()
        return {tracker.address(off // 2) for off in _diff_offsets(cur, prev, 2)}

    def _known_changes(self, full: bool) -> set[int]:
        tracker = self.checker.platform.rmm.tracker
        if full:
            self.known = {pa: (int(st), ref) for pa, st, ref in tracker.nonzero()}
            return set(self.known)
        out = set()
        for pa in set(self.known) | self.checker.touched:
            idx = tracker.index(pa)
            if idx is None:
                continue
            now = (tracker.raw_state(idx), tracker.refcount(idx))
            if now != self.known.get(pa, (0, 0)):
                out.add(pa)
                if now == (0, 0):
                    self.known.pop(pa, None)
                else:
                    self.known[pa] = now
        return out

    def gpt_changes(self, full: bool) -> set[int]:
        """Granules of the tracked DRAM whose GPI in the tables changed since the last
        check, however the tables were written."""
        current = self._gpt_state()
        prev, self.gpt_snapshot = self.gpt_snapshot, current
        if current is None or prev is None or full:
            return set()
        gpc = self.checker.platform.pes[0].gpc
        g = gpc.geometry
        assert g is not None
        out: set[int] = set()
        span = 16 * g.granule_size
        for (start, end), (l0, raw) in current.items():
            before = prev.get((start, end))
            if before is None or before == (l0, raw):
                continue
            first = start & ~(span - 1)
            if before[0] == l0 and len(before[1]) == len(raw):  # the same L1 table
                pairs = [(i // 8, int.from_bytes(before[1][i : i + 8], "little"),
                          int.from_bytes(raw[i : i + 8], "little"))
                         for i in _diff_offsets(raw, before[1], 8)]
            else:  # a block became a table (or the reverse): compare every entry
                old = _l1_descs(*before, start, end, span)
                new = _l1_descs(l0, raw, start, end, span)
                pairs = [(i, a, b) for i, (a, b) in enumerate(zip(old, new, strict=True))
                         if a != b]
            for i, a, b in pairs:
                for k in range(16):
                    pa = first + i * span + k * g.granule_size
                    if start <= pa < end and _desc_gpi(a, k) != _desc_gpi(b, k):
                        out.add(pa)
        return out

    def _gpt_state(self) -> dict[tuple[int, int], tuple[int, bytes]] | None:
        """Per L0 region of the tracked DRAM: its L0 descriptor and the bytes of the L1
        descriptors covering the DRAM (None when there is too much to compare each time)."""
        p = self.checker.platform
        tracker = p.rmm.tracker
        gpc = p.pes[0].gpc
        g = gpc.geometry
        if tracker is None or g is None:
            return None
        span = 16 * g.granule_size
        out = {}
        total = 0
        for base, size in tracker.banks:
            pa, end = base, base + size
            while pa < end:
                region_end = min(((pa >> g.s) + 1) << g.s, end)
                l0 = p.memory.read_u64(gpc.l0_base + 8 * g.l0_index(pa))
                raw = b""
                if l0 & 0xF == L0_TYPE_TABLE:
                    count = -(-(region_end - (pa & ~(span - 1))) // span)
                    total += 8 * count
                    if total > _GPT_DIFF_MAX:
                        return None
                    raw = p.memory.read((l0 & L0_TABLE_ADDR_MASK) + 8 * g.l1_index(pa),
                                        8 * count)
                out[(pa, region_end)] = (l0, raw)
                pa = region_end
        return out

    # ------------------------------------------------------------------ structure
    def reset(self) -> None:
        self.sources.clear()
        self.claims.clear()
        self.rd_recs.clear()

    def update(self, ck: _Pass, changed: set[int], full: bool) -> None:
        """Rebuild the sources ``changed`` granules (and changed RTT contents) affect, then
        check refcounts and ownership where anything moved."""
        if full:
            self.reset()
        dirty: set[Key] = set()
        for pa in changed:
            claim = self.claims.get(pa)
            if claim is not None:
                dirty.add(claim.source)
            st = ck.state(pa)
            raw = st[0] if st is not None else None
            for kind, state in (("realm", GranuleState.RD), ("table", GranuleState.RTT),
                                ("rec", GranuleState.REC)):
                if (kind, pa) in self.sources or (raw == state and kind != "table"):
                    dirty.add((kind, pa))
            if raw == GranuleState.RD:
                ck.refcheck.add(pa)
        memory = self.checker.platform.memory
        for src in list(self.sources.values()):  # RTT contents written since the last check
            if src.kind == "table" and memory.read(src.pa, GRANULE_SIZE) != src.raw:
                dirty.add(src.key)
        self._rebuild(ck, dirty)
        orphans = [pa for pa in changed if pa not in self.claims
                   and (ck.state(pa) or (0, 0))[0] in _OBJECT_STATES]
        if orphans:  # e.g. a table under a former block: rebuild every realm once
            for key in [k for k in self.sources if k[0] == "realm"]:
                self.drop(ck, key)
                self.build_realm(ck, key[1])
        self.check_counts(ck, changed)

    def _rebuild(self, ck: _Pass, dirty: set[Key]) -> None:
        for kind, pa in sorted(k for k in dirty if k[0] == "realm"):
            if (kind, pa) in self.sources:
                if ck.state_name(pa) != "RD":
                    self.drop(ck, (kind, pa))
            else:
                self.build_realm(ck, pa)
        tables = [self.sources[k] for k in dirty if k[0] == "table" and k in self.sources]
        for src in sorted(tables, key=lambda s: (s.level, s.pa)):
            if src.key in self.sources:  # not dropped by a parent's rebuild
                self.release(ck, src)
                self.fill_table(ck, src)
        for kind, pa in sorted(k for k in dirty if k[0] == "rec"):
            self.drop(ck, (kind, pa))
            self.build_rec(ck, pa)

    def claim(self, ck: _Pass, src: _Source, pa: int, what: str, where: str) -> bool:
        prev = self.claims.get(pa)
        if prev is not None:
            other = self.sources.get(prev.source)
            rd = other.rd if other is not None else -1
            if rd == src.rd:
                detail = (f"{what} granule of realm {src.rd:#x} ({where}) is also its "
                          f"{prev.what} ({prev.where})")
            else:
                detail = (f"{what} granule of realm {src.rd:#x} ({where}) is also "
                          f"{prev.what} of realm {rd:#x} ({prev.where})")
            ck.fail("no_sharing", pa, detail)
            return False
        self.claims[pa] = _Claim(src.key, what, where)
        src.claimed.add(pa)
        ck.claims_changed.add(pa)
        return True

    def release(self, ck: _Pass, src: _Source) -> None:
        for pa in src.claimed:
            claim = self.claims.get(pa)
            if claim is not None and claim.source == src.key:
                del self.claims[pa]
                ck.claims_changed.add(pa)
                ck.released.add(pa)
        src.claimed = set()

    def drop(self, ck: _Pass, key: Key) -> None:
        src = self.sources.pop(key, None)
        if src is None:
            return
        self.release(ck, src)
        for child in src.children:
            self.drop(ck, ("table", child))
        if src.kind == "rec":
            self.rd_recs[src.rd] = self.rd_recs.get(src.rd, 1) - 1
            ck.refcheck.add(src.rd)

    def build_realm(self, ck: _Pass, rd: int) -> None:
        if ck.state_name(rd) != "RD":
            return
        memory = self.checker.platform.memory
        values = RD_LAYOUT.unpack(memory.read(rd, RD_LAYOUT.size))
        src = _Source("realm", rd, rd, info=values)
        self.sources[src.key] = src
        self.claim(ck, src, rd, "RD", "its descriptor")
        rtt_base = int(values["rtt_base"])
        sl = _signed(int(values["rtt_level_start"]))
        num_start = int(values["rtt_num_start"])
        if not 0 <= sl <= 3 or not 1 <= num_start <= 16 or rtt_base % GRANULE_SIZE:
            ck.fail("rtt_output", rd, f"the RD describes no valid RTT (base {rtt_base:#x}, "
                    f"start level {sl}, {num_start} start tables)")
            return
        for t in range(num_start):
            root = rtt_base + t * GRANULE_SIZE
            where = f"starting-level table {t}"
            if ck.state_name(root) != "RTT":
                ck.fail("rtt_output", root, f"{where} of realm {rd:#x} is "
                        f"{ck.state_name(root)}, not RTT")
            elif self.claim(ck, src, root, "RTT", where):
                base_ipa = t * s2tt.ENTRIES * s2tt.level_size(sl)
                src.children[root] = (sl, base_ipa)
                self.build_table(ck, root, sl, base_ipa, rd)

    def build_table(self, ck: _Pass, pa: int, level: int, base_ipa: int, rd: int) -> None:
        self.drop(ck, ("table", pa))
        src = _Source("table", pa, rd, level=level, base_ipa=base_ipa)
        self.sources[src.key] = src
        self.fill_table(ck, src)

    def fill_table(self, ck: _Pass, src: _Source) -> None:
        """(Re)read one RTT: count its references, check and claim what it points to, and
        keep its child tables' sources in step with its TABLE entries."""
        raw = self.checker.platform.memory.read(src.pa, GRANULE_SIZE)
        src.raw = raw
        level, rd = src.level, src.rd
        size = s2tt.level_size(level)
        refs = 0
        tables: dict[int, tuple[int, int, str]] = {}
        data: list[tuple[int, str]] = []
        for i, desc in enumerate(_TABLE.unpack(raw)):
            if not desc & _LIVE_BITS:
                continue
            ipa = src.base_ipa + i * size
            try:
                kind = s2tt.classify(desc, level)
            except ValueError as err:
                ck.fail("rtt_output", src.pa + 8 * i, f"realm {rd:#x}: level-{level} entry "
                        f"for IPA {ipa:#x} cannot be decoded: {err}")
                continue
            if kind is Rtte.TABLE:
                refs += 1
                child = s2tt.table_address(desc)
                if ck.state_name(child) != "RTT" or level >= 3:
                    ck.fail("rtt_output", child, f"realm {rd:#x}: level-{level} TABLE entry "
                            f"for IPA {ipa:#x} points to a {ck.state_name(child)} granule, "
                            "not an RTT")
                elif child in tables:
                    ck.fail("no_sharing", child, f"realm {rd:#x}: RTT linked twice by "
                            f"level-{level} table {src.pa:#x}")
                else:
                    tables[child] = (level + 1, ipa,
                                     f"level-{level + 1} table for IPA {ipa:#x}")
            elif kind.is_assigned:
                refs += 1
                oa = s2tt.output_address(desc, level)
                for off in range(0, size, GRANULE_SIZE):
                    if ck.state_name(oa + off) != "DATA":
                        ck.fail("rtt_output", oa + off, f"realm {rd:#x}: level-{level} "
                                f"{kind.name} entry for IPA {ipa:#x} maps a "
                                f"{ck.state_name(oa + off)} granule, not DATA")
                    else:
                        data.append((oa + off, f"IPA {ipa + off:#x}"))
        src.refs = refs
        ck.refcheck.add(src.pa)
        old = src.children
        src.children = {}
        for child, params in old.items():  # drop sub-tables no longer linked here
            if (child not in tables or tables[child][:2] != params) and \
                    self.sources.get(("table", child), _NOSRC).rd == rd:
                self.drop(ck, ("table", child))
        for child, (lvl, ipa, where) in tables.items():
            if not self.claim(ck, src, child, "RTT", where):
                if self.sources.get(("table", child), _NOSRC).rd == rd and child in old:
                    self.drop(ck, ("table", child))
                continue
            src.children[child] = (lvl, ipa)
            if old.get(child) != (lvl, ipa) or ("table", child) not in self.sources:
                self.build_table(ck, child, lvl, ipa, rd)
        for pa, where in data:
            self.claim(ck, src, pa, "DATA", where)

    def build_rec(self, ck: _Pass, rec: int) -> None:
        if ck.state_name(rec) != "REC":
            return
        image = self.checker.platform.memory.read(rec, REC_LAYOUT.size)
        owner = int.from_bytes(image[_REC_OWNER.offset : _REC_OWNER.end], "little")
        num_aux = int.from_bytes(image[_REC_NUM_AUX.offset : _REC_NUM_AUX.end], "little")
        src = _Source("rec", rec, owner)
        self.sources[src.key] = src
        self.rd_recs[owner] = self.rd_recs.get(owner, 0) + 1
        ck.refcheck.add(owner)
        if ck.state_name(owner) != "RD":
            ck.fail("ownership", rec, f"REC's owner {owner:#x} is {ck.state_name(owner)}, "
                    "not an RD")
        self.claim(ck, src, rec, "REC", "a REC")
        if num_aux > NUM_REC_AUX:
            ck.fail("ownership", rec, f"REC lists {num_aux} auxiliary granules (at most "
                    f"{NUM_REC_AUX})")
            num_aux = NUM_REC_AUX
        aux_raw = image[_REC_AUX.offset : _REC_AUX.offset + 8 * num_aux]
        for i, aux in enumerate(struct.unpack(f"<{num_aux}Q", aux_raw)):
            if ck.state_name(aux) != "REC_AUX":
                ck.fail("ownership", aux, f"auxiliary granule {i} of REC {rec:#x} is "
                        f"{ck.state_name(aux)}, not REC_AUX")
            self.claim(ck, src, aux, "REC_AUX", f"aux {i} of REC {rec:#x}")

    def check_counts(self, ck: _Pass, changed: set[int]) -> None:
        """Refcounts and ownership of every granule whose state or claims moved."""
        for pa in sorted(changed | ck.released):
            st = ck.state(pa)
            if st is not None and st[0] in _OBJECT_STATES and pa not in self.claims:
                ck.fail("ownership", pa, f"{_STATES[st[0]].name} granule "
                        f"{_OBJECT_STATES[_STATES[st[0]]]}")
        for pa in sorted(changed | ck.claims_changed | ck.refcheck):
            st = ck.state(pa)
            if st is None:
                continue
            raw, ref = st
            expected: int | None = 0
            why = ""
            if raw == GranuleState.RD:
                expected, why = self.rd_recs.get(pa, 0), "RECs of the realm"
            elif raw == GranuleState.RTT:
                src = self.sources.get(("table", pa))
                expected = src.refs if src is not None else None
                why = "TABLE and protected ASSIGNED entries"
            elif raw == GranuleState.REC:
                expected = int(pa == ck.running_rec)
                why = "running" if expected else "not running"
                if not expected and ref == 1 and pa in self.checker.entering.values():
                    expected = 1  # its REC_ENTER on another PE is in progress
            if expected is not None and ref != expected:
                name = _STATES[raw].name if raw in _STATES else str(raw)
                ck.fail("refcount", pa, f"{name} granule has refcount {ref}, expected "
                        f"{expected}" + (f" ({why})" if why else ""))

    def realms(self) -> dict[int, dict[str, int | bytes]]:
        return {k[1]: s.info for k, s in self.sources.items() if k[0] == "realm"}


_NOSRC = _Source("none", -1, -1)


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
        self.touched: set[int] = set()
        self.dormant: dict[int, object] = {}
        self.entering: dict[int, int] = {}  # PE -> REC of an RMI_REC_ENTER in progress
        self.checks = 0
        self.model = _Model(self)
        self._primed = False
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
            entering = (fid & 0xFFFE_FFFF) == _RMI_REC_ENTER
            if entering:  # the REC may be running (refcount 1) until this SMC returns
                self.entering[pe.index] = pe.x[1]
            self._depth += 1
            try:
                inner(pe)
            finally:
                self._depth -= 1
                if entering:
                    self.entering.pop(pe.index, None)
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
        """Every violation found now (at most ``limit``); an empty list when all holds.

        Incremental by default: what changed since the previous check is checked. A full
        check looks at everything again (and is what the first check always does)."""
        full = (self.full if full is None else full) or not self._primed
        self.checks += 1
        ck = _Pass(self, running_rec, running_pe)
        model = self.model
        moved = set(self.touched)  # granules whose GPI changed
        if self.platform.rmm.tracker is not None:
            moved |= model.gpt_changes(full)
            changed = model.tracker_changes(full) | moved
            if full:
                changed |= self._full_candidates()
            self._granules(ck, changed)
            self._secure(ck, changed, full)
            model.update(ck, changed, full)
        self._gpt_caches(ck, full, moved)
        self._engines(ck)
        self.touched.clear()
        self._primed = True
        return ck.violations

    def lookup(self, pe_index: int, pa: int) -> tuple[int, int]:
        """An uncached GPT walk by PE ``pe_index``'s checker (its walk counter untouched)."""
        gpc = self.platform.pes[pe_index].gpc
        walks = gpc.walks
        try:
            return gpc.lookup(pa)
        finally:
            gpc.walks = walks

    # ------------------------------------------------------------------ granule checks
    def _granules(self, ck: _Pass, changed: set[int]) -> None:
        memory = self.platform.memory
        for pa in sorted(changed):
            st = ck.state(pa)
            if st is None:
                continue
            raw = st[0]
            if raw not in _STATES:
                ck.fail("gpi_state", pa, f"tracker holds an invalid state {raw}")
                continue
            state = _STATES[raw]
            gpi = ck.gpi(pa)
            if gpi is not None:
                if state is GranuleState.UNDELEGATED:
                    if gpi not in (_NS, _SECURE):
                        ck.fail("gpi_state", pa, f"UNDELEGATED granule has GPI "
                                f"{_gpi_name(gpi)} (expected NON_SECURE, or SECURE when the "
                                "SPMC owns it)")
                elif gpi != _REALM:
                    ck.fail("gpi_state", pa, f"{state.name} granule has GPI {_gpi_name(gpi)}, "
                            "not REALM")
            if state is GranuleState.DELEGATED:
                data = memory.read(pa, GRANULE_SIZE)
                if data != _ZERO:
                    offset = next(i for i, b in enumerate(data) if b)
                    ck.fail("delegated_zero", pa, f"DELEGATED granule is not zero: byte "
                            f"{offset:#x} is {data[offset]:#04x}")

    def _secure(self, ck: _Pass, changed: set[int], full: bool) -> None:
        spmc: Any = getattr(self.platform, "spmc", None)
        if spmc is None or not hasattr(spmc, "owned_granules"):
            return
        owned = {int(pa) for pa in spmc.owned_granules()}
        moved = owned if full else owned ^ self.model.owned
        self.model.owned = owned
        for pa in sorted(moved & owned):
            if pa % GRANULE_SIZE:
                ck.fail("secure_owner", pa, "the SPMC claims an address that is not granule "
                        "aligned")
                continue
            gpi = ck.gpi(pa)
            if gpi is not None and gpi != _SECURE:
                ck.fail("secure_owner", pa, f"the SPMC owns this granule but its GPI is "
                        f"{_gpi_name(gpi)}, not SECURE")
        for pa in sorted((changed | moved) - owned):
            if ck.state(pa) is not None and ck.gpi(pa) == _SECURE:
                ck.fail("secure_owner", pa, "Secure granule of the delegable DRAM that the "
                        "SPMC does not own")

    # ------------------------------------------------------------------ caches
    def _gpt_caches(self, ck: _Pass, full: bool, moved: set[int]) -> None:
        """Cached GPT information against the tables. An entry the walker just made agrees
        with the tables by construction; it can only go stale when the GPI of its granule
        changes without the TLBI that drops it. So the incremental check compares the
        entries of the granules whose GPI changed; the full check compares every entry."""
        for pe in self.platform.pes:
            gpc = pe.gpc
            if not gpc.enabled or gpc.geometry is None:
                continue
            cache = gpc._cache
            shift = gpc._shift
            if full:
                entries = list(cache.items())
            else:
                entries = []
                for pa in moved:
                    entry = cache.get(pa >> shift)
                    if entry is not None:
                        entries.append((pa >> shift, entry))
            for g, entry in entries:
                pa = g << shift
                try:
                    actual: tuple[int, int] | str = self.lookup(pe.index, pa)
                except Exception as err:
                    actual = f"a walk fault ({err})"
                if actual != entry:
                    shown = (f"GPI {_gpi_name(actual[0])} from level {actual[1]}"
                             if isinstance(actual, tuple) else actual)
                    ck.fail("cached_translation", pa, f"PE {pe.index} caches GPI "
                            f"{_gpi_name(entry[0])} (level {entry[1]}) but the GPT walk "
                            f"gives {shown}")

    def _engines(self, ck: _Pass) -> None:
        engines: Any = getattr(self.platform.rmm.runner, "engines", None)
        if not isinstance(engines, dict):
            return
        by_vmid = {int(v["vmid"]): (rd, v) for rd, v in self.model.realms().items()}
        for index, engine in sorted(engines.items()):
            cfg = engine.stage2
            if cfg is None:
                continue
            if self.dormant.get(index) is cfg and index != ck.running_pe:
                continue
            found = by_vmid.get(cfg.vmid)
            if found is None:
                if index == ck.running_pe:
                    ck.fail("cached_translation", None, f"the engine of PE {index} runs "
                            f"with VMID {cfg.vmid}, which no live realm has")
                else:
                    self.dormant[index] = cfg  # the realm is gone, its TLB was flushed
                continue
            rd, v = found
            want = (int(v["rtt_base"]), int(v["s2sz"]), _signed(int(v["rtt_level_start"])),
                    int(v["rtt_num_start"]), engine.pe.pa_bits, int(v["vmid"]))
            have = (cfg.base, cfg.ipa_bits, cfg.start_level, cfg.num_start, cfg.pa_bits,
                    cfg.vmid)
            if have != want:
                ck.fail("cached_translation", rd, f"the engine of PE {index} translates "
                        f"VMID {cfg.vmid} with stage 2 (base {cfg.base:#x}, {cfg.ipa_bits}-bit "
                        f"IPA, start level {cfg.start_level}, {cfg.num_start} start tables, "
                        f"{cfg.pa_bits}-bit PA) but realm {rd:#x} has (base {want[0]:#x}, "
                        f"{want[1]}-bit IPA, start level {want[2]}, {want[3]} start tables, "
                        f"{want[4]}-bit PA)")

    # ------------------------------------------------------------------ full scans
    def _full_candidates(self) -> set[int]:
        p = self.platform
        tracker = p.rmm.tracker
        if tracker is None:
            return set()
        out: set[int] = set()
        for base, size in tracker.banks:
            out.update(pa for pa, _gpi in self._scan_gpt(base, base + size))
        spmc: Any = getattr(p, "spmc", None)
        if spmc is not None and hasattr(spmc, "owned_granules"):
            out |= {int(pa) for pa in spmc.owned_granules()}
        return out

    def _scan_gpt(self, base: int, end: int) -> Iterator[tuple[int, int]]:
        """(PA, GPI) of every granule in [base, end) whose GPI is not Non-secure, read from
        the tables in bulk (an undecodable L0 descriptor yields GPI -1)."""
        gpc = self.platform.pes[0].gpc
        g = gpc.geometry
        if g is None:
            return
        memory = self.platform.memory
        gran = g.granule_size
        span = 16 * gran
        pa = base
        while pa < end:
            region_end = min(((pa >> g.s) + 1) << g.s, end)
            l0 = memory.read_u64(gpc.l0_base + 8 * g.l0_index(pa))
            raw = b""
            if l0 & 0xF == L0_TYPE_TABLE:
                count = -(-(region_end - (pa & ~(span - 1))) // span)
                raw = memory.read((l0 & L0_TABLE_ADDR_MASK) + 8 * g.l1_index(pa), 8 * count)
            elif l0 & 0xF != L0_TYPE_BLOCK or (l0 >> 4) & 0xF != _NS:
                gpi = (l0 >> 4) & 0xF if l0 & 0xF == L0_TYPE_BLOCK else -1
                for q in range(pa, region_end, gran):
                    yield q, gpi
                pa = region_end
                continue
            else:  # a Non-secure L0 block
                pa = region_end
                continue
            first = pa & ~(span - 1)
            ns_uniform = l1_uniform(_NS)
            for i, desc in enumerate(_l1_descs(l0, raw, pa, region_end, span)):
                if desc == ns_uniform:
                    continue
                for k in range(16):
                    q = first + i * span + k * gran
                    if pa <= q < region_end and _desc_gpi(desc, k) != _NS:
                        yield q, _desc_gpi(desc, k)
            pa = region_end


def _l1_descs(l0: int, raw: bytes, start: int, end: int, span: int) -> list[int]:
    """The L1 descriptors covering [start, end): read from the table, or, for an L0 block,
    the uniform descriptor its GPI stands for."""
    if l0 & 0xF == L0_TYPE_TABLE:
        return list(struct.unpack(f"<{len(raw) // 8}Q", raw))
    count = -(-(end - (start & ~(span - 1))) // span)
    return [l1_uniform((l0 >> 4) & 0xF)] * count


def _desc_gpi(desc: int, k: int) -> int:
    """GPI of granule ``k`` (0..15) of an L1 descriptor (granules or contiguous)."""
    if desc & 0xF == L1_CONTIG_TYPE:
        return (desc >> 4) & 0xF
    return (desc >> (4 * k)) & 0xF


def _diff_offsets(cur: bytes, prev: bytes, unit: int) -> Iterator[int]:
    """Offsets (multiples of ``unit``) at which two equal-length buffers differ, found by
    comparing ever smaller chunks (64 KB, 4 KB, 64 bytes) before single units."""

    def walk(lo: int, hi: int, step: int) -> Iterator[int]:
        for off in range(lo, hi, step):
            top = min(off + step, hi)
            if cur[off:top] == prev[off:top]:
                continue
            if step > 64:
                yield from walk(off, top, step // 64 if step > 4096 else 64)
            else:
                for u in range(off, top, unit):
                    if cur[u : u + unit] != prev[u : u + unit]:
                        yield u

    yield from walk(0, len(cur), 1 << 16)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _gpi_name(gpi: int) -> str:
    try:
        return Gpi(gpi).name
    except ValueError:
        return f"{gpi:#06b}"


__all__ = ["INVARIANTS", "InvariantChecker", "InvariantViolation", "SpmcOwnership",
           "Violation"]
