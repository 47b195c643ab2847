"""Stage-2 translation tables as the RMM keeps them (rmm-abi §5).

RTTs are VMSAv8-64 stage-2 descriptor tables (4 KB granule, 512 entries, levels 0..3, up to
16 concatenated start-level tables) stored in RTT granules. Valid descriptors are exactly
what the hardware walker consumes; invalid descriptors carry the RMM's software state:

* HIPAS in bits [4:2] (0 UNASSIGNED, 1 ASSIGNED), RIPAS in bits [6:5] (EMPTY, RAM, DESTROYED),
  the output address kept for ASSIGNED entries;
* bit 55 (NS) set on entries of the unprotected IPA space.

ASSIGNED_RAM is a valid page (level 3) or block (levels 1-2) of Normal write-back memory
(FWB MemAttr 0b0110), S2AP read/write, inner shareable, AF set. ASSIGNED_NS is a valid
mapping with NS = 1, XN = 0b10, AF and SH set, plus the host-controlled output address,
MemAttr[2:0] (bits [4:2]) and S2AP (bits [7:6]).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from ..arch.pe import ProcessingElement
from ..arch.security import PhysicalAddressSpace as Pas

ENTRIES = 512
DESC_VALID = 1 << 0
DESC_TABLE_OR_PAGE = 1 << 1
HIPAS_SHIFT = 2
HIPAS_MASK = 0x7 << HIPAS_SHIFT
RIPAS_SHIFT = 5
RIPAS_MASK = 0x3 << RIPAS_SHIFT
NS_BIT = 1 << 55
AF = 1 << 10
SH_IS = 0b11 << 8
S2AP_RW = 0b11 << 6
S2AP_MASK = 0b11 << 6
MEMATTR_MASK = 0b111 << 2
MEMATTR_NORMAL_WB_FWB = 0b110 << 2
XN_10 = 0b10 << 53
OA_MASK_48 = ((1 << 48) - 1) & ~0xFFF

ATTRS_RAM = MEMATTR_NORMAL_WB_FWB | S2AP_RW | SH_IS | AF
ATTRS_NS = NS_BIT | XN_10 | SH_IS | AF
# Enum members used on hot paths, bound once: class-attribute access to an enum member is
# several times slower than a global on Python 3.11 (EnumType.__getattr__).
_REALM_PAS = Pas.REALM


class Ripas(enum.IntEnum):
    EMPTY = 0
    RAM = 1
    DESTROYED = 2


class RttEntryState(enum.IntEnum):
    """RmiRttEntryState as the host sees it."""

    UNASSIGNED = 0
    ASSIGNED = 1
    TABLE = 2


class Rtte(enum.Enum):
    """The RMM's internal entry kinds (rmm-abi §5.2)."""

    UNASSIGNED_EMPTY = "unassigned_empty"
    UNASSIGNED_RAM = "unassigned_ram"
    UNASSIGNED_DESTROYED = "unassigned_destroyed"
    ASSIGNED_EMPTY = "assigned_empty"
    ASSIGNED_RAM = "assigned_ram"
    ASSIGNED_DESTROYED = "assigned_destroyed"
    UNASSIGNED_NS = "unassigned_ns"
    ASSIGNED_NS = "assigned_ns"
    TABLE = "table"

    # Members are singletons compared by identity; hash them by identity too (Enum's
    # default hashes the name in Python code, which the set lookups below would pay).
    __hash__ = object.__hash__

    @property
    def is_unassigned(self) -> bool:
        return self in _UNASSIGNED

    @property
    def is_assigned(self) -> bool:
        return self in _ASSIGNED

    @property
    def is_live(self) -> bool:
        """Entries that carry a PA: ASSIGNED_*, ASSIGNED_NS and TABLE."""
        return self in _ASSIGNED or self in (Rtte.ASSIGNED_NS, Rtte.TABLE)


_TABLE, _ASSIGNED_RAM, _ASSIGNED_NS, _UNASSIGNED_NS = (
    Rtte.TABLE, Rtte.ASSIGNED_RAM, Rtte.ASSIGNED_NS, Rtte.UNASSIGNED_NS)
