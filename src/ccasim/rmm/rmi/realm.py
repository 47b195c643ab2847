"""RMI_REALM_CREATE / ACTIVATE / DESTROY and RMI_REC_AUX_COUNT (rmm-abi §6, §8.1, §10.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...arch.memory import GRANULE_SIZE
from ...arch.pe import ProcessingElement
from ...layout import Field, Layout
from .. import measurement, s2tt
from ..errors import INPUT, REALM, RmiStatus, conditions
from ..granules import GranuleState
from ..measurement import HashAlgorithm
from ..objects import NUM_REC_AUX, Realm, RealmState
from .common import command, find, read_ns, zero_granule

if TYPE_CHECKING:
    from ..rmm import Rmm

REALM_PARAMS = Layout(
    "RmiRealmParams",
    4096,
    [
        Field("flags", 0x000, 8),
        Field("s2sz", 0x008, 4),
        Field("sve_vl", 0x010, 4),
        Field("num_bps", 0x018, 4),
        Field("num_wps", 0x020, 4),
        Field("pmu_num_ctrs", 0x028, 4),
        Field("hash_algo", 0x030, 1),
        Field("rpv", 0x400, 64, raw=True),
        Field("vmid", 0x800, 2),
        Field("rtt_base", 0x808, 8),
        Field("rtt_level_start", 0x810, 8),
        Field("rtt_num_start", 0x818, 4),
    ],
)
FLAG_LPA2 = 1 << 0
FLAG_SVE = 1 << 1
FLAG_PMU = 1 << 2

CREATE = conditions(
    "RMI_REALM_CREATE",
    ("params_align", INPUT, "params is not aligned to a granule"),
    ("params_bound", INPUT, "params is not in tracked DRAM"),
    ("params_pas", INPUT, "params is not in the Non-secure PAS"),
    ("params_supp_lpa2", INPUT, "LPA2 requested but not supported"),
    ("params_supp_s2sz", INPUT, "s2sz below 32 or above the supported IPA width"),
    ("params_supp_bps", INPUT, "num_bps is 0 or above the supported number"),
    ("params_supp_wps", INPUT, "num_wps is 0 or above the supported number"),
    ("params_supp_sve", INPUT, "SVE requested but unsupported, or sve_vl too large"),
    ("params_supp_pmu", INPUT, "PMU counters above the supported number, or zero"),
    ("params_valid_sl", INPUT, "invalid (s2sz, rtt_level_start) combination"),
    ("params_valid_num_start", INPUT, "rtt_num_start is not the required number of tables"),
    ("params_supp_hash", INPUT, "unsupported hash algorithm"),
    ("vmid_valid", INPUT, "VMID out of range or already in use"),
    ("alias", INPUT, "rd is one of the starting-level RTT granules"),
    ("rtt_align", INPUT, "rtt_base is not aligned to rtt_num_start granules"),
    ("rd_align", INPUT, "rd is not aligned"),
    ("rd_bound", INPUT, "rd is not in tracked DRAM"),
    ("rd_state", INPUT, "rd is not DELEGATED"),
    ("rtt_bound", INPUT, "a starting-level RTT granule is not in tracked DRAM"),
    ("rtt_state", INPUT, "a starting-level RTT granule is not DELEGATED"),
)
ACTIVATE = conditions(
    "RMI_REALM_ACTIVATE",
    ("rd_align", INPUT, "rd is not aligned"),
    ("rd_bound", INPUT, "rd is not in tracked DRAM"),
    ("rd_state", INPUT, "rd is not an RD"),
    ("realm_state", REALM, "realm is not NEW"),
)
DESTROY = conditions(
    "RMI_REALM_DESTROY",
    ("rd_align", INPUT, "rd is not aligned"),
    ("rd_bound", INPUT, "rd is not in tracked DRAM"),
    ("rd_state", INPUT, "rd is not an RD"),
    ("realm_recs", REALM, "RECs of the realm still exist"),
    ("realm_live", REALM, "the starting-level RTTs still hold live entries"),
)
AUX_COUNT = conditions(
    "RMI_REC_AUX_COUNT",
    ("rd_align", INPUT, "rd is not aligned"),
    ("rd_bound", INPUT, "rd is not in tracked DRAM"),
    ("rd_state", INPUT, "rd is not an RD"),
)


def _validate_params(rmm: Rmm, p: dict[str, int | bytes]) -> None:
    f = rmm.features
    flags = int(p["flags"])
    s2sz = int(p["s2sz"])
    sl = int(p["rtt_level_start"])
    sl = sl - (1 << 64) if sl >> 63 else sl
    if flags & FLAG_LPA2:
        CREATE["params_supp_lpa2"].fail()
    if not 32 <= s2sz <= f.s2sz:
        CREATE["params_supp_s2sz"].fail()
    if not 1 <= int(p["num_bps"]) <= f.num_bps - 1:
        CREATE["params_supp_bps"].fail()
    if not 1 <= int(p["num_wps"]) <= f.num_wps - 1:
        CREATE["params_supp_wps"].fail()
    if flags & FLAG_SVE and (not f.sve_vl or int(p["sve_vl"]) > f.sve_vl_field):
        CREATE["params_supp_sve"].fail()
    if flags & FLAG_PMU:
        ctrs = int(p["pmu_num_ctrs"])
        if ctrs > f.pmu_counters or ctrs == 0:  # no FEAT_HPMN0
            CREATE["params_supp_pmu"].fail()
    if not s2tt.start_level_valid(s2sz, sl, f.pa_bits):
        CREATE["params_valid_sl"].fail()
    if int(p["rtt_num_start"]) != s2tt.num_root_tables(s2sz, sl):
        CREATE["params_valid_num_start"].fail()
    algo = int(p["hash_algo"])
    if algo not in (HashAlgorithm.SHA_256, HashAlgorithm.SHA_512) or (
        (algo == HashAlgorithm.SHA_256 and not f.hash_sha256)
        or (algo == HashAlgorithm.SHA_512 and not f.hash_sha512)
    ):
        CREATE["params_supp_hash"].fail()


@command(0xC400_0158, "RMI_REALM_CREATE", 2, 1)
def rmi_realm_create(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.9: create a realm (RD + starting-level RTTs) in state NEW."""
    rd, params_pa = args[0], args[1]
    p = REALM_PARAMS.unpack(read_ns(rmm, pe, CREATE, "params", params_pa))
    _validate_params(rmm, p)
    vmid = int(p["vmid"])
    if vmid >= 1 << rmm.features.vmid_bits or vmid in rmm.vmids:
        CREATE["vmid_valid"].fail()
    rtt_base = int(p["rtt_base"])
    num_start = int(p["rtt_num_start"])
    if rtt_base <= rd < rtt_base + num_start * GRANULE_SIZE:
        CREATE["alias"].fail()
    if rtt_base % (num_start * GRANULE_SIZE):
        CREATE["rtt_align"].fail()
    rtt_pas = [rtt_base + i * GRANULE_SIZE for i in range(num_start)]
    rd_idx = None
    rtt_idx: list[int] = []
    # Lock rd and the RTT granules in ascending PA order.
    for pa in sorted([rd, *rtt_pas]):
        if pa == rd:
            rd_idx = find(rmm, CREATE, "rd", rd, GranuleState.DELEGATED)
        else:
            idx = rmm.tracker.index(pa)
            if idx is None:
                CREATE["rtt_bound"].fail()
            if rmm.tracker.state(idx) != GranuleState.DELEGATED:
                CREATE["rtt_state"].fail()
            rtt_idx.append(idx)
    assert rd_idx is not None

    # ---- state changes
    sl = int(p["rtt_level_start"])
    s2sz = int(p["s2sz"])
    algo = HashAlgorithm(int(p["hash_algo"]))
    geometry = s2tt.RttGeometry(s2sz, sl, num_start, rtt_base)
    entry_size = s2tt.level_size(sl)
    for t, table_pa in enumerate(rtt_pas):
        descs = []
        for i in range(s2tt.ENTRIES):
            ipa = (t * s2tt.ENTRIES + i) * entry_size
            descs.append(
                s2tt.unassigned(s2tt.Ripas.EMPTY) if geometry.in_par(ipa) else s2tt.unassigned_ns()
            )
        s2tt.write_table(pe, table_pa, descs)
    realm = Realm(
        pa=rd,
        state=RealmState.NEW,
        rec_count=0,
        num_rec_aux=NUM_REC_AUX,
        hash_algo=algo,
        s2sz=s2sz,
        rtt_base=rtt_base,
        rtt_level_start=sl,
        rtt_num_start=num_start,
        vmid=vmid,
        flags=int(p["flags"]),
        sve_vl=int(p["sve_vl"]),
        num_bps=int(p["num_bps"]),
        num_wps=int(p["num_wps"]),
        pmu_num_ctrs=int(p["pmu_num_ctrs"]),
        rpv=bytes(p["rpv"]),
        measurements=[bytes(64)] * 5,
    )
    realm.rim = measurement.rim_init(
        algo, {k: int(v) for k, v in p.items() if k in measurement.MEASURED_REALM_PARAMS.fields}
    )
    realm.store(pe)
    rmm.vmids.add(vmid)
    rmm.tracker.set_state(rd_idx, GranuleState.RD)
    for idx in rtt_idx:
        rmm.tracker.set_state(idx, GranuleState.RTT)
    return (RmiStatus.SUCCESS,)


