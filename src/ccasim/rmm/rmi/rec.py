"""REC commands (rmm-abi §4.2, §6, §7): REC_CREATE, REC_DESTROY, PSCI_COMPLETE, REC_ENTER."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...arch.memory import GRANULE_SIZE
from ...arch.pe import ProcessingElement
from ...layout import Field, Layout
from .. import measurement
from ..errors import INPUT, REALM, REC, RmiStatus, conditions
from ..granules import REFCOUNT_MAX, GranuleState
from ..objects import (
    NUM_REC_AUX,
    PSTATE_EL1H_DAIF,
    REC_PSCI_PENDING,
    REC_PSCI_RESULT_PENDING,
    REC_RESET_PENDING,
    REC_RUNNABLE,
    Realm,
    RealmState,
    Rec,
)
from ..psci import mpidr_to_index
from ..recrun import REC_ENTER, REC_EXIT, REC_EXIT_OFFSET, words
from .common import command, find, lock_two, read_ns, write_ns, zero_granule

if TYPE_CHECKING:
    from ..rmm import Rmm

REC_PARAMS = Layout(
    "RmiRecParams",
    4096,
    [
        Field("flags", 0x000, 8),
        Field("mpidr", 0x100, 8),
        Field("pc", 0x200, 8),
        Field("gprs", 0x300, 8 * 8, raw=True),
        Field("num_aux", 0x800, 8),
        Field("aux", 0x808, 16 * 8, raw=True),
    ],
)
MPIDR_VALID = 0xF | (0xFF << 8) | (0xFF << 16) | (0xFF << 24)

CREATE = conditions(
    "RMI_REC_CREATE",
    ("params_align", INPUT, "params is not aligned"),
    ("params_bound", INPUT, "params is not in tracked DRAM"),
    ("params_pas", INPUT, "params is not in the Non-secure PAS"),
    ("num_aux_bound", INPUT, "num_aux is larger than 16"),
    ("aux_align", INPUT, "an aux granule is not aligned"),
    ("aux_bound", INPUT, "an aux granule is not in tracked DRAM"),
    ("aux_state", INPUT, "an aux granule is not DELEGATED"),
    ("alias", INPUT, "rec and rd are the same granule"),
    ("rec_align", INPUT, "rec is not aligned"),
    ("rec_bound", INPUT, "rec is not in tracked DRAM"),
    ("rec_state", INPUT, "rec is not DELEGATED"),
    ("rd_align", INPUT, "rd is not aligned"),
    ("rd_bound", INPUT, "rd is not in tracked DRAM"),
    ("rd_state", INPUT, "rd is not an RD"),
    ("rec_count", REALM, "the realm already has the maximum number of RECs"),
    ("realm_state", REALM, "realm is not NEW"),
    ("mpidr_index", INPUT, "invalid MPIDR, or its index is not the next REC index"),
    ("num_aux", INPUT, "num_aux is not the realm's REC auxiliary granule count"),
)
DESTROY = conditions(
    "RMI_REC_DESTROY",
    ("rec_align", INPUT, "rec is not aligned"),
    ("rec_bound", INPUT, "rec is not in tracked DRAM"),
    ("rec_state", INPUT, "rec is not a REC"),
    ("rec_running", REC, "the REC is running"),
)
PSCI_COMPLETE = conditions(
    "RMI_PSCI_COMPLETE",
    ("calling_align", INPUT, "calling_rec is not aligned"),
    ("target_align", INPUT, "target_rec is not aligned"),
    ("alias", INPUT, "calling_rec and target_rec are the same granule"),
    ("calling_bound", INPUT, "calling_rec is not in tracked DRAM"),
    ("calling_state", INPUT, "calling_rec is not a REC"),
    ("target_bound", INPUT, "target_rec is not in tracked DRAM"),
    ("target_state", INPUT, "target_rec is not a REC"),
    ("calling_running", INPUT, "calling_rec is running"),
    ("pending", INPUT, "no PSCI request is pending on calling_rec"),
    ("owner", INPUT, "the RECs belong to different realms"),
    ("target", INPUT, "target_rec is not the REC the realm asked for"),
    ("status", INPUT, "status is not allowed for this PSCI function"),
)
ENTER = conditions(
    "RMI_REC_ENTER",
    ("run_align", INPUT, "run is not aligned"),
    ("run_bound", INPUT, "run is not in tracked DRAM"),
    ("run_pas", INPUT, "run is not in the Non-secure PAS"),
    ("rec_align", INPUT, "rec is not aligned"),
    ("rec_bound", INPUT, "rec is not in tracked DRAM"),
    ("rec_state", INPUT, "rec is not a REC"),
    ("rec_running", REC, "the REC is already running"),
    ("realm_new", REALM, "the realm is NEW (index 0)"),
    ("system_off", REALM, "the realm is SYSTEM_OFF (index 1)"),
    ("rec_runnable", REC, "the REC is not runnable"),
    ("rec_psci", REC, "a PSCI request is pending"),
    ("rec_gicv3", REC, "invalid GIC state in rec_enter"),
    ("inject_sea", REC, "INJECT_SEA without a data abort at an unprotected IPA"),
    ("rec_mmio", REC, "EMUL_MMIO without an emulatable data abort"),
)

# PSCI function IDs the realm may have left pending (rmm-abi §9)
PSCI_CPU_ON = 0xC400_0003
PSCI_AFFINITY_INFO = 0xC400_0004
PSCI_SUCCESS = 0
PSCI_DENIED = -3
PSCI_ALREADY_ON = -4
MASK64 = (1 << 64) - 1


def rec_index(mpidr: int) -> int:
    """REC index from an RmiRecMpidr: Aff0[3:0] | Aff1 << 4 | Aff2 << 12 | Aff3 << 20."""
    return (
        (mpidr & 0xF)
        | ((mpidr >> 8) & 0xFF) << 4
        | ((mpidr >> 16) & 0xFF) << 12
        | ((mpidr >> 24) & 0xFF) << 20
    )


def realm_vmpidr(mpidr: int) -> int:
    """The VMPIDR value the realm sees: Aff3 moved to [39:32], bit 31 set."""
    return (mpidr & 0xFF_FFFF) | ((mpidr >> 24) & 0xFF) << 32 | 1 << 31


@command(0xC400_015A, "RMI_REC_CREATE", 3, 1)
def rmi_rec_create(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.12: create a REC of a NEW realm; measured if runnable (§10.4)."""
    rd, rec_pa, params_pa = args[0], args[1], args[2]
    p = REC_PARAMS.unpack(read_ns(rmm, pe, CREATE, "params", params_pa))
    num_aux = int(p["num_aux"])
    if num_aux > NUM_REC_AUX:
        CREATE["num_aux_bound"].fail()
    aux = words(p["aux"], num_aux)  # type: ignore[arg-type]
    tracker = rmm.tracker
    claimed: list[int] = []
    try:
        for addr in aux:  # each aux is claimed at once, so a duplicate fails its lookup
            idx = find(rmm, CREATE, "aux", addr, GranuleState.DELEGATED)
            tracker.set_state(idx, GranuleState.REC_AUX)
            claimed.append(idx)
        rec_idx, rd_idx = lock_two(
            rmm, CREATE, ("rec", rec_pa, GranuleState.DELEGATED), ("rd", rd, GranuleState.RD)
        )
        if tracker.refcount(rd_idx) >= REFCOUNT_MAX:
            CREATE["rec_count"].fail()
        realm = Realm.load(pe, rd)
        if realm.state != RealmState.NEW:
            CREATE["realm_state"].fail()
        mpidr = int(p["mpidr"])
        if mpidr & ~MPIDR_VALID or rec_index(mpidr) != realm.rec_count:
            CREATE["mpidr_index"].fail()
        if num_aux != realm.num_rec_aux:
            CREATE["num_aux"].fail()
    except BaseException:
        for idx in claimed:
            tracker.set_state(idx, GranuleState.DELEGATED)
        raise

    flags = int(p["flags"])
    pc = int(p["pc"])
    gprs8 = words(p["gprs"], 8)  # type: ignore[arg-type]
    rec = Rec.new(
        rec_pa,
        owner=rd,
        rec_idx=realm.rec_count,
        mpidr=realm_vmpidr(mpidr),
        flags=REC_RUNNABLE if flags & 1 else 0,
        pc=pc,
        pstate=PSTATE_EL1H_DAIF,
        gprs=gprs8,
        num_aux=num_aux,
        aux=p["aux"],  # type: ignore[arg-type]
    )
    rec.store(pe)
    if flags & 1:
        realm.rim = measurement.extend_rec(realm.hash_algo, realm.rim, flags, pc, gprs8)
    realm.rec_count += 1
    realm.store(pe)
    tracker.get(rd_idx)
    tracker.set_state(rec_idx, GranuleState.REC)
    return (RmiStatus.SUCCESS,)


