"""Failure-condition tables for the RMI realm/REC commands (shared/spec/rmm-abi.md §2, §3, §4,
§6, §8.1-8.3, §16).

For every command below there is

* a parametrized table with, per failure-condition label, stimuli that violate exactly that
  condition; each checks x0 == (index << 8) | status as the digest gives it, the label the
  RMM reports (``p.rmm.last_error.label``), that nothing changed (granule tracking, GPIs,
  VMIDs) and that a valid call afterwards still succeeds;
* a table of stimuli that violate two conditions, where the earlier condition must win;
* the success case and its observable effects.

The statuses, indices, field offsets, FIDs and the dispatch table are written down here from
the digest, not imported from the code under test. The commands' ``Conditions`` objects are
imported only to check that the model declares the labels in the digest's order.

Conditions that need a running realm guest (the REC's PSCI request, SYSTEM_OFF) are listed in
``GUEST_ONLY`` and left to the end-to-end tests. "REC running" is reached without a guest:
a REC runner installed for the test issues RMI calls from a second PE while the REC is
executing on the first, which is what a concurrent host does on hardware.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from ccasim import GranuleProtectionFault, Platform, PlatformConfig, SecurityState
from ccasim.host.rmi import (
    FID,
    RealmBuilder,
    RealmHandle,
    RmiClient,
    RmiResult,
    _mpidr_of,
    realm_params,
    rec_params,
)
from ccasim.rmm.errors import Conditions
from ccasim.rmm.granules import GranuleState
from ccasim.rmm.rmi import RMI_TABLE
from ccasim.rmm.rmi import granule as granule_cmds
from ccasim.rmm.rmi import realm as realm_cmds
from ccasim.rmm.rmi import rec as rec_cmds
from ccasim.rmm.rmi import system as system_cmds

# ------------------------------------------------------------------------------ spec values
MASK64 = (1 << 64) - 1
GRANULE = 4096
SMC_UNKNOWN = MASK64  # rmm-abi §2.1
SVE_HINT = 1 << 16  # rmm-abi §2.1: stripped before decoding

# RmiStatus (rmm-abi §2.2)
SUCCESS, INPUT, REALM, REC, RTT = 0, 1, 2, 3, 4

# GPI encodings (rme-hardware §2) and FIRME (rmm-abi §12.4)
GPI_SECURE, GPI_NS, GPI_REALM = 0x8, 0x9, 0xB
FIRME_GM_GPI_SET = 0xC400_0402

RMI_VERSION_1_0 = 0x0001_0000  # rmm-abi §1
NUM_REC_AUX = 16  # rmm-abi §4.1, §16

# RmiRecParams (rmm-abi §8.2)
REC_PARAMS_NUM_AUX = 0x800
REC_PARAMS_AUX = 0x808
# RmiRecRun (rmm-abi §8.3)
ENTER_FLAGS = 0x000
ENTER_GICV3_HCR = 0x300
ENTER_GICV3_LRS = 0x308
EXIT_BASE = 0x800
EXIT_REASON = EXIT_BASE + 0x000
EXIT_ESR = EXIT_BASE + 0x100
EXIT_FAR = EXIT_BASE + 0x108
EXIT_HPFAR = EXIT_BASE + 0x110
EXIT_RIPAS_BASE = EXIT_BASE + 0x500
EXIT_IMM = EXIT_BASE + 0x600
EXIT_REASON_IRQ = 1  # rmm-abi §7.2
FLAG_EMUL_MMIO, FLAG_INJECT_SEA = 1 << 0, 1 << 1
# RmiRealmParams.flags (rmm-abi §8.1)
RP_LPA2, RP_SVE, RP_PMU = 1 << 0, 1 << 1, 1 << 2
# ICH_LR_EL2 fields used by the GIC validation (rmm-abi §7.3)
LR_PENDING = 1 << 62
LR_HW = 1 << 61

# The 1.0 RMI quick-reference table (rmm-abi §6): FNUM -> (name, args in, results besides x0)
RMI_1_0 = {
    0x150: ("VERSION", 1, 2),
    0x151: ("GRANULE_DELEGATE", 1, 0),
    0x152: ("GRANULE_UNDELEGATE", 1, 0),
    0x153: ("DATA_CREATE", 5, 0),
    0x154: ("DATA_CREATE_UNKNOWN", 3, 0),
    0x155: ("DATA_DESTROY", 2, 2),
    0x157: ("REALM_ACTIVATE", 1, 0),
    0x158: ("REALM_CREATE", 2, 0),
    0x159: ("REALM_DESTROY", 1, 0),
    0x15A: ("REC_CREATE", 3, 0),
    0x15B: ("REC_DESTROY", 1, 0),
    0x15C: ("REC_ENTER", 2, 0),
    0x15D: ("RTT_CREATE", 4, 0),
    0x15E: ("RTT_DESTROY", 3, 2),
    0x15F: ("RTT_MAP_UNPROTECTED", 4, 0),
    0x161: ("RTT_READ_ENTRY", 3, 4),
    0x162: ("RTT_UNMAP_UNPROTECTED", 3, 1),
    0x164: ("PSCI_COMPLETE", 3, 0),
    0x165: ("FEATURES", 1, 1),
    0x166: ("RTT_FOLD", 3, 1),
    0x167: ("REC_AUX_COUNT", 1, 1),
    0x168: ("RTT_INIT_RIPAS", 3, 1),
    0x169: ("RTT_SET_RIPAS", 4, 1),
}


def fid(fnum: int) -> int:
    return 0xC400_0000 | fnum


def code(status: int, index: int = 0) -> int:
    """RmiReturnCode (rmm-abi §2.2)."""
    return (index << 8) | status


def bits(value: int, hi: int, lo: int) -> int:
    return (value >> lo) & ((1 << (hi - lo + 1)) - 1)


# ------------------------------------------------------------------------------ environment
UNTRACKED = ["secure_dram", "root", "rmm", "uart0", "ns_top", "unmapped", "all_ones"]


class Env:
    """A booted platform, a host RMI client and helpers to build states and observe them."""

    def __init__(self, cpus: int = 1, **config: Any) -> None:
        self.p = Platform(PlatformConfig(cpus=cpus, **config))
        self.c = RmiClient(self.p)
        self.b = RealmBuilder(self.c)
        self._vmid = 0
        ns = self.p.region("ns_dram")
        self.ns_top = ns.base + ns.size

    # ---- calls
    def call(self, name: str, *args: int) -> RmiResult:
        return self.c.call(name, *args)

    @property
    def label(self) -> str | None:
        err = self.p.rmm.last_error
        return None if err is None else err.label

    # ---- addresses and states
    def addr(self, name: str) -> int:
        """An address the RMM does not track (rmm-abi §3.2 "outside the tracked DRAM")."""
        if name == "ns_top":
            return self.ns_top
        if name == "unmapped":
            return 1 << 47  # inside PARange, no memory there
        if name == "all_ones":
            return MASK64 & ~(GRANULE - 1)
        return self.p.region(name).base

    def ns(self, content: bytes = b"") -> int:
        return self.c.write_page(content)

    def delegated(self) -> int:
        return self.c.new_delegated()

    def delegated_run(self, count: int, align: int, skip: int = 0) -> int:
        """``count`` contiguous delegated granules starting ``skip`` granules after an
        ``align``-aligned address."""
        base = self.c.pool.alloc_aligned(count + skip, align) + skip * GRANULE
        for i in range(count):
            assert self.c.delegate(base + i * GRANULE).ok
        return base

    def next_vmid(self) -> int:
        self._vmid += 1
        return self._vmid

    @property
    def last_vmid(self) -> int:
        """The VMID most recently handed out (the last realm built holds it)."""
        return self._vmid

    def realm(self, **kw: int) -> RealmHandle:
        return self.b.create(vmid=self.next_vmid(), **kw)

    def active_realm(self, recs: int = 1, runnable: bool = True) -> RealmHandle:
        h = self.realm()
        for _ in range(recs):
            self.b.add_rec(h, runnable=runnable)
        self.b.activate(h)
        return h

    def run_page(self, flags: int = 0, hcr: int = 0, lrs: Sequence[int] = ()) -> int:
        page = bytearray(GRANULE)
        page[ENTER_FLAGS : ENTER_FLAGS + 8] = flags.to_bytes(8, "little")
        page[ENTER_GICV3_HCR : ENTER_GICV3_HCR + 8] = hcr.to_bytes(8, "little")
        for i, lr in enumerate(lrs):
            off = ENTER_GICV3_LRS + 8 * i
            page[off : off + 8] = lr.to_bytes(8, "little")
        return self.ns(bytes(page))

    def gpi_set(self, pa: int, gpi: int, cpu: int = 0) -> None:
        """FIRME_GM_GPI_SET from the Secure world: x1 base, x2 count 1, x3 GPI."""
        x = self.p.cpus[cpu].probe(SecurityState.SECURE).smc(FIRME_GM_GPI_SET, pa, 1, gpi)
        assert x[0] == 0, hex(x[0])

    def to_secure(self, pa: int) -> int:
        self.gpi_set(pa, GPI_SECURE)
        return pa

    def state(self, pa: int) -> GranuleState | None:
        tracker = self.p.rmm.tracker
        idx = tracker.index(pa)
        return None if idx is None else tracker.state(idx)

    def gpi(self, pa: int) -> int:
        return int(self.p.el3.gpi(pa))

    def mapped(self, pa: int) -> bool:
        return any(r.base <= pa < r.base + r.size for r in self.p.regions())

    def snapshot(self, *pas: int) -> tuple[object, ...]:
        """Granule tracking (state and refcount of every non-NS granule), the GPI of those
        granules and of ``pas``, and the VMIDs in use."""
        tracked = self.p.rmm.tracker.nonzero()
        addrs = {pa for pa, _, _ in tracked}
        addrs |= {pa & ~(GRANULE - 1) for pa in pas if self.mapped(pa)}
        gpis = {a: self.gpi(a) for a in sorted(addrs)}
        return tuple(tracked), gpis, frozenset(self.p.rmm.vmids)


@pytest.fixture
def env() -> Env:
    return Env()


def untracked(name: str) -> Callable[[Env], int]:
    def where(e: Env) -> int:
        return e.addr(name)

    return where


def untracked2(name: str) -> Callable[[Env, Any], int]:
    """``untracked`` for stimulus builders that also pass their setup object."""

    def where(e: Env, _setup: Any) -> int:
        return e.addr(name)

    return where


@dataclass
class Case:
    """One stimulus: the call's arguments, granules to watch besides the arguments, and a
    valid call to make afterwards, which must succeed."""

    args: tuple[int, ...]
    valid: Callable[[], RmiResult] | None = None
    watch: tuple[int, ...] = ()


Stim = Callable[[Env], Case]


@dataclass(frozen=True)
class Spec:
    """A command's failure conditions as the digest gives them, in its order:
    label -> (status, index)."""

    command: str
    conds: Conditions
    order: dict[str, tuple[int, int]]
    guest_only: frozenset[str] = frozenset()


def steps(e: Env, *calls: tuple[str, tuple[int, ...]]) -> RmiResult:
    """Run calls in order; all but the last must succeed; returns the last result."""
    for name, args in calls[:-1]:
        r = e.call(name, *args)
        assert r.ok, (name, hex(r[0]), e.label)
    name, args = calls[-1]
    return e.call(name, *args)


def expect_failure(e: Env, spec: Spec, label: str, case: Case) -> RmiResult:
    """Make the call; check x0, the label, that nothing changed and the valid call."""
    status, index = spec.order[label]
    assert spec.conds[label].status == status
    before = e.snapshot(*case.args, *case.watch)
    r = e.call(spec.command, *case.args)
    assert (r[0], e.label) == (code(status, index), label), hex(r[0])
    assert e.snapshot(*case.args, *case.watch) == before, "a failed command changed state"
    if case.valid is not None:
        v = case.valid()
        assert v.ok, (hex(v[0]), e.label)
    return r


def check_row(spec: Spec, label: str, stim: Stim, env: Env) -> None:
    expect_failure(env, spec, label, stim(env))


def check_pair(spec: Spec, first: str, second: str, stim: Stim, env: Env) -> None:
    labels = spec.conds.labels
    assert labels.index(first) < labels.index(second), "pair not in declared order"
    expect_failure(env, spec, first, stim(env))


def rows(table: dict[str, list[tuple[str, Stim]]]) -> list[Any]:
    return [
        pytest.param(label, stim, id=f"{label}-{variant}")
        for label, variants in table.items()
        for variant, stim in variants
    ]


def pairs(table: list[tuple[str, str, Stim]]) -> list[Any]:
    return [pytest.param(a, b, stim, id=f"{a}<{b}") for a, b, stim in table]


def check_table_covers(spec: Spec, table: dict[str, list[tuple[str, Stim]]],
                       elsewhere: Sequence[str] = ()) -> None:
    """The digest order equals the model's declared order, and every label is exercised."""
    assert list(spec.order) == spec.conds.labels
    for label, (status, _index) in spec.order.items():
        assert spec.conds[label].status == status, label
    covered = set(table) | set(elsewhere) | spec.guest_only
    assert covered == set(spec.conds.labels)
    assert not set(table) & spec.guest_only