@command(0xC400_0157, "RMI_REALM_ACTIVATE", 1, 1)
def rmi_realm_activate(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.8: NEW -> ACTIVE."""
    find(rmm, ACTIVATE, "rd", args[0], GranuleState.RD)
    realm = Realm.load(pe, args[0])
    if realm.state != RealmState.NEW:
        ACTIVATE["realm_state"].fail()
    realm.state = RealmState.ACTIVE
    realm.store(pe)
    return (RmiStatus.SUCCESS,)


@command(0xC400_0159, "RMI_REALM_DESTROY", 1, 1)
def rmi_realm_destroy(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.10: destroy a realm with no RECs and no live starting-level entries."""
    rd_idx = find(rmm, DESTROY, "rd", args[0], GranuleState.RD)
    tracker = rmm.tracker
    if tracker.refcount(rd_idx):
        DESTROY["realm_recs"].fail()
    realm = Realm.load(pe, args[0])
    roots = [realm.rtt_base + i * GRANULE_SIZE for i in range(realm.rtt_num_start)]
    root_idx = [tracker.index(pa) for pa in roots]
    if any(tracker.refcount(i) for i in root_idx if i is not None):
        DESTROY["realm_live"].fail()
    rmm.vmids.discard(realm.vmid)
    for pa, idx in zip(roots, root_idx, strict=True):
        assert idx is not None
        zero_granule(pe, pa)
        tracker.set_state(idx, GranuleState.DELEGATED)
    zero_granule(pe, args[0])
    tracker.set_state(rd_idx, GranuleState.DELEGATED)
    rmm.stage2_changed(realm.vmid, 0, 1 << realm.s2sz)
    return (RmiStatus.SUCCESS,)


@command(0xC400_0167, "RMI_REC_AUX_COUNT", 1, 2)
def rmi_rec_aux_count(rmm: Rmm, pe: ProcessingElement, args: Sequence[int]) -> tuple[int, ...]:
    """DEN0137 B4.3.11: number of auxiliary granules a REC needs (16 in REL0)."""
    find(rmm, AUX_COUNT, "rd", args[0], GranuleState.RD)
    return (RmiStatus.SUCCESS, Realm.load(pe, args[0]).num_rec_aux)
