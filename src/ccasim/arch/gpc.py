"""The granule protection check (rme-hardware §4–§5).

One :class:`GranuleProtectionChecker` per PE. It walks the GPT that GPTBR_EL3 points at,
reading descriptors from physical memory exactly as the hardware does (GPT fetches are
Root-PAS accesses and are not themselves checked), and caches the GPI it found per granule.
The cache is the model of the PE's GPT-info caching: it is *not* coherent with GPT writes and
is only invalidated by the maintenance operations the architecture defines (TLBI PAALL on
this PE, TLBI PAALLOS / RPAOS / RPALOS broadcast to all PEs). Firmware that forgets the TLBI
keeps seeing stale GPIs, as it would on silicon.
"""

from __future__ import annotations

from collections.abc import Callable

from .faults import (
    AccessKind,
    ExternalAbort,
    GptAddressSizeFault,
    GptExternalAbort,
    GptWalkFault,
    GranuleProtectionFault,
)
from .gpt import (
    L0_TABLE_ADDR_MASK,
    L0_TYPE_TABLE,
    L1_CONTIG_TYPE,
    Gpccr,
    GptDescriptorError,
    GptGeometry,
    L0Block,
    L1Contig,
    decode_l0,
    decode_l1,
    gpi_admits,
    gpi_is_valid,
    gptbr_decode,
)
from .memory import PhysicalMemory
from .security import PhysicalAddressSpace, SecurityState

_NS = PhysicalAddressSpace.NON_SECURE


