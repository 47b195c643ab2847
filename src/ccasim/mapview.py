"""The physical memory map of a running platform, by PAS and by owner (``ccasim map``).

:func:`memory_map_view` reads only what software on the platform itself could read:

* the GPT, walked from GPTBR_EL3 / GPCCR_EL3 with Root-state loads (``p.el3.read``), gives
  the GPI of every granule as runs of equal GPI (rme-hardware §2–§3), and
  ``p.el3.gpt_summary()`` the per-region counts;
* the RMM's granule tracker (rmm-abi §3) lists the granules delegated to the RMM; each RD
  granule is a realm, loaded with Realm-state loads through the GPC; its RTTs are walked from
  ``rtt_base`` (rmm-abi §5) to find its RTT and DATA granules and the Non-secure pages it
  maps at unprotected IPAs; each REC names its owner RD and its auxiliary granules.

The result, a :class:`MapView`, splits every memory-map region into :class:`Span` s (runs
of granules with one kind, owner and GPI). :func:`render_svg` draws it as hand-written SVG;
the terminal rendering lives in :mod:`ccasim.cli.map`.
"""

from __future__ import annotations

import bisect
import struct
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .arch.gpt import (
    Gpccr,
    Gpi,
    GptGeometry,
    L0Block,
    decode_l0,
    gptbr_decode,
    l1_uniform,
)
from .arch.memory import GRANULE_SIZE, Region
from .arch.security import PhysicalAddressSpace as Pas
from .arch.security import SecurityState
from .config import EL3_DATA_SIZE, RMM_PRIVATE_BASE
from .platform import Platform
from .rmm import s2tt
from .rmm.granules import GranuleState
from .rmm.objects import Realm, Rec

# ------------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Kind:
    """What a granule is used for. ``priority`` decides which kind a bar cell shows when
    it covers several (the rarer, more interesting one); ``char`` stands in for the colour
    on terminals without one."""

    key: str
    label: str
    color: str
    char: str
    priority: int


_KIND_LIST = (
    Kind("el3_data", "EL3 data", "#8c6d31", "E", 2),
    Kind("gpt_l0", "GPT level 0", "#e6550d", "0", 5),
    Kind("gpt_l1", "GPT level 1", "#fdae6b", "1", 4),
    Kind("root_free", "Root, unused", "#e7d8b0", "o", 1),
    Kind("rmm_data", "RMM image + data", "#843c39", "M", 3),
    Kind("rmm_tracker", "granule tracker", "#d6616b", "t", 4),
    Kind("rmm_buffer", "RMM-EL3 buffer", "#ad494a", "b", 5),
    Kind("rmm_free", "RMM, unused", "#f2c9c9", "m", 1),
    Kind("secure", "Secure DRAM", "#3182bd", "S", 2),
    Kind("secure_rt", "Secure, moved at run time", "#9ecae1", "s", 6),
    Kind("ns", "Non-secure", "#d9d9d9", ".", 0),
    Kind("ns_mmio", "Non-secure MMIO", "#969696", "u", 2),
    Kind("ns_shared", "NS, realm-shared", "#17becf", "~", 7),
    Kind("rd", "RD", "#6a3d9a", "R", 13),
    Kind("rec", "REC", "#e377c2", "C", 12),
    Kind("rec_aux", "REC aux", "#f7b6d2", "a", 11),
    Kind("rtt", "RTT", "#ff7f0e", "T", 10),
    Kind("data", "DATA", "#2ca02c", "D", 9),
    Kind("delegated", "DELEGATED, unused", "#bcbd22", "d", 8),
    Kind("realm_untracked", "Realm PAS, untracked", "#7b4173", "?", 7),
    Kind("no_access", "GPI No access", "#000000", "x", 6),
    Kind("other", "other GPI", "#636363", "*", 5),
)
KINDS: dict[str, Kind] = {k.key: k for k in _KIND_LIST}