# ============================================================================== VERSION
VERSION_SPEC = Spec("VERSION", system_cmds.VERSION, {"version": (INPUT, 0)})


@pytest.mark.parametrize(
    "requested",
    [0, 0x0000_0001, 0x0001_0001, 0x0002_0000, 0x8001_0000, 0x1_0001_0000, MASK64],
)
def test_version_unsupported(env: Env, requested: int) -> None:
    check_table_covers(VERSION_SPEC, {"version": []})
    r = expect_failure(
        env, VERSION_SPEC, "version",
        Case((requested,), valid=lambda: env.call("VERSION", RMI_VERSION_1_0)),
    )
    # REL0: lower = higher = 1.0, filled in on failure as well (rmm-abi §1, §6)
    assert r[1] == r[2] == RMI_VERSION_1_0


def test_version_success(env: Env) -> None:
    r = env.call("VERSION", RMI_VERSION_1_0)
    assert (r[0], r[1], r[2]) == (SUCCESS, RMI_VERSION_1_0, RMI_VERSION_1_0)
    assert env.label is None
    r = RmiResult(env.p.host.smc(FID["VERSION"] | SVE_HINT, RMI_VERSION_1_0))
    assert (r[0], r[1], r[2]) == (SUCCESS, RMI_VERSION_1_0, RMI_VERSION_1_0)


# ============================================================================== FEATURES
FEATURE_CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "rich": {"pa_bits": 44, "num_bps": 6, "num_wps": 4, "pmu_counters": 3, "sve_vl": 512,
             "hash_algorithms": ("sha256",)},
    "sha512-only": {"pa_bits": 40, "num_bps": 16, "num_wps": 16, "pmu_counters": 31,
                    "sve_vl": 2048, "hash_algorithms": ("sha512",)},
}


