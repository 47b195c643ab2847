"""EL3's GPT library: builds the tables at cold boot and performs granule transitions.

Modelled on the behaviour of TF-A's ``lib/gpt_rme`` (rme-hardware §6), restated:

* tables live in the Root region and are written with ordinary Root-state stores (which the
  GPC checks like any other access);
* a transition runs *precondition checks → lock → policy → (shatter) → the delegate or
  undelegate sequence of CMOs, GPI writes and TLBIs → unlock*;
* errors are ``-EINVAL`` (bad address) and ``-EPERM`` (policy), which callers map to their
  ABI's status codes.

One deliberate difference from TF-A: TF-A decides at build time which regions are mapped by
level-0 block descriptors (never transitionable) and which by level-1 tables. Here a
Non-secure DRAM region that fills a whole level-0 region starts as an L0 block and is turned
into an L1 table (same GPI everywhere) by the first transition that needs it; like a
shatter, the conversion ends with a TLBI over the whole L0 region, so no PE keeps GPT
information cached from the block (real PEs cache the block as one entry, which the
granule's own TLBI would drop; the model caches per granule). Boot stays O(memory map), not
O(DRAM), and a 1 TiB platform needs L1 memory only where granules actually move. L1 tables
are never fused back.
"""

from __future__ import annotations

import dataclasses
import errno
import struct
import threading
from collections.abc import Callable, Iterable

from ..arch.gpt import (
    L0_TABLE_ADDR_MASK,
    L0_TYPE_BLOCK,
    L0_TYPE_TABLE,
    L1_CONTIG_TYPE,
    Gpccr,
    Gpi,
    GptDescriptorError,
    GptGeometry,
    L0Block,
    L0Table,
    L1Contig,
    decode_l0,
    decode_l1,
    gptbr_encode,
    l1_uniform,
)
from ..arch.memory import MemoryMap, PhysicalMemory, Region, RegionKind
from ..arch.pe import ProcessingElement, rpa_operand
from ..arch.security import PhysicalAddressSpace as Pas
from ..arch.security import SecurityState
from ..config import EL3_DATA_SIZE, PlatformConfig
from ..trace import Tracer

_PAS_GPI = {
    Pas.SECURE: Gpi.SECURE,
    Pas.NON_SECURE: Gpi.NON_SECURE,
    Pas.ROOT: Gpi.ROOT,
    Pas.REALM: Gpi.REALM,
}
GPI_PAS: dict[int, Pas] = {int(gpi): pas for pas, gpi in _PAS_GPI.items()}

# Transition policy (rme-hardware §6): caller state -> {current GPI: allowed targets}.
TRANSITION_POLICY: dict[SecurityState, dict[int, frozenset[int]]] = {
    SecurityState.REALM: {
        Gpi.NON_SECURE: frozenset({Gpi.REALM}),
        Gpi.REALM: frozenset({Gpi.NON_SECURE}),
    },
    SecurityState.SECURE: {
        Gpi.NON_SECURE: frozenset({Gpi.SECURE}),
        Gpi.SECURE: frozenset({Gpi.NON_SECURE}),
    },
    SecurityState.NON_SECURE: {},
    SecurityState.ROOT: {},
}

BITLOCK_BLOCK = 512 << 20
_TARGETS = frozenset({Gpi.NON_SECURE, Gpi.SECURE, Gpi.REALM})
_NONE: frozenset[int] = frozenset()
# bound once: enum member access through the class is slow on Python 3.11
_GPI_NS, _GPI_NO_ACCESS = Gpi.NON_SECURE, Gpi.NO_ACCESS
_U64 = struct.Struct("<Q")  # one lock bit per 512 MB, as TF-A's default