#: Kinds of a realm's own granules, in the order tables list them.
REALM_KINDS = ("rd", "rec", "rec_aux", "rtt", "data")
_STATE_KIND = {
    GranuleState.RD: "rd",
    GranuleState.REC: "rec",
    GranuleState.REC_AUX: "rec_aux",
    GranuleState.RTT: "rtt",
    GranuleState.DATA: "data",
    GranuleState.DELEGATED: "delegated",
}
#: Colours of the physical address spaces (the lower strip of a bar).
GPI_COLORS: dict[int, str] = {
    Gpi.ROOT: "#8c6d31",
    Gpi.REALM: "#d62728",
    Gpi.SECURE: "#3182bd",
    Gpi.NON_SECURE: "#d9d9d9",
    Gpi.NO_ACCESS: "#000000",
    Gpi.ANY: "#ffffff",
}
GPI_CHARS: dict[int, str] = {
    Gpi.ROOT: "O", Gpi.REALM: "R", Gpi.SECURE: "S", Gpi.NON_SECURE: ".", Gpi.NO_ACCESS: "x",
    Gpi.ANY: "*",
}
_GPI_RANK: dict[int, int] = {
    Gpi.NO_ACCESS: 5, Gpi.REALM: 4, Gpi.SECURE: 3, Gpi.ROOT: 2, Gpi.NON_SECURE: 1,
}
_PAS_GPI = {Pas.ROOT: Gpi.ROOT, Pas.REALM: Gpi.REALM, Pas.SECURE: Gpi.SECURE,
            Pas.NON_SECURE: Gpi.NON_SECURE}
_MOVED_KIND: dict[int, str] = {
    Gpi.NON_SECURE: "ns", Gpi.SECURE: "secure_rt", Gpi.REALM: "realm_untracked",
    Gpi.NO_ACCESS: "no_access",
}


def gpi_name(gpi: int) -> str:
    """``REALM``, ``NON_SECURE``…, or the raw value for reserved encodings."""
    try:
        return Gpi(gpi).name
    except ValueError:
        return f"{gpi:#x}"


def gpi_label(gpi: int) -> str:
    """A GPI as a reader names it: ``Realm``, ``Non-secure``, ``No access``."""
    return gpi_name(gpi).replace("_", "-").capitalize().replace("No-access", "No access")


# ------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Span:
    """A run of granules ``[base, base + size)`` with one kind, owner and GPI."""

    base: int
    size: int
    kind: str
    owner: str
    gpi: int

    @property
    def end(self) -> int:
        return self.base + self.size

    @property
    def granules(self) -> int:
        return self.size // GRANULE_SIZE


@dataclass(frozen=True)
class Granule:
    """One granule of a realm (or a Non-secure page the realm maps)."""

    pa: int
    kind: str
    gpi: int
    ipa: int | None = None  # DATA, shared pages: the IPA it is mapped at; RTT: the IPA base
    level: int | None = None  # RTT: its level; DATA / shared: the mapping level
    rec: int | None = None  # REC_AUX: the REC it belongs to


@dataclass
class RealmView:
    """A realm as the RMM's granules describe it."""

    index: int
    rd: int
    state: str
    vmid: int
    s2sz: int
    hash_algo: str
    rim: str
    rec_count: int
    rtt_level_start: int
    granules: list[Granule] = field(default_factory=list)  # its own (Realm PAS) granules
    shared: list[Granule] = field(default_factory=list)  # NS pages mapped at unprotected IPAs

    @property
    def label(self) -> str:
        return f"realm {self.index} (VMID {self.vmid})"

    def by_kind(self) -> dict[str, list[Granule]]:
        out: dict[str, list[Granule]] = {k: [] for k in REALM_KINDS}
        for g in self.granules:
            out.setdefault(g.kind, []).append(g)
        return {k: v for k, v in out.items() if v}

    def counts(self) -> dict[str, int]:
        return {KINDS[k].label: len(v) for k, v in self.by_kind().items()}


@dataclass
class RegionView:
    """One region of the memory map, split into spans that cover it exactly."""

    name: str
    base: int
    size: int
    kind: str  # "dram" / "mmio"
    boot_gpi: int
    description: str
    gpi_counts: dict[str, int]
    spans: list[Span]

    @property
    def end(self) -> int:
        return self.base + self.size

    def zoom(self) -> tuple[int, int] | None:
        """The smallest range holding every span that stands out in this region (realm
        granules, delegated ones, NS pages a realm maps, granules moved at run time), when
        that range is much smaller than the region; else None."""
        marked = [s for s in self.spans if KINDS[s.kind].priority >= 6]
        if not marked:
            return None
        lo, hi = marked[0].base, max(s.end for s in marked)
        return (lo, hi) if (hi - lo) * 8 <= self.size else None


