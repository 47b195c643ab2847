"""Helpers shared by the RMI command handlers: granule lookups with spec labels, reads of
host (Non-secure) memory, zeroing, and the registration decorator."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ...arch.faults import ArchFault
from ...arch.memory import GRANULE_SIZE
from ...arch.pe import ProcessingElement
from ...arch.security import PhysicalAddressSpace as Pas
from ..errors import Conditions
from ..granules import GranuleState
from . import RMI_TABLE, RmiCommand

if TYPE_CHECKING:
    from ..rmm import Rmm

# Enum members bound once: member access through the class is slow on Python 3.11.
_NS_PAS, _REALM_PAS = Pas.NON_SECURE, Pas.REALM
_UNDELEGATED = GranuleState.UNDELEGATED

Handler = Callable[["Rmm", ProcessingElement, Sequence[int]], tuple[int, ...]]


def command(fid: int, name: str, args: int, results: int) -> Callable[[Handler], Handler]:
    """Register an RMI handler in the dispatch table."""

    def register(fn: Handler) -> Handler:
        if fid in RMI_TABLE:
            raise ValueError(f"duplicate RMI FID {fid:#x}")
        RMI_TABLE[fid] = RmiCommand(fid, name, args, results, fn)
        return fn

    return register


def find(rmm: Rmm, conds: Conditions, prefix: str, pa: int, state: GranuleState) -> int:
    """Granule lookup with the three labelled checks ``<prefix>_align``, ``_bound``,
    ``_state`` (rmm-abi §3.2); returns the tracking index."""
    idx = rmm.tracker.find(pa, state)
    if idx is None:
        # the failure path: find out which condition, in order
        if pa % GRANULE_SIZE:
            conds[f"{prefix}_align"].fail()
        if rmm.tracker.index(pa) is None:
            conds[f"{prefix}_bound"].fail()
        conds[f"{prefix}_state"].fail()
    return idx


def read_ns(
    rmm: Rmm,
    pe: ProcessingElement,
    conds: Conditions,
    prefix: str,
    pa: int,
    size: int = GRANULE_SIZE,
) -> bytes:
    """Read a host structure: aligned, tracked, UNDELEGATED, and the Realm-state read of the
    NS PAS must not fault (``<prefix>_align/_bound/_pas``)."""
    if pa % GRANULE_SIZE:
        conds[f"{prefix}_align"].fail()
    idx = rmm.tracker.index(pa)
    if idx is None:
        conds[f"{prefix}_bound"].fail()
    if rmm.tracker.raw_state(idx) != _UNDELEGATED:
        conds[f"{prefix}_pas"].fail()
    try:
        return pe.read(pa, size, _NS_PAS)
    except ArchFault:
        conds[f"{prefix}_pas"].fail()


def write_ns(pe: ProcessingElement, pa: int, data: bytes) -> bool:
    """Write host memory from the RMM; False if the access faulted."""
    try:
        pe.write(pa, data, _NS_PAS)
    except ArchFault:
        return False
    return True


def zero_granule(pe: ProcessingElement, pa: int) -> None:
    """Scrub a granule through the Realm PAS (checked like any RMM store)."""
    pe.zero(pa, GRANULE_SIZE, _REALM_PAS)


def lock_two(
    rmm: Rmm,
    conds: Conditions,
    first: tuple[str, int, GranuleState],
    second: tuple[str, int, GranuleState],
    alias_label: str = "alias",
) -> tuple[int, int]:
    """Look up two granules in ascending PA order; equal addresses are an alias (INPUT)."""
    (p1, a1, s1), (p2, a2, s2) = first, second
    if a1 == a2:
        # The second lookup of the same granule fails its state check in TF-RMM.
        conds[alias_label].fail()
    if a1 < a2:
        i1 = find(rmm, conds, p1, a1, s1)
        i2 = find(rmm, conds, p2, a2, s2)
    else:
        i2 = find(rmm, conds, p2, a2, s2)
        i1 = find(rmm, conds, p1, a1, s1)
    return i1, i2
