"""Physical memory: a memory map of DRAM and MMIO regions, and sparse DRAM storage.

DRAM is backed by anonymous ``mmap`` reservations created with MAP_NORESERVE: a configured
TiB of DRAM costs address space only, untouched memory reads as zero, and the buffers can
later be handed to an emulator (``uc_mem_map_ptr``) without copies. Zeroing whole host pages
uses ``madvise(MADV_DONTNEED)``, which returns the memory to the host instead of touching it.

This layer is the bus *behind* the granule protection check: it knows nothing about
security. Accesses that hit no region raise :class:`ExternalAbort`.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import mmap
import struct
from dataclasses import dataclass
from typing import Protocol

from .faults import AccessKind, ExternalAbort
from .security import PhysicalAddressSpace, SecurityState

GRANULE_SHIFT = 12
GRANULE_SIZE = 1 << GRANULE_SHIFT
GRANULE_MASK = GRANULE_SIZE - 1

_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)
_HOST_PAGE = mmap.PAGESIZE
_U64 = struct.Struct("<Q")


class RegionKind(enum.StrEnum):
    DRAM = "dram"
    MMIO = "mmio"


@dataclass(frozen=True)
class Region:
    """One entry of the platform memory map.

    ``pas`` is the physical address space the monitor assigns to the region at cold boot.
    """

    name: str
    base: int
    size: int
    kind: RegionKind
    pas: PhysicalAddressSpace
    description: str = ""

    @property
    def end(self) -> int:
        return self.base + self.size

    def contains(self, pa: int, size: int = 1) -> bool:
        return self.base <= pa and pa + size <= self.end


class MmioDevice(Protocol):
    """A memory-mapped device. Offsets are relative to its region base."""

    def mmio_read(self, offset: int, size: int) -> int: ...

    def mmio_write(self, offset: int, size: int, value: int) -> None: ...


class MemoryMap:
    """An ordered, non-overlapping set of regions, looked up by PA with a binary search."""

    def __init__(self, regions: list[Region]) -> None:
        ordered = sorted(regions, key=lambda r: r.base)
        for a, b in itertools.pairwise(ordered):
            if a.end > b.base:
                raise ValueError(f"memory map regions {a.name} and {b.name} overlap")
        for r in ordered:
            if r.size <= 0 or r.base % GRANULE_SIZE or r.size % GRANULE_SIZE:
                raise ValueError(f"region {r.name} is not a whole number of granules")
        self.regions = ordered
        self._bases = [r.base for r in ordered]
        self._by_name = {r.name: r for r in ordered}

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.regions)

    def __getitem__(self, name: str) -> Region:
        return self._by_name[name]

    def find(self, pa: int) -> Region | None:
        i = bisect.bisect_right(self._bases, pa) - 1
        if i >= 0:
            r = self.regions[i]
            if pa < r.end:
                return r
        return None

    @property
    def top(self) -> int:
        """One past the highest mapped address."""
        return max(r.end for r in self.regions)

    def dram(self) -> list[Region]:
        return [r for r in self.regions if r.kind is RegionKind.DRAM]


class PhysicalMemory:
    """The memory system behind the PoPA: DRAM contents and MMIO devices, no checks.

    Accesses must not straddle two regions (a real interconnect would split them; the model
    treats it as an external abort, which no architected access of ≤ 4 KB within one granule
    can trigger).
    """

    def __init__(self, memory_map: MemoryMap) -> None:
        self.map = memory_map
        self._buffers: dict[str, mmap.mmap] = {}
        self._devices: dict[str, MmioDevice] = {}
        for r in memory_map:
            if r.kind is RegionKind.DRAM:
                self._buffers[r.name] = mmap.mmap(
                    -1,
                    r.size,
                    flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE,
                )
        # Granules from which some execution engine has translated guest code, and a
        # generation number bumped whenever memory is written behind the emulators' backs
        # over such a granule (their translation-block caches must then be dropped).
        self.code_pages: set[int] = set()
        self._last_u64: tuple[int, int, mmap.mmap] = (0, 0, mmap.mmap(-1, 1))
        self.code_generation = 0
        # Fast path for the hot DRAM lookup: (base, end, buffer) triples.
        self._dram = sorted(
            (
                (r.base, r.end, self._buffers[r.name])
                for r in memory_map
                if r.kind is RegionKind.DRAM
            ),
            key=lambda t: t[0] - t[1],  # largest first: most accesses hit Non-secure DRAM
        )

    # ---------------------------------------------------------------- devices
    def attach(self, region_name: str, device: MmioDevice) -> None:
        region = self.map[region_name]
        if region.kind is not RegionKind.MMIO:
            raise ValueError(f"{region_name} is not an MMIO region")
        self._devices[region_name] = device

    def buffer(self, region_name: str) -> mmap.mmap:
        """The backing store of a DRAM region (for zero-copy sharing with an emulator)."""
        return self._buffers[region_name]

    # ---------------------------------------------------------------- lookups
    def _locate(
        self,
        pa: int,
        size: int,
        access: AccessKind,
        pas: PhysicalAddressSpace,
        state: SecurityState,
    ) -> tuple[mmap.mmap | None, int, Region | None]:
        for base, end, buf in self._dram:
            if base <= pa and pa + size <= end:
                return buf, pa - base, None
        region = self.map.find(pa)
        if region is None or not region.contains(pa, size):
            raise ExternalAbort(pa, pas, state, access)
        if region.kind is RegionKind.MMIO:
            return None, pa - region.base, region
        raise ExternalAbort(pa, pas, state, access, "access straddles a region boundary")

    def is_backed(self, pa: int, size: int = 1) -> bool:
        region = self.map.find(pa)
        return region is not None and region.contains(pa, size)

    # ---------------------------------------------------------------- accesses
    def read(
        self,
        pa: int,
        size: int,
        pas: PhysicalAddressSpace = PhysicalAddressSpace.ROOT,
        state: SecurityState = SecurityState.ROOT,
    ) -> bytes:
        buf, off, region = self._locate(pa, size, AccessKind.READ, pas, state)
        if buf is not None:
            return buf[off : off + size]
        assert region is not None
        device = self._devices.get(region.name)
        if device is None or size not in (1, 2, 4, 8):
            raise ExternalAbort(pa, pas, state, AccessKind.READ, "device rejected the access")
        return device.mmio_read(off, size).to_bytes(size, "little")

    def _code_written(self, pa: int, size: int) -> None:
        """Writes that bypass the emulator over translated code invalidate its TBs."""
        pages = self.code_pages
        first, last = pa >> GRANULE_SHIFT, (pa + max(size, 1) - 1) >> GRANULE_SHIFT
        if any(g in pages for g in range(first, last + 1)):
            self.code_generation += 1
            pages.clear()

    def write(
        self,
        pa: int,
        data: bytes,
        pas: PhysicalAddressSpace = PhysicalAddressSpace.ROOT,
        state: SecurityState = SecurityState.ROOT,
    ) -> None:
        size = len(data)
        if self.code_pages:
            self._code_written(pa, size)
        buf, off, region = self._locate(pa, size, AccessKind.WRITE, pas, state)
        if buf is not None:
            buf[off : off + size] = data
            return
        assert region is not None
        device = self._devices.get(region.name)
        if device is None or size not in (1, 2, 4, 8):
            raise ExternalAbort(pa, pas, state, AccessKind.WRITE, "device rejected the access")
        device.mmio_write(off, size, int.from_bytes(data, "little"))

    def read_u64(
        self,
        pa: int,
        pas: PhysicalAddressSpace = PhysicalAddressSpace.ROOT,
        state: SecurityState = SecurityState.ROOT,
    ) -> int:
        base, end, buf = self._last_u64  # the GPT walk and the RTT walks hit one region
        if base <= pa and pa + 8 <= end:
            return int(_U64.unpack_from(buf, pa - base)[0])
        for region in self._dram:
            base, end, buf = region
            if base <= pa and pa + 8 <= end:
                self._last_u64 = region
                return int(_U64.unpack_from(buf, pa - base)[0])
        return int.from_bytes(self.read(pa, 8, pas, state), "little")

    def write_u64(
        self,
        pa: int,
        value: int,
        pas: PhysicalAddressSpace = PhysicalAddressSpace.ROOT,
        state: SecurityState = SecurityState.ROOT,
    ) -> None:
        if self.code_pages:
            self._code_written(pa, 8)
        for base, end, buf in self._dram:
            if base <= pa and pa + 8 <= end:
                _U64.pack_into(buf, pa - base, value)
                return
        self.write(pa, value.to_bytes(8, "little"), pas, state)

    def fill_u64(self, pa: int, value: int, count: int) -> None:
        """Write ``count`` copies of a 64-bit value (used to initialise GPT tables)."""
        self.write(pa, _U64.pack(value) * count)

    def zero(self, pa: int, size: int) -> None:
        """Zero DRAM. Whole host pages are dropped (they read back as zero and cost no
        memory); the rest is overwritten."""
        if self.code_pages:
            self._code_written(pa, size)
        if size == _HOST_PAGE and not pa % _HOST_PAGE:  # one aligned page: the common case
            for base, end, dram in self._dram:
                if base <= pa and pa + size <= end:
                    dram.madvise(mmap.MADV_DONTNEED, pa - base, size)
                    return
        buf, off, _ = self._locate(
            pa, size, AccessKind.WRITE, PhysicalAddressSpace.ROOT, SecurityState.ROOT
        )
        if buf is None:
            raise ExternalAbort(
                pa, PhysicalAddressSpace.ROOT, SecurityState.ROOT, AccessKind.WRITE, "not DRAM"
            )
        start = -(-off // _HOST_PAGE) * _HOST_PAGE
        stop = (off + size) // _HOST_PAGE * _HOST_PAGE
        if stop > start:
            buf[off:start] = bytes(start - off)
            buf.madvise(mmap.MADV_DONTNEED, start, stop - start)
            buf[stop : off + size] = bytes(off + size - stop)
        else:
            buf[off : off + size] = bytes(size)
