"""RTT commands (rmm-abi §5, §6): CREATE, DESTROY, FOLD, READ_ENTRY, MAP/UNMAP_UNPROTECTED,
INIT_RIPAS and SET_RIPAS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...arch.memory import GRANULE_SIZE
from ...arch.pe import ProcessingElement
from .. import measurement, s2tt
from ..errors import INPUT, REALM, REC, RTT, Conditions, RmiError, RmiStatus, conditions
from ..granules import GranuleState
from ..objects import Realm, RealmState, Rec
from ..s2tt import ENTRIES, Ripas, Rtte
from .common import command, find, lock_two, zero_granule

if TYPE_CHECKING:
    from ..rmm import Rmm

_RD = (
    ("rd_align", INPUT, "rd is not aligned"),
    ("rd_bound", INPUT, "rd is not in tracked DRAM"),
    ("rd_state", INPUT, "rd is not an RD"),
)

CREATE = conditions(
    "RMI_RTT_CREATE",
    ("alias", INPUT, "rtt and rd are the same granule"),
    ("rtt_align", INPUT, "rtt is not aligned"),
    ("rtt_bound", INPUT, "rtt is not in tracked DRAM"),
    ("rtt_state", INPUT, "rtt is not DELEGATED"),
    *_RD,
    ("level_bound", INPUT, "level is not in [start level + 1, 3]"),
    ("ipa_align", INPUT, "ipa is not aligned to the parent entry size"),
    ("ipa_bound", INPUT, "ipa is beyond the IPA space"),
    ("rtt_bound2", INPUT, "rtt is beyond 48 bits without LPA2"),
    ("rtt_walk", RTT, "the walk to level - 1 stops early"),
    ("rtte_state", RTT, "the parent entry is already a table"),
)
DESTROY = conditions(
    "RMI_RTT_DESTROY",
    *_RD,
    ("level_bound", INPUT, "level is not in [start level + 1, 3]"),
    ("ipa_align", INPUT, "ipa is not aligned to the parent entry size"),
    ("ipa_bound", INPUT, "ipa is beyond the IPA space"),
    ("rtt_walk", RTT, "the walk to level - 1 stops early"),
    ("rtte_state", RTT, "the parent entry is not a table"),
    ("rtt_live", RTT, "the table still holds live entries"),
)
FOLD = conditions(
    "RMI_RTT_FOLD",
    *_RD,
    ("level_bound", INPUT, "level is not in [start level + 1, 3]"),
    ("ipa_align", INPUT, "ipa is not aligned to the parent entry size"),
    ("ipa_bound", INPUT, "ipa is beyond the IPA space"),
    ("rtt_walk", RTT, "the walk to level - 1 stops early"),
    ("rtte_state", RTT, "the parent entry is not a table"),
    ("rtte_homo", RTT, "the table is not homogeneous"),
    ("fold_level", RTT, "folding would create a level-0 block"),
)
READ_ENTRY = conditions(
    "RMI_RTT_READ_ENTRY",
    *_RD,
    ("level_bound", INPUT, "level is not in [start level, 3]"),
    ("ipa_align", INPUT, "ipa is not aligned to the entry size"),
    ("ipa_bound", INPUT, "ipa is beyond the IPA space"),
)
MAP_UNPROTECTED = conditions(
    "RMI_RTT_MAP_UNPROTECTED",
    ("level_bound", INPUT, "level is not in [1, 3]"),
    *_RD,
    ("desc_valid", INPUT, "the descriptor sets bits outside the host-controlled fields"),
    ("ipa_align", INPUT, "ipa is not aligned to the entry size"),
    ("ipa_bound", INPUT, "ipa is beyond the IPA space"),
    ("ipa_par", INPUT, "ipa is in the protected IPA space"),
    ("rtt_walk", RTT, "the walk stops before level"),
    ("rtte_state", RTT, "the entry is not UNASSIGNED_NS"),
)
UNMAP_UNPROTECTED = conditions(
    "RMI_RTT_UNMAP_UNPROTECTED",
    ("level_bound", INPUT, "level is not in [1, 3]"),
    *_RD,
    ("ipa_align", INPUT, "ipa is not aligned to the entry size"),
    ("ipa_bound", INPUT, "ipa is beyond the IPA space"),
    ("ipa_par", INPUT, "ipa is in the protected IPA space"),
    ("rtt_walk", RTT, "the walk does not reach level"),
    ("rtte_state", RTT, "the entry is not ASSIGNED_NS"),
)
INIT_RIPAS = conditions(
    "RMI_RTT_INIT_RIPAS",
    ("size_valid", INPUT, "top <= base"),
    *_RD,
    ("base_gran_align", INPUT, "base is not aligned to a granule"),
    ("top_gran_align", INPUT, "top is not aligned to a granule"),
    ("base_bound", INPUT, "base is not in the protected IPA space"),
    ("top_bound", INPUT, "top is beyond the protected IPA space"),
    ("realm_state", REALM, "realm is not NEW"),
    ("base_align", RTT, "base is not aligned to the entry size at the walk level"),
    ("no_progress", RTT, "no entry could be processed"),
)
SET_RIPAS = conditions(
    "RMI_RTT_SET_RIPAS",
    ("size_valid", INPUT, "top <= base"),
    ("top_gran_align", INPUT, "top is not aligned to a granule"),
    ("alias", INPUT, "rd and rec are the same granule"),
    *_RD,
    ("rec_align", INPUT, "rec is not aligned"),
    ("rec_bound", INPUT, "rec is not in tracked DRAM"),
    ("rec_state", INPUT, "rec is not a REC"),
    ("rec_running", REC, "the REC is running"),
    ("rec_owner", REC, "the REC belongs to another realm"),
    ("base_bound", INPUT, "base is not the REC's pending RIPAS change address"),
    ("top_bound", INPUT, "top is above the pending RIPAS change top"),
    ("base_align", RTT, "base is not aligned to the entry size at the walk level"),
    ("no_progress", RTT, "no entry could be processed"),
)


def _load_realm(rmm: Rmm, pe: ProcessingElement, conds: Conditions, rd: int) -> Realm:
    find(rmm, conds, "rd", rd, GranuleState.RD)
    return Realm.load(pe, rd)


def _table_refcount_delta(rmm: Rmm, table_pa: int, delta: int) -> None:
    idx = rmm.tracker.index(table_pa)
    assert idx is not None
    rmm.tracker.get(idx, delta)


def _counts_in_refcount(kind: Rtte) -> bool:
    """RTT refcount rule (rmm-abi §3.1): TABLE and ASSIGNED (protected) entries count."""
    return kind is Rtte.TABLE or kind.is_assigned


# ------------------------------------------------------------------------ RTT_CREATE
@command(0xC400_015D, "RMI_RTT_CREATE", 4, 1)
def rmi_rtt_create(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.15: add a table at ``level`` covering ``ipa`` (unfold, §5.4)."""
    rd, rtt, ipa, level = args[0], args[1], args[2], args[3]
    rtt_idx, _ = lock_two(
        rmm, CREATE, ("rtt", rtt, GranuleState.DELEGATED), ("rd", rd, GranuleState.RD)
    )
    realm = Realm.load(pe, rd)
    g = realm.geometry
    if not g.start_level + 1 <= level <= 3:
        CREATE["level_bound"].fail()
    if ipa % s2tt.level_size(level - 1):
        CREATE["ipa_align"].fail()
    if ipa >= g.ipa_top:
        CREATE["ipa_bound"].fail()
    if rtt >> 48:
        CREATE["rtt_bound2"].fail()
    w = s2tt.walk(pe, g, ipa, level - 1)
    if w.level < level - 1:
        CREATE["rtt_walk"].fail(w.level)
    parent = w.kind
    if parent is Rtte.TABLE:
        CREATE["rtte_state"].fail(level - 1)

    size = s2tt.level_size(level)
    if parent.is_unassigned or parent is Rtte.UNASSIGNED_NS:
        descs = [w.desc] * ENTRIES
        new_ref, parent_delta = 0, 1
    elif parent.is_assigned:
        base = s2tt.output_address(w.desc, level - 1)
        ripas = s2tt.ripas_of(parent)
        descs = [s2tt.assigned(ripas, base + i * size, level) for i in range(ENTRIES)]
        new_ref, parent_delta = ENTRIES, 0
    else:  # ASSIGNED_NS block
        base = s2tt.output_address(w.desc, level - 1)
        attrs = s2tt.host_bits(w.desc, level - 1) & ~s2tt.oa_mask(level - 1)
        descs = [s2tt.assigned_ns(attrs | (base + i * size), level) for i in range(ENTRIES)]
        new_ref, parent_delta = 0, 1
    if w.desc & s2tt.DESC_VALID:  # break-before-make
        s2tt.write_entry(pe, w.entry_pa, s2tt.unassigned(Ripas.EMPTY))
        rmm.stage2_changed(realm.vmid, ipa, s2tt.level_size(level - 1))
    s2tt.write_table(pe, rtt, descs)
    s2tt.write_entry(pe, w.entry_pa, s2tt.table(rtt))
    rmm.tracker.set_state(rtt_idx, GranuleState.RTT)
    rmm.tracker.set_refcount(rtt_idx, new_ref)
    if parent_delta:
        _table_refcount_delta(rmm, w.table_pa, parent_delta)
    return (RmiStatus.SUCCESS,)


