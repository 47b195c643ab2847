"""The invariant checker (``ccasim.checker``): a clean platform passes with checks after every
SMC, REC exit and GPT transition; each invariant, broken through private state, is reported
— and only that invariant."""

from __future__ import annotations

import dataclasses

import pytest

from ccasim import Platform, PlatformConfig, SecurityState
from ccasim.arch.gpt import Gpi
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.checker import INVARIANTS, InvariantChecker, InvariantViolation, Violation
from ccasim.guest import programs
from ccasim.host.rmi import RealmBuilder, RealmHandle, RmiClient
from ccasim.host.vmm import RealmSpec, Segment, Vmm
from ccasim.rmm import s2tt
from ccasim.rmm.granules import GranuleState
from ccasim.rmm.s2tt import Ripas

GRANULE = 0x1000
IPA = 0x8000_0000
RMI_VERSION_1_0 = 0x1_0000
FIRME_GM_GPI_SET = 0xC400_0402


class FakeSpmc:
    """Stands in for the Secure world's SPMC: the contract is ``owned_granules()``."""

    def __init__(self) -> None:
        self.owned: set[int] = set()

    def owned_granules(self) -> set[int]:
        return set(self.owned)


@pytest.fixture
def p() -> Platform:
    return Platform(PlatformConfig(cpus=2), check_invariants=True)


@pytest.fixture
def client(p: Platform) -> RmiClient:
    return RmiClient(p, pool_offset=0x4000_0000)  # clear of the VMM's own pool


def build_realm(client: RmiClient, vmid: int, *, pages: int = 2, rec: bool = True) -> RealmHandle:
    b = RealmBuilder(client)
    realm = b.create(vmid=vmid)
    b.init_ripas(realm, IPA, IPA + 8 * GRANULE)
    for i in range(pages):
        b.add_data(realm, IPA + i * GRANULE, bytes([vmid, i]) * 64)
    if rec:
        b.add_rec(realm, pc=IPA)
    return realm


def invariants(violations: list[Violation]) -> set[str]:
    return {v.invariant for v in violations}


def full_check(p: Platform) -> list[Violation]:
    assert p.checker is not None
    return p.checker.check(full=True)


def tracker_idx(p: Platform, pa: int) -> int:
    idx = p.rmm.tracker.index(pa)
    assert idx is not None
    return idx


def l3_entry(p: Platform, realm: RealmHandle, ipa: int) -> int:
    """PA of the level-3 RTT entry for ``ipa`` (the table must exist)."""
    table = realm.rtts[(3, ipa & ~((1 << 21) - 1))]
    return table + 8 * ((ipa >> 12) & 511)


def poke_u64(p: Platform, pa: int, value: int) -> None:
    """A Root-state store of a 64-bit word into a Realm granule, behind the RMM's back."""
    p.el3.write(pa, value.to_bytes(8, "little"), pas=Pas.REALM)


# ---------------------------------------------------------------------------------------
# clean runs
def test_clean_realm_lifecycle_passes_every_check(p: Platform, client: RmiClient) -> None:
    """Build two realms, run one through the VMM, tear everything down: no violation, and a
    check ran after every SMC (plus REC exits)."""
    assert p.checker is not None
    smcs = p.monitor.smc_count
    checks = p.checker.checks
    b = RealmBuilder(client)
    other = build_realm(client, vmid=7)
    assert full_check(p) == []
    vmm = Vmm(p)
    layout = programs.GuestLayout()
    image = programs.hello(layout)
    spec = RealmSpec(segments=(Segment(image.base, image.data),), entry=image.entry,
                     ram=((layout.ram_base, layout.ram_size),), s2sz=layout.s2sz,
                     uart_ipa=layout.uart_ipa)
    vm = vmm.create(spec)
    result = vmm.run(vm, timeout_s=10)
    assert result.reason == "system_off"
    assert full_check(p) == []
    vmm.destroy(vm)
    b.destroy(other)
    assert full_check(p) == []
    assert p.rmm.tracker.nonzero() == []
    # one check per host SMC (nested RMM -> EL3 calls are part of the command) + REC exits
    host_smcs = p.monitor.smc_count - smcs
    assert p.checker.checks - checks >= sum(result.exits.values())
    assert 0 < p.checker.checks - checks <= host_smcs + sum(result.exits.values())


