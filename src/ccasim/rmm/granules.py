"""Granule tracking (rmm-abi §3): one 16-bit descriptor per 4 KB granule of tracked DRAM.

Descriptor: lock [15], state [14:10], refcount [9:0]. The array lives in the RMM's own
carve-out (Realm PAS), at the offset the platform reserves for it, and is accessed as the
RMM's private memory. Untouched memory reads as zero, which is state UNDELEGATED with no
references — so tracking a TiB costs nothing until granules are used.

Invariant: a DELEGATED granule (not locked) is all zero (REL0 zeroes on delegation and
before any object granule returns to DELEGATED).
"""

from __future__ import annotations

import enum
import mmap

from ..arch.memory import GRANULE_SHIFT, GRANULE_SIZE

REFCOUNT_MAX = 1023
_STATE_SHIFT = 10
_REF_MASK = 0x3FF


class GranuleState(enum.IntEnum):
    UNDELEGATED = 0  # the spec's NS
    DELEGATED = 1
    RD = 2
    REC = 3
    REC_AUX = 4
    DATA = 5
    RTT = 6


class GranuleTracker:
    def __init__(self, buffer: mmap.mmap, offset: int, banks: tuple[tuple[int, int], ...]):
        self.banks = banks
        self._bank_index: list[tuple[int, int, int]] = []  # (base, end, first index)
        first = 0
        for base, size in banks:
            self._bank_index.append((base, base + size, first))
            first += size >> GRANULE_SHIFT
        self.count = first
        self._desc = memoryview(buffer)[offset : offset + 2 * first].cast("H")

    def index(self, pa: int) -> int | None:
        """The tracking index of ``pa``, or None if unaligned or not tracked."""
        if pa & (GRANULE_SIZE - 1):
            return None
        base, end, first = self._bank_index[0]
        if base <= pa < end:
            return first + ((pa - base) >> GRANULE_SHIFT)
        for base, end, first in self._bank_index[1:]:
            if base <= pa < end:
                return first + ((pa - base) >> GRANULE_SHIFT)
        return None

    def address(self, idx: int) -> int:
        for base, end, first in self._bank_index:
            if first <= idx < first + ((end - base) >> GRANULE_SHIFT):
                return base + ((idx - first) << GRANULE_SHIFT)
        raise IndexError(idx)

    def find(self, pa: int, state: GranuleState) -> int | None:
        """Lookup used by every command: aligned, tracked and in ``state`` (rmm-abi §3.2)."""
        idx = self.index(pa)
        if idx is None or (self._desc[idx] >> _STATE_SHIFT) & 0x1F != state:
            return None
        return idx

    def state(self, idx: int) -> GranuleState:
        return GranuleState((self._desc[idx] >> _STATE_SHIFT) & 0x1F)

    def raw_state(self, idx: int) -> int:
        """The state field as a plain integer (hot-path lookups)."""
        return (self._desc[idx] >> _STATE_SHIFT) & 0x1F

    def refcount(self, idx: int) -> int:
        return self._desc[idx] & _REF_MASK

    def set_state(self, idx: int, state: GranuleState) -> None:
        if self._desc[idx] & _REF_MASK:
            raise AssertionError("granule state changed while referenced")
        self._desc[idx] = state << _STATE_SHIFT

    def get(self, idx: int, delta: int = 1) -> None:
        value = self._desc[idx]
        ref = (value & _REF_MASK) + delta
        if not 0 <= ref <= REFCOUNT_MAX:
            raise AssertionError("granule refcount out of range")
        self._desc[idx] = (value & ~_REF_MASK) | ref

    def put(self, idx: int, delta: int = 1) -> None:
        self.get(idx, -delta)

    def set_refcount(self, idx: int, ref: int) -> None:
        self._desc[idx] = (self._desc[idx] & ~_REF_MASK) | ref

    def counts(self) -> dict[GranuleState, int]:
        """Number of granules in each non-UNDELEGATED state (for tests and tools)."""
        out: dict[GranuleState, int] = {}
        for _pa, state, _ref in self.nonzero():
            if state != GranuleState.UNDELEGATED:
                out[state] = out.get(state, 0) + 1
        return out

    def nonzero(self) -> list[tuple[int, GranuleState, int]]:
        """(pa, state, refcount) of every granule not UNDELEGATED with zero refs."""
        out = []
        data = self._desc.tobytes()
        page = 4096
        zero = bytes(page)
        for off in range(0, len(data), page):
            chunk = data[off : off + page]
            if chunk == zero[: len(chunk)]:
                continue
            for i in range(0, len(chunk), 2):
                v = chunk[i] | (chunk[i + 1] << 8)
                if v:
                    idx = (off + i) // 2
                    out.append(
                        (self.address(idx), GranuleState((v >> _STATE_SHIFT) & 0x1F), v & _REF_MASK)
                    )
        return out