@dataclass
class MapView:
    """The physical memory map by PAS and by owner; see the module docstring."""

    cpus: int
    pa_bits: int
    gpt: dict[str, Any]
    regions: list[RegionView]
    realms: list[RealmView]
    delegated: list[int]
    problems: list[str]

    def region(self, name: str) -> RegionView:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)

    def owners(self) -> list[tuple[str, int, dict[str, int], dict[str, int]]]:
        """(owner, granules, granules by kind label, granules by GPI), in map order of
        first appearance."""
        out: dict[str, tuple[list[int], dict[str, int], dict[str, int]]] = {}
        for region in self.regions:
            for s in region.spans:
                total, kinds, gpis = out.setdefault(s.owner, ([0], {}, {}))
                total[0] += s.granules
                label = KINDS[s.kind].label
                kinds[label] = kinds.get(label, 0) + s.granules
                gpis[gpi_label(s.gpi)] = gpis.get(gpi_label(s.gpi), 0) + s.granules
        return [(o, t[0], k, g) for o, (t, k, g) in out.items()]

    def kinds_present(self) -> list[Kind]:
        keys = {s.kind for r in self.regions for s in r.spans}
        return [k for k in _KIND_LIST if k.key in keys]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpus": self.cpus,
            "pa_bits": self.pa_bits,
            "gpt": self.gpt,
            "regions": [{
                "name": r.name, "base": r.base, "size": r.size, "kind": r.kind,
                "boot_pas": gpi_name(r.boot_gpi), "description": r.description,
                "gpi_granules": r.gpi_counts,
                "spans": [{"base": s.base, "size": s.size, "kind": s.kind, "owner": s.owner,
                           "gpi": gpi_name(s.gpi)} for s in r.spans],
            } for r in self.regions],
            "owners": [{"owner": o, "granules": n, "kinds": k, "gpi": g}
                       for o, n, k, g in self.owners()],
            "realms": [{
                "label": v.label, "rd": v.rd, "state": v.state, "vmid": v.vmid,
                "s2sz": v.s2sz, "hash_algo": v.hash_algo, "rim": v.rim,
                "rec_count": v.rec_count,
                "granules": {k: [_granule_dict(g) for g in gs]
                             for k, gs in v.by_kind().items()},
                "shared": [_granule_dict(g) for g in v.shared],
            } for v in self.realms],
            "delegated": self.delegated,
            "problems": self.problems,
        }


def _granule_dict(g: Granule) -> dict[str, Any]:
    out: dict[str, Any] = {"pa": g.pa, "gpi": gpi_name(g.gpi)}
    if g.ipa is not None:
        out["ipa"] = g.ipa
    if g.level is not None:
        out["level"] = g.level
    if g.rec is not None:
        out["rec"] = g.rec
    return out


# ------------------------------------------------------------------------------- the GPT


@dataclass
class _Gpt:
    geometry: GptGeometry
    l0_base: int
    l1_tables: list[int]
    runs: list[tuple[int, int, int]]  # (base, end, gpi), sorted, merged
    _starts: list[int] = field(default_factory=list)

    def gpi(self, pa: int) -> int:
        if not self._starts:
            self._starts = [r[0] for r in self.runs]
        i = bisect.bisect_right(self._starts, pa) - 1
        if i >= 0 and pa < self.runs[i][1]:
            return self.runs[i][2]
        return Gpi.NO_ACCESS


def _read_gpt(p: Platform, regions: Sequence[Region]) -> _Gpt:
    """Walk the GPT the way EL3 software would: GPCCR/GPTBR, then Root-state loads of the
    L0 table and of the L1 tables it points at, over every region of the memory map."""
    g = GptGeometry.from_gpccr(Gpccr.decode(p.el3.sysreg("GPCCR_EL3")))
    l0_base = gptbr_decode(p.el3.sysreg("GPTBR_EL3"))
    raw = p.el3.read(l0_base, 8 * g.l0_entries)
    l0 = [decode_l0(d) for d in struct.unpack(f"<{g.l0_entries}Q", raw)]
    l1_tables = sorted({d.l1_base for d in l0 if not isinstance(d, L0Block)})
    runs: list[tuple[int, int, int]] = []

    def add(lo: int, hi: int, gpi: int) -> None:
        if runs and runs[-1][1] == lo and runs[-1][2] == gpi:
            runs[-1] = (runs[-1][0], hi, gpi)
        else:
            runs.append((lo, hi, gpi))

    span = 16 << g.p  # bytes one L1 descriptor covers
    for region in sorted(regions, key=lambda r: r.base):
        pa = region.base
        while pa < region.end:
            l0_end = min(((pa >> g.s) + 1) << g.s, region.end)
            desc = l0[g.l0_index(pa)]
            if isinstance(desc, L0Block):
                add(pa, l0_end, desc.gpi)
                pa = l0_end
                continue
            first = g.l1_index(pa)
            n = g.l1_index(l0_end - 1) - first + 1
            entries = struct.unpack(f"<{n}Q", p.el3.read(desc.l1_base + 8 * first, 8 * n))
            entry_base = pa & ~(span - 1)
            for i, d in enumerate(entries):
                lo = max(entry_base + i * span, pa)
                hi = min(entry_base + (i + 1) * span, l0_end)
                if d & 0xF == 0b0001:  # contiguous descriptor
                    add(lo, hi, (d >> 4) & 0xF)
                elif d == l1_uniform(d & 0xF):
                    add(lo, hi, d & 0xF)
                else:
                    for gpa in range(lo, hi, g.granule_size):
                        add(gpa, gpa + g.granule_size, (d >> (4 * g.gpi_index(gpa))) & 0xF)
            pa = l0_end
    return _Gpt(g, l0_base, l1_tables, runs)