def _table_op_checks(
    rmm: Rmm,
    pe: ProcessingElement,
    conds: Conditions,
    rd: int,
    ipa: int,
    level: int,
    outputs_on_fail: bool,
) -> tuple[Realm, s2tt.WalkResult]:
    """Checks shared by RTT_DESTROY and RTT_FOLD, up to "the parent entry is a TABLE".
    RTT_DESTROY reports x1 = 0, x2 = 0 on input errors and x2 = top on RTT errors."""
    out = (0, 0) if outputs_on_fail else ()
    try:
        realm = _load_realm(rmm, pe, conds, rd)
    except RmiError as err:
        raise RmiError(err.status, err.index, out, err.label) from None
    g = realm.geometry
    if not g.start_level + 1 <= level <= 3:
        conds["level_bound"].fail(outputs=out)
    if ipa % s2tt.level_size(level - 1):
        conds["ipa_align"].fail(outputs=out)
    if ipa >= g.ipa_top:
        conds["ipa_bound"].fail(outputs=out)
    w = s2tt.walk(pe, g, ipa, level - 1)
    top = (0, s2tt.skip_non_live(pe, w, ipa)) if outputs_on_fail else ()
    if w.level < level - 1:
        conds["rtt_walk"].fail(w.level, top)
    if w.kind is not Rtte.TABLE:
        conds["rtte_state"].fail(level - 1, top)
    return realm, w


