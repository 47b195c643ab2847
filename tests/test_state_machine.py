"""A Hypothesis state machine over granule transitions and accesses from every world.

The machine boots ``Platform(PlatformConfig(cpus=2))`` and, from a small pool of interesting
addresses, issues legal and illegal granule transitions (RMM_GTSI_DELEGATE / UNDELEGATE and
FIRME_GM_GPI_SET) from the Realm, Secure and Non-secure worlds, and reads and writes from all
four security states through every PAS they can emit, on random PEs. A model written from the
spec digests (rme-hardware §1, §2, §4, §6, §7) says what each request must return; after every
step the GPT (walked uncached through ``p.el3.gpi``), every PE's cached GPT information and
the L0 descriptor types must agree with it.

The model, restated from the spec rather than from the implementation:

* boot GPIs come from the memory map (region PAS -> GPI; unmapped space below the PPS is
  All-access, as TF-A leaves it); nothing exists beyond the PPS;
* transition policy: a Realm caller moves NS <-> Realm, a Secure caller NS <-> Secure, nothing
  else (not Root, not same-to-same, not Realm <-> Secure, nothing from Non-secure);
* RMM-EL3 calls are accepted from Realm state only (others get SMC_UNKNOWN); GTSI returns
  E_RMM_BAD_ADDR for an unaligned address, an address outside DRAM (MMIO, holes) or beyond
  the PPS, E_RMM_BAD_PAS for a policy violation;
* FIRME_GM_GPI_SET returns INVALID_PARAMETERS / DENIED / SUCCESS and is all-or-nothing; the
  granules are checked in address order and the first failing one decides the status;
* an access passes the GPC iff the granule's GPI admits its PAS (0b1111 all, 0b10xx exactly
  PAS xx, 0b0000 none); a failed access changes no memory; Non-secure accesses beyond the
  PPS pass the check (and abort on the bus), other PAS take a GPT address-size fault;
* a Non-secure-state L0 region starts as an L0 block and becomes an L1 table with the first
  successful transition inside it (gpt_lib's documented design).

``CCASIM_LONG=<n>`` scales the run up for fuzzing (n x 1000 examples of 100 steps).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ccasim import (
    ExternalAbort,
    GptAddressSizeFault,
    GranuleProtectionFault,
    Platform,
    PlatformConfig,
)
from ccasim.arch.faults import AccessKind
from ccasim.arch.memory import RegionKind
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.arch.security import SecurityState as State
from ccasim.platform import WorldPort

# ------------------------------------------------------------------------------ constants
# Spelled out here (rme-hardware §2, §6, §7) rather than imported, so the model is not the
# implementation checking itself.
GRANULE = 0x1000
GPI_NO_ACCESS = 0b0000
GPI_SECURE = 0b1000
GPI_NS = 0b1001
GPI_ROOT = 0b1010
GPI_REALM = 0b1011
GPI_ANY = 0b1111

RMM_GTSI_DELEGATE = 0xC400_01B0
RMM_GTSI_UNDELEGATE = 0xC400_01B1
FIRME_GM_GPI_SET = 0xC400_0402

MASK64 = (1 << 64) - 1
SMC_UNKNOWN = MASK64
E_RMM_OK = 0
E_RMM_BAD_ADDR = -2
E_RMM_BAD_PAS = -3
FIRME_SUCCESS = 0
FIRME_INVALID_PARAMETERS = -2
FIRME_DENIED = -5

PAS_GPI = {Pas.SECURE: GPI_SECURE, Pas.NON_SECURE: GPI_NS, Pas.ROOT: GPI_ROOT, Pas.REALM: GPI_REALM}

# Which PAS each security state can emit (rme-hardware §1 table).
EMITS: dict[State, frozenset[Pas]] = {
    State.ROOT: frozenset(Pas),
    State.REALM: frozenset({Pas.REALM, Pas.NON_SECURE}),
    State.SECURE: frozenset({Pas.SECURE, Pas.NON_SECURE}),
    State.NON_SECURE: frozenset({Pas.NON_SECURE}),
}
# Which PAS each base-RME GPI admits (rme-hardware §2).
ADMITS: dict[int, frozenset[Pas]] = {
    GPI_NO_ACCESS: frozenset(),
    GPI_SECURE: frozenset({Pas.SECURE}),
    GPI_NS: frozenset({Pas.NON_SECURE}),
    GPI_ROOT: frozenset({Pas.ROOT}),
    GPI_REALM: frozenset({Pas.REALM}),
    GPI_ANY: frozenset(Pas),
}
# Transition policy (rme-hardware §6): caller -> {(current GPI, target GPI)}.
POLICY: dict[State, frozenset[tuple[int, int]]] = {
    State.REALM: frozenset({(GPI_NS, GPI_REALM), (GPI_REALM, GPI_NS)}),
    State.SECURE: frozenset({(GPI_NS, GPI_SECURE), (GPI_SECURE, GPI_NS)}),
    State.NON_SECURE: frozenset(),
}

CONFIG = PlatformConfig(cpus=2)
MEMORY_MAP = CONFIG.memory_map()
PPS = 1 << CONFIG.pps_bits
L0_SHIFT = CONFIG.l0gptsz


def _region_addr(name: str, offset: int) -> int:
    region = MEMORY_MAP[name]
    return region.base + (offset if offset >= 0 else region.size + offset)


# The pool: granules in the first and in another GiB of ns_dram (both L0 blocks at boot),
# L1-entry and L0-region boundaries, the end of DRAM/PPS, Secure DRAM next to a hole, Root,
# the RMM carve-out (not its shared buffer), the UART, two unaligned addresses, a hole and two
# addresses beyond the PPS.
POOL: tuple[int, ...] = (
    _region_addr("ns_dram", 0x0000),
    _region_addr("ns_dram", 0x1000),
    _region_addr("ns_dram", 0x2000),
    _region_addr("ns_dram", 0xF000),  # last granule of the first L1 entry
    _region_addr("ns_dram", 0x1_0000),
    _region_addr("ns_dram", 0x765_4000),
    _region_addr("ns_dram", 0x3FFF_E000),  # count 3 crosses into the second GiB
    _region_addr("ns_dram", 0x4000_0000),  # second GiB of ns_dram
    _region_addr("ns_dram", 0x4000_1000),
    _region_addr("ns_dram", 0x4123_4000),
    _region_addr("ns_dram", -0x2000),
    _region_addr("ns_dram", -0x1000),  # last granule below the PPS
    _region_addr("secure_dram", 0),
    _region_addr("secure_dram", -0x2000),  # count 3 runs into the hole after Secure DRAM
    _region_addr("root", 0),  # EL3 data, not the GPT
    _region_addr("rmm", 0),
    _region_addr("uart0", 0),
    _region_addr("ns_dram", 0x1808),  # unaligned, inside a pool granule
    _region_addr("ns_dram", 0x4000_0004),  # unaligned, second GiB
    0x1000_0000,  # a hole between Secure DRAM and the UART
    PPS,  # first granule beyond the PPS
    PPS + 0x2345_6000,
)
assert all(MEMORY_MAP.find(a) is None for a in (0x1000_0000, PPS)), "pool assumes these holes"
assert MEMORY_MAP["ns_dram"].end == PPS, "pool assumes ns_dram ends at the PPS"


def _granule(pa: int) -> int:
    return pa & ~(GRANULE - 1)


# Every granule a request can touch (FIRME counts go up to 3).
TRACKED: tuple[int, ...] = tuple(
    sorted({_granule(a) + i * GRANULE for a in POOL for i in range(3)})
)


def boot_gpi(granule: int) -> int | None:
    """The GPI of ``granule`` right after cold boot; None beyond the PPS."""
    if granule >= PPS:
        return None
    region = MEMORY_MAP.find(granule)
    return GPI_ANY if region is None else PAS_GPI[region.pas]


def is_dram(pa: int) -> bool:
    region = MEMORY_MAP.find(pa)
    return region is not None and region.kind is RegionKind.DRAM


def is_backed(pa: int, size: int) -> bool:
    region = MEMORY_MAP.find(pa)
    return region is not None and region.contains(pa, size)


def initially_block(l0_index: int) -> bool:
    """An L0 region covered entirely by one region starts as an L0 block descriptor."""
    start, end = l0_index << L0_SHIFT, (l0_index + 1) << L0_SHIFT
    regions = [r for r in MEMORY_MAP if r.base < end and r.end > start]
    return not regions or (len(regions) == 1 and regions[0].base <= start and regions[0].end >= end)


def signed(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


CALLERS = (State.REALM, State.SECURE, State.NON_SECURE)
STATES = (State.ROOT, State.REALM, State.SECURE, State.NON_SECURE)
LEGAL_EMITS = tuple((s, pas) for s in STATES for pas in Pas if pas in EMITS[s])
ILLEGAL_EMITS = tuple((s, pas) for s in STATES for pas in Pas if pas not in EMITS[s])
TARGET_ATTRS = (GPI_SECURE, GPI_NS, GPI_REALM, GPI_ROOT, GPI_NO_ACCESS, 0x1F)

cpus = st.integers(min_value=0, max_value=CONFIG.cpus - 1)
pool = st.sampled_from(POOL)


@dataclass
class Outcome:
    """What an access must do: succeed, or raise exactly this fault type."""

    fault: type[Exception] | None


def expected_access(gpi: int | None, pa: int, pas: Pas) -> Outcome:
    """The GPC verdict (rme-hardware §4) followed by the bus: an 8-byte access at ``pa``."""
    if pa >= PPS:
        return Outcome(ExternalAbort if pas is Pas.NON_SECURE else GptAddressSizeFault)
    assert gpi is not None
    if pas not in ADMITS[gpi]:
        return Outcome(GranuleProtectionFault)
    return Outcome(None if is_backed(pa, 8) else ExternalAbort)


# ------------------------------------------------------------------------------ machine
class GranuleTransitions(RuleBasedStateMachine):
    """Random transitions and accesses against a spec-derived model of the GPT."""

    def __init__(self) -> None:
        super().__init__()
        self.p = Platform(CONFIG)
        self.model: dict[int, int | None] = {g: boot_gpi(g) for g in TRACKED}
        self.l0_blocks = {i for i in range(max(PPS >> L0_SHIFT, 1)) if initially_block(i)}
        gpt = self.p.monitor.gpt
        self._gpt_span = (
            gpt.l0_base,
            gpt.l1_pool + gpt.l1_slots * gpt.geometry.l1_table_size - gpt.l0_base,
        )
        # Realm-PAS data currently in a Realm granule: granule -> (pa, data).
        self.secrets: dict[int, tuple[int, bytes]] = {}
        self.legal_transitions = 0

    @initialize()
    def booted(self) -> None:
        assert self.p.el3.rmm_boot_status == 0

    # -------------------------------------------------------------- helpers
    def port(self, cpu: int, state: State) -> WorldPort:
        if state is State.NON_SECURE and cpu % 2 == 0:
            return self.p.cpus[cpu].host
        if state is State.ROOT and cpu == 0:
            return self.p.el3
        return self.p.cpus[cpu].probe(state)

    def gpt_bytes(self) -> bytes:
        base, size = self._gpt_span
        return self.p.memory.read(base, size)

    def gpi(self, pa: int) -> int | None:
        return self.model[_granule(pa)]

    def valid_transition_address(self, pa: int) -> bool:
        """Aligned, inside the PPS, DRAM (not MMIO, not a hole)."""
        return pa % GRANULE == 0 and pa + GRANULE <= PPS and is_dram(pa)

    def set_gpi(self, pa: int, gpi: int) -> None:
        event(f"transition to {gpi:#06b}")
        if pa >> L0_SHIFT in self.l0_blocks:
            event("L0 block converted to an L1 table")
        self.model[pa] = gpi
        self.l0_blocks.discard(pa >> L0_SHIFT)
        if gpi != GPI_REALM:
            self.secrets.pop(pa, None)
        self.legal_transitions += 1

    def smc(self, cpu: int, caller: State, fid: int, *args: int) -> tuple[tuple[int, ...], bool]:
        """Issue an SMC; returns (x0..x7, whether the GPT changed)."""
        before = self.gpt_bytes()
        regs = self.port(cpu, caller).smc(fid, *args)
        return regs, self.gpt_bytes() != before

    # -------------------------------------------------------------- GTSI
    @rule(
        cpu=cpus,
        caller=st.sampled_from(CALLERS),
        pa=pool,
        delegate=st.booleans(),
    )
    def gtsi(self, cpu: int, caller: State, pa: int, delegate: bool) -> None:
        fid = RMM_GTSI_DELEGATE if delegate else RMM_GTSI_UNDELEGATE
        target = GPI_REALM if delegate else GPI_NS
        regs, changed = self.smc(cpu, caller, fid, pa)
        if caller is not State.REALM:
            assert regs[0] == SMC_UNKNOWN, f"GTSI from {caller.name}: {regs[0]:#x}"
            assert regs[1] == pa, "SMC_UNKNOWN leaves x1 untouched"
            assert not changed
            return
        if not self.valid_transition_address(pa):
            expected = E_RMM_BAD_ADDR
        elif (self.gpi(pa), target) not in POLICY[caller]:
            expected = E_RMM_BAD_PAS
        else:
            expected = E_RMM_OK
        assert signed(regs[0]) == expected, (
            f"GTSI {'DELEGATE' if delegate else 'UNDELEGATE'} {pa:#x} "
            f"(GPI {self.gpi(pa)}): got {signed(regs[0])}, expected {expected}"
        )
        if expected == E_RMM_OK:
            self.set_gpi(pa, target)
        else:
            assert not changed, "a failed GTSI call changed the GPT"

    @rule(cpu=cpus, pa=pool)
    def realm_flip(self, cpu: int, pa: int) -> None:
        """The RMM's normal use of GTSI: delegate an NS granule or undelegate a Realm one."""
        gpi = self.gpi(pa)
        if gpi == GPI_NS:
            self.gtsi(cpu, State.REALM, pa, True)
        elif gpi == GPI_REALM:
            self.gtsi(cpu, State.REALM, pa, False)

    # -------------------------------------------------------------- FIRME
    def expected_firme(self, caller: State, base: int, count: int, attrs: int) -> int:
        if attrs >> 4 or base % GRANULE or base + count * GRANULE > PPS:
            return FIRME_INVALID_PARAMETERS
        target = attrs & 0xF
        if target not in (GPI_NS, GPI_SECURE, GPI_REALM):
            return FIRME_INVALID_PARAMETERS
        for i in range(count):
            pa = base + i * GRANULE
            if not self.valid_transition_address(pa):
                return FIRME_INVALID_PARAMETERS
            if (self.gpi(pa), target) not in POLICY[caller]:
                return FIRME_DENIED
        return FIRME_SUCCESS

    @rule(
        cpu=cpus,
        caller=st.sampled_from(CALLERS),
        base=pool,
        count=st.integers(min_value=1, max_value=3),
        attrs=st.sampled_from(TARGET_ATTRS),
    )
    def firme_gpi_set(self, cpu: int, caller: State, base: int, count: int, attrs: int) -> None:
        expected = self.expected_firme(caller, base, count, attrs)
        regs, changed = self.smc(cpu, caller, FIRME_GM_GPI_SET, base, count, attrs)
        status, done = signed(regs[0]), regs[1]
        event(f"FIRME status {status}")
        assert status == expected, (
            f"FIRME_GM_GPI_SET({base:#x}, {count}, {attrs:#x}) from {caller.name}: "
            f"got {status}, expected {expected}"
        )
        if expected == FIRME_SUCCESS:
            assert done == count
            for i in range(count):
                self.set_gpi(base + i * GRANULE, attrs)
        else:
            assert done == 0
            assert not changed, "a failed FIRME call changed the GPT"

    @rule(
        cpu=cpus,
        caller=st.sampled_from(CALLERS),
        base=pool,
        count=st.integers(min_value=1, max_value=3),
        ns_wants=st.sampled_from((GPI_SECURE, GPI_REALM)),
    )
    def firme_flip(self, cpu: int, caller: State, base: int, count: int, ns_wants: int) -> None:
        """A request that is legal for a Secure or Realm caller (flip its own kind of granule
        from/to NS); a Non-secure caller tries the same for ``ns_wants`` and must be denied."""
        own = {State.SECURE: GPI_SECURE, State.REALM: GPI_REALM}.get(caller, ns_wants)
        gpi = self.model.get(_granule(base))
        target = GPI_NS if gpi == own else own
        self.firme_gpi_set(cpu, caller, base, count, target)

    # -------------------------------------------------------------- accesses
    def access(self, cpu: int, state: State, pas: Pas, pa: int, data: bytes | None) -> Outcome:
        """Read (``data`` None) or write 8 bytes; check the outcome against the model."""
        expected = expected_access(self.gpi(pa) if pa < PPS else None, pa, pas)
        gpt_before = self.gpt_bytes()
        dram = is_dram(pa) and is_backed(pa, 8)
        before = self.p.memory.read(pa, 8) if dram else None
        port = self.port(cpu, state)
        kind = AccessKind.READ if data is None else AccessKind.WRITE
        try:
            if data is None:
                got = port.read(pa, 8, pas)
                if dram:
                    assert got == before
            else:
                port.write(pa, data, pas)
        except (GranuleProtectionFault, GptAddressSizeFault, ExternalAbort) as fault:
            event(f"access: {type(fault).__name__}")
            assert type(fault) is expected.fault, (
                f"{kind} {pa:#x} from {state.name} via {pas.name} PAS "
                f"(GPI {self.gpi(pa) if pa < PPS else None}): got {fault!r}, "
                f"expected {expected.fault}"
            )
            assert fault.pa == pa and fault.pas is pas and fault.access is kind
            assert fault.security_state is state
            if isinstance(fault, GranuleProtectionFault):
                assert fault.level == (0 if (pa >> L0_SHIFT) in self.l0_blocks else 1)
            if dram:
                assert self.p.memory.read(pa, 8) == before, "a failed write changed memory"
        else:
            event("access: passed")
            assert expected.fault is None, (
                f"{kind} {pa:#x} from {state.name} via {pas.name} PAS "
                f"(GPI {self.gpi(pa)}) succeeded, expected {expected.fault}"
            )
            if data is not None and dram:
                assert self.p.memory.read(pa, 8) == data
                if pas is Pas.REALM and self.gpi(pa) == GPI_REALM:
                    self.secrets[_granule(pa)] = (pa, data)  # the latest Realm store wins
        assert self.gpt_bytes() == gpt_before, "an access changed the GPT"
        return expected

    @rule(
        cpu=cpus,
        emit=st.sampled_from(LEGAL_EMITS),
        pa=pool,
        write=st.booleans(),
        data=st.binary(min_size=8, max_size=8),
    )
    def read_or_write(
        self, cpu: int, emit: tuple[State, Pas], pa: int, write: bool, data: bytes
    ) -> None:
        state, pas = emit
        self.access(cpu, state, pas, pa, data if write else None)

    @rule(cpu=cpus, pa=pool, data=st.binary(min_size=8, max_size=8))
    def realm_writes_secret(self, cpu: int, pa: int, data: bytes) -> None:
        """Realm code stores data in (what should be) its granule; NS must never read it."""
        self.access(cpu, State.REALM, Pas.REALM, pa, data)
        for other in range(CONFIG.cpus):
            self.access(other, State.NON_SECURE, Pas.NON_SECURE, pa, None)

    @rule(cpu=cpus, emit=st.sampled_from(ILLEGAL_EMITS), pa=pool)
    def cannot_emit(self, cpu: int, emit: tuple[State, Pas], pa: int) -> None:
        """A state cannot even issue an access to a PAS it cannot emit."""
        state, pas = emit
        dram = is_dram(pa) and is_backed(pa, 8)
        before = self.p.memory.read(pa, 8) if dram else None
        port = self.port(cpu, state)
        for op in ("read", "write"):
            try:
                if op == "read":
                    port.read(pa, 8, pas)
                else:
                    port.write(pa, b"\xa5" * 8, pas)
            except ValueError:
                pass
            else:
                raise AssertionError(f"{state.name} emitted a {pas.name}-PAS {op}")
        if before is not None:
            assert self.p.memory.read(pa, 8) == before

    # -------------------------------------------------------------- invariants
    @invariant()
    def gpt_matches_model(self) -> None:
        for g in TRACKED:
            want = self.model[g]
            if want is None:
                try:
                    self.p.el3.gpi(g)
                except GptAddressSizeFault:
                    continue
                raise AssertionError(f"GPT walk beyond the PPS at {g:#x} did not fault")
            got = int(self.p.el3.gpi(g))
            assert got == want, f"GPI of {g:#x} is {got:#06b}, model says {want:#06b}"

    @invariant()
    def no_stale_gpt_cache(self) -> None:
        """After a transition completes no PE may hold the old GPI (the TLBIs reached all)."""
        for pe in self.p.pes:
            for g in TRACKED:
                cached = pe.gpc.cached(g)
                assert cached is None or cached == self.model[g], (
                    f"PE {pe.index} caches GPI {cached} for {g:#x}, model {self.model[g]}"
                )

    @invariant()
    def l0_descriptor_types(self) -> None:
        gpt = self.p.monitor.gpt
        for i in range(gpt.geometry.l0_entries):
            desc = int.from_bytes(self.p.el3.read(gpt.l0_base + 8 * i, 8), "little")
            is_block = desc & 0xF == 0b0001
            assert is_block == (i in self.l0_blocks), f"L0 entry {i}: {desc:#x}"

    @invariant()
    def ns_never_reads_protected(self) -> None:
        """Realm (or Secure, Root, No-access) granules are never readable by the Normal
        world, from any PE; Realm data written there stays readable by the Realm."""
        for pa in POOL:
            if pa >= PPS:
                continue
            gpi = self.gpi(pa)
            assert gpi is not None
            if Pas.NON_SECURE in ADMITS[gpi]:
                continue
            for cpu in range(CONFIG.cpus):
                try:
                    self.p.cpus[cpu].host.read(pa, 8)
                except GranuleProtectionFault:
                    pass
                else:
                    raise AssertionError(f"NS read {pa:#x} with GPI {gpi:#06b} on PE {cpu}")
        for g, (pa, data) in self.secrets.items():
            assert self.model[g] == GPI_REALM
            assert self.p.cpus[0].probe(State.REALM).read(pa, 8, Pas.REALM) == data

    @invariant()
    def pes_back_in_normal_world(self) -> None:
        for pe in self.p.pes:
            assert (pe.el, pe.security_state) == (2, State.NON_SECURE)


_LONG = int(os.environ.get("CCASIM_LONG", "0") or 0)

TestGranuleTransitions = GranuleTransitions.TestCase
TestGranuleTransitions.settings = settings(
    max_examples=1000 * _LONG if _LONG else 60,
    stateful_step_count=100 if _LONG else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