# ------------------------------------------------------------------------------- realms


def _realms(p: Platform, gpt: _Gpt, problems: list[str]) -> tuple[list[RealmView], list[int]]:
    """Realms from the granule tracker: RD granules, then each RD's RTTs and RECs."""
    tracked = p.rmm.tracker.nonzero()
    state_of = {pa: state for pa, state, _ in tracked}
    views: list[RealmView] = []
    seen: set[int] = set()

    def expect(pa: int, kind: str, view: RealmView) -> bool:
        state = state_of.get(pa)
        if state is None or _STATE_KIND.get(state) != kind:
            problems.append(f"{view.label}: granule {pa:#x} used as {KINDS[kind].label} is "
                            f"tracked as {state.name if state is not None else 'UNDELEGATED'}")
        if pa in seen:
            problems.append(f"{view.label}: granule {pa:#x} is reached twice")
            return False
        seen.add(pa)
        return True

    with p.cpus[0].probe(SecurityState.REALM)._running() as pe:
        rds = sorted(pa for pa, state, _ in tracked if state is GranuleState.RD)
        by_rd: dict[int, RealmView] = {}
        for i, rd in enumerate(rds, start=1):
            realm = Realm.load(pe, rd)
            view = RealmView(i, rd, realm.state.name, realm.vmid, realm.s2sz,
                             realm.hash_algo.name, realm.rim.hex(), realm.rec_count,
                             realm.rtt_level_start)
            by_rd[rd] = view
            views.append(view)
            expect(rd, "rd", view)
            view.granules.append(Granule(rd, "rd", gpt.gpi(rd)))
            _walk_rtts(pe, realm, view, gpt, expect)
        for pa, state, _ in tracked:
            if state is not GranuleState.REC:
                continue
            rec = Rec.load(pe, pa)
            owner = by_rd.get(rec.owner)
            if owner is None:
                problems.append(f"REC {pa:#x} names RD {rec.owner:#x}, which is not an RD")
                continue
            expect(pa, "rec", owner)
            owner.granules.append(Granule(pa, "rec", gpt.gpi(pa)))
            for aux in rec.aux:
                if expect(aux, "rec_aux", owner):
                    owner.granules.append(Granule(aux, "rec_aux", gpt.gpi(aux), rec=pa))
    delegated = [pa for pa, state, _ in tracked if state is GranuleState.DELEGATED]
    for pa, state, _ in tracked:
        if pa not in seen and state not in (GranuleState.DELEGATED, GranuleState.UNDELEGATED):
            problems.append(f"granule {pa:#x} is tracked as {state.name} but no realm uses it")
    for view in views:
        view.granules.sort(key=lambda g: (REALM_KINDS.index(g.kind), g.pa))
        for g in view.granules:
            if g.gpi != Gpi.REALM:
                problems.append(f"{view.label}: {KINDS[g.kind].label} granule {g.pa:#x} has "
                                f"GPI {gpi_name(g.gpi)}")
        for g in view.shared:
            if g.gpi != Gpi.NON_SECURE:
                problems.append(f"{view.label}: shared page {g.pa:#x} has GPI "
                                f"{gpi_name(g.gpi)}")
    return views, delegated


def _walk_rtts(pe: Any, realm: Realm, view: RealmView, gpt: _Gpt, expect: Any) -> None:
    """Depth-first walk of the realm's RTTs (Realm-state loads of RTT granules)."""

    def walk(table: int, level: int, ipa_base: int) -> None:
        if not expect(table, "rtt", view):
            return
        view.granules.append(Granule(table, "rtt", gpt.gpi(table), ipa=ipa_base, level=level))
        size = s2tt.level_size(level)
        for i, desc in enumerate(s2tt.read_table(pe, table)):
            if not desc:
                continue
            kind = s2tt.classify(desc, level)
            ipa = ipa_base + i * size
            if kind is s2tt.Rtte.TABLE:
                if level < 3:
                    walk(s2tt.table_address(desc), level + 1, ipa)
            elif kind.is_assigned:
                out = s2tt.output_address(desc, level)
                for off in range(0, size, GRANULE_SIZE):
                    if expect(out + off, "data", view):
                        view.granules.append(Granule(out + off, "data", gpt.gpi(out + off),
                                                     ipa=ipa + off, level=level))
            elif kind is s2tt.Rtte.ASSIGNED_NS:
                out = s2tt.output_address(desc, level)
                for off in range(0, size, GRANULE_SIZE):
                    view.shared.append(Granule(out + off, "ns_shared", gpt.gpi(out + off),
                                               ipa=ipa + off, level=level))

    start = realm.rtt_level_start
    for t in range(realm.rtt_num_start):
        walk(realm.rtt_base + t * GRANULE_SIZE, start,
             t * s2tt.ENTRIES * s2tt.level_size(start))


