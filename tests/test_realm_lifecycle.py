"""A realm's whole life through ``RealmBuilder``, and the platform back in its boot state.

Two realms live side by side (SHA-256 with a 40-bit IPA space and concatenated level-1
roots; SHA-512 with a 48-bit IPA space and a level-0 root): RTTs at every level, RIPAS
initialised, measured and unmeasured DATA (also into RIPAS EMPTY), DATA_CREATE_UNKNOWN,
unprotected mappings of Non-secure pages (a 4 KB page, a 2 MB block, one unmapped again),
a runnable and a non-runnable REC; then activation and one REC_ENTER, whose guest executes a
WFI and exits with IRQ. While they live, the Normal world can neither read nor write any of
their granules (GranuleProtectionFault), nor undelegate them, nor reuse their VMIDs; their
RIMs are what rmm-abi §10 computes. Then everything is destroyed and undelegated, and the
platform must be exactly as booted: no granule tracked, every granule the host used NS and
zero, the GPT summary equal to a freshly booted platform's, and the VMIDs reusable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ccasim import GranuleProtectionFault, Platform, PlatformConfig, SecurityState
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.host.rmi import RealmBuilder, RealmHandle, RmiClient, RmiResult
from ccasim.platform import WorldPort
from ccasim.rmm.objects import Realm
from rmi_spec import (
    A64_WFI,
    ASSIGNED,
    EC_WFX,
    EMPTY,
    ENTER_TRAP_WFI,
    EXIT_IRQ,
    EXIT_SYNC,
    GPI_NS,
    GRANULE,
    INPUT,
    NUM_AUX,
    RAM,
    REALM,
    REC,
    RTT,
    TABLE,
    UNASSIGNED,
    ZERO_PAGE,
    mpidr_of,
    pack_realm_params,
    pack_rec_enter,
    pack_rec_params,
    realm_fields,
    rim_data,
    rim_init,
    rim_rec,
    rim_ripas,
    status_code,
    u64,
)

CONFIG = PlatformConfig(cpus=2)
NS_ATTRS = (0b101 << 2) | (0b11 << 6)  # host-chosen MemAttr[4:2] and S2AP read/write
WFI_PAGE = A64_WFI.to_bytes(4, "little") * (GRANULE // 4)


class RecordingClient(RmiClient):
    """An RmiClient that remembers every granule it delegated and every NS page it wrote."""

    def __init__(self, platform: Platform, port: WorldPort) -> None:
        super().__init__(platform, port)
        self.delegated: set[int] = set()
        self.ns_pages: set[int] = set()

    def delegate(self, addr: int) -> RmiResult:
        res = super().delegate(addr)
        if res.ok:
            self.delegated.add(addr)
        return res

    def write_page(self, data: bytes) -> int:
        addr = super().write_page(data)
        self.ns_pages.add(addr)
        return addr


@dataclass
class LiveRealm:
    handle: RealmHandle
    algo: int
    vmid: int
    rim: bytes  # what §10 says the RIM is
    contents: dict[int, bytes] = field(default_factory=dict)  # DATA granule -> content
    runnable: int = 0
    not_runnable: int = 0

    def granules(self) -> list[int]:
        h = self.handle
        aux = [a for rec in h.recs for a in h.aux[rec]]
        roots = [h.rtt_base + i * GRANULE for i in range(h.num_start)]
        return [h.rd, *roots, *h.rtts.values(), *h.data.values(), *h.recs, *aux]


def realm_rim(p: Platform, rd: int) -> bytes:
    with p.cpus[0].probe(SecurityState.REALM)._running() as pe:
        return Realm.load(pe, rd).rim


def realm_read(p: Platform, pa: int) -> bytes:
    return p.cpus[0].probe(SecurityState.REALM).read(pa, GRANULE, Pas.REALM)


def read_entry(c: RmiClient, rd: int, ipa: int, level: int) -> tuple[int, ...]:
    res = c.call("RTT_READ_ENTRY", rd, ipa, level)
    assert res.ok, hex(res[0])
    return tuple(res.regs[1:5])


def build_realm(
    p: Platform, c: RecordingClient, b: RealmBuilder, *, s2sz: int, algo: int, vmid: int
) -> LiveRealm:
    """A NEW realm with every kind of content, its RIM computed alongside (rmm-abi §10)."""
    h = b.create(s2sz=s2sz, vmid=vmid, hash_algo=algo)
    fields = realm_fields(s2sz=s2sz, sl=h.start_level, rtt_base=h.rtt_base, vmid=vmid)
    fields["hash_algo"] = algo
    life = LiveRealm(h, algo, vmid, rim_init(algo, pack_realm_params(fields)))
    assert realm_rim(p, h.rd) == life.rim

    # RTTs at every level below the root, covering IPA 0; RIPAS RAM over [0, 16 KB)
    b.ensure_table(h, 0, 3)
    assert {lvl for lvl, _ in h.rtts} == set(range(h.start_level + 1, 4))
    res = c.call("RTT_INIT_RIPAS", h.rd, 0, 0x4000)
    assert res.ok and res[1] == 0x4000, hex(res[0])
    for ipa in range(0, 0x4000, GRANULE):  # one RIPAS descriptor per level-3 entry
        life.rim = rim_ripas(algo, life.rim, ipa, ipa + GRANULE)

    # DATA: measured code at IPA 0, unmeasured data, and a page into RIPAS EMPTY
    for ipa, content, measure in (
        (0x0000, WFI_PAGE, True),
        (0x1000, b"unmeasured".ljust(GRANULE, b"\0"), False),
        (0x5000, b"RIPAS EMPTY becomes RAM".ljust(GRANULE, b"\0"), True),
    ):
        data = b.add_data(h, ipa, content, measure)
        life.rim = rim_data(algo, life.rim, ipa, int(measure), content)
        life.contents[data] = content
        assert read_entry(c, h.rd, ipa, 3) == (3, ASSIGNED, data, RAM)
    # DATA_CREATE_UNKNOWN keeps the RIPAS and is not measured
    for ipa, ripas in ((0x2000, RAM), (0x6000, EMPTY)):
        data = c.new_delegated()
        assert c.call("DATA_CREATE_UNKNOWN", h.rd, data, ipa).ok
        h.data[ipa] = data
        life.contents[data] = ZERO_PAGE
        assert read_entry(c, h.rd, ipa, 3) == (3, ASSIGNED, data, ripas)
    assert realm_rim(p, h.rd) == life.rim

    # more RTTs: a level-2 table on its own at 1 GB, a level-3 table below it at 1 GB + 2 MB
    gib, mib2 = 1 << 30, 1 << 21
    b.ensure_table(h, gib, 2)
    b.ensure_table(h, gib + mib2, 3)
    assert read_entry(c, h.rd, gib, 2)[:3] == (2, UNASSIGNED, 0)
    assert read_entry(c, h.rd, gib + mib2, 2) == (2, TABLE, h.rtts[(3, gib + mib2)], EMPTY)
    assert read_entry(c, h.rd, gib + mib2, 3) == (3, UNASSIGNED, 0, EMPTY)

    # unprotected IPA space: a page, a second page and a 2 MB block of Non-secure memory
    par = 1 << (s2sz - 1)
    b.ensure_table(h, par, 3)
    shared = [c.write_page(b"shared %d" % i) for i in range(2)]
    block = p.region("ns_dram").base + 0x20_0000  # 2 MB aligned, never delegated
    for ipa, level, desc in (
        (par, 3, shared[0] | NS_ATTRS),
        (par + GRANULE, 3, shared[1] | NS_ATTRS),
        (par + mib2, 2, block | NS_ATTRS),
    ):
        assert c.call("RTT_MAP_UNPROTECTED", h.rd, ipa, level, desc).ok
        assert read_entry(c, h.rd, ipa, level) == (level, ASSIGNED, desc, EMPTY)
    res = c.call("RTT_UNMAP_UNPROTECTED", h.rd, par, 3)
    assert res.ok and res[1] == par + GRANULE  # top: the next live entry
    assert read_entry(c, h.rd, par, 3) == (3, UNASSIGNED, 0, EMPTY)
    assert realm_rim(p, h.rd) == life.rim

    # RECs: a runnable one (measured) and one that is not (not measured)
    gprs = [0x1111, 0x2222, 0x3333]
    life.runnable = b.add_rec(h, pc=0, gprs=gprs, runnable=True)
    image = pack_rec_params(flags=1, mpidr=mpidr_of(0), pc=0, gprs=gprs, num_aux=0, aux=())
    life.rim = rim_rec(algo, life.rim, image)
    life.not_runnable = b.add_rec(h, pc=0, runnable=False)
    assert realm_rim(p, h.rd) == life.rim
    res = c.call("REC_AUX_COUNT", h.rd)
    assert res.ok and res[1] == NUM_AUX
    return life


def check_alive(p: Platform, c: RecordingClient, life: LiveRealm) -> None:
    """What the host must not be able to do to a live realm."""
    h = life.handle
    for pa, content in life.contents.items():
        assert realm_read(p, pa) == content
    for pa in life.granules():
        for cpu in p.cpus:
            with pytest.raises(GranuleProtectionFault) as fault:
                cpu.host.read(pa, 8)
            assert (fault.value.pa, fault.value.pas) == (pa, Pas.NON_SECURE)
            with pytest.raises(GranuleProtectionFault):
                cpu.host.write(pa + 0x800, b"\xff" * 8)
        assert c.undelegate(pa).status == INPUT
        assert c.delegate(pa).status == INPUT
    # the VMID is taken
    rd, rtts = c.new_delegated(), c.new_delegated(h.num_start)
    fields = realm_fields(s2sz=h.s2sz, sl=h.start_level, rtt_base=rtts, vmid=life.vmid)
    params = c.write_page(pack_realm_params(fields))
    assert c.call("REALM_CREATE", rd, params).status == INPUT
    for g in (rd, *(rtts + i * GRANULE for i in range(h.num_start))):
        assert c.undelegate(g).ok


def run_once(p: Platform, c: RecordingClient, life: LiveRealm) -> None:
    """REC_ENTER: the guest's WFI ends the run with IRQ; trapped, the same WFI exits SYNC."""
    h = life.handle
    run = c.write_page(pack_rec_enter())
    res = c.call("REC_ENTER", life.runnable, run)
    assert res.ok, hex(res[0])
    exit_ = c.port.read(run, GRANULE)[0x800:]
    assert u64(exit_, 0) == EXIT_IRQ
    assert (u64(exit_, 0x100), u64(exit_, 0x108), u64(exit_, 0x110)) == (0, 0, 0)
    c.port.write(run, pack_rec_enter(ENTER_TRAP_WFI))
    assert c.call("REC_ENTER", life.runnable, run).ok
    exit_ = c.port.read(run, GRANULE)[0x800:]
    assert u64(exit_, 0) == EXIT_SYNC
    assert u64(exit_, 0x100) == EC_WFX << 26  # WFI: TI = 0
    assert c.call("REC_ENTER", life.not_runnable, run).status == REC
    assert realm_rim(p, h.rd) == life.rim  # running does not touch the RIM