@command(0xC400_015B, "RMI_REC_DESTROY", 1, 1)
def rmi_rec_destroy(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.13: destroy a REC that is not running; aux and REC are scrubbed."""
    rec_idx = find(rmm, DESTROY, "rec", args[0], GranuleState.REC)
    tracker = rmm.tracker
    if tracker.refcount(rec_idx):
        DESTROY["rec_running"].fail()
    rec = Rec.load(pe, args[0])
    for addr in rec.aux:
        idx = tracker.index(addr)
        assert idx is not None
        zero_granule(pe, addr)
        tracker.set_state(idx, GranuleState.DELEGATED)
    zero_granule(pe, args[0])
    tracker.set_state(rec_idx, GranuleState.DELEGATED)
    rd_idx = tracker.index(rec.owner)
    assert rd_idx is not None
    tracker.put(rd_idx)
    return (RmiStatus.SUCCESS,)


@command(0xC400_0164, "RMI_PSCI_COMPLETE", 3, 1)
def rmi_psci_complete(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.7: the host answers a realm's CPU_ON / AFFINITY_INFO request."""
    calling_pa, target_pa, status = args[0], args[1], args[2]
    if calling_pa % GRANULE_SIZE:
        PSCI_COMPLETE["calling_align"].fail()
    if target_pa % GRANULE_SIZE:
        PSCI_COMPLETE["target_align"].fail()
    calling_idx, _ = lock_two(
        rmm,
        PSCI_COMPLETE,
        ("calling", calling_pa, GranuleState.REC),
        ("target", target_pa, GranuleState.REC),
    )
    if rmm.tracker.refcount(calling_idx):
        PSCI_COMPLETE["calling_running"].fail()
    calling = Rec.load(pe, calling_pa)
    if not calling.psci_pending:
        PSCI_COMPLETE["pending"].fail()
    target = Rec.load(pe, target_pa)
    if calling.owner != target.owner:
        PSCI_COMPLETE["owner"].fail()
    if target.rec_idx != mpidr_to_index(calling["psci_target_mpidr"]):
        PSCI_COMPLETE["target"].fail()
    fid = calling["psci_fid"]
    signed = status - (1 << 64) if status >> 63 else status
    target_idx = rmm.tracker.index(target_pa)
    assert target_idx is not None
    on = target.runnable or rmm.tracker.refcount(target_idx) > 0
    quirk_input = False
    if fid == PSCI_CPU_ON:
        if signed not in (PSCI_SUCCESS, PSCI_DENIED):
            PSCI_COMPLETE["status"].fail()
        if on:
            # TF-RMM quirk (rmm-abi §6): DENIED for a target that is already on returns
            # INPUT but still completes the request with ALREADY_ON.
            quirk_input = signed == PSCI_DENIED
            result = PSCI_ALREADY_ON
        elif signed == PSCI_DENIED:
            result = PSCI_DENIED
        else:
            result = PSCI_SUCCESS
            target.pc = calling["psci_entry"]
            target.gprs[0] = calling["psci_context"]
            target.pstate = PSTATE_EL1H_DAIF
            target.flags |= REC_RUNNABLE | REC_RESET_PENDING
            target.store(pe)
    else:  # AFFINITY_INFO
        if signed != PSCI_SUCCESS:
            PSCI_COMPLETE["status"].fail()
        result = 0 if on else 1
    # The caller gets x0 = result and x1..x3 = 0 when it next runs.
    calling["psci_result"] = result & MASK64
    calling.flags = (calling.flags & ~REC_PSCI_PENDING) | REC_PSCI_RESULT_PENDING
    calling.store(pe)
    if quirk_input:
        PSCI_COMPLETE["status"].fail()
    return (RmiStatus.SUCCESS,)


# GIC validation (rmm-abi §7.3)
_HCR_ALLOWED = (
    (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 14)
)


def gic_state_valid(hcr: int, lrs: list[int], num_lrs: int) -> bool:
    if hcr & ~_HCR_ALLOWED:
        return False
    seen: set[int] = set()
    for lr in lrs[:num_lrs]:
        if not (lr >> 62) & 0x3:
            continue
        if (lr >> 61) & 1:  # HW
            return False
        if (lr >> 48) & 0x7:  # RES0 low bits of the priority field [55:48]
            return False
        if (lr >> 32) & 0x1FFF & ~(1 << 9):  # pINTID [44:32] except EOI (bit 41)
            return False
        vintid = lr & 0xFFFF_FFFF
        if not (vintid <= 1019 or 8192 <= vintid < 1 << 16):
            return False
        if vintid in seen:
            return False
        seen.add(vintid)
    return True


ESR_EC_SHIFT = 26
EC_DABT_LOWER = 0x24
ESR_ISV = 1 << 24


@command(0xC400_015C, "RMI_REC_ENTER", 2, 1)
def rmi_rec_enter(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.14: enter a REC; returns when the REC exits, with the exit in run."""
    rec_pa, run_pa = args[0], args[1]
    # run: aligned, tracked, NS (the read itself comes after the REC checks)
    if run_pa % GRANULE_SIZE:
        ENTER["run_align"].fail()
    run_idx = rmm.tracker.index(run_pa)
    if run_idx is None:
        ENTER["run_bound"].fail()
    if rmm.tracker.state(run_idx) != GranuleState.UNDELEGATED:
        ENTER["run_pas"].fail()
    rec_idx = find(rmm, ENTER, "rec", rec_pa, GranuleState.REC)
    if rmm.tracker.refcount(rec_idx):
        ENTER["rec_running"].fail()
    enter = REC_ENTER.unpack(read_ns(rmm, pe, ENTER, "run", run_pa, REC_ENTER.size))
    rec = Rec.load(pe, rec_pa)
    realm = Realm.load(pe, rec.owner)
    if realm.state == RealmState.NEW:
        ENTER["realm_new"].fail(0)
    if realm.state == RealmState.SYSTEM_OFF:
        ENTER["system_off"].fail(1)
    if not rec.runnable:
        ENTER["rec_runnable"].fail()
    if rec.psci_pending:
        ENTER["rec_psci"].fail()
    hcr = int(enter["gicv3_hcr"])
    lrs = words(enter["gicv3_lrs"], 16)  # type: ignore[arg-type]
    if not gic_state_valid(hcr, lrs, rmm.features.gic_num_lrs):
        ENTER["rec_gicv3"].fail()
    # E-1: the GIC state is copied before the SEA / MMIO validity checks.
    rec["gicv3_hcr"] = hcr
    rec["gicv3_lrs"] = bytes(enter["gicv3_lrs"])
    flags = int(enter["flags"])
    esr = rec["last_esr"]
    is_dabt = (esr >> ESR_EC_SHIFT) & 0x3F == EC_DABT_LOWER
    fault_ipa = (rec["last_hpfar"] >> 4) << 12
    if flags & 0x2 and (not is_dabt or realm.geometry.in_par(fault_ipa)):
        rec.store(pe)
        ENTER["inject_sea"].fail()
    if flags & 0x1 and not flags & 0x2 and not (is_dabt and esr & ESR_ISV):
        rec.store(pe)
        ENTER["rec_mmio"].fail()

    # The REC is running while it executes: refcount 1 (rmm-abi §3.1), so REC_ENTER,
    # REC_DESTROY and PSCI_COMPLETE from other PEs see it as running.
    rmm.tracker.get(rec_idx)
    try:
        exit_values = rmm.run_rec(pe, realm, rec, enter)
    finally:
        rmm.tracker.put(rec_idx)
    exit_image = REC_EXIT.pack(exit_values)
    if not write_ns(pe, run_pa + REC_EXIT_OFFSET, exit_image):
        ENTER["run_pas"].fail()
    return (RmiStatus.SUCCESS,)