# ------------------------------------------------------------------------------- spans


class _Painter:
    """Spans covering one region; painting a range changes kind and owner, keeps GPIs."""

    def __init__(self, spans: list[Span]) -> None:
        self.spans = spans

    def paint(self, lo: int, hi: int, kind: str, owner: str,
              only_gpi: int | None = None) -> None:
        out: list[Span] = []
        starts = [s.base for s in self.spans]
        first = max(bisect.bisect_right(starts, lo) - 1, 0)
        out.extend(self.spans[:first])
        i = first
        while i < len(self.spans):
            s = self.spans[i]
            if s.base >= hi:
                break
            a, b = max(s.base, lo), min(s.end, hi)
            if a >= b or (only_gpi is not None and s.gpi != only_gpi):
                out.append(s)
            else:
                if s.base < a:
                    out.append(Span(s.base, a - s.base, s.kind, s.owner, s.gpi))
                out.append(Span(a, b - a, kind, owner, s.gpi))
                if b < s.end:
                    out.append(Span(b, s.end - b, s.kind, s.owner, s.gpi))
            i += 1
        out.extend(self.spans[i:])
        self.spans = out

    def merged(self) -> list[Span]:
        out: list[Span] = []
        for s in self.spans:
            last = out[-1] if out else None
            if (last is not None and last.end == s.base and
                    (last.kind, last.owner, last.gpi) == (s.kind, s.owner, s.gpi)):
                out[-1] = Span(last.base, last.size + s.size, s.kind, s.owner, s.gpi)
            else:
                out.append(s)
        return out


def _ranges(items: Iterable[tuple[int, str, str]]) -> list[tuple[int, int, str, str]]:
    """Granules (pa, kind, owner) merged into ranges of contiguous equal granules."""
    out: list[tuple[int, int, str, str]] = []
    for pa, kind, owner in sorted(items):
        if out and out[-1][1] == pa and out[-1][2:] == (kind, owner):
            out[-1] = (out[-1][0], pa + GRANULE_SIZE, kind, owner)
        else:
            out.append((pa, pa + GRANULE_SIZE, kind, owner))
    return out


def memory_map_view(p: Platform) -> MapView:
    """The platform's physical memory map by PAS (GPT) and by owner (EL3, the RMM, the
    Secure world, each realm, the host); see the module docstring."""
    regions = p.regions()
    gpt = _read_gpt(p, regions)
    problems: list[str] = []
    realms, delegated = _realms(p, gpt, problems)

    # Granules owned at run time, painted over the regions' fixed layout.
    marks: list[tuple[int, str, str]] = []
    for view in realms:
        marks += [(g.pa, g.kind, view.label) for g in view.granules]
        marks += [(g.pa, "ns_shared", "Non-secure") for g in view.shared]
    marks += [(pa, "delegated", "delegated, unused") for pa in delegated]
    marked = _ranges(marks)

    counts = {r.name: c for r, c in p.el3.gpt_summary()}
    out: list[RegionView] = []
    for region in regions:
        boot_gpi = _PAS_GPI[region.pas]
        default, owner = _region_default(region)
        i = bisect.bisect_right([r[1] for r in gpt.runs], region.base)
        spans = []
        while i < len(gpt.runs) and gpt.runs[i][0] < region.end:
            lo, hi, gpi = gpt.runs[i]
            lo, hi = max(lo, region.base), min(hi, region.end)
            if gpi == boot_gpi:
                spans.append(Span(lo, hi - lo, default, owner, gpi))
            else:
                kind = _MOVED_KIND.get(gpi, "other")
                spans.append(Span(lo, hi - lo, kind, _moved_owner(kind), gpi))
            i += 1
        painter = _Painter(spans)
        for lo, hi, kind in _fixed_layout(p, region, gpt):
            painter.paint(lo, hi, kind, owner, only_gpi=boot_gpi)
        first = bisect.bisect_left([m[0] for m in marked], region.base)
        for lo, hi, kind, who in marked[first:]:
            if lo >= region.end:
                break
            painter.paint(lo, min(hi, region.end), kind, who)
        out.append(RegionView(
            region.name, region.base, region.size, region.kind.value, boot_gpi,
            region.description,
            {gpi_name(k): v for k, v in sorted(counts.get(region.name, {}).items())},
            painter.merged()))

    g = gpt.geometry
    info = {
        "GPCCR_EL3": p.el3.sysreg("GPCCR_EL3"), "GPTBR_EL3": p.el3.sysreg("GPTBR_EL3"),
        "pps_bits": g.t, "l0gptsz_bits": g.s, "granule_bits": g.p, "l0_base": gpt.l0_base,
        "l0_entries": g.l0_entries, "l1_tables": gpt.l1_tables,
        "l1_table_bytes": g.l1_table_size,
    }
    return MapView(len(p.cpus), p.pa_bits, info, out, realms, delegated, problems)


