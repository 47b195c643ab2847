"""RMI_DATA_CREATE, RMI_DATA_CREATE_UNKNOWN and RMI_DATA_DESTROY (rmm-abi §6, §10.3)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...arch.faults import ArchFault
from ...arch.memory import GRANULE_SIZE
from ...arch.pe import ProcessingElement
from ...arch.security import PhysicalAddressSpace as Pas
from .. import measurement, s2tt
from ..errors import INPUT, REALM, RTT, Conditions, RmiError, RmiStatus, conditions
from ..granules import GranuleState
from ..objects import Realm, RealmState
from ..s2tt import Ripas, Rtte
from .common import command, find, lock_two, zero_granule

if TYPE_CHECKING:
    from ..rmm import Rmm

# Enum members bound once: member access through the class is slow on Python 3.11.
_NS_PAS, _REALM_PAS = Pas.NON_SECURE, Pas.REALM
_DELEGATED, _RD, _DATA = GranuleState.DELEGATED, GranuleState.RD, GranuleState.DATA
_UNDELEGATED, _NEW, _RAM = GranuleState.UNDELEGATED, RealmState.NEW, Ripas.RAM
_SUCCESS = (RmiStatus.SUCCESS,)

_LOCK = (
    ("alias", INPUT, "data and rd are the same granule"),
    ("data_align", INPUT, "data is not aligned"),
    ("data_bound", INPUT, "data is not in tracked DRAM"),
    ("data_state", INPUT, "data is not DELEGATED"),
    ("rd_align", INPUT, "rd is not aligned"),
    ("rd_bound", INPUT, "rd is not in tracked DRAM"),
    ("rd_state", INPUT, "rd is not an RD"),
)
_IPA = (
    ("ipa_bound", INPUT, "ipa is not in the protected IPA space"),
    ("ipa_align", INPUT, "ipa is not aligned to a granule"),
    ("data_bound2", INPUT, "data is beyond 48 bits without LPA2"),
    ("rtt_walk", RTT, "the walk to level 3 stops early"),
    ("rtte_state", RTT, "the level-3 entry is not UNASSIGNED"),
)
CREATE = conditions(
    "RMI_DATA_CREATE",
    ("flags", INPUT, "flags is not 0 or 1"),
    ("src_align", INPUT, "src is not aligned"),
    ("src_bound", INPUT, "src is not in tracked DRAM"),
    ("src_state", INPUT, "src is not UNDELEGATED"),
    *_LOCK,
    ("realm_state", REALM, "realm is not NEW"),
    *_IPA,
    ("src_pas", INPUT, "reading src faults: its PAS is not Non-secure"),
)
CREATE_UNKNOWN = conditions("RMI_DATA_CREATE_UNKNOWN", *_LOCK, *_IPA)
DESTROY = conditions(
    "RMI_DATA_DESTROY",
    ("rd_align", INPUT, "rd is not aligned"),
    ("rd_bound", INPUT, "rd is not in tracked DRAM"),
    ("rd_state", INPUT, "rd is not an RD"),
    ("ipa_bound", INPUT, "ipa is not in the protected IPA space"),
    ("ipa_align", INPUT, "ipa is not aligned to a granule"),
    ("rtt_walk", RTT, "the walk to level 3 stops early"),
    ("rtte_state", RTT, "the entry is not ASSIGNED"),
)


def _ipa_checks(
    pe: ProcessingElement, conds: Conditions, realm: Realm, data: int, ipa: int
) -> s2tt.WalkResult:
    g = realm.geometry
    if not g.in_par(ipa):
        conds["ipa_bound"].fail()
    if ipa % GRANULE_SIZE:
        conds["ipa_align"].fail()
    if data >> 48:
        conds["data_bound2"].fail()
    w = s2tt.walk(pe, g, ipa, 3)
    if w.level < 3:
        conds["rtt_walk"].fail(w.level)
    if not w.kind.is_unassigned:
        conds["rtte_state"].fail(3)
    return w


def _map(rmm: Rmm, data_idx: int, w: s2tt.WalkResult, desc: int, pe: ProcessingElement) -> None:
    s2tt.write_entry(pe, w.entry_pa, desc)
    idx = rmm.tracker.index(w.table_pa)
    assert idx is not None
    rmm.tracker.get(idx)
    rmm.tracker.set_state(data_idx, _DATA)


@command(0xC400_0153, "RMI_DATA_CREATE", 5, 1)
def rmi_data_create(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.1: copy a host page into a new DATA granule at ``ipa``, measured."""
    rd, data, ipa, src, flags = args[0], args[1], args[2], args[3], args[4]
    if flags not in (0, 1):
        CREATE["flags"].fail()
    find(rmm, CREATE, "src", src, _UNDELEGATED)
    data_idx, _ = lock_two(rmm, CREATE, ("data", data, _DELEGATED), ("rd", rd, _RD))
    realm = Realm.load(pe, rd)
    if realm.state != _NEW:
        CREATE["realm_state"].fail()
    w = _ipa_checks(pe, CREATE, realm, data, ipa)
    try:
        content = pe.read(src, GRANULE_SIZE, _NS_PAS)
    except ArchFault:
        zero_granule(pe, data)  # the granule stays DELEGATED and zero
        CREATE["src_pas"].fail()
    pe.write(data, content, _REALM_PAS)
    realm.rim = measurement.extend_data(realm.hash_algo, realm.rim, ipa, flags, content)
    realm.store_rim(pe)
    _map(rmm, data_idx, w, s2tt.assigned(_RAM, data, 3), pe)
    return _SUCCESS