class GptLib:
    """The monitor's view of the GPT: where tables live and how they change."""

    def __init__(self, config: PlatformConfig, memory_map: MemoryMap) -> None:
        self.memory_map = memory_map
        self.root = memory_map["root"]
        self.gpccr = Gpccr(
            pps={32: 0, 36: 1, 40: 2, 42: 3, 44: 4, 48: 5, 52: 6}[config.pps_bits],
            pgs=0,
            l0gptsz={30: 0, 34: 4, 36: 6, 39: 9}[config.l0gptsz],
        )
        self.geometry = GptGeometry.from_gpccr(self.gpccr)
        g = self.geometry
        self.l0_base = _align_up(self.root.base + EL3_DATA_SIZE, g.l0_table_size)
        self.l1_pool = _align_up(self.l0_base + g.l0_table_size, g.l1_table_size)
        self.l1_slots = config.l1_tables
        if self.l1_pool + self.l1_slots * g.l1_table_size > self.root.end:
            raise ValueError("Root region too small for the GPT")  # guarded by PlatformConfig
        self._locks: dict[int, threading.Lock] = {}
        self._dram_ranges = [(r.base, r.end) for r in memory_map if r.kind is RegionKind.DRAM]
        self._rpa_granule = rpa_operand(0, g.granule_size)  # TLBI RPALOS size field
        self.transitions = 0
        self.tracer: Tracer | None = None
        # Called after every completed transition with (pe, pa, old GPI, new GPI): observers
        # such as the invariant checker (ccasim.checker).
        self.listeners: list[Callable[[ProcessingElement, int, int, int], None]] = []

    # ------------------------------------------------------------------ table accesses
    def attach(self, memory: PhysicalMemory) -> None:
        """Give the library its Root-region table memory. EL3's loads and stores to its own
        Root-PAS tables always pass the GPC (the region is Root and never transitions), so
        the transition path accesses them directly; the GPC still reads the same bytes."""
        self._root_buf = memory.buffer(self.root.name)

    def _rd(self, pa: int) -> int:
        return int(_U64.unpack_from(self._root_buf, pa - self.root.base)[0])

    def _wr(self, pa: int, value: int) -> None:
        _U64.pack_into(self._root_buf, pa - self.root.base, value)

    def _fill(self, pa: int, value: int, count: int) -> None:
        off = pa - self.root.base
        self._root_buf[off : off + 8 * count] = _U64.pack(value) * count

    # ------------------------------------------------------------------ geometry helpers
    def l1_slot(self, l0_index: int) -> int:
        """PA of the L1 table reserved for L0 entry ``l0_index``."""
        return self.l1_pool + l0_index * self.geometry.l1_table_size

    def l0_entry_pa(self, pa: int) -> int:
        return self.l0_base + 8 * self.geometry.l0_index(pa)

    # ------------------------------------------------------------------ cold boot
    def build(self, pe: ProcessingElement) -> None:
        """Write the L0 table and the L1 tables the memory map needs (EL3, GPC still off).

        Unused space gets GPI ANY (as TF-A does): no device answers there, so accesses end as
        external aborts after passing the check.
        """
        g = self.geometry
        pe.write(self.l0_base, bytes(g.l0_table_size), Pas.ROOT)
        for idx in range(g.l0_entries):
            start = idx << g.s
            end = start + g.l0_region_size
            regions = [r for r in self.memory_map if r.base < end and r.end > start]
            if not regions:
                desc = L0Block(Gpi.ANY).encode()
            elif len(regions) == 1 and regions[0].base <= start and regions[0].end >= end:
                desc = L0Block(_PAS_GPI[regions[0].pas]).encode()
            else:
                l1 = self.l1_slot(idx)
                self._fill_l1(pe, l1, Gpi.ANY)
                for r in regions:
                    lo, hi = max(r.base, start), min(r.end, end)
                    self._set_range(pe, l1, start, lo, hi, _PAS_GPI[r.pas])
                desc = L0Table(l1).encode()
            pe.write_u64(self.l0_base + 8 * idx, desc, Pas.ROOT)

    def enable(self, pe: ProcessingElement) -> None:
        """``gpt_enable`` on one PE: GPTBR, GPCCR without GPC, TLBI, then GPC on, TLBI."""
        pe.write_sysreg("GPTBR_EL3", gptbr_encode(self.l0_base))
        pe.write_sysreg("GPCCR_EL3", self.gpccr.encode())
        pe.tlbi_paallos()
        pe.dsb("OSH")
        enabled = dataclasses.replace(self.gpccr, gpc=True)
        pe.write_sysreg("GPCCR_EL3", enabled.encode())
        pe.tlbi_paallos()
        pe.dsb("OSH")

    def _fill_l1(self, pe: ProcessingElement, l1: int, gpi: int) -> None:
        desc = l1_uniform(gpi).to_bytes(8, "little")
        pe.write(l1, desc * self.geometry.l1_entries, Pas.ROOT)

    def _set_range(
        self, pe: ProcessingElement, l1: int, region_start: int, lo: int, hi: int, gpi: int
    ) -> None:
        """Set the GPI of granules [lo, hi) in the L1 table covering ``region_start``."""
        g = self.geometry
        span = 16 << g.p  # bytes covered by one L1 entry
        pa = lo
        while pa < hi:
            entry_pa = l1 + 8 * g.l1_index(pa)
            if pa % span == 0 and pa + span <= hi:
                count = (hi - pa) // span
                pe.write(entry_pa, l1_uniform(gpi).to_bytes(8, "little") * count, Pas.ROOT)
                pa += count * span
                continue
            desc = pe.read_u64(entry_pa, Pas.ROOT)
            shift = 4 * g.gpi_index(pa)
            pe.write_u64(entry_pa, (desc & ~(0xF << shift)) | (gpi << shift), Pas.ROOT)
            pa += g.granule_size

    # ------------------------------------------------------------------ queries
    # ------------------------------------------------------------------ transitions
    def _lock(self, pa: int) -> threading.Lock:
        key = pa // BITLOCK_BLOCK
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks.setdefault(key, threading.Lock())
        return lock

    def validate(self, pa: int, target_gpi: int) -> int:
        """Precondition checks done before taking the lock; 0 or -EINVAL."""
        size = 1 << self.geometry.p
        if pa % size or pa < 0:
            return -errno.EINVAL
        if pa >> self.geometry.t:
            return -errno.EINVAL
        for base, end in self._dram_ranges:
            if base <= pa and pa + size <= end:
                break
        else:
            return -errno.EINVAL  # MMIO, holes and Root/firmware carve-outs' edges
        if target_gpi not in _TARGETS:
            return -errno.EINVAL
        return 0

    def allowed(self, caller: SecurityState, current: int, target: int) -> bool:
        return target in TRANSITION_POLICY[caller].get(current, _NONE)

    def transition(
        self, pe: ProcessingElement, caller: SecurityState, pa: int, target_gpi: int
    ) -> int:
        """Move one granule to ``target_gpi`` on behalf of ``caller``; 0, -EINVAL or -EPERM.

        Must run at EL3 on ``pe``. Nothing changes when an error is returned.
        """
        rc = self.validate(pa, target_gpi)
        if rc:
            return rc
        lock = self._locks.get(pa // BITLOCK_BLOCK) or self._lock(pa)
        with lock:
            entry_pa, current = self._locate(pe, pa)
            if not self.allowed(caller, current, target_gpi):
                return -errno.EPERM
            if entry_pa is None:  # L0 block or contiguous descriptor: make a granule entry
                entry_pa = self._granule_entry(pe, pa)
            if target_gpi == _GPI_NS:
                self._undelegate(pe, entry_pa, pa, current, target_gpi)
            else:
                self._delegate(pe, entry_pa, pa, current, target_gpi)
        self.transitions += 1
        if self.tracer is not None:
            self.tracer.instant("GPT transition", "gpt", pe.index, {
                "pa": hex(pa), "from": Gpi(current).name, "to": Gpi(target_gpi).name,
                "caller": caller.name})
        for listener in self.listeners:
            listener(pe, pa, current, target_gpi)
        return 0

    def check_many(
        self, pe: ProcessingElement, caller: SecurityState, pas: Iterable[int], target_gpi: int
    ) -> int:
        """Validate and policy-check several granules without changing anything."""
        for pa in pas:
            rc = self.validate(pa, target_gpi)
            if rc:
                return rc
            if not self.allowed(caller, self.read_gpi(pe, pa), target_gpi):
                return -errno.EPERM
        return 0

    def _locate(self, pe: ProcessingElement, pa: int) -> tuple[int | None, int]:
        """(PA of the L1 granules descriptor holding ``pa``'s GPI, or None when the GPI
        comes from an L0 block or a contiguous descriptor; the current GPI). Read only."""
        g = self.geometry
        buf, base = self._root_buf, self.root.base
        l0 = _U64.unpack_from(buf, self.l0_base + 8 * ((pa >> g.s) & g.l0_mask) - base)[0]
        kind = l0 & 0xF
        if kind == L0_TYPE_BLOCK:
            return None, (l0 >> 4) & 0xF
        if kind != L0_TYPE_TABLE:
            raise GptDescriptorError(f"invalid L0 descriptor {l0:#x}")
        entry_pa = (l0 & L0_TABLE_ADDR_MASK) + 8 * ((pa >> g.l1_shift) & g.l1_mask)
        desc = _U64.unpack_from(buf, entry_pa - base)[0]
        if desc & 0xF == L1_CONTIG_TYPE:
            return None, (desc >> 4) & 0xF
        return entry_pa, (desc >> (4 * ((pa >> g.p) & 0xF))) & 0xF

    def read_gpi(self, pe: ProcessingElement, pa: int) -> int:
        """The GPI the tables hold for ``pa`` (a software walk by EL3, Root-state reads)."""
        return self._locate(pe, pa)[1]

    def _granule_entry(self, pe: ProcessingElement, pa: int) -> int:
        """PA of the L1 granules descriptor for ``pa``, creating the L1 table (from an L0
        block) or shattering a contiguous descriptor first if needed."""
        g = self.geometry
        l0_pa = self.l0_entry_pa(pa)
        l0 = decode_l0(self._rd(l0_pa))
        if isinstance(l0, L0Block):
            l1 = self.l1_slot(g.l0_index(pa))
            self._fill(l1, l1_uniform(l0.gpi), self.geometry.l1_entries)
            pe.dsb("OSHST")
            self._wr(l0_pa, L0Table(l1).encode())
            pe.dsb("OSHST")
            # As after a shatter: drop GPT information cached from the block, so later
            # lookups (and GPF levels) come from the new L1 table.
            region = pa & ~(g.l0_region_size - 1)
            pe.tlbi_rpalos(rpa_operand(region, g.l0_region_size))
            pe.dsb("OSH")
        else:
            l1 = l0.l1_base
        entry_pa = l1 + 8 * g.l1_index(pa)
        raw = self._rd(entry_pa)
        if raw & 0xF == L1_CONTIG_TYPE:
            desc = decode_l1(raw)
            assert isinstance(desc, L1Contig)
            self._shatter(pe, l1, pa, desc)
        return entry_pa

    def _shatter(self, pe: ProcessingElement, l1: int, pa: int, desc: L1Contig) -> None:
        """Rewrite a contiguous block as granules descriptors of the same GPI."""
        g = self.geometry
        block = pa & ~(desc.size - 1)
        first = l1 + 8 * g.l1_index(block)
        count = desc.size // (16 << g.p)
        self._fill(first, l1_uniform(desc.gpi), count)
        pe.dsb("OSHST")
        pe.tlbi_rpalos(rpa_operand(block, desc.size))
        pe.dsb("OSH")

    def _write_gpi(self, pe: ProcessingElement, entry_pa: int, pa: int, gpi: int) -> None:
        shift = 4 * ((pa >> self.geometry.p) & 0xF)
        buf, off = self._root_buf, entry_pa - self.root.base
        desc = _U64.unpack_from(buf, off)[0]
        _U64.pack_into(buf, off, (desc & ~(0xF << shift)) | (gpi << shift))
        pe.dsb("OSHST")
        pe.tlbi_rpalos((pa >> 12) | self._rpa_granule)
        pe.dsb("OSH")

    def _delegate(
        self, pe: ProcessingElement, entry_pa: int, pa: int, current: int, target: int
    ) -> None:
        """NS -> Realm/Secure: evict target-PAS lines, write GPI + TLBI, push source lines."""
        pe.dc_cipapa(pa, GPI_PAS[target])
        self._write_gpi(pe, entry_pa, pa, target)
        pe.dc_cipapa(pa, GPI_PAS[current])

    def _undelegate(
        self, pe: ProcessingElement, entry_pa: int, pa: int, current: int, target: int
    ) -> None:
        """Realm/Secure -> NS: No-access first (old owner loses access), CMOs in both PAS,
        then the target GPI."""
        self._write_gpi(pe, entry_pa, pa, _GPI_NO_ACCESS)
        pe.dc_cipapa(pa, GPI_PAS[current])
        pe.dc_cipapa(pa, GPI_PAS[target])
        self._write_gpi(pe, entry_pa, pa, target)

    # ------------------------------------------------------------------ summaries
    def summary(self, pe: ProcessingElement) -> list[tuple[Region, dict[int, int]]]:
        """Per memory-map region, the number of granules holding each GPI (a full walk of
        the tables the region touches; O(region size / 64 KB))."""
        out = []
        g = self.geometry
        for region in self.memory_map:
            counts: dict[int, int] = {}
            pa = region.base
            while pa < region.end:
                l0 = decode_l0(pe.read_u64(self.l0_entry_pa(pa), Pas.ROOT))
                l0_end = min(((pa >> g.s) + 1) << g.s, region.end)
                if isinstance(l0, L0Block):
                    counts[l0.gpi] = counts.get(l0.gpi, 0) + (l0_end - pa) // g.granule_size
                    pa = l0_end
                    continue
                pa = self._count_l1(pe, l0.l1_base, pa, l0_end, counts)
            out.append((region, counts))
        return out

    def _count_l1(
        self, pe: ProcessingElement, l1: int, pa: int, end: int, counts: dict[int, int]
    ) -> int:
        g = self.geometry
        span = 16 << g.p
        while pa < end:
            first = g.l1_index(pa)
            n = min((end - pa + span - 1) // span, g.l1_entries - first)
            raw = pe.read(l1 + 8 * first, 8 * n, Pas.ROOT)
            for i in range(n):
                desc = int.from_bytes(raw[8 * i : 8 * i + 8], "little")
                entry_base = (pa & ~(span - 1)) + i * span
                lo, hi = max(entry_base, pa), min(entry_base + span, end)
                granules = (hi - lo) >> g.p
                if desc & 0xF == 0b0001:  # contiguous
                    gpi = (desc >> 4) & 0xF
                    counts[gpi] = counts.get(gpi, 0) + granules
                elif desc == l1_uniform(desc & 0xF):
                    counts[desc & 0xF] = counts.get(desc & 0xF, 0) + granules
                else:
                    for k in range((lo >> g.p) & 0xF, ((lo >> g.p) & 0xF) + granules):
                        gpi = (desc >> (4 * k)) & 0xF
                        counts[gpi] = counts.get(gpi, 0) + 1
            pa = (pa & ~(span - 1)) + n * span
            pa = min(pa, end)
        return pa


def _align_up(value: int, align: int) -> int:
    return -(-value // align) * align