_RIPAS_RAM, _RIPAS_DESTROYED = Ripas.RAM, Ripas.DESTROYED
_UNASSIGNED = frozenset({Rtte.UNASSIGNED_EMPTY, Rtte.UNASSIGNED_RAM, Rtte.UNASSIGNED_DESTROYED})
_ASSIGNED = frozenset({Rtte.ASSIGNED_EMPTY, Rtte.ASSIGNED_RAM, Rtte.ASSIGNED_DESTROYED})
UNASSIGNED_OF = {
    Ripas.EMPTY: Rtte.UNASSIGNED_EMPTY,
    Ripas.RAM: Rtte.UNASSIGNED_RAM,
    Ripas.DESTROYED: Rtte.UNASSIGNED_DESTROYED,
}
ASSIGNED_OF = {
    Ripas.EMPTY: Rtte.ASSIGNED_EMPTY,
    Ripas.RAM: Rtte.ASSIGNED_RAM,
    Ripas.DESTROYED: Rtte.ASSIGNED_DESTROYED,
}


_ASSIGNED_BY_RIPAS = (Rtte.ASSIGNED_EMPTY, Rtte.ASSIGNED_RAM, Rtte.ASSIGNED_DESTROYED)
_UNASSIGNED_BY_RIPAS = (Rtte.UNASSIGNED_EMPTY, Rtte.UNASSIGNED_RAM, Rtte.UNASSIGNED_DESTROYED)


def level_shift(level: int) -> int:
    return 12 + 9 * (3 - level)


def level_size(level: int) -> int:
    return 1 << level_shift(level)


def oa_mask(level: int) -> int:
    return OA_MASK_48 & ~(level_size(level) - 1)


# ---------------------------------------------------------------------------- encoders
def unassigned(ripas: Ripas) -> int:
    return int(ripas) << RIPAS_SHIFT


def unassigned_ns() -> int:
    return NS_BIT


def assigned(ripas: Ripas, pa: int, level: int) -> int:
    """An ASSIGNED entry with the given RIPAS (valid only for RAM)."""
    oa = pa & OA_MASK_48 & -(1 << (39 - 9 * level))  # pa & oa_mask(level)
    if ripas == _RIPAS_RAM:
        return oa | ATTRS_RAM | (0b11 if level == 3 else 0b01)
    return oa | (1 << HIPAS_SHIFT) | (int(ripas) << RIPAS_SHIFT)


def assigned_ns(host_bits: int, level: int) -> int:
    return host_bits | ATTRS_NS | (0b11 if level == 3 else 0b01)


def table(pa: int) -> int:
    return (pa & OA_MASK_48) | 0b11


# ---------------------------------------------------------------------------- decoders
def classify(desc: int, level: int) -> Rtte:
    if desc & DESC_VALID:
        if level < 3 and desc & DESC_TABLE_OR_PAGE:
            return _TABLE
        return _ASSIGNED_NS if desc & NS_BIT else _ASSIGNED_RAM
    if desc & NS_BIT:
        return _UNASSIGNED_NS
    ripas = (desc & RIPAS_MASK) >> RIPAS_SHIFT
    if ripas > _RIPAS_DESTROYED:
        raise ValueError(f"RTT entry {desc:#x} holds a reserved RIPAS")
    if (desc & HIPAS_MASK) >> HIPAS_SHIFT:
        return _ASSIGNED_BY_RIPAS[ripas]
    return _UNASSIGNED_BY_RIPAS[ripas]


def ripas_of(kind: Rtte) -> Ripas:
    if kind in (Rtte.UNASSIGNED_RAM, Rtte.ASSIGNED_RAM):
        return Ripas.RAM
    if kind in (Rtte.UNASSIGNED_DESTROYED, Rtte.ASSIGNED_DESTROYED):
        return Ripas.DESTROYED
    return Ripas.EMPTY


def output_address(desc: int, level: int) -> int:
    return desc & oa_mask(level)


def table_address(desc: int) -> int:
    """Next-level table address of a TABLE descriptor (always granule aligned)."""
    return desc & OA_MASK_48


def host_bits(desc: int, level: int) -> int:
    """The host-controlled bits of an ASSIGNED_NS entry (what RTT_READ_ENTRY returns)."""
    return desc & (oa_mask(level) | MEMATTR_MASK | S2AP_MASK)


def host_desc_valid(desc: int, level: int) -> bool:
    """RMI_RTT_MAP_UNPROTECTED's descriptor check (rmm-abi §5.2)."""
    allowed = oa_mask(level) | MEMATTR_MASK | S2AP_MASK
    if desc & ~allowed:
        return False
    return (desc & MEMATTR_MASK) >> 2 != 0b100