@command(0xC400_0154, "RMI_DATA_CREATE_UNKNOWN", 3, 1)
def rmi_data_create_unknown(
    rmm: Rmm, pe: ProcessingElement, args: Sequence[int]
) -> tuple[int, ...]:
    """DEN0137 B4.3.2: a zero DATA granule at ``ipa`` keeping the entry's RIPAS; unmeasured."""
    rd, data, ipa = args[0], args[1], args[2]
    data_idx, _ = lock_two(
        rmm, CREATE_UNKNOWN, ("data", data, GranuleState.DELEGATED), ("rd", rd, GranuleState.RD)
    )
    realm = Realm.load(pe, rd)
    w = _ipa_checks(pe, CREATE_UNKNOWN, realm, data, ipa)
    ripas = s2tt.ripas_of(w.kind)
    _map(rmm, data_idx, w, s2tt.assigned(ripas, data, 3), pe)
    if ripas == Ripas.RAM:
        rmm.stage2_changed(realm.vmid, ipa, GRANULE_SIZE)
    return (RmiStatus.SUCCESS,)


_AFTER_DESTROY = {
    Rtte.ASSIGNED_RAM: Ripas.DESTROYED,
    Rtte.ASSIGNED_EMPTY: Ripas.EMPTY,
    Rtte.ASSIGNED_DESTROYED: Ripas.DESTROYED,
}


@command(0xC400_0155, "RMI_DATA_DESTROY", 2, 3)
def rmi_data_destroy(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.3: unmap and scrub a DATA granule; x1 = its PA, x2 = top."""
    rd, ipa = args[0], args[1]
    try:
        find(rmm, DESTROY, "rd", rd, GranuleState.RD)
    except RmiError as err:
        raise RmiError(err.status, err.index, (0, 0), err.label) from None
    realm = Realm.load(pe, rd)
    g = realm.geometry
    if not g.in_par(ipa):
        DESTROY["ipa_bound"].fail(outputs=(0, 0))
    if ipa % GRANULE_SIZE:
        DESTROY["ipa_align"].fail(outputs=(0, 0))
    w = s2tt.walk(pe, g, ipa, 3)
    if w.level < 3:
        DESTROY["rtt_walk"].fail(w.level, (0, s2tt.skip_non_live(pe, w, ipa)))
    if not w.kind.is_assigned:
        DESTROY["rtte_state"].fail(3, (0, s2tt.skip_non_live(pe, w, ipa)))
    data = s2tt.output_address(w.desc, 3)
    s2tt.write_entry(pe, w.entry_pa, s2tt.unassigned(_AFTER_DESTROY[w.kind]))
    if w.kind is Rtte.ASSIGNED_RAM:
        rmm.stage2_changed(realm.vmid, ipa, GRANULE_SIZE)
    table_idx = rmm.tracker.index(w.table_pa)
    data_idx = rmm.tracker.index(data)
    assert table_idx is not None and data_idx is not None
    rmm.tracker.put(table_idx)
    zero_granule(pe, data)
    rmm.tracker.set_state(data_idx, GranuleState.DELEGATED)
    w2 = s2tt.walk(pe, g, ipa, 3)
    return (RmiStatus.SUCCESS, data, s2tt.skip_non_live(pe, w2, ipa))