def check_boot_state(p: Platform, c: RecordingClient, boot_summary: object) -> None:
    assert p.rmm.tracker.nonzero() == []
    assert not p.rmm.vmids
    for pa in sorted(c.delegated):
        assert p.el3.gpi(pa) == GPI_NS, hex(pa)
        assert c.port.read(pa, GRANULE) == ZERO_PAGE, f"{pa:#x} not scrubbed"
    for pa in sorted(c.ns_pages):
        assert p.el3.gpi(pa) == GPI_NS, hex(pa)
    assert p.el3.gpt_summary() == boot_summary


@pytest.mark.parametrize("cpu", [0, 1])
def test_realm_life_cycle(cpu: int) -> None:
    p = Platform(CONFIG)
    boot_summary = Platform(CONFIG).el3.gpt_summary()
    assert p.el3.gpt_summary() == boot_summary
    c = RecordingClient(p, p.cpus[cpu].host)
    b = RealmBuilder(c)

    lives = []
    for vmid, (s2sz, algo) in enumerate(((40, 0), (48, 1)), start=1):
        lives.append(build_realm(p, c, b, s2sz=s2sz, algo=algo, vmid=vmid))
    assert lives[0].handle.num_start == 2 and lives[1].handle.start_level == 0
    assert len(lives[0].rim) == 32 and len(lives[1].rim) == 64
    for life in lives:
        check_alive(p, c, life)
        b.activate(life.handle)
        assert c.call("REALM_ACTIVATE", life.handle.rd).status == REALM  # not NEW
        run_once(p, c, life)
        check_alive(p, c, life)

    for life in lives:
        b.destroy(life.handle)  # RECs, DATA, RTTs (NS mappings go with them), the realm
    check_boot_state(p, c, boot_summary)

    # the same VMIDs (and the same granules, from the allocator's free lists) work again
    again = [
        build_realm(p, c, b, s2sz=s2sz, algo=algo, vmid=vmid)
        for vmid, (s2sz, algo) in enumerate(((32, 1), (39, 0)), start=1)
    ]
    for life in again:
        b.activate(life.handle)
        run_once(p, c, life)
        b.destroy(life.handle)
    check_boot_state(p, c, boot_summary)