def test_demo_passes_with_checks() -> None:
    from ccasim.cli.demo import run_demo

    steps = run_demo(None, check=True)
    assert all(s.ok for s in steps), [(s.name, s.detail) for s in steps if not s.ok]


def test_attaching_to_a_broken_platform_raises() -> None:
    p = Platform(PlatformConfig(cpus=1))
    client = RmiClient(p)
    g = client.new_delegated()
    p.el3.write(g + 0x10, b"\x5a", pas=Pas.REALM)
    with pytest.raises(InvariantViolation) as info:
        InvariantChecker(p).attach()
    assert info.value.invariants == {"delegated_zero"}
    assert f"{g:#x}" in str(info.value) and "0x10" in str(info.value)


def test_detach_restores_the_hooks(p: Platform, client: RmiClient) -> None:
    assert p.checker is not None
    p.checker.detach()
    g = client.new_delegated()
    p.el3.write(g, b"\x01", pas=Pas.REALM)
    assert client.call("VERSION", RMI_VERSION_1_0).ok  # no automatic check any more
    assert invariants(p.checker.check(full=True)) == {"delegated_zero"}


# ---------------------------------------------------------------------------------------
# each invariant, broken on purpose
def test_tracker_state_flip_is_a_gpi_state_violation(p: Platform, client: RmiClient) -> None:
    g = client.new_delegated()
    p.rmm.tracker.set_state(tracker_idx(p, g), GranuleState.UNDELEGATED)  # GPI stays Realm
    with pytest.raises(InvariantViolation) as info:
        client.call("VERSION", RMI_VERSION_1_0)
    err = info.value
    assert err.invariants == {"gpi_state"}
    assert err.violations[0].pa == g
    assert "RMI_VERSION" in err.when
    assert "GPI REALM" in str(err) and "UNDELEGATED" in str(err)


def test_hidden_tracker_flip_is_found(p: Platform, client: RmiClient) -> None:
    """A granule the model never touched, flipped to DELEGATED behind its back: the
    tracking array differs from the checker's snapshot at the next SMC."""
    g = client.pool.alloc()
    p.rmm.tracker.set_state(tracker_idx(p, g), GranuleState.DELEGATED)
    with pytest.raises(InvariantViolation) as info:
        client.call("VERSION", RMI_VERSION_1_0)
    assert info.value.invariants == {"gpi_state"}
    assert [v.pa for v in info.value.violations] == [g]
    violations = full_check(p)
    assert invariants(violations) == {"gpi_state"}
    assert [v.pa for v in violations] == [g]
    assert "DELEGATED granule has GPI NON_SECURE" in violations[0].details


def _set_gpi(p: Platform, pa: int, gpi: Gpi) -> None:
    """Write ``pa``'s GPI straight into the GPT (Root stores) and invalidate every PE's
    cached GPT information, as firmware would after a transition."""
    pe = p.pes[0]
    with p.cpus[0].probe(SecurityState.ROOT)._running():
        entry_pa, _current = p.monitor.gpt._locate(pe, pa)
        assert entry_pa is not None  # the region has been shattered into L1 granules entries
        desc = p.el3.read_u64(entry_pa)
        shift = 4 * ((pa >> 12) & 0xF)
        p.el3.write(entry_pa, ((desc & ~(0xF << shift)) | (gpi << shift)).to_bytes(8, "little"))
        pe.tlbi_paallos()