@pytest.mark.parametrize("name", list(FEATURE_CONFIGS))
def test_features_register0(name: str) -> None:
    """RmiFeatureRegister0 (rmm-abi §6 RMI_FEATURES) against the platform configuration."""
    cfg = FEATURE_CONFIGS[name]
    e = Env(**cfg)
    config = e.p.config
    r = e.call("FEATURES", 0)
    assert r[0] == SUCCESS
    v = r[1]
    assert bits(v, 7, 0) == min(config.pa_bits, 48)  # S2SZ: the PA width (no LPA2: <= 48)
    assert bits(v, 8, 8) == int(config.lpa2) == 0  # LPA2
    assert bits(v, 9, 9) == int(config.sve_vl > 0)  # SVE_EN
    assert bits(v, 13, 10) == (config.sve_vl // 128 - 1 if config.sve_vl else 0)  # SVE_VL
    assert bits(v, 19, 14) == config.num_bps - 1  # NUM_BPS (BRPs = count - 1)
    assert bits(v, 25, 20) == config.num_wps - 1  # NUM_WPS
    assert bits(v, 26, 26) == 1  # PMU_EN: always
    assert bits(v, 31, 27) == config.pmu_counters  # PMU_NUM_CTRS (PMCR_EL0.N)
    assert bits(v, 32, 32) == int("sha256" in config.hash_algorithms)
    assert bits(v, 33, 33) == int("sha512" in config.hash_algorithms)
    assert 1 <= bits(v, 37, 34) + 1 <= 16  # GICV3_NUM_LRS (ListRegs = count - 1)
    assert bits(v, 41, 38) == 10  # MAX_RECS_ORDER
    assert v >> 42 == 0  # V1X additions absent in 1.0
    assert r.regs[2:5] == (0, 0, 0)


@pytest.mark.parametrize("index", [1, 2, 0xFF, 1 << 32, MASK64])
def test_features_other_index_reads_zero(env: Env, index: int) -> None:
    r = env.call("FEATURES", index)
    assert (r[0], r[1]) == (SUCCESS, 0)  # rmm-abi §16: SUCCESS with x1 = 0


def test_features_bounds_match_realm_create() -> None:
    """The maxima FEATURES advertises are exactly what REALM_CREATE accepts (§6)."""
    e = Env(**FEATURE_CONFIGS["rich"])
    feat = e.call("FEATURES", 0)[1]
    s2sz, sve_vl = bits(feat, 7, 0), bits(feat, 13, 10)
    nbps, nwps, nctrs = bits(feat, 19, 14), bits(feat, 25, 20), bits(feat, 31, 27)
    good: dict[str, int] = {"num_bps": nbps, "num_wps": nwps, "flags": RP_SVE | RP_PMU,
                            "sve_vl": sve_vl, "pmu_num_ctrs": nctrs, "s2sz": s2sz}
    cases = [
        ("params_supp_s2sz", {"s2sz": s2sz + 1}),
        ("params_supp_bps", {"num_bps": nbps + 1}),
        ("params_supp_wps", {"num_wps": nwps + 1}),
        ("params_supp_sve", {"sve_vl": sve_vl + 1}),
        ("params_supp_pmu", {"pmu_num_ctrs": nctrs + 1}),
        ("params_supp_pmu", {"pmu_num_ctrs": 0}),  # no FEAT_HPMN0
        ("params_supp_hash", {"hash_algo": 1}),  # SHA-512 not advertised here
    ]
    for label, override in cases:
        rc = RealmCreate(e)
        expect_failure(e, REALM_CREATE_SPEC, label, rc.case(**{**good, **override}))
    rc = RealmCreate(e)
    assert e.call("REALM_CREATE", rc.rd, rc.params(**good)).ok


def test_gic_num_lrs_bounds_the_validated_list_registers() -> None:
    """An invalid LR is rejected in the last implemented LR and ignored after it (§7.3)."""
    e = Env()
    nlrs = bits(e.call("FEATURES", 0)[1], 37, 34) + 1
    h = e.active_realm()
    bad = LR_PENDING | LR_HW | 32
    run = e.run_page(lrs=[0] * (nlrs - 1) + [bad])
    assert e.call("REC_ENTER", h.recs[0], run)[0] == code(REC)
    assert e.label == "rec_gicv3"
    if nlrs < 16:
        run = e.run_page(lrs=[0] * nlrs + [bad])
        assert e.call("REC_ENTER", h.recs[0], run).ok


# ============================================================================== GRANULE_DELEGATE
DELEGATE_SPEC = Spec(
    "GRANULE_DELEGATE",
    granule_cmds.DELEGATE,
    {"gran_align": (INPUT, 0), "gran_bound": (INPUT, 0), "gran_state": (INPUT, 0),
     "gran_gpt": (INPUT, 0)},
)


def _delegate_valid(e: Env, pa: int | None = None) -> Callable[[], RmiResult]:
    return lambda: e.call("GRANULE_DELEGATE", e.ns() if pa is None else pa)


def _delegate_untracked(name: str) -> Stim:
    return lambda e: Case((e.addr(name),), _delegate_valid(e))


def _delegate_align(offset: int) -> Stim:
    def stim(e: Env) -> Case:
        g = e.ns()
        return Case((g + offset,), _delegate_valid(e, g), (g,))

    return stim


def _delegate_secure(e: Env) -> Case:
    g = e.to_secure(e.ns(b"secure data"))

    def valid() -> RmiResult:
        with pytest.raises(GranuleProtectionFault):
            e.p.host.read(g, 8)
        e.gpi_set(g, GPI_NS)
        return e.call("GRANULE_DELEGATE", g)

    return Case((g,), valid)


DELEGATE_TABLE: dict[str, list[tuple[str, Stim]]] = {
    "gran_align": [("plus8", _delegate_align(8)), ("half", _delegate_align(0x800)),
                   ("plus1", _delegate_align(1))],
    "gran_bound": [(n, _delegate_untracked(n)) for n in UNTRACKED],
    "gran_state": [
        ("delegated", lambda e: Case((e.delegated(),), _delegate_valid(e))),
        ("rd", lambda e: Case((e.realm().rd,), _delegate_valid(e))),
        ("rec", lambda e: Case((e.active_realm().recs[0],), _delegate_valid(e))),
    ],
    "gran_gpt": [("secure_pas", _delegate_secure)],
}
DELEGATE_PAIRS: list[tuple[str, str, Stim]] = [
    ("gran_align", "gran_bound", lambda e: Case((e.addr("secure_dram") + 8,))),
    ("gran_align", "gran_state", lambda e: Case((e.delegated() + 8,))),
    ("gran_align", "gran_gpt", lambda e: Case((e.to_secure(e.ns()) + 8,))),
    # A DELEGATED granule is also refused by EL3 (its GPI is Realm, not NS)
    ("gran_state", "gran_gpt", lambda e: Case((e.delegated(),), _delegate_valid(e))),
]


def test_delegate_table_covers_conditions() -> None:
    check_table_covers(DELEGATE_SPEC, DELEGATE_TABLE)


@pytest.mark.parametrize(("label", "stim"), rows(DELEGATE_TABLE))
def test_delegate_conditions(env: Env, label: str, stim: Stim) -> None:
    check_row(DELEGATE_SPEC, label, stim, env)


@pytest.mark.parametrize(("first", "second", "stim"), pairs(DELEGATE_PAIRS))
def test_delegate_order(env: Env, first: str, second: str, stim: Stim) -> None:
    check_pair(DELEGATE_SPEC, first, second, stim, env)


@pytest.mark.parametrize("where", ["pool", "last_granule"])
def test_delegate_undelegate_success(env: Env, where: str) -> None:
    e = env
    g = e.ns() if where == "pool" else e.ns_top - GRANULE
    e.p.host.write(g, b"host secret".ljust(GRANULE, b"\xa5"))
    assert (e.state(g), e.gpi(g)) == (GranuleState.UNDELEGATED, GPI_NS)

    assert e.call("GRANULE_DELEGATE", g).regs[:5] == (SUCCESS, 0, 0, 0, 0)
    assert (e.state(g), e.gpi(g)) == (GranuleState.DELEGATED, GPI_REALM)
    with pytest.raises(GranuleProtectionFault) as info:
        e.p.host.read(g, 8)
    assert info.value.pa == g
    with pytest.raises(GranuleProtectionFault):
        e.p.host.write(g + 0x100, b"x")
    # A second identical call now fails
    assert (e.call("GRANULE_DELEGATE", g)[0], e.label) == (code(INPUT), "gran_state")

    assert e.call("GRANULE_UNDELEGATE", g).regs[:5] == (SUCCESS, 0, 0, 0, 0)
    assert (e.state(g), e.gpi(g)) == (GranuleState.UNDELEGATED, GPI_NS)
    assert e.p.host.read(g, GRANULE) == bytes(GRANULE)  # REL0 zero-fills on delegation
    assert (e.call("GRANULE_UNDELEGATE", g)[0], e.label) == (code(INPUT), "gran_state")


def test_delegate_with_sve_hint(env: Env) -> None:
    g = env.ns()
    assert RmiResult(env.p.host.smc(FID["GRANULE_DELEGATE"] | SVE_HINT, g)).ok
    assert env.gpi(g) == GPI_REALM
    assert RmiResult(env.p.host.smc(FID["GRANULE_UNDELEGATE"] | SVE_HINT, g)).ok
    assert env.gpi(g) == GPI_NS


# ============================================================================== GRANULE_UNDELEGATE
UNDELEGATE_SPEC = Spec(
    "GRANULE_UNDELEGATE",
    granule_cmds.UNDELEGATE,
    {"gran_align": (INPUT, 0), "gran_bound": (INPUT, 0), "gran_state": (INPUT, 0)},
)


def _undelegate_valid(e: Env, pa: int | None = None) -> Callable[[], RmiResult]:
    return lambda: e.call("GRANULE_UNDELEGATE", e.delegated() if pa is None else pa)


def _undelegate_untracked(name: str) -> Stim:
    return lambda e: Case((e.addr(name),), _undelegate_valid(e))


def _undelegate_align(offset: int) -> Stim:
    def stim(e: Env) -> Case:
        g = e.delegated()
        return Case((g + offset,), _undelegate_valid(e, g))

    return stim


def _object(kind: str) -> Stim:
    """An object granule of a realm (rmm-abi §3.1 states other than NS / DELEGATED)."""

    def stim(e: Env) -> Case:
        h = e.realm()
        rec = e.b.add_rec(h)
        data = e.b.add_data(h, 0x1000, b"payload")
        pa = {
            "rd": h.rd,
            "rtt_root": h.rtt_base,
            "rtt": h.rtts[(3, 0)],
            "rec": rec,
            "rec_aux": h.aux[rec][7],
            "data": data,
        }[kind]
        return Case((pa,), _undelegate_valid(e))

    return stim


UNDELEGATE_TABLE: dict[str, list[tuple[str, Stim]]] = {
    "gran_align": [("plus8", _undelegate_align(8)), ("half", _undelegate_align(0x800))],
    "gran_bound": [(n, _undelegate_untracked(n)) for n in UNTRACKED],
    "gran_state": [
        ("ns", lambda e: Case((e.ns(),), _undelegate_valid(e))),
        ("secure_pas", lambda e: Case((e.to_secure(e.ns()),), _undelegate_valid(e))),
        *[(k, _object(k)) for k in ("rd", "rtt_root", "rtt", "rec", "rec_aux", "data")],
    ],
}
UNDELEGATE_PAIRS: list[tuple[str, str, Stim]] = [
    ("gran_align", "gran_bound", lambda e: Case((e.addr("root") + 0x10,))),
    ("gran_align", "gran_state", lambda e: Case((e.ns() + 0x10,))),
]


def test_undelegate_table_covers_conditions() -> None:
    check_table_covers(UNDELEGATE_SPEC, UNDELEGATE_TABLE)


@pytest.mark.parametrize(("label", "stim"), rows(UNDELEGATE_TABLE))
def test_undelegate_conditions(env: Env, label: str, stim: Stim) -> None:
    check_row(UNDELEGATE_SPEC, label, stim, env)


@pytest.mark.parametrize(("first", "second", "stim"), pairs(UNDELEGATE_PAIRS))
def test_undelegate_order(env: Env, first: str, second: str, stim: Stim) -> None:
    check_pair(UNDELEGATE_SPEC, first, second, stim, env)


# ============================================================================== REALM_CREATE
REALM_CREATE_SPEC = Spec(
    "REALM_CREATE",
    realm_cmds.CREATE,
    {
        # 1. params pointer (§3.2)
        "params_align": (INPUT, 0),
        "params_bound": (INPUT, 0),
        "params_pas": (INPUT, 0),
        # 2. params_valid / params_supp, in the digest's order
        "params_supp_lpa2": (INPUT, 0),
        "params_supp_s2sz": (INPUT, 0),
        "params_supp_bps": (INPUT, 0),
        "params_supp_wps": (INPUT, 0),
        "params_supp_sve": (INPUT, 0),
        "params_supp_pmu": (INPUT, 0),
        "params_valid_sl": (INPUT, 0),
        "params_valid_num_start": (INPUT, 0),
        "params_supp_hash": (INPUT, 0),
        # 3. VMID, 4. alias, rtt_align (§16: treated as 1.0 behaviour)
        "vmid_valid": (INPUT, 0),
        "alias": (INPUT, 0),
        "rtt_align": (INPUT, 0),
        # 5. rd and the starting-level RTTs, locked in PA order
        "rd_align": (INPUT, 0),
        "rd_bound": (INPUT, 0),
        "rd_state": (INPUT, 0),
        "rtt_bound": (INPUT, 0),
        "rtt_state": (INPUT, 0),
    },
)


class RealmCreate:
    """A delegated rd below two delegated, aligned root RTTs (s2sz 40, start level 1), and
    a VMID nobody uses. ``valid`` creates the realm with these granules and that VMID."""

    def __init__(self, e: Env) -> None:
        self.e = e
        self.rd = e.delegated()
        self.rtt = e.delegated_run(2, 2 * GRANULE)
        self.vmid = e.next_vmid()

    def params(self, **fields: int) -> int:
        fields.setdefault("rtt_base", self.rtt)
        fields.setdefault("vmid", self.vmid)
        return self.e.ns(realm_params(**fields))  # type: ignore[arg-type]

    def valid(self) -> RmiResult:
        return self.e.call("REALM_CREATE", self.rd, self.params())

    def case(self, *, rd: int | None = None, params: int | None = None, **fields: int) -> Case:
        args = (self.rd if rd is None else rd, self.params(**fields) if params is None else params)
        return Case(args, self.valid, (self.rd, self.rtt, self.rtt + GRANULE))


def _rc(**fields: int) -> Stim:
    return lambda e: RealmCreate(e).case(**fields)


def _rc_params_at(where: Callable[[Env], int]) -> Stim:
    return lambda e: RealmCreate(e).case(params=where(e))


def _rc_params_secure(e: Env) -> Case:
    rc = RealmCreate(e)
    return rc.case(params=e.to_secure(rc.params()))


def _rc_rd_at(where: Callable[[Env, RealmCreate], int]) -> Stim:
    def stim(e: Env) -> Case:
        rc = RealmCreate(e)
        return rc.case(rd=where(e, rc))

    return stim


def _rc_vmid_in_use(e: Env, **fields: int) -> Case:
    e.realm()
    used = e.last_vmid
    rc = RealmCreate(e)
    return rc.case(vmid=used, **fields)


def _odd_rtts(e: Env) -> int:
    """Two delegated granules starting at an odd granule (not 8 KB aligned)."""
    return e.delegated_run(2, 2 * GRANULE, skip=1)


def _rc_rtt_unaligned(e: Env) -> Case:
    rc = RealmCreate(e)
    odd = _odd_rtts(e)
    return Case(rc.case(rtt_base=odd).args, rc.valid, (odd, odd + GRANULE))


def _rc_rtt_at(where: Callable[[Env, RealmCreate], int]) -> Stim:
    def stim(e: Env) -> Case:
        rc = RealmCreate(e)
        return rc.case(rtt_base=where(e, rc))

    return stim


def _rc_rtt_not_delegated(which: int) -> Stim:
    def stim(e: Env) -> Case:
        rc = RealmCreate(e)
        rtt = e.c.pool.alloc_aligned(2, 2 * GRANULE)
        assert e.c.delegate(rtt + (1 - which) * GRANULE).ok
        return Case(rc.case(rtt_base=rtt).args, rc.valid, (rtt, rtt + GRANULE))

    return stim


REALM_CREATE_TABLE: dict[str, list[tuple[str, Stim]]] = {
    "params_align": [("plus8", _rc_params_at(lambda e: e.ns() + 8)),
                     ("half", _rc_params_at(lambda e: e.ns() + 0x800))],
    "params_bound": [(n, _rc_params_at(untracked(n))) for n in UNTRACKED],
    "params_pas": [("delegated", _rc_params_at(lambda e: e.delegated())),
                   ("secure_pas", _rc_params_secure)],
    "params_supp_lpa2": [("lpa2", _rc(flags=RP_LPA2))],
    "params_supp_s2sz": [("31", _rc(s2sz=31)),
                         ("upper_byte", _rc(s2sz=40 | 1 << 8, rtt_level_start=1,
                                            rtt_num_start=2))],
    "params_supp_bps": [("zero", _rc(num_bps=0)), ("two", _rc(num_bps=2))],
    "params_supp_wps": [("zero", _rc(num_wps=0)), ("two", _rc(num_wps=2))],
    "params_supp_sve": [("no_sve", _rc(flags=RP_SVE))],
    "params_supp_pmu": [("ctrs1", _rc(flags=RP_PMU, pmu_num_ctrs=1)),
                        ("ctrs0", _rc(flags=RP_PMU, pmu_num_ctrs=0))],
    "params_valid_sl": [
        ("s2sz39_sl0", _rc(s2sz=39, rtt_level_start=0)),
        ("sl_minus1", _rc(s2sz=32, rtt_level_start=MASK64, rtt_num_start=1)),
        ("sl4", _rc(rtt_level_start=4, rtt_num_start=1)),
        ("s2sz44_sl1", _rc(s2sz=44, rtt_level_start=1, rtt_num_start=32)),
    ],
    "params_valid_num_start": [("one", _rc(rtt_num_start=1)), ("four", _rc(rtt_num_start=4)),
                               ("zero", _rc(rtt_num_start=0))],
    "params_supp_hash": [("two", _rc(hash_algo=2)), ("ff", _rc(hash_algo=0xFF))],
    "vmid_valid": [("in_use", _rc_vmid_in_use)],
    "alias": [("first_root", _rc_rd_at(lambda e, rc: rc.rtt)),
              ("second_root", _rc_rd_at(lambda e, rc: rc.rtt + GRANULE))],
    "rtt_align": [("odd_granule", _rc_rtt_unaligned),
                  ("unaligned", _rc_rtt_at(lambda e, rc: rc.rtt + 8))],
    "rd_align": [("plus8", _rc_rd_at(lambda e, rc: rc.rd + 8))],
    "rd_bound": [(n, _rc_rd_at(untracked2(n))) for n in UNTRACKED],
    "rd_state": [("ns", _rc_rd_at(lambda e, rc: e.ns())),
                 ("rd", _rc_rd_at(lambda e, rc: e.realm().rd)),
                 ("secure_pas", _rc_rd_at(lambda e, rc: e.to_secure(e.ns())))],
    "rtt_bound": [("secure_dram", _rc_rtt_at(lambda e, rc: e.addr("secure_dram"))),
                  ("ns_top", _rc_rtt_at(lambda e, rc: e.ns_top))],
    "rtt_state": [("first_ns", _rc_rtt_not_delegated(0)),
                  ("second_ns", _rc_rtt_not_delegated(1)),
                  ("rtt_of_other_realm", _rc_rtt_at(lambda e, rc: e.realm().rtt_base))],
}


def _rc_pair_vmid_alias(e: Env) -> Case:
    e.realm()
    used = e.last_vmid
    rc = RealmCreate(e)
    return rc.case(rd=rc.rtt, vmid=used)


def _rc_pair_alias_align(e: Env) -> Case:
    rc = RealmCreate(e)
    odd = _odd_rtts(e)
    return rc.case(rd=odd, rtt_base=odd)


def _rc_pair_align_rd(e: Env) -> Case:
    rc = RealmCreate(e)
    return rc.case(rd=rc.rd + 8, rtt_base=_odd_rtts(e))


def _rc_undelegated_rd_secure_params(e: Env) -> Case:
    rc = RealmCreate(e)
    assert e.c.undelegate(rc.rd).ok
    return Case((rc.rd, e.to_secure(rc.params())))


def _rc_pair_rd_bound_rtt(e: Env) -> Case:
    rc = RealmCreate(e)
    assert e.c.undelegate(rc.rtt).ok
    return Case((e.addr("secure_dram"), rc.params()))


def _rc_pair_rd_rtt(e: Env) -> Case:
    rc = RealmCreate(e)
    assert e.c.undelegate(rc.rd).ok
    assert e.c.undelegate(rc.rtt + GRANULE).ok
    return Case(rc.case().args)


REALM_CREATE_PAIRS: list[tuple[str, str, Stim]] = [
    ("params_align", "params_bound", _rc_params_at(lambda e: e.addr("secure_dram") + 8)),
    ("params_pas", "rd_state", _rc_undelegated_rd_secure_params),
    ("params_supp_lpa2", "params_supp_s2sz", _rc(flags=RP_LPA2, s2sz=31)),
    ("params_supp_s2sz", "params_supp_bps", _rc(s2sz=31, num_bps=0)),
    ("params_supp_s2sz", "params_valid_sl", _rc(s2sz=49, rtt_level_start=0)),
    ("params_supp_bps", "params_supp_wps", _rc(num_bps=0, num_wps=0)),
    ("params_supp_wps", "params_supp_sve", _rc(num_wps=2, flags=RP_SVE)),
    ("params_supp_sve", "params_supp_pmu", _rc(flags=RP_SVE | RP_PMU, pmu_num_ctrs=1)),
    ("params_supp_pmu", "params_valid_sl", _rc(flags=RP_PMU, s2sz=39, rtt_level_start=0)),
    ("params_valid_sl", "params_valid_num_start",
     _rc(s2sz=39, rtt_level_start=0, rtt_num_start=2)),
    ("params_valid_num_start", "params_supp_hash", _rc(rtt_num_start=1, hash_algo=2)),
    ("params_supp_hash", "vmid_valid", lambda e: _rc_vmid_in_use(e, hash_algo=2)),
    ("vmid_valid", "alias", _rc_pair_vmid_alias),
    ("alias", "rtt_align", _rc_pair_alias_align),
    ("rtt_align", "rd_align", _rc_pair_align_rd),
    ("rd_align", "rd_bound", _rc_rd_at(lambda e, rc: e.addr("secure_dram") + 8)),
    ("rd_bound", "rtt_state", _rc_pair_rd_bound_rtt),
    ("rd_state", "rtt_state", _rc_pair_rd_rtt),  # rd below the roots: rd is locked first
]


def test_realm_create_table_covers_conditions() -> None:
    check_table_covers(REALM_CREATE_SPEC, REALM_CREATE_TABLE)


@pytest.mark.parametrize(("label", "stim"), rows(REALM_CREATE_TABLE))
def test_realm_create_conditions(env: Env, label: str, stim: Stim) -> None:
    check_row(REALM_CREATE_SPEC, label, stim, env)


@pytest.mark.parametrize(("first", "second", "stim"), pairs(REALM_CREATE_PAIRS))
def test_realm_create_order(env: Env, first: str, second: str, stim: Stim) -> None:
    check_pair(REALM_CREATE_SPEC, first, second, stim, env)


def test_realm_create_locks_in_pa_order(env: Env) -> None:
    """Roots below rd: a bad root is found before a bad rd (rmm-abi §3.1 lock order)."""
    e = env
    rtt = e.c.pool.alloc_aligned(2, 2 * GRANULE)
    assert e.c.delegate(rtt).ok  # second root left NS
    rd = e.ns()  # above the roots, not delegated
    rc_vmid = e.next_vmid()
    params = e.ns(realm_params(rtt_base=rtt, vmid=rc_vmid))
    before = e.snapshot(rd, rtt, rtt + GRANULE)
    assert (e.call("REALM_CREATE", rd, params)[0], e.label) == (code(INPUT), "rtt_state")
    assert e.snapshot(rd, rtt, rtt + GRANULE) == before


def test_realm_create_vmid_width() -> None:
    """vmid >= 2^8 without FEAT_VMID16 (rmm-abi §6 vmid_valid)."""
    e = Env(vmid_bits=8)
    rc = RealmCreate(e)
    expect_failure(e, REALM_CREATE_SPEC, "vmid_valid", rc.case(vmid=256))
    rc = RealmCreate(e)
    assert e.call("REALM_CREATE", rc.rd, rc.params(vmid=255)).ok


def test_realm_create_sl0_needs_pa_44() -> None:
    """sl = 0 is rejected when the CPU PA width is below 44 (rmm-abi §5.1)."""
    e = Env(pa_bits=40)
    rc = RealmCreate(e)
    expect_failure(e, REALM_CREATE_SPEC, "params_valid_sl",
                   rc.case(s2sz=40, rtt_level_start=0, rtt_num_start=1))


@pytest.mark.parametrize(("s2sz", "sl", "num_start"),
                         [(32, 2, 4), (40, 1, 2), (43, 1, 16), (40, 0, 1), (48, 0, 1)])
def test_realm_create_success(env: Env, s2sz: int, sl: int, num_start: int) -> None:
    e = env
    rd = e.delegated()
    rtt = e.delegated_run(num_start, num_start * GRANULE)
    vmid = e.next_vmid()
    params = e.ns(realm_params(rtt_base=rtt, s2sz=s2sz, rtt_level_start=sl, vmid=vmid))
    assert e.call("REALM_CREATE", rd, params).regs[:5] == (SUCCESS, 0, 0, 0, 0)
    roots = [rtt + i * GRANULE for i in range(num_start)]
    assert e.state(rd) == GranuleState.RD
    assert [e.state(r) for r in roots] == [GranuleState.RTT] * num_start
    assert {e.gpi(g) for g in [rd, *roots]} == {GPI_REALM}
    with pytest.raises(GranuleProtectionFault):
        e.p.host.read(rd, 8)
    assert e.p.host.read(params, 8)  # the params page is still the host's
    r = e.call("REC_AUX_COUNT", rd)
    assert (r[0], r[1]) == (SUCCESS, NUM_REC_AUX)
    # A second identical call fails: the VMID is now in use (checked before the granules)
    assert (e.call("REALM_CREATE", rd, params)[0], e.label) == (code(INPUT), "vmid_valid")
    # ...and with a fresh VMID, rd is no longer DELEGATED
    params2 = e.ns(realm_params(rtt_base=rtt, s2sz=s2sz, rtt_level_start=sl,
                                vmid=e.next_vmid()))
    assert (e.call("REALM_CREATE", rd, params2)[0], e.label) == (code(INPUT), "rd_state")
    # The new realm is NEW: it can be activated once
    assert e.call("REALM_ACTIVATE", rd).ok


# ============================================================================== REALM_ACTIVATE
ACTIVATE_SPEC = Spec(
    "REALM_ACTIVATE",
    realm_cmds.ACTIVATE,
    {"rd_align": (INPUT, 0), "rd_bound": (INPUT, 0), "rd_state": (INPUT, 0),
     "realm_state": (REALM, 0)},
)


def _activate(target: Callable[[Env, RealmHandle], int]) -> Stim:
    def stim(e: Env) -> Case:
        h = e.realm()
        e.b.add_rec(h)
        return Case((target(e, h),), lambda: e.call("REALM_ACTIVATE", h.rd))

    return stim


def _activate_twice(e: Env) -> Case:
    h = e.active_realm()
    run = e.run_page()
    return Case((h.rd,), lambda: e.call("REC_ENTER", h.recs[0], run))


ACTIVATE_TABLE: dict[str, list[tuple[str, Stim]]] = {
    "rd_align": [("plus8", _activate(lambda e, h: h.rd + 8))],
    "rd_bound": [(n, _activate(untracked2(n))) for n in UNTRACKED],
    "rd_state": [("delegated", _activate(lambda e, h: e.delegated())),
                 ("ns", _activate(lambda e, h: e.ns())),
                 ("rec", _activate(lambda e, h: h.recs[0])),
                 ("rtt_root", _activate(lambda e, h: h.rtt_base))],
    "realm_state": [("active", _activate_twice)],
}
ACTIVATE_PAIRS: list[tuple[str, str, Stim]] = [
    ("rd_align", "rd_bound", _activate(lambda e, h: e.addr("secure_dram") + 8)),
    ("rd_align", "rd_state", _activate(lambda e, h: h.recs[0] + 8)),
]


def test_activate_table_covers_conditions() -> None:
    check_table_covers(ACTIVATE_SPEC, ACTIVATE_TABLE)


@pytest.mark.parametrize(("label", "stim"), rows(ACTIVATE_TABLE))
def test_activate_conditions(env: Env, label: str, stim: Stim) -> None:
    check_row(ACTIVATE_SPEC, label, stim, env)


@pytest.mark.parametrize(("first", "second", "stim"), pairs(ACTIVATE_PAIRS))
def test_activate_order(env: Env, first: str, second: str, stim: Stim) -> None:
    check_pair(ACTIVATE_SPEC, first, second, stim, env)


def test_activate_success(env: Env) -> None:
    e = env
    h = e.realm()
    rec = e.b.add_rec(h)
    run = e.run_page()
    # Before activation: REC_ENTER fails with (REALM, 0); REC_CREATE works
    assert e.call("REC_ENTER", rec, run)[0] == code(REALM, 0)
    before = e.snapshot()
    assert e.call("REALM_ACTIVATE", h.rd).regs[:5] == (SUCCESS, 0, 0, 0, 0)
    assert e.snapshot() == before  # no granule changes state
    assert e.call("REC_ENTER", rec, run).ok
    assert (e.call("REALM_ACTIVATE", h.rd)[0], e.label) == (code(REALM), "realm_state")
    s = RecCreate(e, h)
    assert (e.call("REC_CREATE", h.rd, s.rec, s.params(mpidr=_mpidr_of(1)))[0], e.label) == (
        code(REALM), "realm_state")


# ============================================================================== REALM_DESTROY
DESTROY_SPEC = Spec(
    "REALM_DESTROY",
    realm_cmds.DESTROY,
    {"rd_align": (INPUT, 0), "rd_bound": (INPUT, 0), "rd_state": (INPUT, 0),
     "realm_recs": (REALM, 0), "realm_live": (REALM, 0)},
)


def _destroy(target: Callable[[Env, RealmHandle], int]) -> Stim:
    def stim(e: Env) -> Case:
        h = e.realm()
        return Case((target(e, h),), lambda: e.call("REALM_DESTROY", h.rd))

    return stim


def _destroy_with_rec(e: Env) -> Case:
    h = e.realm()
    rec = e.b.add_rec(h)
    return Case((h.rd,), lambda: steps(e, ("REC_DESTROY", (rec,)), ("REALM_DESTROY", (h.rd,))))


def _destroy_with_rtt(level: int) -> Stim:
    def stim(e: Env) -> Case:
        h = e.realm()
        e.b.ensure_table(h, 0, level)
        teardown = [("RTT_DESTROY", (0, lvl)) for lvl in range(level, h.start_level, -1)]
        return Case((h.rd,), lambda: steps(
            e, *[(n, (h.rd, *a)) for n, a in teardown], ("REALM_DESTROY", (h.rd,))))

    return stim


def _destroy_with_data(e: Env) -> Case:
    h = e.realm()
    e.b.add_data(h, 0x3000, b"data")
    return Case((h.rd,))


DESTROY_TABLE: dict[str, list[tuple[str, Stim]]] = {
    "rd_align": [("plus8", _destroy(lambda e, h: h.rd + 8))],
    "rd_bound": [(n, _destroy(untracked2(n))) for n in UNTRACKED],
    "rd_state": [("delegated", _destroy(lambda e, h: e.delegated())),
                 ("ns", _destroy(lambda e, h: e.ns())),
                 ("rtt_root", _destroy(lambda e, h: h.rtt_base))],
    "realm_recs": [("one_rec", _destroy_with_rec)],
    "realm_live": [("table_at_level2", _destroy_with_rtt(2)),
                   ("data_below", _destroy_with_data)],
}


def _destroy_recs_and_live(e: Env) -> Case:
    h = e.realm()
    e.b.add_rec(h)
    e.b.ensure_table(h, 0, 2)
    return Case((h.rd,))


DESTROY_PAIRS: list[tuple[str, str, Stim]] = [
    ("rd_align", "rd_bound", _destroy(lambda e, h: e.addr("root") + 8)),
    ("rd_align", "rd_state", _destroy(lambda e, h: h.rtt_base + 8)),
    ("realm_recs", "realm_live", _destroy_recs_and_live),
]


def test_destroy_table_covers_conditions() -> None:
    check_table_covers(DESTROY_SPEC, DESTROY_TABLE)


@pytest.mark.parametrize(("label", "stim"), rows(DESTROY_TABLE))
def test_destroy_conditions(env: Env, label: str, stim: Stim) -> None:
    check_row(DESTROY_SPEC, label, stim, env)


@pytest.mark.parametrize(("first", "second", "stim"), pairs(DESTROY_PAIRS))
def test_destroy_order(env: Env, first: str, second: str, stim: Stim) -> None:
    check_pair(DESTROY_SPEC, first, second, stim, env)


@pytest.mark.parametrize("active", [False, True])
def test_destroy_success(env: Env, active: bool) -> None:
    e = env
    h = e.active_realm(recs=0) if active else e.realm()
    vmid = e.last_vmid
    roots = [h.rtt_base + i * GRANULE for i in range(h.num_start)]
    assert e.call("REALM_DESTROY", h.rd).regs[:5] == (SUCCESS, 0, 0, 0, 0)
    for g in [h.rd, *roots]:
        assert (e.state(g), e.gpi(g)) == (GranuleState.DELEGATED, GPI_REALM)
    assert vmid not in e.p.rmm.vmids
    assert (e.call("REALM_DESTROY", h.rd)[0], e.label) == (code(INPUT), "rd_state")
    assert (e.call("REC_AUX_COUNT", h.rd)[0], e.label) == (code(INPUT), "rd_state")
    # The VMID and all granules can be used again at once
    params = e.ns(realm_params(rtt_base=h.rtt_base, vmid=vmid))
    assert e.call("REALM_CREATE", h.rd, params).ok
    assert e.call("REALM_DESTROY", h.rd).ok
    for g in [h.rd, *roots]:
        assert e.c.undelegate(g).ok
        assert e.p.host.read(g, GRANULE) == bytes(GRANULE)  # RD and RTTs were scrubbed


# ============================================================================== REC_AUX_COUNT
AUX_COUNT_SPEC = Spec(
    "REC_AUX_COUNT",
    realm_cmds.AUX_COUNT,
    {"rd_align": (INPUT, 0), "rd_bound": (INPUT, 0), "rd_state": (INPUT, 0)},
)


def _aux_count(target: Callable[[Env, RealmHandle], int]) -> Stim:
    def stim(e: Env) -> Case:
        h = e.realm()
        e.b.add_rec(h)
        return Case((target(e, h),), lambda: e.call("REC_AUX_COUNT", h.rd))

    return stim


AUX_COUNT_TABLE: dict[str, list[tuple[str, Stim]]] = {
    "rd_align": [("plus8", _aux_count(lambda e, h: h.rd + 8))],
    "rd_bound": [(n, _aux_count(untracked2(n))) for n in UNTRACKED],
    "rd_state": [("delegated", _aux_count(lambda e, h: e.delegated())),
                 ("ns", _aux_count(lambda e, h: e.ns())),
                 ("rec", _aux_count(lambda e, h: h.recs[0])),
                 ("rtt_root", _aux_count(lambda e, h: h.rtt_base))],
}
AUX_COUNT_PAIRS: list[tuple[str, str, Stim]] = [
    ("rd_align", "rd_bound", _aux_count(lambda e, h: e.addr("uart0") + 4)),
    ("rd_align", "rd_state", _aux_count(lambda e, h: h.recs[0] + 8)),
]


def test_aux_count_table_covers_conditions() -> None:
    check_table_covers(AUX_COUNT_SPEC, AUX_COUNT_TABLE)


@pytest.mark.parametrize(("label", "stim"), rows(AUX_COUNT_TABLE))
def test_aux_count_conditions(env: Env, label: str, stim: Stim) -> None:
    check_row(AUX_COUNT_SPEC, label, stim, env)


@pytest.mark.parametrize(("first", "second", "stim"), pairs(AUX_COUNT_PAIRS))
def test_aux_count_order(env: Env, first: str, second: str, stim: Stim) -> None:
    check_pair(AUX_COUNT_SPEC, first, second, stim, env)


def test_aux_count_success(env: Env) -> None:
    e = env
    h = e.realm()
    for phase in ("new", "active"):  # always 16 (rmm-abi §16), in any realm state
        before = e.snapshot(h.rd)
        r = e.call("REC_AUX_COUNT", h.rd)
        assert r.regs[:5] == (SUCCESS, NUM_REC_AUX, 0, 0, 0), phase
        assert e.snapshot(h.rd) == before
        if phase == "new":
            e.b.add_rec(h)
            e.b.activate(h)


# ============================================================================== REC_CREATE
REC_CREATE_SPEC = Spec(
    "REC_CREATE",
    rec_cmds.CREATE,
    {
        "params_align": (INPUT, 0),
        "params_bound": (INPUT, 0),
        "params_pas": (INPUT, 0),
        "num_aux_bound": (INPUT, 0),
        "aux_align": (INPUT, 0),
        "aux_bound": (INPUT, 0),
        "aux_state": (INPUT, 0),
        "alias": (INPUT, 0),
        "rec_align": (INPUT, 0),
        "rec_bound": (INPUT, 0),
        "rec_state": (INPUT, 0),
        "rd_align": (INPUT, 0),
        "rd_bound": (INPUT, 0),
        "rd_state": (INPUT, 0),
        "rec_count": (REALM, 0),
        "realm_state": (REALM, 0),
        "mpidr_index": (INPUT, 0),
        "num_aux": (INPUT, 0),
    },
)


class RecCreate:
    """A delegated rec granule *below* a NEW realm's rd (so rec is locked first), 16
    delegated aux granules; ``valid`` creates REC 0 of that realm from them."""

    def __init__(self, e: Env, h: RealmHandle | None = None, index: int | None = None) -> None:
        self.e = e
        self.rec = e.delegated()
        self.h = e.realm() if h is None else h
        self.aux = [e.delegated() for _ in range(NUM_REC_AUX)]
        self.mpidr = _mpidr_of(len(self.h.recs) if index is None else index)

    def params(self, *, aux: Sequence[int] | None = None, num_aux: int | None = None,
               mpidr: int | None = None, runnable: bool = True) -> int:
        image = bytearray(rec_params(aux=self.aux if aux is None else aux,
                                     mpidr=self.mpidr if mpidr is None else mpidr,
                                     runnable=runnable, pc=0x1000))
        if num_aux is not None:
            image[REC_PARAMS_NUM_AUX : REC_PARAMS_NUM_AUX + 8] = num_aux.to_bytes(8, "little")
        return self.e.ns(bytes(image))

    def valid(self) -> RmiResult:
        return self.e.call("REC_CREATE", self.h.rd, self.rec, self.params())

    def case(self, *, rd: int | None = None, rec: int | None = None, params: int | None = None,
             **kw: Any) -> Case:
        args = (self.h.rd if rd is None else rd, self.rec if rec is None else rec,
                self.params(**kw) if params is None else params)
        return Case(args, self.valid, (self.rec, *self.aux))


def _rc2(**kw: Any) -> Stim:
    return lambda e: RecCreate(e).case(**kw)


def _rc2_with(fn: Callable[[Env, RecCreate], Case]) -> Stim:
    return lambda e: fn(e, RecCreate(e))


def _rc2_at(arg: str, name: str) -> Stim:
    """REC_CREATE with argument ``arg`` (rd, rec or params) at an untracked address."""
    return lambda e: RecCreate(e).case(**{arg: e.addr(name)})


def _aux_replaced(index: int, where: Callable[[Env, RecCreate], int]) -> Stim:
    def stim(e: Env) -> Case:
        s = RecCreate(e)
        aux = list(s.aux)
        aux[index] = where(e, s)
        return s.case(aux=aux)

    return stim


def _rec_on_active_realm(e: Env) -> Case:
    h = e.active_realm()
    s = RecCreate(e, h)

    def valid() -> RmiResult:  # the same granules make a REC of a NEW realm
        other = e.realm()
        return e.call("REC_CREATE", other.rd, s.rec, s.params(mpidr=0))

    return Case(s.case().args, valid, (s.rec, *s.aux))


def _rec_with_fewer_aux(n: int) -> Stim:
    def stim(e: Env) -> Case:
        s = RecCreate(e)
        return s.case(aux=s.aux[:n])

    return stim


def _rec_existing(e: Env) -> Case:
    s = RecCreate(e)
    other = e.b.add_rec(e.realm())
    return s.case(rec=other)


REC_CREATE_TABLE: dict[str, list[tuple[str, Stim]]] = {
    "params_align": [("plus8", _rc2_with(lambda e, s: s.case(params=s.params() + 8)))],
    "params_bound": [(n, _rc2_at("params", n)) for n in UNTRACKED],
    "params_pas": [("delegated", _rc2_with(lambda e, s: s.case(params=e.delegated()))),
                   ("secure_pas", _rc2_with(lambda e, s: s.case(
                       params=e.to_secure(s.params()))))],
    "num_aux_bound": [("17", _rc2(num_aux=17)), ("max", _rc2(num_aux=MASK64))],
    "aux_align": [("aux5_plus8", _aux_replaced(5, lambda e, s: s.aux[5] + 8))],
    "aux_bound": [("aux0_secure", _aux_replaced(0, lambda e, s: e.addr("secure_dram"))),
                  ("aux15_top", _aux_replaced(15, lambda e, s: e.ns_top))],
    "aux_state": [("aux3_ns", _aux_replaced(3, lambda e, s: e.ns())),
                  ("duplicate", _aux_replaced(7, lambda e, s: s.aux[2])),
                  ("aux_is_rd", _aux_replaced(0, lambda e, s: s.h.rd)),
                  ("aux15_secure_pas", _aux_replaced(15, lambda e, s: e.to_secure(e.ns())))],
    "alias": [("rec_is_rd", _rc2_with(lambda e, s: s.case(rec=s.h.rd))),
              ("rec_is_delegated_rd", _rc2_with(lambda e, s: s.case(rd=s.rec)))],
    "rec_align": [("plus8", _rc2_with(lambda e, s: s.case(rec=s.rec + 8)))],
    "rec_bound": [(n, _rc2_at("rec", n)) for n in UNTRACKED],
    "rec_state": [("ns", _rc2_with(lambda e, s: s.case(rec=e.ns()))),
                  ("existing_rec", _rec_existing),
                  # rec is claimed as an aux first, so it is no longer DELEGATED
                  ("rec_is_aux", _aux_replaced(4, lambda e, s: s.rec))],
    "rd_align": [("plus8", _rc2_with(lambda e, s: s.case(rd=s.h.rd + 8)))],
    "rd_bound": [(n, _rc2_at("rd", n)) for n in UNTRACKED],
    "rd_state": [("delegated", _rc2_with(lambda e, s: s.case(rd=e.delegated()))),
                 ("rtt_root", _rc2_with(lambda e, s: s.case(rd=s.h.rtt_base))),
                 ("ns", _rc2_with(lambda e, s: s.case(rd=e.ns())))],
    "realm_state": [("active", _rec_on_active_realm)],
    "mpidr_index": [("index1", _rc2(mpidr=1)),
                    ("aff0_bit4", _rc2(mpidr=0x10)),
                    ("bit32", _rc2(mpidr=1 << 32)),
                    ("aff1_index16", _rc2(mpidr=0x100)),
                    ("bit31", _rc2(mpidr=1 << 31))],
    "num_aux": [("fifteen", _rec_with_fewer_aux(15)), ("zero", _rec_with_fewer_aux(0))],
}


def _rec_pair_rec_rd(e: Env) -> Case:
    s = RecCreate(e)
    assert e.c.undelegate(s.rec).ok
    # rec (NS) below rd (an RTT): rec is looked up first
    return Case(s.case(rd=s.h.rtt_base).args)


REC_CREATE_PAIRS: list[tuple[str, str, Stim]] = [
    ("params_align", "params_bound", _rc2_with(lambda e, s: s.case(
        params=e.addr("secure_dram") + 8))),
    ("params_pas", "rec_state", _rc2_with(lambda e, s: s.case(
        rec=e.ns(), params=e.to_secure(s.params())))),
    ("num_aux_bound", "rec_state", _rc2_with(lambda e, s: s.case(rec=e.ns(), num_aux=17))),
    ("aux_align", "aux_bound", _aux_replaced(2, lambda e, s: e.addr("root") + 8)),
    ("aux_state", "alias", _rc2_with(lambda e, s: s.case(
        rec=s.h.rd, aux=[*s.aux[:15], e.ns()]))),
    ("alias", "rec_state", _rc2_with(lambda e, s: s.case(rec=s.h.rtt_base, rd=s.h.rtt_base))),
    ("rec_align", "rd_align", _rc2_with(lambda e, s: s.case(rec=s.rec + 8, rd=s.h.rd + 8))),
    ("rec_bound", "rd_state", _rc2_with(lambda e, s: s.case(
        rec=e.addr("secure_dram"), rd=e.delegated()))),
    ("rec_state", "rd_state", _rec_pair_rec_rd),
    ("rd_state", "mpidr_index", _rc2_with(lambda e, s: s.case(rd=e.delegated(), mpidr=1))),
    ("realm_state", "mpidr_index", lambda e: _rec_active_bad(e, mpidr=1)),
    ("realm_state", "num_aux", lambda e: _rec_active_bad(e, aux=[])),
    ("mpidr_index", "num_aux", _rc2_with(lambda e, s: s.case(mpidr=0x11, aux=s.aux[:3]))),
]


def _rec_active_bad(e: Env, **kw: Any) -> Case:
    h = e.active_realm()
    s = RecCreate(e, h)
    return Case(s.case(**kw).args)


def test_rec_create_table_covers_conditions() -> None:
    check_table_covers(REC_CREATE_SPEC, REC_CREATE_TABLE, elsewhere=["rec_count"])


@pytest.mark.parametrize(("label", "stim"), rows(REC_CREATE_TABLE))
def test_rec_create_conditions(env: Env, label: str, stim: Stim) -> None:
    check_row(REC_CREATE_SPEC, label, stim, env)


@pytest.mark.parametrize(("first", "second", "stim"), pairs(REC_CREATE_PAIRS))
def test_rec_create_order(env: Env, first: str, second: str, stim: Stim) -> None:
    check_pair(REC_CREATE_SPEC, first, second, stim, env)


def test_rec_create_aux_checked_in_turn(env: Env) -> None:
    """Each aux[i] is checked completely before aux[i+1] (rmm-abi §6 step 3): a bad state
    in aux[1] wins over a bad alignment in aux[2], and aux[0..] claimed so far are rolled
    back."""
    e = env
    s = RecCreate(e)
    aux = list(s.aux)
    aux[1] = e.ns()
    aux[2] = s.aux[2] + 8
    expect_failure(e, REC_CREATE_SPEC, "aux_state", s.case(aux=aux))


def test_rec_create_locks_in_pa_order(env: Env) -> None:
    """rd below rec: a bad rd is found before a bad rec (rmm-abi §3.1 lock order)."""
    e = env
    h = e.realm()  # rd allocated first
    bad_rd = e.delegated()
    s = RecCreate(e, h)  # rec above bad_rd
    assert e.c.undelegate(s.rec).ok
    assert bad_rd < s.rec
    expect_failure(e, REC_CREATE_SPEC, "rd_state", Case(s.case(rd=bad_rd).args))


def test_rec_create_rec_count_limit() -> None:
    """RD refcount 1023 (REFCOUNT_MAX) -> ERROR_REALM (rmm-abi §3.1, MAX_RECS_ORDER 10)."""
    e = Env()
    h = e.realm()
    for _ in range(1023):
        e.b.add_rec(h)
    s = RecCreate(e, h)  # REC index 1023
    expect_failure(e, REC_CREATE_SPEC, "rec_count", Case(s.case().args))
    # rec_count beats mpidr_index and num_aux
    expect_failure(e, REC_CREATE_SPEC, "rec_count", Case(s.case(mpidr=0, aux=[]).args))
    # One REC fewer and the same call succeeds (the index stays 1023)
    assert e.call("REC_DESTROY", h.recs[-1]).ok
    assert s.valid().ok
    e.b.activate(h)
    # Full again and ACTIVE: rec_count beats realm_state
    s2 = RecCreate(e, h)
    expect_failure(e, REC_CREATE_SPEC, "rec_count", Case(s2.case(mpidr=_mpidr_of(1024)).args))


@pytest.mark.parametrize("runnable", [True, False])
def test_rec_create_success(env: Env, runnable: bool) -> None:
    e = env
    s = RecCreate(e)
    params = s.params(runnable=runnable)
    assert e.call("REC_CREATE", s.h.rd, s.rec, params).regs[:5] == (SUCCESS, 0, 0, 0, 0)
    assert e.state(s.rec) == GranuleState.REC
    assert [e.state(a) for a in s.aux] == [GranuleState.REC_AUX] * NUM_REC_AUX
    assert {e.gpi(g) for g in [s.rec, *s.aux]} == {GPI_REALM}
    with pytest.raises(GranuleProtectionFault):
        e.p.host.read(s.rec, 8)
    # A second identical call fails: the aux granules are no longer DELEGATED
    assert (e.call("REC_CREATE", s.h.rd, s.rec, params)[0], e.label) == (
        code(INPUT), "aux_state")
    # The RD is referenced: the realm cannot be destroyed
    assert (e.call("REALM_DESTROY", s.h.rd)[0], e.label) == (code(REALM), "realm_recs")
    # The next REC must have index 1
    s1 = RecCreate(e, s.h, index=1)
    assert (e.call("REC_CREATE", s.h.rd, s1.rec, s1.params(mpidr=0))[0], e.label) == (
        code(INPUT), "mpidr_index")
    assert s1.valid().ok
    e.b.activate(s.h)
    r = e.call("REC_ENTER", s.rec, e.run_page())
    if runnable:
        assert r.ok
    else:
        assert (r[0], e.label) == (code(REC), "rec_runnable")


# ============================================================================== REC_DESTROY
REC_DESTROY_SPEC = Spec(
    "REC_DESTROY",
    rec_cmds.DESTROY,
    {"rec_align": (INPUT, 0), "rec_bound": (INPUT, 0), "rec_state": (INPUT, 0),
     "rec_running": (REC, 0)},
)


def _rec_destroy(target: Callable[[Env, RealmHandle], int]) -> Stim:
    def stim(e: Env) -> Case:
        h = e.active_realm()
        return Case((target(e, h),), lambda: e.call("REC_DESTROY", h.recs[0]))

    return stim


REC_DESTROY_TABLE: dict[str, list[tuple[str, Stim]]] = {
    "rec_align": [("plus8", _rec_destroy(lambda e, h: h.recs[0] + 8))],
    "rec_bound": [(n, _rec_destroy(untracked2(n))) for n in UNTRACKED],
    "rec_state": [("rd", _rec_destroy(lambda e, h: h.rd)),
                  ("aux", _rec_destroy(lambda e, h: h.aux[h.recs[0]][0])),
                  ("delegated", _rec_destroy(lambda e, h: e.delegated())),
                  ("ns", _rec_destroy(lambda e, h: e.ns()))],
}
REC_DESTROY_PAIRS: list[tuple[str, str, Stim]] = [
    ("rec_align", "rec_bound", _rec_destroy(lambda e, h: e.addr("rmm") + 8)),
    ("rec_align", "rec_state", _rec_destroy(lambda e, h: h.rd + 8)),
]


def test_rec_destroy_table_covers_conditions() -> None:
    check_table_covers(REC_DESTROY_SPEC, REC_DESTROY_TABLE, elsewhere=["rec_running"])


@pytest.mark.parametrize(("label", "stim"), rows(REC_DESTROY_TABLE))
def test_rec_destroy_conditions(env: Env, label: str, stim: Stim) -> None:
    check_row(REC_DESTROY_SPEC, label, stim, env)


@pytest.mark.parametrize(("first", "second", "stim"), pairs(REC_DESTROY_PAIRS))
def test_rec_destroy_order(env: Env, first: str, second: str, stim: Stim) -> None:
    check_pair(REC_DESTROY_SPEC, first, second, stim, env)


def test_rec_destroy_success(env: Env) -> None:
    e = env
    h = e.active_realm()
    rec = h.recs[0]
    aux = h.aux[rec]
    assert e.call("REC_ENTER", rec, e.run_page()).ok
    assert e.call("REC_DESTROY", rec).regs[:5] == (SUCCESS, 0, 0, 0, 0)
    for g in [rec, *aux]:
        assert (e.state(g), e.gpi(g)) == (GranuleState.DELEGATED, GPI_REALM)
    assert (e.call("REC_DESTROY", rec)[0], e.label) == (code(INPUT), "rec_state")
    assert (e.call("REC_ENTER", rec, e.run_page())[0], e.label) == (code(INPUT), "rec_state")
    assert e.call("REALM_DESTROY", h.rd).ok  # the RD is no longer referenced
    for g in [rec, *aux]:
        assert e.c.undelegate(g).ok
        assert e.p.host.read(g, GRANULE) == bytes(GRANULE)  # REC and aux were scrubbed


# ============================================================================== REC_ENTER
REC_ENTER_SPEC = Spec(
    "REC_ENTER",
    rec_cmds.ENTER,
    {
        "run_align": (INPUT, 0),
        "run_bound": (INPUT, 0),
        "run_pas": (INPUT, 0),  # also: the later read of run.enter faults (step 3)
        "rec_align": (INPUT, 0),
        "rec_bound": (INPUT, 0),
        "rec_state": (INPUT, 0),
        "rec_running": (REC, 0),
        "realm_new": (REALM, 0),
        "system_off": (REALM, 1),
        "rec_runnable": (REC, 0),
        "rec_psci": (REC, 0),
        "rec_gicv3": (REC, 0),
        "inject_sea": (REC, 0),
        "rec_mmio": (REC, 0),
    },
    # A REC's PSCI request and SYSTEM_OFF come only from a realm guest's PSCI calls.
    guest_only=frozenset({"system_off", "rec_psci"}),
)


class RecEnter:
    """An ACTIVE realm with a runnable REC 0 and a zeroed run page."""

    def __init__(self, e: Env, h: RealmHandle | None = None) -> None:
        self.e = e
        self.h = e.active_realm() if h is None else h
        self.rec = self.h.recs[0]
        self.run = e.run_page()

    def valid(self) -> RmiResult:
        return self.e.call("REC_ENTER", self.rec, self.run)

    def case(self, *, rec: int | None = None, run: int | None = None, **enter: Any) -> Case:
        if run is None:
            run = self.e.run_page(**enter) if enter else self.run
        return Case((self.rec if rec is None else rec, run), self.valid,
                    (self.rec, *self.h.aux[self.rec]))


def _re(**kw: Any) -> Stim:
    return lambda e: RecEnter(e).case(**kw)


def _re_with(fn: Callable[[Env, RecEnter], Case]) -> Stim:
    return lambda e: fn(e, RecEnter(e))


def _re_at(arg: str, name: str) -> Stim:
    """REC_ENTER with argument ``arg`` (rec or run) at an untracked address."""
    return lambda e: RecEnter(e).case(**{arg: e.addr(name)})


def _re_new_realm(runnable: bool = True, **enter: Any) -> Stim:
    def stim(e: Env) -> Case:
        h = e.realm()
        e.b.add_rec(h, runnable=runnable)
        s = RecEnter(e, h)
        case = s.case(**enter)

        def valid() -> RmiResult:
            e.b.activate(h)
            return e.call("REC_ENTER", s.rec, s.run) if runnable else RecEnter(e).valid()

        return Case(case.args, valid, case.watch)

    return stim


def _re_not_runnable(**enter: Any) -> Stim:
    def stim(e: Env) -> Case:
        h = e.realm()
        e.b.add_rec(h, runnable=False)
        e.b.add_rec(h)
        e.b.activate(h)
        s = RecEnter(e, h)
        case = s.case(**enter)
        return Case(case.args, lambda: e.call("REC_ENTER", h.recs[1], s.run), case.watch)

    return stim


def _re_after_exit(**enter: Any) -> Stim:
    def stim(e: Env) -> Case:
        s = RecEnter(e)
        assert s.valid().ok  # an IRQ exit leaves no data abort to complete
        return s.case(**enter)

    return stim


def _lr(vintid: int, *extra: int) -> int:
    value = LR_PENDING | vintid
    for x in extra:
        value |= x
    return value


REC_ENTER_TABLE: dict[str, list[tuple[str, Stim]]] = {
    "run_align": [("plus8", _re_with(lambda e, s: s.case(run=s.run + 8)))],
    "run_bound": [(n, _re_at("run", n)) for n in UNTRACKED],
    "run_pas": [("delegated", _re_with(lambda e, s: s.case(run=e.delegated()))),
                ("rec_as_run", _re_with(lambda e, s: s.case(run=s.rec))),
                ("secure_pas", _re_with(lambda e, s: s.case(run=e.to_secure(e.run_page()))))],
    "rec_align": [("plus8", _re_with(lambda e, s: s.case(rec=s.rec + 8)))],
    "rec_bound": [(n, _re_at("rec", n)) for n in UNTRACKED],
    "rec_state": [("rd", _re_with(lambda e, s: s.case(rec=s.h.rd))),
                  ("aux", _re_with(lambda e, s: s.case(rec=s.h.aux[s.rec][0]))),
                  ("delegated", _re_with(lambda e, s: s.case(rec=e.delegated()))),
                  ("run_page", _re_with(lambda e, s: s.case(rec=s.run)))],
    "realm_new": [("new", _re_new_realm())],
    "rec_runnable": [("not_runnable", _re_not_runnable())],
    "rec_gicv3": [
        ("hcr_en", _re(hcr=1 << 0)),
        ("hcr_bit8", _re(hcr=1 << 8)),
        ("hcr_bit13", _re(hcr=1 << 13)),
        ("hcr_top", _re(hcr=1 << 63)),
        ("lr_hw", _re(lrs=[_lr(32, LR_HW)])),
        # priority [55:48]: bit 48 is RES0 with fewer than 8 priority bits
        ("lr_prio_res0", _re(lrs=[_lr(32, 1 << 48)])),
        ("lr_pintid", _re(lrs=[0, _lr(40, 1 << 32)])),
        ("lr_vintid_1020", _re(lrs=[_lr(1020)])),
        ("lr_vintid_2000", _re(lrs=[_lr(2000)])),
        ("lr_duplicate", _re(lrs=[_lr(33), 0, _lr(33)])),
    ],
    "inject_sea": [("fresh_rec", _re(flags=FLAG_INJECT_SEA)),
                   ("after_irq_exit", _re_after_exit(flags=FLAG_INJECT_SEA))],
    "rec_mmio": [("fresh_rec", _re(flags=FLAG_EMUL_MMIO)),
                 ("after_irq_exit", _re_after_exit(flags=FLAG_EMUL_MMIO))],
}


def _re_pair_fault_new(e: Env) -> Case:
    h = e.realm()
    e.b.add_rec(h)
    return Case((h.recs[0], e.to_secure(e.run_page())))


REC_ENTER_PAIRS: list[tuple[str, str, Stim]] = [
    ("run_align", "run_bound", _re_with(lambda e, s: s.case(run=e.addr("secure_dram") + 8))),
    ("run_align", "rec_align", _re_with(lambda e, s: s.case(run=s.run + 8, rec=s.rec + 8))),
    ("run_bound", "rec_state", _re_with(lambda e, s: s.case(run=e.addr("root"), rec=s.h.rd))),
    ("run_pas", "rec_align", _re_with(lambda e, s: s.case(run=e.delegated(), rec=s.rec + 8))),
    ("rec_align", "rec_bound", _re_with(lambda e, s: s.case(rec=e.addr("secure_dram") + 8))),
    ("realm_new", "rec_runnable", _re_new_realm(runnable=False)),
    ("realm_new", "rec_gicv3", _re_new_realm(hcr=1)),
    ("realm_new", "inject_sea", _re_new_realm(flags=FLAG_INJECT_SEA)),
    ("rec_runnable", "rec_gicv3", _re_not_runnable(hcr=1)),
    ("rec_runnable", "rec_mmio", _re_not_runnable(flags=FLAG_EMUL_MMIO)),
    ("rec_gicv3", "inject_sea", _re(hcr=1, flags=FLAG_INJECT_SEA)),
    ("rec_gicv3", "rec_mmio", _re(lrs=[_lr(32, LR_HW)], flags=FLAG_EMUL_MMIO)),
    # EMUL_MMIO is ignored when INJECT_SEA is set; the SEA check decides
    ("inject_sea", "rec_mmio", _re(flags=FLAG_INJECT_SEA | FLAG_EMUL_MMIO)),
]


def test_rec_enter_table_covers_conditions() -> None:
    check_table_covers(REC_ENTER_SPEC, REC_ENTER_TABLE, elsewhere=["rec_running"])


@pytest.mark.parametrize(("label", "stim"), rows(REC_ENTER_TABLE))
def test_rec_enter_conditions(env: Env, label: str, stim: Stim) -> None:
    check_row(REC_ENTER_SPEC, label, stim, env)


@pytest.mark.parametrize(("first", "second", "stim"), pairs(REC_ENTER_PAIRS))
def test_rec_enter_order(env: Env, first: str, second: str, stim: Stim) -> None:
    check_pair(REC_ENTER_SPEC, first, second, stim, env)


@pytest.mark.parametrize(
    ("first", "stim"),
    [
        # The read of run.enter (step 3) comes after the rec lookup (step 2) ...
        ("rec_state", _re_with(lambda e, s: s.case(rec=s.h.rd, run=e.to_secure(e.run_page())))),
        # ... and before the realm-state check (step 4)
        ("run_pas", _re_pair_fault_new),
    ],
    ids=["rec_state<run_read", "run_read<realm_new"],
)
def test_rec_enter_run_read_order(env: Env, first: str, stim: Stim) -> None:
    expect_failure(env, REC_ENTER_SPEC, first, stim(env))


@pytest.mark.parametrize(
    ("name", "lrs", "hcr"),
    [
        ("hcr_all_allowed", [], 0b1111_1110 | 1 << 14),
        ("lr_eoi_bit", [_lr(40, 1 << 41)], 0),
        ("lr_vintid_1019", [_lr(1019)], 0),
        ("lr_vintid_8192", [_lr(8192)], 0),
        ("lr_invalid_state_ignored", [LR_HW | 1020], 0),  # state bits 0: not checked
        ("distinct_vintids", [_lr(32), _lr(33), _lr(34)], 0),
    ],
)
def test_rec_enter_valid_gic_state(env: Env, name: str, lrs: list[int], hcr: int) -> None:
    s = RecEnter(env)
    r = env.call("REC_ENTER", s.rec, env.run_page(hcr=hcr, lrs=lrs))
    assert r.ok, (name, hex(r[0]), env.label)


def test_rec_enter_success(env: Env) -> None:
    e = env
    s = RecEnter(e)
    page = bytearray(GRANULE)
    for i in range(31):  # enter.gprs, to check the RMM does not write the enter half
        page[0x200 + 8 * i : 0x208 + 8 * i] = (0x1111 * (i + 1)).to_bytes(8, "little")
    page[EXIT_BASE:] = b"\xff" * (GRANULE - EXIT_BASE)
    run = e.ns(bytes(page))
    before = e.snapshot(run)
    for _ in range(2):  # a second identical call succeeds too
        assert e.call("REC_ENTER", s.rec, run).regs[:5] == (SUCCESS, 0, 0, 0, 0)
        image = e.p.host.read(run, GRANULE)
        assert image[:EXIT_BASE] == bytes(page[:EXIT_BASE])

        def u64(off: int, image: bytes = image) -> int:
            return int.from_bytes(image[off : off + 8], "little")

        assert u64(EXIT_REASON) == EXIT_REASON_IRQ  # no execution engine: IRQ exit
        for off in (EXIT_ESR, EXIT_FAR, EXIT_HPFAR, EXIT_RIPAS_BASE, EXIT_IMM):
            assert u64(off) == 0  # the exit record is written in full (pre-zeroed)
        assert image[EXIT_BASE + 0x200 : EXIT_BASE + 0x200 + 31 * 8] == bytes(31 * 8)
    assert e.snapshot(run) == before  # REC refcount back to 0, nothing else changed
    assert e.call("REC_DESTROY", s.rec).ok


def test_rec_enter_write_of_exit_faults() -> None:
    """The run page leaves the NS PAS while the REC runs: the exit cannot be written and
    REC_ENTER returns ERROR_INPUT (rmm-abi §6 REC_ENTER), never a Python exception."""
    e = Env(cpus=2)
    s = RecEnter(e)

    def hook(rec: Any) -> None:
        e.gpi_set(s.run, GPI_SECURE, cpu=1)  # the SPMC on PE 1 takes the page

    before = e.snapshot(s.rec)
    with HookedRunner(e.p.rmm, hook):
        assert (e.call("REC_ENTER", s.rec, s.run)[0], e.label) == (code(INPUT), "run_pas")
    assert e.snapshot(s.rec) == before
    e.gpi_set(s.run, GPI_NS)
    assert s.valid().ok
    assert e.call("REC_DESTROY", s.rec).ok


# ============================================================================== PSCI_COMPLETE
PSCI_SPEC = Spec(
    "PSCI_COMPLETE",
    rec_cmds.PSCI_COMPLETE,
    {
        "calling_align": (INPUT, 0),
        "target_align": (INPUT, 0),
        "alias": (INPUT, 0),
        "calling_bound": (INPUT, 0),
        "calling_state": (INPUT, 0),
        "target_bound": (INPUT, 0),
        "target_state": (INPUT, 0),
        "calling_running": (INPUT, 0),
        "pending": (INPUT, 0),
        "owner": (INPUT, 0),
        "target": (INPUT, 0),
        "status": (INPUT, 0),
    },
    # Past "pending", every check needs a PSCI request that only a realm guest can make.
    guest_only=frozenset({"owner", "target", "status"}),
)


def _psci(fn: Callable[[Env, RealmHandle], tuple[int, int]], status: int = 0) -> Stim:
    def stim(e: Env) -> Case:
        h = e.active_realm(recs=2)
        run = e.run_page()
        calling, target = fn(e, h)
        return Case((calling, target, status),
                    lambda: steps(e, ("REC_ENTER", (h.recs[1], run)),
                                  ("REC_ENTER", (h.recs[0], run))),
                    (*h.recs,))

    return stim


def _psci_at(name: str, *, calling: bool) -> Callable[[Env, RealmHandle], tuple[int, int]]:
    """The calling (or target) REC at an untracked address, the other a valid REC."""

    def args(e: Env, h: RealmHandle) -> tuple[int, int]:
        return (e.addr(name), h.recs[1]) if calling else (h.recs[0], e.addr(name))

    return args


def _psci_other_realm(e: Env, h: RealmHandle) -> tuple[int, int]:
    other = e.active_realm(recs=2)
    return h.recs[0], other.recs[1]


PSCI_TABLE: dict[str, list[tuple[str, Stim]]] = {
    "calling_align": [("plus8", _psci(lambda e, h: (h.recs[0] + 8, h.recs[1])))],
    "target_align": [("plus8", _psci(lambda e, h: (h.recs[0], h.recs[1] + 8)))],
    "alias": [("same_rec", _psci(lambda e, h: (h.recs[1], h.recs[1])))],
    "calling_bound": [(n, _psci(_psci_at(n, calling=True))) for n in UNTRACKED],
    "calling_state": [("rd", _psci(lambda e, h: (h.rd, h.recs[1]))),
                      ("aux", _psci(lambda e, h: (h.aux[h.recs[1]][3], h.recs[1]))),
                      ("ns", _psci(lambda e, h: (e.ns(), h.recs[1])))],
    "target_bound": [(n, _psci(_psci_at(n, calling=False))) for n in UNTRACKED],
    "target_state": [("rd", _psci(lambda e, h: (h.recs[0], h.rd))),
                     ("delegated", _psci(lambda e, h: (h.recs[0], e.delegated())))],
    "pending": [("nothing_pending", _psci(lambda e, h: (h.recs[0], h.recs[1]))),
                ("reversed", _psci(lambda e, h: (h.recs[1], h.recs[0]))),
                ("status_denied", _psci(lambda e, h: (h.recs[0], h.recs[1]), status=MASK64 - 2))],
}
PSCI_PAIRS: list[tuple[str, str, Stim]] = [
    ("calling_align", "target_align", _psci(lambda e, h: (h.recs[0] + 8, h.recs[1] + 8))),
    ("calling_align", "alias", _psci(lambda e, h: (h.recs[0] + 8, h.recs[0] + 8))),
    ("target_align", "calling_bound", _psci(lambda e, h: (e.addr("secure_dram"), h.recs[1] + 8))),
    ("alias", "calling_state", _psci(lambda e, h: (h.rd, h.rd))),
    ("calling_bound", "target_bound", _psci(lambda e, h: (e.addr("secure_dram"), e.ns_top))),
    # calling below target: calling is looked up first
    ("calling_state", "target_state", _psci(lambda e, h: (h.rd, h.aux[h.recs[1]][0]))),
    ("target_state", "pending", _psci(lambda e, h: (h.recs[0], h.aux[h.recs[1]][0]))),
    ("pending", "owner", _psci(_psci_other_realm)),
]


def test_psci_complete_table_covers_conditions() -> None:
    check_table_covers(PSCI_SPEC, PSCI_TABLE, elsewhere=["calling_running"])


@pytest.mark.parametrize(("label", "stim"), rows(PSCI_TABLE))
def test_psci_complete_conditions(env: Env, label: str, stim: Stim) -> None:
    check_row(PSCI_SPEC, label, stim, env)


@pytest.mark.parametrize(("first", "second", "stim"), pairs(PSCI_PAIRS))
def test_psci_complete_order(env: Env, first: str, second: str, stim: Stim) -> None:
    check_pair(PSCI_SPEC, first, second, stim, env)


def test_psci_complete_locks_in_pa_order(env: Env) -> None:
    """target below calling: a bad target is found before a bad calling REC."""
    e = env
    h = e.active_realm(recs=2)
    calling = h.aux[h.recs[1]][5]  # above rd
    expect_failure(e, PSCI_SPEC, "target_state", Case((calling, h.rd, 0)))


# ============================================================================== REC running
class HookedRunner:
    """Stands in for the RMM's REC runner during a test: when a REC is about to execute it
    calls ``hook(rec)`` (which may act as other PEs or worlds would, concurrently), then
    lets the RMM's own runner run the REC. Usable as a runner callable or runner object."""

    def __init__(self, rmm: Any, hook: Callable[[Any], None]) -> None:
        self.rmm = rmm
        self.hook = hook
        self.original = rmm.runner

    def run(self, pe: Any, realm: Any, rec: Any, enter: Any) -> Any:
        self.hook(rec)
        self.rmm.runner = self.original
        try:
            return self.rmm.run_rec(pe, realm, rec, enter)
        finally:
            self.original = self.rmm.runner  # keep an engine created on first use
            self.rmm.runner = self

    __call__ = run

    def __enter__(self) -> HookedRunner:
        self.rmm.runner = self
        return self

    def __exit__(self, *exc: object) -> None:
        self.rmm.runner = self.original


def test_conditions_of_a_running_rec() -> None:
    """While REC 0 executes on PE 0, the host on PE 1 calls the RMM about it.

    rmm-abi §3.1: a REC's refcount is 1 while it is executing (taken in REC_ENTER, dropped on
    exit). REC_ENTER and REC_DESTROY of a running REC give ERROR_REC; PSCI_COMPLETE with a
    running calling REC gives ERROR_INPUT (§16)."""
    e = Env(cpus=2)
    h = e.active_realm(recs=2)
    rec0, rec1 = h.recs
    run0, run1 = e.run_page(), e.run_page()
    bad_run = e.run_page(hcr=1)
    other = e.p.cpus[1].host
    seen: dict[str, tuple[int, str | None]] = {}
    started: list[bool] = []

    def call1(key: str, name: str, *args: int) -> None:
        x0 = other.smc(FID[name], *args)[0]
        seen[key] = (x0, e.label)

    def hook(rec: Any) -> None:
        if rec.pa == rec0 and not started:
            started.append(True)
            before = e.snapshot(rec0, rec1)
            call1("enter", "REC_ENTER", rec0, run1)
            call1("enter_bad_gic", "REC_ENTER", rec0, bad_run)  # rec_running first
            call1("enter_bad_run", "REC_ENTER", rec0, run1 + 8)  # run checks before rec
            call1("destroy", "REC_DESTROY", rec0)
            call1("psci", "PSCI_COMPLETE", rec0, rec1, 0)
            call1("psci_as_target", "PSCI_COMPLETE", rec1, rec0, 0)
            seen["unchanged"] = (int(e.snapshot(rec0, rec1) == before), None)
            call1("other_rec", "REC_ENTER", rec1, run1)  # another REC may run meanwhile

    with HookedRunner(e.p.rmm, hook):
        assert e.call("REC_ENTER", rec0, run0).ok
    assert seen == {
        "enter": (code(REC), "rec_running"),
        "enter_bad_gic": (code(REC), "rec_running"),
        "enter_bad_run": (code(INPUT), "run_align"),
        "destroy": (code(REC), "rec_running"),
        "psci": (code(INPUT), "calling_running"),
        "psci_as_target": (code(INPUT), "pending"),
        "unchanged": (1, None),
        "other_rec": (SUCCESS, None),
    }
    for table, label in ((REC_ENTER_SPEC, "rec_running"), (REC_DESTROY_SPEC, "rec_running"),
                         (PSCI_SPEC, "calling_running")):
        assert table.conds[label].status == table.order[label][0]
    # ...and once it has exited, the REC is no longer running
    assert e.call("REC_ENTER", rec0, run0).ok
    assert e.call("REC_DESTROY", rec0).ok


# ============================================================================== pointers
POINTER_CASES = {
    "ns_moved_to_secure": "secure_pas",
    "secure_dram": "secure_dram",
    "root": "root",
    "rmm": "rmm",
    "uart0": "uart0",
    "delegated": "delegated",
}


def _pointer(e: Env, kind: str, content: bytes) -> int:
    if kind == "secure_pas":
        return e.to_secure(e.ns(content))
    if kind == "delegated":
        return e.delegated()
    return e.addr(kind)


@pytest.mark.parametrize("kind", list(POINTER_CASES))
@pytest.mark.parametrize("command", ["REALM_CREATE", "REC_CREATE", "REC_ENTER"])
def test_host_pointer_not_in_ns_pas(env: Env, command: str, kind: str) -> None:
    """A host structure pointer the RMM cannot read as Non-secure memory gives ERROR_INPUT
    (rmm-abi §3.2): a tracked granule whose GPI is no longer NS faults on the read (label
    *_pas); memory outside tracked DRAM fails the bound check; a DELEGATED granule fails
    the state check (*_pas)."""
    e = env
    where = POINTER_CASES[kind]
    expected_tail = "pas" if where in ("secure_pas", "delegated") else "bound"
    if command == "REALM_CREATE":
        rc = RealmCreate(e)
        ptr = _pointer(e, where, realm_params(rtt_base=rc.rtt, vmid=rc.vmid))
        expect_failure(e, REALM_CREATE_SPEC, f"params_{expected_tail}", rc.case(params=ptr))
    elif command == "REC_CREATE":
        s = RecCreate(e)
        image = e.p.host.read(s.params(), GRANULE)
        ptr = _pointer(e, where, image)
        expect_failure(e, REC_CREATE_SPEC, f"params_{expected_tail}", s.case(params=ptr))
    else:
        s2 = RecEnter(e)
        ptr = _pointer(e, where, b"")
        expect_failure(e, REC_ENTER_SPEC, f"run_{expected_tail}", s2.case(run=ptr))


# ============================================================================== dispatch table
def test_dispatch_table_is_rmi_1_0() -> None:
    """RMI_TABLE covers exactly the 23 RMI 1.0 FIDs with the digest's argument and result
    counts (``RmiCommand.results`` counts x0 as well)."""
    assert len(RMI_1_0) == 23
    assert set(RMI_TABLE) == {fid(n) for n in RMI_1_0}
    for fnum, (name, args, results) in RMI_1_0.items():
        command = RMI_TABLE[fid(fnum)]
        assert command.fid == fid(fnum) == FID[name]
        assert command.name == f"RMI_{name}"
        assert (command.args, command.results) == (args, results + 1), name


UNHANDLED = [0x156, 0x160, 0x163, 0x16A, 0x170, 0x17F, 0x18E, 0x1D0, 0x1DC, 0x2CF]


@pytest.mark.parametrize("hint", [0, SVE_HINT], ids=["plain", "sve_hint"])
def test_unhandled_rmi_fids(env: Env, hint: int) -> None:
    """FNUMs 0x156/0x160/0x163 and other FIDs in the RMI range without a handler return
    SMC_UNKNOWN and change nothing (rmm-abi §2.1, §6)."""
    e = env
    g = e.ns()
    d = e.delegated()
    before = e.snapshot(g, d)
    for fnum in UNHANDLED:
        x = e.p.host.smc(fid(fnum) | hint, g, d, 0, 0, 0)
        assert x[0] == SMC_UNKNOWN, hex(fnum)
    assert e.snapshot(g, d) == before
    assert e.call("GRANULE_DELEGATE", g).ok


def test_sve_hint_is_ignored(env: Env) -> None:
    """Bit 16 of the FID is stripped before decoding (rmm-abi §2.1): every command behaves
    the same with and without it."""
    e = env
    h = e.active_realm()
    for fnum in RMI_1_0:
        for args in ((0, 0, 0, 0, 0), (h.rd, h.recs[0] + 8, 1, 0, 0)):
            plain = e.p.host.smc(fid(fnum), *args)
            label = e.label
            hinted = e.p.host.smc(fid(fnum) | SVE_HINT, *args)
            assert (hinted, e.label) == (plain, label), hex(fnum)
            assert plain[0] != SMC_UNKNOWN