# ------------------------------------------------------------------------ RTT_DESTROY
@command(0xC400_015E, "RMI_RTT_DESTROY", 3, 3)
def rmi_rtt_destroy(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.16: remove an empty table; outputs x1 = rtt PA, x2 = top."""
    rd, ipa, level = args[0], args[1], args[2]
    realm, w = _table_op_checks(rmm, pe, DESTROY, rd, ipa, level, outputs_on_fail=True)
    child = s2tt.table_address(w.desc)
    child_idx = rmm.tracker.index(child)
    assert child_idx is not None
    if rmm.tracker.refcount(child_idx):
        DESTROY["rtt_live"].fail(level, (0, s2tt.skip_non_live(pe, w, ipa)))
    g = realm.geometry
    new = s2tt.unassigned(Ripas.DESTROYED) if g.in_par(ipa) else s2tt.unassigned_ns()
    s2tt.write_entry(pe, w.entry_pa, new)
    rmm.stage2_changed(realm.vmid, ipa, s2tt.level_size(level - 1))
    zero_granule(pe, child)
    rmm.tracker.set_state(child_idx, GranuleState.DELEGATED)
    _table_refcount_delta(rmm, w.table_pa, -1)
    w2 = s2tt.walk(pe, g, ipa, level - 1)
    return (RmiStatus.SUCCESS, child, s2tt.skip_non_live(pe, w2, ipa))


# ------------------------------------------------------------------------ RTT_FOLD
@command(0xC400_0166, "RMI_RTT_FOLD", 3, 2)
def rmi_rtt_fold(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.17: replace a homogeneous table by one entry in its parent (§5.4)."""
    rd, ipa, level = args[0], args[1], args[2]
    realm, w = _table_op_checks(rmm, pe, FOLD, rd, ipa, level, outputs_on_fail=False)
    child = s2tt.table_address(w.desc)
    child_idx = rmm.tracker.index(child)
    assert child_idx is not None
    ref = rmm.tracker.refcount(child_idx)
    descs = s2tt.read_table(pe, child)
    kinds = [s2tt.classify(d, level) for d in descs]
    first = kinds[0]
    size = s2tt.level_size(level)
    new: int | None = None
    parent_delta = 0
    child_release = 0
    homogeneous = all(k is first for k in kinds)
    if ref == 0 and homogeneous and (first.is_unassigned or first is Rtte.UNASSIGNED_NS):
        new, parent_delta = descs[0], -1
    elif ref == 0 and homogeneous and first is Rtte.ASSIGNED_NS:
        base = s2tt.output_address(descs[0], level)
        attrs = s2tt.host_bits(descs[0], level) & ~s2tt.oa_mask(level)
        contiguous = base % s2tt.level_size(level - 1) == 0 and all(
            s2tt.host_bits(d, level) == attrs | (base + i * size) for i, d in enumerate(descs)
        )
        if contiguous:
            if level < 2:
                FOLD["fold_level"].fail(level - 1)
            new, parent_delta = s2tt.assigned_ns(attrs | base, level - 1), -1
    elif ref == ENTRIES and homogeneous and first.is_assigned:
        base = s2tt.output_address(descs[0], level)
        contiguous = base % s2tt.level_size(level - 1) == 0 and all(
            s2tt.output_address(d, level) == base + i * size for i, d in enumerate(descs)
        )
        if contiguous:
            if level < 2:
                FOLD["fold_level"].fail(level - 1)
            new, child_release = s2tt.assigned(s2tt.ripas_of(first), base, level - 1), ENTRIES
    if new is None:
        FOLD["rtte_homo"].fail(level)
    # break-before-make on the parent table entry
    s2tt.write_entry(pe, w.entry_pa, s2tt.unassigned(Ripas.EMPTY))
    rmm.stage2_changed(realm.vmid, ipa, s2tt.level_size(level - 1))
    s2tt.write_entry(pe, w.entry_pa, new)
    if child_release:
        rmm.tracker.put(child_idx, child_release)
    zero_granule(pe, child)
    rmm.tracker.set_state(child_idx, GranuleState.DELEGATED)
    if parent_delta:
        _table_refcount_delta(rmm, w.table_pa, parent_delta)
    return (RmiStatus.SUCCESS, child)


# ------------------------------------------------------------------------ RTT_READ_ENTRY
@command(0xC400_0161, "RMI_RTT_READ_ENTRY", 3, 5)
def rmi_rtt_read_entry(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.20: x1 = walk level, x2 = state, x3 = address/descriptor, x4 = RIPAS."""
    rd, ipa, level = args[0], args[1], args[2]
    realm = _load_realm(rmm, pe, READ_ENTRY, rd)
    g = realm.geometry
    if level >> 63 or not g.start_level <= level <= 3:
        READ_ENTRY["level_bound"].fail()
    if ipa % s2tt.level_size(level):
        READ_ENTRY["ipa_align"].fail()
    if ipa >= g.ipa_top:
        READ_ENTRY["ipa_bound"].fail()
    w = s2tt.walk(pe, g, ipa, level)
    state, x3, ripas = s2tt.entry_view(w.desc, w.level)
    return (RmiStatus.SUCCESS, w.level, state, x3, ripas)


# ------------------------------------------------------------------------ MAP / UNMAP
@command(0xC400_015F, "RMI_RTT_MAP_UNPROTECTED", 4, 1)
def rmi_rtt_map_unprotected(
    rmm: Rmm, pe: ProcessingElement, args: Sequence[int]
) -> tuple[int, ...]:
    """DEN0137 B4.3.19: map host memory at an unprotected IPA (ASSIGNED_NS)."""
    rd, ipa, level, desc = args[0], args[1], args[2], args[3]
    if not 1 <= level <= 3:
        MAP_UNPROTECTED["level_bound"].fail()
    realm = _load_realm(rmm, pe, MAP_UNPROTECTED, rd)
    g = realm.geometry
    if not s2tt.host_desc_valid(desc, level):
        MAP_UNPROTECTED["desc_valid"].fail()
    if ipa % s2tt.level_size(level):
        MAP_UNPROTECTED["ipa_align"].fail()
    if ipa >= g.ipa_top:
        MAP_UNPROTECTED["ipa_bound"].fail()
    if g.in_par(ipa):
        MAP_UNPROTECTED["ipa_par"].fail()
    w = s2tt.walk(pe, g, ipa, level)
    if w.level != level:  # stopped early, or level is above the start level (TF-RMM)
        MAP_UNPROTECTED["rtt_walk"].fail(w.level)
    if w.kind is not Rtte.UNASSIGNED_NS:
        MAP_UNPROTECTED["rtte_state"].fail(level)
    s2tt.write_entry(pe, w.entry_pa, s2tt.assigned_ns(desc, level))
    return (RmiStatus.SUCCESS,)


@command(0xC400_0162, "RMI_RTT_UNMAP_UNPROTECTED", 3, 2)
def rmi_rtt_unmap_unprotected(
    rmm: Rmm, pe: ProcessingElement, args: Sequence[int]
) -> tuple[int, ...]:
    """DEN0137 B4.3.22: remove an ASSIGNED_NS mapping; x1 = top of the non-live range."""
    rd, ipa, level = args[0], args[1], args[2]
    if not 1 <= level <= 3:
        UNMAP_UNPROTECTED["level_bound"].fail()
    realm = _load_realm(rmm, pe, UNMAP_UNPROTECTED, rd)
    g = realm.geometry
    if ipa % s2tt.level_size(level):
        UNMAP_UNPROTECTED["ipa_align"].fail()
    if ipa >= g.ipa_top:
        UNMAP_UNPROTECTED["ipa_bound"].fail()
    if g.in_par(ipa):
        UNMAP_UNPROTECTED["ipa_par"].fail()
    w = s2tt.walk(pe, g, ipa, level)
    if w.level != level:
        UNMAP_UNPROTECTED["rtt_walk"].fail(w.level, (s2tt.skip_non_live(pe, w, ipa),))
    if w.kind is not Rtte.ASSIGNED_NS:
        UNMAP_UNPROTECTED["rtte_state"].fail(w.level, (s2tt.skip_non_live(pe, w, ipa),))
    s2tt.write_entry(pe, w.entry_pa, s2tt.unassigned_ns())
    rmm.stage2_changed(realm.vmid, ipa, s2tt.level_size(level))
    w2 = s2tt.walk(pe, g, ipa, level)
    return (RmiStatus.SUCCESS, s2tt.skip_non_live(pe, w2, ipa))


# ------------------------------------------------------------------------ INIT_RIPAS
@command(0xC400_0168, "RMI_RTT_INIT_RIPAS", 3, 2)
def rmi_rtt_init_ripas(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.18: RIPAS EMPTY -> RAM over [base, top) within one RTT, measured per
    entry (§10.5); x1 = the IPA up to which RIPAS was set."""
    rd, base, top = args[0], args[1], args[2]
    if top <= base:
        INIT_RIPAS["size_valid"].fail()
    realm = _load_realm(rmm, pe, INIT_RIPAS, rd)
    g = realm.geometry
    if base % GRANULE_SIZE:
        INIT_RIPAS["base_gran_align"].fail()
    if top % GRANULE_SIZE:
        INIT_RIPAS["top_gran_align"].fail()
    if not g.in_par(base):
        INIT_RIPAS["base_bound"].fail()
    if not g.in_par(top - GRANULE_SIZE):
        INIT_RIPAS["top_bound"].fail()
    if realm.state != RealmState.NEW:
        INIT_RIPAS["realm_state"].fail()
    w = s2tt.walk(pe, g, base, 3)
    size = s2tt.level_size(w.level)
    if base % size:
        INIT_RIPAS["base_align"].fail(w.level)
    descs = s2tt.read_table(pe, w.table_pa)
    addr = base
    rim = realm.rim
    index = w.index
    changed = False
    while index < ENTRIES and addr + size <= top:
        kind = s2tt.classify(descs[index], w.level)
        if kind is Rtte.UNASSIGNED_EMPTY:
            descs[index] = s2tt.unassigned(Ripas.RAM)
            changed = True
        elif kind is not Rtte.UNASSIGNED_RAM:
            break
        rim = measurement.extend_ripas(realm.hash_algo, rim, addr, addr + size)
        addr += size
        index += 1
    if addr == base:
        INIT_RIPAS["no_progress"].fail(w.level)
    if changed:
        s2tt.write_table(pe, w.table_pa, descs)
    realm.rim = rim
    realm.store(pe)
    return (RmiStatus.SUCCESS, addr)


# ------------------------------------------------------------------------ SET_RIPAS
_SET_RAM = {
    Rtte.UNASSIGNED_EMPTY: (Rtte.UNASSIGNED_RAM, False),
    Rtte.UNASSIGNED_DESTROYED: (Rtte.UNASSIGNED_RAM, True),
    Rtte.ASSIGNED_EMPTY: (Rtte.ASSIGNED_RAM, False),
    Rtte.ASSIGNED_DESTROYED: (Rtte.ASSIGNED_RAM, True),
    Rtte.UNASSIGNED_RAM: (Rtte.UNASSIGNED_RAM, False),
    Rtte.ASSIGNED_RAM: (Rtte.ASSIGNED_RAM, False),
}
_SET_EMPTY = {
    Rtte.UNASSIGNED_RAM: (Rtte.UNASSIGNED_EMPTY, False),
    Rtte.UNASSIGNED_DESTROYED: (Rtte.UNASSIGNED_EMPTY, True),
    Rtte.ASSIGNED_RAM: (Rtte.ASSIGNED_EMPTY, False),
    Rtte.ASSIGNED_DESTROYED: (Rtte.ASSIGNED_EMPTY, True),
    Rtte.UNASSIGNED_EMPTY: (Rtte.UNASSIGNED_EMPTY, False),
    Rtte.ASSIGNED_EMPTY: (Rtte.ASSIGNED_EMPTY, False),
}


def _encode(kind: Rtte, old_desc: int, level: int) -> int:
    ripas = s2tt.ripas_of(kind)
    if kind.is_assigned:
        return s2tt.assigned(ripas, s2tt.output_address(old_desc, level), level)
    return s2tt.unassigned(ripas)


@command(0xC400_0169, "RMI_RTT_SET_RIPAS", 4, 2)
def rmi_rtt_set_ripas(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.21: complete (part of) a REC's pending RIPAS change; x1 = progress."""
    rd, rec_pa, base, top = args[0], args[1], args[2], args[3]
    if top <= base:
        SET_RIPAS["size_valid"].fail()
    if top % GRANULE_SIZE:
        SET_RIPAS["top_gran_align"].fail()
    _, rec_idx = lock_two(
        rmm, SET_RIPAS, ("rd", rd, GranuleState.RD), ("rec", rec_pa, GranuleState.REC)
    )
    if rmm.tracker.refcount(rec_idx):
        SET_RIPAS["rec_running"].fail()
    rec = Rec.load(pe, rec_pa)
    if rec.owner != rd:
        SET_RIPAS["rec_owner"].fail()
    if base != rec["set_ripas_addr"] or top > rec["set_ripas_top"]:
        SET_RIPAS["base_bound" if base != rec["set_ripas_addr"] else "top_bound"].fail()
    realm = Realm.load(pe, rd)
    g = realm.geometry
    w = s2tt.walk(pe, g, base, 3)
    size = s2tt.level_size(w.level)
    if base % size:
        SET_RIPAS["base_align"].fail(w.level)
    table = _SET_RAM if rec["set_ripas_value"] == Ripas.RAM else _SET_EMPTY
    change_destroyed = bool(rec["set_ripas_change_destroyed"])
    descs = s2tt.read_table(pe, w.table_pa)
    addr, index = base, w.index
    invalidate = False
    while index < ENTRIES and addr + size <= top:
        kind = s2tt.classify(descs[index], w.level)
        step = table.get(kind)
        if step is None or (step[1] and not change_destroyed):
            break
        new_kind = step[0]
        if new_kind is not kind:
            if kind is Rtte.ASSIGNED_RAM:
                invalidate = True
            descs[index] = _encode(new_kind, descs[index], w.level)
        addr += size
        index += 1
    if addr == base:
        SET_RIPAS["no_progress"].fail(w.level)
    s2tt.write_table(pe, w.table_pa, descs)
    if invalidate:
        rmm.stage2_changed(realm.vmid, base, addr - base)
    rec["set_ripas_addr"] = addr
    rec.store(pe)
    return (RmiStatus.SUCCESS, addr)