def test_gpi_written_into_the_gpt_is_a_gpi_state_violation(p: Platform,
                                                          client: RmiClient) -> None:
    g = client.new_delegated()
    neighbour = g + GRANULE  # UNDELEGATED, same L1 descriptor
    _set_gpi(p, neighbour, Gpi.REALM)
    with pytest.raises(InvariantViolation) as info:  # the GPT differs from the snapshot
        client.call("VERSION", RMI_VERSION_1_0)
    assert [v.pa for v in info.value.violations] == [neighbour]
    violations = full_check(p)
    assert invariants(violations) == {"gpi_state"}
    assert [v.pa for v in violations] == [neighbour]
    # and a delegated granule made Non-secure
    _set_gpi(p, neighbour, Gpi.NON_SECURE)
    _set_gpi(p, g, Gpi.NON_SECURE)
    with pytest.raises(InvariantViolation) as info:
        client.call("VERSION", RMI_VERSION_1_0)
    assert info.value.invariants == {"gpi_state"}
    assert info.value.violations[0].pa == g


def test_bumped_refcount_is_reported(p: Platform, client: RmiClient) -> None:
    realm = build_realm(client, vmid=3)
    p.rmm.tracker.get(tracker_idx(p, realm.rd))
    with pytest.raises(InvariantViolation) as info:
        client.call("VERSION", RMI_VERSION_1_0)
    assert info.value.invariants == {"refcount"}
    v = info.value.violations[0]
    assert v.pa == realm.rd and "refcount 2, expected 1" in v.details


def test_rtt_refcount_is_checked_against_its_entries(p: Platform, client: RmiClient) -> None:
    realm = build_realm(client, vmid=3, rec=False)
    table = realm.rtts[(3, IPA)]
    p.rmm.tracker.put(tracker_idx(p, table))
    violations = full_check(p)
    assert invariants(violations) == {"refcount"}
    assert violations[0].pa == table and "expected 2" in violations[0].details


def test_nonzero_delegated_granule_is_reported(p: Platform, client: RmiClient) -> None:
    g = client.new_delegated()
    p.el3.write(g + 0x123, b"\x01", pas=Pas.REALM)
    violations = full_check(p)
    assert invariants(violations) == {"delegated_zero"}
    assert [v.pa for v in violations] == [g]
    assert "byte 0x123 is 0x01" in str(violations[0])


