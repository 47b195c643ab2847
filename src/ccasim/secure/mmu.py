"""The SPMC's stage-2 translation tables for its partitions (VMSAv8-64, 4 KB granule).

Each partition has its own tables in the SPMC's Secure memory; the PE's hardware walker
(:func:`ccasim.arch.stage2.translate_stage2`, with ``world_pas`` = Secure) reads them through
the GPC like any Secure-state access. Mappings are identity (IPA = PA), as Hafnium gives
S-EL1 partitions: the partition's own image and, after FFA_MEM_RETRIEVE_REQ, the memory the
Normal world lent, donated or shared to it.

Model choice (documented deviation): in Secure state the architecture has two IPA spaces
(VSTTBR_EL2 for the Secure IPA space, VTTBR_EL2 for the Non-secure one, selected by the
stage-1 NS bit). Partitions here run with their MMU off, so the SPMC folds both into one
table and marks a page of the Non-secure PAS (shared memory) with descriptor bit 55, which
the walker turns into a Non-secure PAS output — the effect VTTBR_EL2's IPA space would have.
"""

from __future__ import annotations

from ..arch.memory import GRANULE_SIZE
from ..arch.pe import ProcessingElement
from ..arch.security import PhysicalAddressSpace as Pas
from ..arch.stage2 import AF_BIT, NS_BIT, OA_MASK, S2AP_READ, S2AP_WRITE, XN_BIT, Stage2Config

VALID = 1 << 0
TABLE_OR_PAGE = 1 << 1
MEMATTR_NORMAL_WB = 0xF << 2  # stage-2 MemAttr: Normal, Outer/Inner Write-Back
SH_INNER = 0x3 << 8
ENTRIES = 512


class TablesExhausted(Exception):
    """The SPMC's page-table pool has no free granule (FFA NO_MEMORY)."""


class TablePool:
    """Granules of Secure memory handed out for translation tables (never freed: a
    partition's tables only grow)."""

    def __init__(self, base: int, size: int) -> None:
        self.base = base
        self.end = base + size
        self.next = base

    @property
    def free(self) -> int:
        return (self.end - self.next) // GRANULE_SIZE

    def alloc(self, pe: ProcessingElement) -> int:
        if self.next >= self.end:
            raise TablesExhausted("SPMC translation-table pool exhausted")
        pa = self.next
        self.next += GRANULE_SIZE
        pe.zero(pa, GRANULE_SIZE, Pas.SECURE)
        return pa


def level_shift(level: int) -> int:
    return 12 + 9 * (3 - level)


class PartitionStage2:
    """One partition's stage-2 tables: map and unmap 4 KB pages (IPA = PA)."""

    def __init__(self, pe: ProcessingElement, pool: TablePool, vmid: int) -> None:
        self.pool = pool
        self.ipa_bits = min(pe.pa_bits, 48)
        self.start_level = 0 if self.ipa_bits > 39 else 1
        self.root = pool.alloc(pe)
        self.config = Stage2Config(self.root, self.ipa_bits, self.start_level, 1, pe.pa_bits,
                                   vmid, world_pas=Pas.SECURE)

    def tables_needed(self, pe: ProcessingElement, ipas: list[int]) -> int:
        """How many new tables mapping ``ipas`` would allocate (to fail before changing
        anything when the pool is short)."""
        missing: set[tuple[int, int]] = set()
        for ipa in ipas:
            table = self.root
            for level in range(self.start_level, 3):
                desc = pe.read_u64(table + 8 * self._index(ipa, level), Pas.SECURE)
                if desc & VALID:
                    table = desc & OA_MASK
                    continue
                for lower in range(level + 1, 4):
                    missing.add((lower, ipa >> level_shift(lower - 1)))
                break
        return len(missing)

    def _index(self, ipa: int, level: int) -> int:
        return (ipa >> level_shift(level)) & (ENTRIES - 1)

    def _leaf_entry(self, pe: ProcessingElement, ipa: int, create: bool) -> int | None:
        """The PA of the level-3 entry for ``ipa`` (allocating tables if ``create``)."""
        table = self.root
        for level in range(self.start_level, 3):
            entry = table + 8 * self._index(ipa, level)
            desc = pe.read_u64(entry, Pas.SECURE)
            if not desc & VALID:
                if not create:
                    return None
                new = self.pool.alloc(pe)
                pe.write_u64(entry, new | VALID | TABLE_OR_PAGE, Pas.SECURE)
                desc = new | VALID | TABLE_OR_PAGE
            table = desc & OA_MASK
        return table + 8 * self._index(ipa, 3)

    def map_page(self, pe: ProcessingElement, ipa: int, pa: int, *, ns: bool, write: bool,
                 execute: bool) -> None:
        """Map one page readable (and writable / executable as asked); ``ns`` selects the
        Non-secure PAS for the output."""
        entry = self._leaf_entry(pe, ipa, create=True)
        assert entry is not None
        desc = (pa & OA_MASK) | VALID | TABLE_OR_PAGE | MEMATTR_NORMAL_WB | SH_INNER | AF_BIT
        desc |= S2AP_READ | (S2AP_WRITE if write else 0) | (0 if execute else XN_BIT)
        desc |= NS_BIT if ns else 0
        pe.write_u64(entry, desc, Pas.SECURE)

    def unmap_page(self, pe: ProcessingElement, ipa: int) -> None:
        entry = self._leaf_entry(pe, ipa, create=False)
        if entry is not None:
            pe.write_u64(entry, 0, Pas.SECURE)

    def lookup(self, pe: ProcessingElement, ipa: int) -> int:
        """The level-3 descriptor for ``ipa`` (0 if unmapped)."""
        entry = self._leaf_entry(pe, ipa, create=False)
        return 0 if entry is None else pe.read_u64(entry, Pas.SECURE)