class GranuleProtectionChecker:
    """Checks (PA, PAS, security state) against the GPT; see the module docstring."""

    def __init__(self, memory: PhysicalMemory, pa_range_bits: int) -> None:
        self.memory = memory
        self.pa_range_bits = pa_range_bits
        self._cache: dict[int, tuple[int, int]] = {}
        # Other caches of GPT information on this PE (the execution engine's TLB) that
        # every GPT invalidation must also drop.
        self.listeners: list[Callable[[], None]] = []
        self.walks = 0  # number of GPT walks performed (cache misses), for tests/benchmarks
        self.configure(0, 0)

    # ------------------------------------------------------------------ configuration
    def configure(self, gpccr_value: int, gptbr_value: int) -> None:
        """Latch GPCCR_EL3/GPTBR_EL3 after a write. Cached GPT information is *not*
        discarded: the architecture requires TLBI PAALL(OS) for that."""
        gpccr = Gpccr.decode(gpccr_value)
        self.enabled = gpccr.gpc
        self.nso = gpccr.nso
        self.config_error = gpccr.configuration_error(self.pa_range_bits)
        self.geometry: GptGeometry | None = (
            None if self.config_error else GptGeometry.from_gpccr(gpccr)
        )
        self.l0_base = gptbr_decode(gptbr_value)
        self._shift = self.geometry.p if self.geometry else 12
        self._l1_size = self.geometry.l1_table_size if self.geometry else 0

    # ------------------------------------------------------------------ maintenance
    def invalidate_all(self) -> None:
        """TLBI PAALL (or this PE's share of PAALLOS)."""
        self._cache.clear()
        for listener in self.listeners:
            listener()

    def invalidate_range(self, base: int, size: int) -> None:
        """TLBI RPA(L)OS over [base, base+size)."""
        for listener in self.listeners:
            listener()
        shift = self._shift
        first, last = base >> shift, (base + size - 1) >> shift
        cache = self._cache
        if first == last:
            cache.pop(first, None)
            return
        if last - first > len(cache):
            for g in [g for g in cache if first <= g <= last]:
                del cache[g]
        else:
            for g in range(first, last + 1):
                cache.pop(g, None)

    def cached(self, pa: int) -> int | None:
        """The GPI cached for ``pa``'s granule, if any (introspection for tests)."""
        entry = self._cache.get(pa >> self._shift)
        return None if entry is None else entry[0]

    # ------------------------------------------------------------------ the check
    def check(
        self,
        pa: int,
        size: int,
        pas: PhysicalAddressSpace,
        state: SecurityState,
        access: AccessKind,
    ) -> None:
        """Raise the GPC fault this access takes, or return if it passes."""
        if not self.enabled:
            return
        shift = self._shift
        first = pa >> shift
        last = (pa + size - 1) >> shift
        cache = self._cache
        if first == last:  # fast path: one granule, cached
            entry = cache.get(first)
            if entry is not None:
                gpi = entry[0]
                if gpi == 0b1111 or (gpi & 0b1100 == 0b1000 and gpi & 0b11 == pas):
                    return
        g = first
        while g <= last:
            entry = cache.get(g)
            if entry is None:
                entry = self._walk(max(pa, g << shift), pas, state, access)
                if entry is None:  # NS access beyond the PPS: passes, never cached
                    g += 1
                    continue
                cache[g] = entry
            gpi, level = entry
            if not gpi_admits(gpi, pas, state, self.nso):
                raise GranuleProtectionFault(max(pa, g << shift), pas, state, access, level)
            g += 1

    def lookup(self, pa: int) -> tuple[int, int]:
        """Walk the GPT for ``pa`` (no cache) and return (GPI, level). Raises the walk fault a
        Root-state read would take."""
        entry = self._walk(pa, PhysicalAddressSpace.ROOT, SecurityState.ROOT, AccessKind.READ)
        if entry is None:
            raise GptAddressSizeFault(
                pa, PhysicalAddressSpace.ROOT, SecurityState.ROOT, AccessKind.READ, 0
            )
        return entry

    def _walk(
        self,
        pa: int,
        pas: PhysicalAddressSpace,
        state: SecurityState,
        access: AccessKind,
    ) -> tuple[int, int] | None:
        """The GPT walk, in the order of rme-hardware §4. Returns (GPI, level) or None for an
        NS access outside the protected physical space."""
        self.walks += 1
        geometry = self.geometry
        if geometry is None:
            raise GptWalkFault(pa, pas, state, access, 0)
        if pa >> geometry.t:
            if pas == _NS:
                return None
            raise GptAddressSizeFault(pa, pas, state, access, 0)
        if self.l0_base >> geometry.t:
            raise GptAddressSizeFault(pa, pas, state, access, 0)
        l0_index = (pa >> geometry.s) & geometry.l0_mask
        try:
            raw = self.memory.read_u64(self.l0_base + 8 * l0_index)
        except ExternalAbort:
            raise GptExternalAbort(pa, pas, state, access, 0) from None
        if raw & 0xF == L0_TYPE_TABLE and not raw & ~(L0_TABLE_ADDR_MASK | 0xF):
            l1_base = raw & L0_TABLE_ADDR_MASK  # the common case, decoded inline
        else:
            try:
                l0 = decode_l0(raw)
            except GptDescriptorError:
                raise GptWalkFault(pa, pas, state, access, 0) from None
            assert isinstance(l0, L0Block)
            if not gpi_is_valid(l0.gpi, self.nso):
                raise GptWalkFault(pa, pas, state, access, 0)
            return l0.gpi, 0
        if l1_base >> geometry.t or l1_base % self._l1_size:
            raise GptWalkFault(pa, pas, state, access, 0)
        try:
            desc = self.memory.read_u64(
                l1_base + 8 * ((pa >> geometry.l1_shift) & geometry.l1_mask))
        except ExternalAbort:
            raise GptExternalAbort(pa, pas, state, access, 1) from None
        if desc & 0xF == L1_CONTIG_TYPE:
            try:
                contig = decode_l1(desc)
            except GptDescriptorError:
                raise GptWalkFault(pa, pas, state, access, 1) from None
            assert isinstance(contig, L1Contig)
            gpi = contig.gpi
        else:
            gpi = (desc >> (4 * ((pa >> geometry.p) & 0xF))) & 0xF
        if not gpi_is_valid(gpi, self.nso):
            raise GptWalkFault(pa, pas, state, access, 1)
        return gpi, 1