def test_unscrubbed_data_destroy_is_caught_at_the_smc(p: Platform, client: RmiClient,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An RMM bug: DATA_DESTROY returns the granule to DELEGATED without scrubbing it."""
    from ccasim.rmm.rmi import data as rmi_data

    realm = build_realm(client, vmid=4, rec=False)
    monkeypatch.setattr(rmi_data, "zero_granule", lambda pe, pa: None)
    with pytest.raises(InvariantViolation) as info:
        client.call("DATA_DESTROY", realm.rd, IPA)
    assert info.value.invariants == {"delegated_zero"}
    assert info.value.violations[0].pa == realm.data[IPA]
    assert "RMI_DATA_DESTROY" in info.value.when


def test_two_realms_mapping_one_data_granule_is_reported(p: Platform,
                                                         client: RmiClient) -> None:
    a = build_realm(client, vmid=1)
    b = build_realm(client, vmid=2)
    shared = a.data[IPA]
    spare_ipa = IPA + 5 * GRANULE  # RIPAS RAM, UNASSIGNED in realm b
    entry = l3_entry(p, b, spare_ipa)
    poke_u64(p, entry, s2tt.assigned(Ripas.RAM, shared, 3))
    p.rmm.tracker.get(tracker_idx(p, b.rtts[(3, IPA)]))  # keep b's RTT refcount exact
    with pytest.raises(InvariantViolation) as info:  # found at the next SMC
        client.call("VERSION", RMI_VERSION_1_0)
    assert info.value.invariants == {"no_sharing"}
    violations = full_check(p)
    assert invariants(violations) == {"no_sharing"}
    assert [v.pa for v in violations] == [shared]
    assert f"realm {a.rd:#x}" in violations[0].details
    assert f"realm {b.rd:#x}" in violations[0].details


def test_rtt_entry_rewritten_behind_the_rmm_is_found_at_the_next_smc(
        p: Platform, client: RmiClient) -> None:
    """No tracker word changes: the RTT's new contents alone give it away."""
    a = build_realm(client, vmid=1, rec=False)
    b = build_realm(client, vmid=2, rec=False)
    poke_u64(p, l3_entry(p, b, IPA + GRANULE), s2tt.assigned(Ripas.RAM, a.data[IPA], 3))
    with pytest.raises(InvariantViolation) as info:
        client.call("VERSION", RMI_VERSION_1_0)
    assert info.value.invariants == {"no_sharing", "ownership"}
    by_invariant = {v.invariant: v.pa for v in info.value.violations}
    assert by_invariant == {"no_sharing": a.data[IPA], "ownership": b.data[IPA + GRANULE]}


def test_one_realm_mapping_a_data_granule_twice_is_reported(p: Platform,
                                                            client: RmiClient) -> None:
    a = build_realm(client, vmid=1, rec=False)
    poke_u64(p, l3_entry(p, a, IPA + 6 * GRANULE), s2tt.assigned(Ripas.RAM, a.data[IPA], 3))
    p.rmm.tracker.get(tracker_idx(p, a.rtts[(3, IPA)]))
    assert invariants(full_check(p)) == {"no_sharing"}


def test_rtt_entry_to_a_granule_in_the_wrong_state_is_reported(p: Platform,
                                                               client: RmiClient) -> None:
    a = build_realm(client, vmid=1, rec=False)
    stray = client.new_delegated()
    poke_u64(p, l3_entry(p, a, IPA + 4 * GRANULE), s2tt.assigned(Ripas.RAM, stray, 3))
    p.rmm.tracker.get(tracker_idx(p, a.rtts[(3, IPA)]))
    violations = full_check(p)
    assert invariants(violations) == {"rtt_output"}
    assert [v.pa for v in violations] == [stray]
    assert "maps a DELEGATED granule, not DATA" in violations[0].details


def test_table_entry_to_a_non_rtt_granule_is_reported(p: Platform, client: RmiClient) -> None:
    a = build_realm(client, vmid=1, rec=False)
    rd_table = a.rtts[(3, IPA)]
    # swap the level-3 table for a DATA granule holding a copy of it: the DATA granule is
    # then "linked" as a table, the real table orphaned
    parent = a.rtts[(2, IPA & ~((1 << 30) - 1))]
    entry = parent + 8 * ((IPA >> 21) & 511)
    data = a.data[IPA + GRANULE]
    poke_u64(p, entry, s2tt.table(data))
    violations = full_check(p)
    assert "rtt_output" in invariants(violations)
    assert any(v.pa == data and "not an RTT" in v.details for v in violations)
    assert any(v.invariant == "ownership" and v.pa == rd_table for v in violations)


def test_orphan_data_granule_is_an_ownership_violation(p: Platform, client: RmiClient) -> None:
    g = client.new_delegated()
    p.rmm.tracker.set_state(tracker_idx(p, g), GranuleState.DATA)
    with pytest.raises(InvariantViolation) as info:
        client.call("VERSION", RMI_VERSION_1_0)
    assert info.value.invariants == {"ownership"}
    assert "DATA granule mapped by no realm's RTTs" in str(info.value)


def test_stale_gpt_cache_entry_is_reported(p: Platform, client: RmiClient) -> None:
    page = client.pool.alloc()
    p.host.read(page, 8)  # PE 0 caches the granule's GPI (Non-secure)
    gpc = p.pes[0].gpc
    assert gpc.cached(page) == Gpi.NON_SECURE
    gpc._cache[page >> 12] = (int(Gpi.REALM), 1)  # a stale entry planted in the cache
    violations = full_check(p)
    assert invariants(violations) == {"cached_translation"}
    v = violations[0]
    assert v.pa == page and "PE 0 caches GPI REALM" in v.details
    assert "NON_SECURE" in v.details


def test_gpt_write_without_tlbi_leaves_a_stale_entry(p: Platform, client: RmiClient) -> None:
    """Firmware that changes a GPI and forgets the TLBI: the next SMC's check finds the
    PE still caching the old GPI."""
    p.spmc = None  # type: ignore[assignment,unused-ignore]  # no Secure world to ask
    client.new_delegated()  # the L0 region becomes an L1 table
    page = client.pool.alloc()
    p.host.read(page, 8)
    pe = p.pes[0]
    with p.cpus[0].probe(SecurityState.ROOT)._running():
        entry_pa, _current = p.monitor.gpt._locate(pe, page)
        assert entry_pa is not None
        desc = p.el3.read_u64(entry_pa)
        shift = 4 * ((page >> 12) & 0xF)
        desc = (desc & ~(0xF << shift)) | (int(Gpi.SECURE) << shift)
        p.el3.write(entry_pa, desc.to_bytes(8, "little"))  # no TLBI
    with pytest.raises(InvariantViolation) as info:
        client.call("VERSION", RMI_VERSION_1_0)
    assert info.value.invariants == {"cached_translation"}
    v = info.value.violations[0]
    assert v.pa == page and "PE 0 caches GPI NON_SECURE" in v.details
    assert "GPI SECURE" in v.details


def test_stale_cache_entry_on_another_pe_is_reported(p: Platform, client: RmiClient) -> None:
    g = client.new_delegated()
    p.pes[1].gpc._cache[g >> 12] = (int(Gpi.NON_SECURE), 1)
    violations = full_check(p)
    assert invariants(violations) == {"cached_translation"}
    assert "PE 1" in violations[0].details


def test_engine_stage2_context_must_match_its_realm(p: Platform) -> None:
    vmm = Vmm(p)
    layout = programs.GuestLayout()
    image = programs.hello(layout)
    spec = RealmSpec(segments=(Segment(image.base, image.data),), entry=image.entry,
                     ram=((layout.ram_base, layout.ram_size),), s2sz=layout.s2sz,
                     uart_ipa=layout.uart_ipa)
    vm = vmm.create(spec)
    assert vmm.run(vm, timeout_s=10).reason == "system_off"
    assert full_check(p) == []
    runner = p.rmm.runner
    assert runner is not None
    engine = runner.engines[0]
    cfg = engine.stage2
    assert cfg is not None
    engine.stage2 = dataclasses.replace(cfg, base=cfg.base + GRANULE)
    violations = full_check(p)
    assert invariants(violations) == {"cached_translation"}
    assert "engine of PE 0" in violations[0].details
    engine.stage2 = cfg
    vmm.destroy(vm)
    assert full_check(p) == []  # the destroyed realm's context is dormant


def test_secure_granules_must_be_owned_by_the_spmc(p: Platform, client: RmiClient) -> None:
    spmc = FakeSpmc()
    p.spmc = spmc  # type: ignore[attr-defined]
    secure = p.cpus[0].probe(SecurityState.SECURE)
    page = client.pool.alloc()
    spmc.owned.add(page)
    assert secure.smc(FIRME_GM_GPI_SET, page, 1, int(Gpi.SECURE))[0] == 0
    assert full_check(p) == []
    other = client.pool.alloc()
    with pytest.raises(InvariantViolation) as info:  # taken, but the SPMC does not know
        secure.smc(FIRME_GM_GPI_SET, other, 1, int(Gpi.SECURE))
    assert info.value.invariants == {"secure_owner"}
    assert info.value.violations[0].pa == other
    assert "does not own" in str(info.value)
    spmc.owned.add(other)
    claimed = client.pool.alloc()
    spmc.owned.add(claimed)  # claimed, but still Non-secure
    violations = full_check(p)
    assert invariants(violations) == {"secure_owner"}
    assert [v.pa for v in violations] == [claimed]
    assert "GPI is NON_SECURE, not SECURE" in violations[0].details


def test_without_an_spmc_secure_granules_are_not_checked(p: Platform,
                                                          client: RmiClient) -> None:
    p.spmc = None  # type: ignore[assignment,unused-ignore]  # no Secure world to ask
    page = client.pool.alloc()
    assert p.cpus[0].probe(SecurityState.SECURE).smc(
        FIRME_GM_GPI_SET, page, 1, int(Gpi.SECURE))[0] == 0
    assert full_check(p) == []


def test_gpt_transition_outside_an_smc_is_checked(p: Platform, client: RmiClient) -> None:
    """EL3 code moving a granule to Realm without the RMM: caught at the transition."""
    page = client.pool.alloc()
    with p.cpus[0].probe(SecurityState.ROOT)._running() as pe, pytest.raises(
            InvariantViolation) as info:
        p.monitor.gpt.transition(pe, SecurityState.REALM, page, int(Gpi.REALM))
    assert info.value.invariants == {"gpi_state"}
    assert "GPT transition" in info.value.when


def test_checks_rebuild_only_what_changed(p: Platform, client: RmiClient) -> None:
    """A command that changes nothing leaves every claim source as it was; DATA_CREATE
    rebuilds the one RTT it wrote (and nothing else)."""
    assert p.checker is not None
    a = build_realm(client, vmid=1)
    build_realm(client, vmid=2)
    sources = dict(p.checker.model.sources)
    # per realm: the RD, 2 starting-level RTTs, a level-2 and a level-3 RTT, one REC
    assert len(sources) == 2 * (1 + 4 + 1)
    raws = {k: v.raw for k, v in sources.items()}
    assert client.call("VERSION", RMI_VERSION_1_0).ok
    assert all(p.checker.model.sources[k] is v for k, v in sources.items())
    RealmBuilder(client).add_data(a, IPA + 3 * GRANULE, b"x")
    assert p.checker.model.sources.keys() == sources.keys()
    changed = {k for k, v in p.checker.model.sources.items() if v.raw != raws[k]}
    assert changed == {("table", a.rtts[(3, IPA)])}
    table = p.checker.model.sources[("table", a.rtts[(3, IPA)])]
    assert table.refs == 3 and a.data[IPA + 3 * GRANULE] in table.claimed


def test_violation_report_names_every_invariant() -> None:
    v = Violation("refcount", 0x8000_1000, "RD granule has refcount 2, expected 1")
    err = InvariantViolation([v, Violation("gpi_state", None, "x")], "RMI_VERSION")
    assert str(v) == "[refcount] at 0x80001000: RD granule has refcount 2, expected 1"
    assert str(err).startswith("invariant refcount violated after RMI_VERSION: [refcount]")
    assert "and 1 more: gpi_state" in str(err)
    assert set(INVARIANTS) == {"gpi_state", "secure_owner", "refcount", "rtt_output",
                               "delegated_zero", "no_sharing", "ownership",
                               "cached_translation"}


def test_secure_owner_with_the_real_spmc() -> None:
    """The SPMC's owned_granules() contract: after a real FF-A lend the Secure granules in
    tracked DRAM are exactly the SPMC's, and a discrepancy is reported as secure_owner."""
    from ccasim.secure.client import FfaDriver

    p = Platform(PlatformConfig(cpus=1), check_invariants=True)
    base = p.region("ns_dram").base + 0x40_0000
    driver = FfaDriver(p.host, tx=base, rx=base + 0x1000)
    driver.rxtx_map()
    lent = base + 0x10_000
    handle = driver.lend(0x8002, [(lent, 2)])
    assert p.spmc.owned_granules() == {lent, lent + 0x1000}
    assert p.checker is not None
    assert p.checker.check(full=True) == []
    p.spmc.shares.pop(handle)  # the SPMC forgets the transaction: its granules stay Secure
    names = {v.invariant for v in p.checker.check(full=True)}
    assert "secure_owner" in names