def test_destroy_refused_while_referenced() -> None:
    """REALM_DESTROY refuses while RECs or live RTT entries exist, RTT_DESTROY while the
    table maps DATA; the refusals change nothing, and destruction then succeeds."""
    p = Platform(CONFIG)
    boot_summary = p.el3.gpt_summary()
    c = RecordingClient(p, p.host)
    b = RealmBuilder(c)
    life = build_realm(p, c, b, s2sz=40, algo=0, vmid=7)
    h = life.handle
    before = p.rmm.tracker.nonzero()
    assert c.call("REALM_DESTROY", h.rd).status == REALM  # RECs exist
    assert c.call("RTT_DESTROY", h.rd, 0, 3)[0] == status_code(RTT, 3)  # maps DATA
    res = c.call("RTT_DESTROY", h.rd, 0, 2)
    assert res[0] == status_code(RTT, 2)  # the level-2 table holds a table
    assert c.call("DATA_DESTROY", h.rd, 0x3000)[0] == status_code(RTT, 3)  # no DATA
    assert p.rmm.tracker.nonzero() == before
    for rec in h.recs:
        assert c.call("REC_DESTROY", rec).ok
        for g in (rec, *h.aux[rec]):
            assert c.undelegate(g).ok
    h.recs.clear()
    assert c.call("REALM_DESTROY", h.rd).status == REALM  # root RTTs still live
    for ipa, data in sorted(h.data.items()):
        res = c.call("DATA_DESTROY", h.rd, ipa)
        assert res.ok and res[1] == data
        assert c.undelegate(data).ok
    h.data.clear()
    for (level, ipa), rtt in sorted(h.rtts.items(), reverse=True):
        res = c.call("RTT_DESTROY", h.rd, ipa, level)
        assert res.ok and res[1] == rtt
        assert c.undelegate(rtt).ok
    assert c.call("REALM_DESTROY", h.rd).ok
    for g in (h.rd, *(h.rtt_base + i * GRANULE for i in range(h.num_start))):
        assert c.undelegate(g).ok
    check_boot_state(p, c, boot_summary)