def _region_default(region: Region) -> tuple[str, str]:
    if region.name == "root" or region.pas is Pas.ROOT:
        return "root_free", "Root (EL3)"
    if region.name == "rmm":
        return "rmm_free", "RMM"
    if region.pas is Pas.SECURE:
        return "secure", "Secure"
    if region.kind.value == "mmio":
        return "ns_mmio", "Non-secure"
    if region.pas is Pas.REALM:
        return "realm_untracked", "Realm"
    return "ns", "Non-secure"


def _moved_owner(kind: str) -> str:
    return {"ns": "Non-secure", "secure_rt": "Secure", "realm_untracked": "Realm PAS, untracked",
            "no_access": "no access"}.get(kind, "other")


def _fixed_layout(p: Platform, region: Region, gpt: _Gpt) -> list[tuple[int, int, str]]:
    """What firmware placed in a region at boot: EL3 data and GPT tables in Root; the RMM's
    image, granule tracker and the RMM-EL3 shared buffer in the RMM carve-out."""
    if region.pas is Pas.ROOT:
        g = gpt.geometry
        out = [(region.base, region.base + EL3_DATA_SIZE, "el3_data"),
               (gpt.l0_base, gpt.l0_base + g.l0_table_size, "gpt_l0")]
        out += [(t, t + g.l1_table_size, "gpt_l1") for t in gpt.l1_tables]
        return [(lo, min(hi, region.end), k) for lo, hi, k in out if region.contains(lo)]
    if region.name == "rmm":
        tracker = region.base + RMM_PRIVATE_BASE
        tracker_end = tracker + -(-2 * p.rmm.tracker.count // GRANULE_SIZE) * GRANULE_SIZE
        return [(region.base, tracker, "rmm_data"),
                (tracker, min(tracker_end, region.end - GRANULE_SIZE), "rmm_tracker"),
                (region.end - GRANULE_SIZE, region.end, "rmm_buffer")]
    return []


# ------------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class Cell:
    """One cell of an address-ordered bar: [lo, hi) drawn as ``kind`` over ``gpi``."""

    lo: int
    hi: int
    kind: str
    gpi: int


def cells(region: RegionView, lo: int, hi: int, count: int) -> list[Cell]:
    """``[lo, hi)`` of ``region`` cut into ``count`` cells of (nearly) equal size, each
    whole granules; a range of fewer granules than ``count`` gets one cell per granule.

    A cell shows the highest-priority kind among the spans it touches, so a single RD
    granule in a GiB of Non-secure memory stays visible; its GPI is one other than the
    region's boot GPI if any granule in it has one."""
    granules = max((hi - lo) // GRANULE_SIZE, 1)
    count = max(min(count, granules), 1)
    spans = region.spans
    starts = [s.base for s in spans]
    out: list[Cell] = []
    for n in range(count):
        a = lo + (n * granules // count) * GRANULE_SIZE
        b = lo + ((n + 1) * granules // count) * GRANULE_SIZE
        i = max(bisect.bisect_right(starts, a) - 1, 0)
        best: Span | None = None
        gpi: int | None = None
        while i < len(spans) and spans[i].base < b:
            s = spans[i]
            if s.end > a:
                if best is None or KINDS[s.kind].priority > KINDS[best.kind].priority:
                    best = s
                if s.gpi != region.boot_gpi and (
                        gpi is None or _GPI_RANK.get(s.gpi, 6) > _GPI_RANK.get(gpi, 6)):
                    gpi = s.gpi
            i += 1
        out.append(Cell(a, b, best.kind if best else "other",
                        gpi if gpi is not None else region.boot_gpi))
    return out


def address_ranges(pas: Iterable[int], limit: int = 4) -> str:
    """Granule addresses as ``0x81000000–0x81003fff`` ranges, at most ``limit`` of them."""
    runs: list[list[int]] = []
    for pa in sorted(pas):
        if runs and runs[-1][1] == pa:
            runs[-1][1] = pa + GRANULE_SIZE
        else:
            runs.append([pa, pa + GRANULE_SIZE])
    text = [f"{a:#x}" if b - a == GRANULE_SIZE else f"{a:#x}–{b - 1:#x}" for a, b in runs]
    if len(text) > limit:
        text = [*text[:limit], f"… {len(runs) - limit} more"]
    return ", ".join(text)


def gpi_counts_text(region: RegionView) -> str:
    """``Non-secure 524208, Realm 80``: the region's granules by GPI (from the GPT)."""
    return ", ".join(f"{gpi_label(Gpi[k]) if k in Gpi.__members__ else k} {v}"
                     for k, v in sorted(region.gpi_counts.items(), key=lambda kv: -kv[1]))


def size_text(n: int) -> str:
    """``2 GiB``, ``320 KiB``, ``2.0 GiB`` (not exact), ``12 B``."""
    for unit, div in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n // div} {unit}" if n % div == 0 else f"{n / div:.1f} {unit}"
    return f"{n} B"


# ------------------------------------------------------------------------------- SVG


def escape(text: str) -> str:
    """Text for SVG character data and single-quoted attributes (xml.sax.saxutils would
    pull in urllib and http at import time)."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))

_SVG_W = 1040
_BAR_X = 300
_BAR_W = 620
_OWNER_COLS = ((16, "start"), (300, "end"), (380, "end"), (396, "start"), (500, "start"))
_FONT = "font-family='DejaVu Sans Mono, Menlo, Consolas, monospace'"


def render_svg(view: MapView, title: str = "ccasim physical memory map") -> str:
    """The map as a standalone SVG document: per region an address-ordered bar (upper part:
    owner / kind, lower strip: PAS from the GPT), a detail bar where a region holds a few
    interesting granules, a legend, the owners and every realm's granules by kind."""
    body: list[str] = []
    y = 34
    body.append(_text(16, y, title, size=20, weight="bold"))
    y += 20
    g = view.gpt
    body.append(_text(16, y, f"{view.cpus} PEs, PA {view.pa_bits} bits · GPT: PPS "
                      f"{g['pps_bits']} bits, L0 entry {size_text(1 << g['l0gptsz_bits'])}, "
                      f"{size_text(1 << g['granule_bits'])} granules, L0 table at "
                      f"{g['l0_base']:#x}, {len(g['l1_tables'])} L1 tables", size=12,
                      fill="#444"))
    y += 30
    body.append(_text(_BAR_X, y - 8, "upper: owner / kind    lower strip: PAS (GPT)", size=11,
                      fill="#666"))
    for region in view.regions:
        y = _svg_bar(body, region, region.base, region.end, y,
                     region.name, f"{region.base:#x} · {size_text(region.size)}")
        zoom = region.zoom()
        if zoom is not None:
            lo, hi = zoom
            y = _svg_bar(body, region, lo, hi, y, f"  └ {region.name} detail",
                         f"{lo:#x}–{hi - 1:#x} · {(hi - lo) // GRANULE_SIZE} granules")
    # legend
    y += 10
    body.append(_text(16, y, "Legend", size=14, weight="bold"))
    y += 8
    items: list[tuple[str, str]] = [(k.color, k.label) for k in view.kinds_present()]
    items += [(GPI_COLORS[gpi], f"PAS {gpi_label(gpi)}") for gpi in
              sorted({s.gpi for r in view.regions for s in r.spans}) if gpi in GPI_COLORS]
    for n, (color, label) in enumerate(items):
        col, row = n % 4, n // 4
        x, yy = 16 + col * 250, y + 8 + row * 20
        body.append(f"<rect x='{x}' y='{yy}' width='14' height='14' fill='{color}' "
                    f"stroke='#555' stroke-width='0.5'/>")
        body.append(_text(x + 20, yy + 11, label, size=12))
    y += 8 + 20 * (-(-len(items) // 4)) + 16
    # owners
    body.append(_text(16, y, "Owners", size=14, weight="bold"))
    y += 20
    for heading, (x, anchor) in zip(("owner", "granules", "size", "PAS", "made of"),
                                    _OWNER_COLS, strict=True):
        body.append(_text(x, y, heading, size=11, fill="#666", anchor=anchor))
    y += 16
    for owner, granules, kinds, gpis in view.owners():
        what = textwrap.wrap(", ".join(f"{k} {n}" for k, n in kinds.items()), 72) or [""]
        cols = (owner, str(granules), size_text(granules * GRANULE_SIZE), ", ".join(gpis),
                what[0])
        for text, (x, anchor) in zip(cols, _OWNER_COLS, strict=True):
            body.append(_text(x, y, text, size=12, anchor=anchor))
        for more in what[1:]:
            y += 15
            body.append(_text(_OWNER_COLS[-1][0], y, more, size=12))
        y += 17
    # realms
    y += 10
    body.append(_text(16, y, "Realm granules" if view.realms else "No realms", size=14,
                      weight="bold"))
    y += 20
    for realm in view.realms:
        body.append(_text(16, y, f"{realm.label}: RD {realm.rd:#x}, {realm.state}, IPA "
                          f"{realm.s2sz} bits, {realm.hash_algo}, RIM {realm.rim[:16]}…",
                          size=12, weight="bold"))
        y += 17
        rows = [(KINDS[k], gs) for k, gs in realm.by_kind().items()]
        if realm.shared:
            rows.append((KINDS["ns_shared"], realm.shared))
        for kind, gs in rows:
            body.append(f"<rect x='24' y='{y - 10}' width='12' height='12' fill='{kind.color}'/>")
            body.append(_text(44, y, f"{kind.label:<22} {len(gs):>5}  "
                              f"{address_ranges(g.pa for g in gs)}", size=12))
            y += 17
        y += 6
    for problem in view.problems:
        body.append(_text(16, y, f"problem: {problem}", size=12, fill="#c00"))
        y += 17
    height = y + 16
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{_SVG_W}' height='{height}' "
            f"viewBox='0 0 {_SVG_W} {height}'>\n"
            f"<rect width='100%' height='100%' fill='white'/>\n" + "\n".join(body) + "\n</svg>\n")


def _svg_bar(body: list[str], region: RegionView, lo: int, hi: int, y: int, name: str,
             sub: str) -> int:
    body.append(_text(16, y + 13, name, size=13, weight="bold"))
    body.append(_text(16, y + 28, sub, size=11, fill="#555"))
    row = cells(region, lo, hi, _BAR_W)
    scale = _BAR_W / len(row)
    for start, part in _merge_cells(row, lambda c: c.kind):
        first, last = part[0], part[-1]
        x0 = _BAR_X + start * scale
        kind = KINDS[first.kind]
        body.append(f"<rect x='{x0:.2f}' y='{y}' width='{len(part) * scale:.2f}' height='20' "
                    f"fill='{kind.color}'><title>{escape(kind.label)} {first.lo:#x}–"
                    f"{last.hi - 1:#x}</title></rect>")
    for start, part in _merge_cells(row, lambda c: c.gpi):
        first, last = part[0], part[-1]
        x0 = _BAR_X + start * scale
        color = GPI_COLORS.get(first.gpi, "#636363")
        body.append(f"<rect x='{x0:.2f}' y='{y + 21}' width='{len(part) * scale:.2f}' "
                    f"height='6' fill='{color}'><title>PAS {escape(gpi_label(first.gpi))} "
                    f"{first.lo:#x}–{last.hi - 1:#x}</title></rect>")
    body.append(f"<rect x='{_BAR_X}' y='{y}' width='{_BAR_W}' height='27' fill='none' "
                f"stroke='#333' stroke-width='0.6'/>")
    counts = gpi_counts_text(region)
    if lo == region.base and hi == region.end:
        body.append(_text(_BAR_X, y + 40, f"GPT: {counts}", size=10, fill="#555"))
    else:
        per = (row[0].hi - row[0].lo) // GRANULE_SIZE
        body.append(_text(_BAR_X, y + 40, f"1 cell = {per} granule{'s' if per > 1 else ''}",
                          size=10, fill="#555"))
    return y + 54


def _merge_cells(row: list[Cell], key: Any) -> list[tuple[int, list[Cell]]]:
    """Runs of consecutive cells with equal ``key``: (index of the first, cells)."""
    out: list[tuple[int, list[Cell]]] = []
    for i, c in enumerate(row):
        if out and key(out[-1][1][-1]) == key(c):
            out[-1][1].append(c)
        else:
            out.append((i, [c]))
    return out


def _text(x: float, y: float, text: str, *, size: int = 12, weight: str = "normal",
          fill: str = "#111", anchor: str = "start") -> str:
    return (f"<text x='{x}' y='{y}' {_FONT} font-size='{size}' font-weight='{weight}' "
            f"fill='{fill}' text-anchor='{anchor}' xml:space='preserve'>{escape(text)}</text>")