def entry_view(desc: int, level: int) -> tuple[RttEntryState, int, Ripas]:
    """(state, x3, ripas) of RMI_RTT_READ_ENTRY for a descriptor."""
    kind = classify(desc, level)
    if kind is Rtte.TABLE:
        return RttEntryState.TABLE, table_address(desc), Ripas.EMPTY
    if kind is Rtte.ASSIGNED_NS:
        return RttEntryState.ASSIGNED, host_bits(desc, level), Ripas.EMPTY
    if kind is Rtte.UNASSIGNED_NS:
        return RttEntryState.UNASSIGNED, 0, Ripas.EMPTY
    if kind.is_assigned:
        return RttEntryState.ASSIGNED, output_address(desc, level), ripas_of(kind)
    return RttEntryState.UNASSIGNED, 0, ripas_of(kind)


# ---------------------------------------------------------------------------- geometry
def start_level_valid(s2sz: int, sl: int, pa_bits: int) -> bool:
    """Is (s2sz, rtt_level_start) a valid combination without LPA2 (rmm-abi §5.1)?"""
    if not 0 <= sl <= 3:
        return False
    if sl == 0 and pa_bits < 44:
        return False
    levels = 3 - sl
    low = 9 * levels + 13
    high = 9 * levels + 21 + (4 if sl > 0 else 0)
    return low <= s2sz <= high


def num_root_tables(s2sz: int, sl: int) -> int:
    excess = s2sz - (9 * (3 - sl) + 21)
    return 1 if excess <= 0 else 1 << excess


class RttGeometry(NamedTuple):
    s2sz: int
    start_level: int
    num_start: int
    rtt_base: int

    @property
    def par_top(self) -> int:
        """End of the protected IPA range [0, 2^(s2sz-1))."""
        return 1 << (self.s2sz - 1)

    @property
    def ipa_top(self) -> int:
        return 1 << self.s2sz

    def in_par(self, ipa: int) -> bool:
        return ipa < 1 << (self.s2sz - 1)


class WalkResult:
    """Where a walk stopped: the level, the table granule, the entry index and value."""

    __slots__ = ("desc", "index", "kind", "level", "table_pa")

    def __init__(self, level: int, table_pa: int, index: int, desc: int) -> None:
        self.level = level
        self.table_pa = table_pa
        self.index = index
        self.desc = desc
        self.kind: Rtte = classify(desc, level)

    @property
    def entry_pa(self) -> int:
        return self.table_pa + 8 * self.index


def walk(pe: ProcessingElement, geometry: RttGeometry, ipa: int, target_level: int) -> WalkResult:
    """Walk from the start level towards ``target_level``; stops early at a non-table entry.

    Concatenated start tables are contiguous granules, so the start-level index spans them.
    Reads are Realm-state loads of the RTT granules, checked by the GPC like any access.
    """
    level = geometry.start_level
    # level_shift(level) == 39 - 9 * level, written out on this hot path
    index = (ipa >> (39 - 9 * level)) & (ENTRIES * geometry.num_start - 1)
    table_pa = geometry.rtt_base
    read_u64 = pe.read_u64
    while True:
        desc = read_u64(table_pa + 8 * index, _REALM_PAS)
        # a table descriptor: valid (bit 0) with bit 1 set, below level 3
        if level >= target_level or level == 3 or desc & 0b11 != 0b11:
            if index >= ENTRIES:  # express the entry relative to its own granule
                table_pa += (index // ENTRIES) * 4096
                index %= ENTRIES
            return WalkResult(level, table_pa, index, desc)
        table_pa = desc & OA_MASK_48  # table_address(desc)
        level += 1
        index = (ipa >> (39 - 9 * level)) & (ENTRIES - 1)


def read_table(pe: ProcessingElement, table_pa: int) -> list[int]:
    raw = pe.read(table_pa, 4096, Pas.REALM)
    return [int.from_bytes(raw[i : i + 8], "little") for i in range(0, 4096, 8)]


def write_entry(pe: ProcessingElement, entry_pa: int, desc: int) -> None:
    pe.write_u64(entry_pa, desc, _REALM_PAS)


def write_table(pe: ProcessingElement, table_pa: int, descs: list[int]) -> None:
    pe.write(table_pa, b"".join(d.to_bytes(8, "little") for d in descs), Pas.REALM)


def skip_non_live(pe: ProcessingElement, result: WalkResult, ipa: int) -> int:
    """ "top" of RTT_DESTROY / DATA_DESTROY / UNMAP_UNPROTECTED: ``ipa`` if its entry is live,
    else the base of the next live entry in the same table, else the end of that table."""
    size = level_size(result.level)
    table_base_ipa = ipa & ~(size * ENTRIES - 1)
    descs = read_table(pe, result.table_pa)
    for i in range(result.index, ENTRIES):
        if classify(descs[i], result.level).is_live:
            return max(ipa, table_base_ipa + i * size)
    return table_base_ipa + ENTRIES * size
