"""The hostile host: random RMI and FF-A calls against the model, with the invariant
checker on.

A run boots ``Platform(HOST_CONFIG, check_invariants=True)``, builds a small realm running a
benign guest (through the RMI, every call recorded), and then issues random steps from the
Normal world of either PE:

* RMI commands whose arguments are drawn per argument kind from what the host knows —
  *valid* (a live RD, REC, RTT, a delegated or Non-secure pool granule, a useful IPA or
  level), *stale* (an object that existed once and was destroyed) or *garbage* (unaligned,
  Secure, Root, the RMM's carve-out, MMIO, holes, beyond DRAM, beyond the PA space,
  ``2**64 - 1``, random words); sometimes with the SVE hint or junk in unused registers;
* sequences that reach deeper states: new realms from (sometimes mutated) RmiRealmParams,
  RTTs, DATA, RECs with their auxiliary granules, activation;
* random writes to RecRun pages (the RmiRecEnter half) and parameter pages;
* interleaved runs of the benign realm (REC_ENTER, completing each exit as a VMM would);
* FF-A calls: version, features, partition info, RX/TX mapping, direct messages to the
  partitions (including their memory commands), memory share / lend / donate of pool
  granules described in the TX buffer, reclaim;
* SMCs with FIDs nobody implements, RSI and RMM-EL3 FIDs from the wrong world.

Each step is a Python call on a :class:`Replay` (``r.smc(cpu, fid, *args)``,
``r.write(cpu, pa, data)``), so a failing run is a list of calls: :func:`shrink_steps`
removes what the failure does not need (delta debugging, the same failure signature on a
fresh platform) and :func:`reproducer` prints the rest as a standalone script.

Failures (:class:`~ccasim.fuzz.common.Failure`): an exception escaping an SMC (anything but
a clean return of registers) or a memory access other than an architectural fault; an
:class:`~ccasim.checker.InvariantViolation`; an isolation breach — a Non-secure read or write
of a granule whose GPI is not Non-secure succeeding (or one of a Non-secure granule
faulting); a PE not back in the Normal world at EL2 after an SMC; an RMI call that breaks
the return convention (an undefined x0, x5..x7 not preserved).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..arch.faults import ArchFault
from ..arch.gpt import Gpi
from ..arch.memory import GRANULE_SIZE
from ..arch.security import SecurityState
from ..config import PlatformConfig
from ..guest import abi
from ..guest.abi import ExceptionPolicy
from ..guest.asm import Image
from ..guest.programs import GuestLayout, build
from ..guest.runtime import data_bytes
from ..host.rmi import FID, RealmBuilder, RmiClient, default_start_level, realm_params
from ..host.rmi import rec_params as pack_rec_params
from ..host.vmm import RealmSpec, RealmVm, Segment, Vmm
from ..platform import Platform, WorldPort
from ..rmm.recrun import REC_ENTER, REC_EXIT, REC_EXIT_OFFSET, RecExitReason
from ..rmm.rmi.realm import REALM_PARAMS
from ..rmm.rmi.rec import REC_PARAMS
from ..rmm.s2tt import num_root_tables
from ..secure import ffa
from ..secure import partitions as sp
from ..trace import RMI_NAMES
from .common import (
    Failure,
    ShrinkStats,
    dispose,
    exception_failure,
    page,
    python_bytes,
    reproducer_header,
    shrink,
)

MASK64 = (1 << 64) - 1
G = GRANULE_SIZE

#: The platform every host run boots: two PEs (REC runs and calls move between them) and
#: little DRAM, so that the invariant checker's scans stay cheap.
HOST_CONFIG = PlatformConfig(cpus=2, dram_size=64 << 20)

VMM_POOL_OFFSET = 0x0100_0000  # the benign realm's granules (the VMM's allocator)
POOL_OFFSET = 0x0200_0000  # the fuzzer's pool of Non-secure granules
POOL_SIZE = 48

S2SZ = 40  # the benign realm's IPA width
GUEST_BASE = 0x8000_0000
GUEST_RAM = 0x1_0000
UNPROTECTED = 1 << (S2SZ - 1)
SHARED_IPA = UNPROTECTED + 0x10_0000
HOST_CALL_IMM = 0x4655  # "FU"
RIPAS_PAGE = GUEST_BASE + GUEST_RAM - GRANULE_SIZE  # unassigned RAM the guest flips
KEYSTORE_ID = 0x8001  # the Secure partitions' FF-A endpoint IDs
ECHO_ID = 0x8002

RMI_VERSION_1_0 = 0x1_0000
ENTER_EMUL_MMIO = 1 << 0


def fid_label(fid: int) -> str:
    """A readable name for a function ID (RMI, RSI, RMM-EL3, PSCI, FF-A...)."""
    fid32 = fid & 0xFFFF_FFFF
    if ffa.is_ffa(fid32):
        return ffa.fid_name(fid32)
    name = RMI_NAMES.get(fid32 & 0xFFFE_FFFF)
    if name is None:
        return f"SMC {fid:#x}"
    return name + (" (SVE hint)" if fid32 & (1 << 16) else "")


def is_rmi_fid(fid: int) -> bool:
    """An SMC64 fast call in the RMI 1.0 range (FNUM 0x150..0x169, the SVE hint ignored)."""
    fid &= 0xFFFF_FFFF & ~(1 << 16)
    return 0xC400_0150 <= fid <= 0xC400_0169


# ============================================================================ replay
class Replay:
    """Executes host steps on a platform and detects the first failure.

    The fuzzer drives the platform only through this class, and a reproducer script is a
    list of calls on it: ``r.smc(cpu, fid, *args)`` and ``r.write(cpu, pa, data)``. After
    the first failure every further call is ignored. After each step every PE must be back
    in the Normal world at EL2, and the Non-secure view of the granules the step named (and,
    every ``probe_every`` steps, of every granule named so far) must agree with the GPT.
    """

    page = staticmethod(page)

    def __init__(self, platform: Platform, *, probe_every: int = 8) -> None:
        self.p = platform
        self.ports = [cpu.host for cpu in platform.cpus]
        self.failure: Failure | None = None
        self.count = 0
        self.probe_every = probe_every
        self.seen: dict[int, None] = {}
        self._dram = [(r.base, r.end) for r in (platform.region("ns_dram"),
                                                platform.region("secure_dram"))]

    # ------------------------------------------------------------------ steps
    def smc(self, cpu: int, fid: int, *args: int) -> tuple[int, ...] | None:
        """One SMC from the Normal world of PE ``cpu``; None after a failure."""
        if self.failure is not None:
            return None
        index = self.count
        self.count += 1
        port = self.ports[cpu % len(self.ports)]
        sent = list(port.pe.x[:8])  # what x0..x7 hold as the SMC instruction executes
        for i, value in enumerate((fid, *args[:7])):
            sent[i] = value & MASK64
        try:
            regs = port.smc(fid, *args)
        except Exception as exc:
            self.failure = exception_failure(exc, index, f"{fid_label(fid)} on PE {cpu}")
            return None
        if is_rmi_fid(fid):
            self._check_rmi_return(index, fid, sent, regs)
            if self.failure is not None:
                return regs
        self._after(index, args)
        return regs

    def _check_rmi_return(self, index: int, fid: int, sent: list[int],
                          regs: tuple[int, ...]) -> None:
        """The RMI return convention (rmm-abi §2.1, §2.2): x0 is SUCCESS, a packed error
        with a status the version defines (the index nonzero only for ERROR_RTT and
        REC_ENTER's ERROR_REALM) or SMC_UNKNOWN for an unallocated FID; only x0..x4 carry
        results, so x5..x7 are what the host passed."""
        x0 = regs[0]
        status, idx = x0 & 0xFF, (x0 >> 8) & 0xFF
        name = fid_label(fid)
        if x0 == MASK64:
            ok = (fid & 0xFFFE_FFFF) not in RMI_NAMES
        elif x0 >> 16 or status > 4:
            ok = False
        elif status == 4:
            ok = idx <= 3 or idx == 0xFF
        elif status == 2 and (fid & 0xFFFE_FFFF) == FID["REC_ENTER"]:
            ok = idx <= 1
        else:
            ok = idx == 0
        if not ok:
            self.failure = Failure("abi", "rmi-status", index,
                                   f"{name} returned x0 = {x0:#x}, not an RMI status")
            return
        for i in (5, 6, 7):
            if regs[i] != sent[i]:
                self.failure = Failure("abi", f"rmi-x{i}", index,
                                       f"{name} changed x{i} from {sent[i]:#x} to "
                                       f"{regs[i]:#x}")
                return

    def write(self, cpu: int, pa: int, data: bytes) -> bool:
        """A Non-secure store of ``data`` (within one granule) at ``pa``; True if the GPC
        let it through."""
        if self.failure is not None:
            return False
        index = self.count
        self.count += 1
        gpi = self._gpi(pa)
        try:
            self.ports[cpu % len(self.ports)].write(pa, data)
            ok = True
        except ArchFault:
            ok = False
        except Exception as exc:
            self.failure = exception_failure(exc, index, f"NS write of {pa:#x}")
            return False
        if ok and gpi is not None and gpi not in (Gpi.NON_SECURE, Gpi.ANY):
            self.failure = Failure("isolation", f"ns-write-{gpi.name}", index,
                                   f"a Non-secure write of {pa:#x} (GPI {gpi.name}) succeeded")
            return True
        self._after(index, (pa,))
        return ok

    def report(self, expect: str | None = None) -> int:
        """Print the failure (with its traceback); for reproducers: assert that it is the
        ``expect``-ed one. Returns 0 (the script's exit status when it reproduced)."""
        if self.failure is None:
            print(f"no failure in {self.count} steps")
        else:
            print(f"reproduced: {self.failure}")
            if self.failure.detail:
                print(self.failure.detail.rstrip())
        if expect is not None:
            got = self.failure.signature if self.failure is not None else None
            assert got == expect, f"expected failure {expect}, got {got}"
        return 0

    # ------------------------------------------------------------------ checks
    def _in_dram(self, pa: int) -> bool:
        return any(lo <= pa < hi for lo, hi in self._dram)

    def _gpi(self, pa: int) -> Gpi | None:
        if not self._in_dram(pa):
            return None
        try:
            return Gpi(self.p.el3.gpi(pa))
        except Exception:
            return None

    def _after(self, index: int, addrs: Sequence[int]) -> None:
        for pe in self.p.pes:
            if (pe.el, pe.security_state) != (2, SecurityState.NON_SECURE):
                self.failure = Failure(
                    "world", f"{pe.security_state.name}-EL{pe.el}", index,
                    f"PE {pe.index} left at {pe.security_state.name} EL{pe.el} after the step")
                return
        named = []
        for a in addrs:
            a &= MASK64
            if self._in_dram(a):
                g = a & ~(G - 1)
                named.append(g)
                self.seen[g] = None
        probe = list(self.seen) if index % self.probe_every == self.probe_every - 1 else named
        for g in probe:
            self._probe(index, g)
            if self.failure is not None:
                return

    def _probe(self, index: int, granule: int) -> None:
        gpi = self._gpi(granule)
        if gpi is None:
            return
        port = self.ports[index % len(self.ports)]
        try:
            port.read(granule, 8)
            ok = True
        except ArchFault:
            ok = False
        except Exception as exc:
            self.failure = exception_failure(exc, index, f"NS read of {granule:#x}")
            return
        admits = gpi in (Gpi.NON_SECURE, Gpi.ANY)
        if ok and not admits:
            self.failure = Failure("isolation", f"ns-read-{gpi.name}", index,
                                   f"a Non-secure read of {granule:#x} (GPI {gpi.name}) "
                                   "succeeded")
        elif not ok and admits:
            self.failure = Failure("isolation", "ns-read-ns-faulted", index,
                                   f"a Non-secure read of {granule:#x} (GPI {gpi.name}) "
                                   "faulted")


@dataclass(frozen=True)
class Step:
    """One host action: an SMC (``op == "smc"``) or a Non-secure write (``"write"``)."""

    op: str
    cpu: int
    fid: int = 0
    args: tuple[int, ...] = ()
    pa: int = 0
    data: bytes = b""
    note: str = ""

    def apply(self, r: Replay) -> tuple[int, ...] | bool | None:
        if self.op == "smc":
            return r.smc(self.cpu, self.fid, *self.args)
        return r.write(self.cpu, self.pa, self.data)

    def python(self, var: str = "r") -> str:
        if self.op == "smc":
            call = f"{var}.smc({self.cpu}, {self.fid:#x}" + "".join(
                f", {a:#x}" for a in self.args) + ")"
            note = self.note or fid_label(self.fid)
        else:
            call = f"{var}.write({self.cpu}, {self.pa:#x}, {var}.{python_bytes(self.data)})"
            note = self.note
        return call + (f"  # {note}" if note else "")

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "cpu": self.cpu, "fid": self.fid, "args": list(self.args),
                "pa": self.pa, "data": self.data.hex(), "note": self.note}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Step:
        return cls(d["op"], int(d["cpu"]), int(d["fid"]), tuple(int(a) for a in d["args"]),
                   int(d["pa"]), bytes.fromhex(d["data"]), str(d["note"]))


def replay(steps: Sequence[Step], config: PlatformConfig = HOST_CONFIG) -> Replay:
    """Run ``steps`` on a fresh platform (invariant checker on); the Replay holds the first
    failure, if any."""
    p = Platform(config, check_invariants=True)
    r = Replay(p)
    try:
        for step in steps:
            step.apply(r)
            if r.failure is not None:
                break
    finally:
        dispose(p)
    return r


# ============================================================================ the guest
def benign_guest(layout: GuestLayout) -> Image:
    """The realm the host runs between its attacks. vCPU 0 starts vCPU 1 with PSCI CPU_ON
    (a PSCI exit), then both loop forever: a console write (an emulated MMIO exit),
    RSI_VERSION, an RSI_HOST_CALL exit, a WFI (an IRQ exit unless trapped), an
    RSI_IPA_STATE_SET of one unassigned RAM page to EMPTY or back to RAM (a RIPAS change
    exit) and PSCI_AFFINITY_INFO of the other vCPU (a PSCI exit). Exceptions (an injected
    SEA...) are recorded and skipped."""

    def loop(name: str, hc: str, other: int) -> str:
        return f"""\
    adr x19, {hc}
    mov x20, #0
.L{name}_loop:
    mov w0, #0x2e
    bl uart_putc
    movz x1, #1, lsl #16
    bl rsi_version
    movz w9, #{HOST_CALL_IMM:#x}
    str w9, [x19]
    str x20, [x19, #8]
    mov x0, x19
    bl host_call
    wfi
    movz x1, #{RIPAS_PAGE & 0xFFFF:#x}
    movk x1, #{RIPAS_PAGE >> 16:#x}, lsl #16
    add x2, x1, #0x1000
    and x3, x20, #1
    mov x4, #0
    bl rsi_ipa_state_set
    mov x1, #{other}
    mov x2, #0
    bl psci_affinity_info
    add x20, x20, #1
    b .L{name}_loop
"""

    main = f"""\
main:
    mov x1, #1
    adr x2, secondary_entry
    mov x3, #1
    bl psci_cpu_on
{loop("primary", "fuzz_hc", 1)}
secondary_main:
{loop("secondary", "fuzz_hc1", 0)}"""
    size = abi.RSI_HOST_CALL_LAYOUT.size
    data = (data_bytes("fuzz_hc", bytes(size), align=abi.RSI_HOST_CALL_ALIGN)
            + data_bytes("fuzz_hc1", bytes(size), align=abi.RSI_HOST_CALL_ALIGN))
    return build(layout, main, data=data, cpus=2, exception_policy=ExceptionPolicy.SKIP)


class _RecordingPort(WorldPort):
    """The Normal world of one PE, with every SMC and write made a step of the run."""

    def __init__(self, fuzzer: HostFuzzer, cpu: int) -> None:
        pe = fuzzer.p.cpus[cpu].pe
        super().__init__(pe, SecurityState.NON_SECURE, 2)
        self.fuzzer = fuzzer
        self.cpu = cpu

    def smc(self, fid: int, *args: int) -> tuple[int, ...]:
        regs = self.fuzzer.smc(self.cpu, fid, *args, note=f"{fid_label(fid)} (setup)")
        if regs is None:
            raise _Stop
        return regs

    def write(self, pa: int, data: bytes, pas: Any = None) -> None:
        self.fuzzer.write(self.cpu, pa, bytes(data), note="setup")
        if self.fuzzer.r.failure is not None:
            raise _Stop


class _Stop(Exception):
    """A failure happened: unwind the fuzzer's current action."""


# ============================================================================ the fuzzer
@dataclass
class HostRun:
    """The outcome of one run: the steps issued (a failing run stops at the failing one),
    the failure if any, and what the actions did."""

    seed: int
    steps: list[Step]
    failure: Failure | None
    seconds: float
    actions: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)


RMI_ARGS: dict[str, tuple[str, ...]] = {
    "VERSION": ("version",),
    "GRANULE_DELEGATE": ("gran",),
    "GRANULE_UNDELEGATE": ("delegated",),
    "DATA_CREATE": ("rd", "delegated", "ipa", "src", "flags"),
    "DATA_CREATE_UNKNOWN": ("rd", "delegated", "ipa"),
    "DATA_DESTROY": ("rd", "ipa"),
    "REALM_ACTIVATE": ("rd",),
    "REALM_CREATE": ("delegated", "params"),
    "REALM_DESTROY": ("rd",),
    "REC_CREATE": ("rd", "delegated", "params"),
    "REC_DESTROY": ("rec",),
    "REC_ENTER": ("rec", "run"),
    "RTT_CREATE": ("rd", "delegated", "ipa", "level"),
    "RTT_DESTROY": ("rd", "ipa", "level"),
    "RTT_MAP_UNPROTECTED": ("rd", "uipa", "level", "desc"),
    "RTT_READ_ENTRY": ("rd", "ipa", "level"),
    "RTT_UNMAP_UNPROTECTED": ("rd", "uipa", "level"),
    "PSCI_COMPLETE": ("rec", "rec", "psci_status"),
    "FEATURES": ("small",),
    "RTT_FOLD": ("rd", "ipa", "level"),
    "REC_AUX_COUNT": ("rd",),
    "RTT_INIT_RIPAS": ("rd", "ipa", "ipa_top"),
    "RTT_SET_RIPAS": ("rd", "rec", "ipa", "ipa_top"),
}
# Which knowledge list feeds each argument kind's "valid" draw.
ROLE_OF = {"rd": "rd", "rec": "rec", "delegated": "delegated", "run": "run",
           "params": "params", "src": "ns", "gran": "ns"}
RMI_WEIGHTS = {
    "GRANULE_DELEGATE": 8, "GRANULE_UNDELEGATE": 6, "DATA_CREATE": 5,
    "DATA_CREATE_UNKNOWN": 5, "DATA_DESTROY": 4, "REALM_ACTIVATE": 3, "REALM_CREATE": 3,
    "REALM_DESTROY": 3, "REC_CREATE": 3, "REC_DESTROY": 3, "REC_ENTER": 5, "RTT_CREATE": 6,
    "RTT_DESTROY": 4, "RTT_MAP_UNPROTECTED": 4, "RTT_READ_ENTRY": 3,
    "RTT_UNMAP_UNPROTECTED": 3, "PSCI_COMPLETE": 3, "FEATURES": 1, "RTT_FOLD": 4,
    "REC_AUX_COUNT": 1, "RTT_INIT_RIPAS": 4, "RTT_SET_RIPAS": 4, "VERSION": 1,
}
DESTROYERS = frozenset({"REALM_DESTROY", "REC_DESTROY", "DATA_DESTROY", "RTT_DESTROY"})
ACTION_WEIGHTS = {
    "rmi": 45, "realm_create": 4, "rec_create": 2, "data_create": 4, "rec_run": 14,
    "write_page": 10, "ffa": 16, "odd_fid": 3,
}
FFA_SEND = (ffa.FFA_MEM_SHARE_64, ffa.FFA_MEM_LEND_64, ffa.FFA_MEM_DONATE_64,
            ffa.FFA_MEM_SHARE_32, ffa.FFA_MEM_LEND_32)
ODD_FIDS = (
    0xC400_0156, 0xC400_0160, 0xC400_0163, 0xC400_016A, 0xC400_018F, 0xC400_0190,
    0xC400_0194, 0xC400_0199, 0xC400_01B0, 0xC400_01B1, 0xC400_01B2, 0xC400_01B3,
    0xC400_01CF, 0xC400_0400, 0xC400_0402, 0x8400_0000, 0x8400_0002, 0x8400_0008,
    0x8400_000A, 0x8000_0000, 0x8000_0001, 0x8400_0060, 0x8400_0061, 0x8400_006B,
    0x8400_006D, 0xC400_0070, 0x8400_0075, 0x8400_0076, 0x8400_00FF, 0xC400_0074,
)


class HostFuzzer:
    """One seeded run of the hostile host (see the module docstring)."""

    def __init__(self, seed: int, config: PlatformConfig = HOST_CONFIG) -> None:
        self.seed = seed
        self.config = config
        self.rng = random.Random(seed)
        self.p = Platform(config, check_invariants=True)
        self.r = Replay(self.p)
        self.steps: list[Step] = []
        self.actions: dict[str, int] = {}
        self.statuses: dict[str, int] = {}
        ns = self.p.region("ns_dram")
        self.pool = [ns.base + POOL_OFFSET + i * G for i in range(POOL_SIZE)]
        sec = self.p.region("secure_dram")
        gpt = self.p.monitor.gpt
        self.garbage = [
            0, MASK64, ns.base + POOL_OFFSET + 0x808, ns.base + POOL_OFFSET + 8, sec.base,
            sec.base + sec.size - G, self.p.region("root").base, gpt.l0_base,
            self.p.region("rmm").base, self.p.region("uart0").base, 0x1000_0000, ns.end,
            ns.end - G, 1 << 48, (1 << 52) - G, 1 << 63, ns.base, ns.base + VMM_POOL_OFFSET,
        ]
        self.roles: dict[str, list[int]] = {
            "rd": [], "rec": [], "delegated": [], "run": [], "params": [], "ns": list(self.pool),
            "rtt": [], "data": [],
        }
        self.stale: list[int] = []
        self.ipas: list[int] = [
            0, GUEST_BASE, GUEST_BASE + G, GUEST_BASE + 0x2000, GUEST_BASE + GUEST_RAM - G,
            GUEST_BASE + 0x20_0000, 0x4000_0000, 0x4000_1000, 0x4020_0000, 0xC000_0000,
            UNPROTECTED - G, (1 << S2SZ) - G, 1 << S2SZ, 1 << 48, GUEST_BASE + 0x800,
        ]
        self.uipas = [UNPROTECTED, SHARED_IPA, UNPROTECTED + G, UNPROTECTED + 0x20_0000,
                      UNPROTECTED + 0x4000_0000, (1 << S2SZ) - G, GUEST_BASE]
        self.handles: list[int] = [0, 1, 1 << 63, MASK64]
        # The Normal world's RX/TX buffers: two granules of their own, mapped at setup.
        self.mailbox = (ns.base + POOL_OFFSET - 2 * G, ns.base + POOL_OFFSET - G)
        self.rxtx: tuple[int, int] | None = None
        self.tables: list[tuple[int, int, int]] = []  # (rd, ipa, level) of created RTTs
        self.vm: RealmVm | None = None
        self.pending: dict[int, int] = {}  # RmiRecEnter.flags each benign REC's exit asks
        self.psci_pending: dict[int, bool] = {}  # a benign REC's PSCI exit awaits completion
        self.vmid = 8

    # ------------------------------------------------------------------ steps
    def smc(self, cpu: int, fid: int, *args: int, note: str = "") -> tuple[int, ...] | None:
        args = tuple(a & MASK64 for a in args)
        self.steps.append(Step("smc", cpu, fid & MASK64, args, note=note))
        regs = self.r.smc(cpu, fid, *args)
        if regs is not None:
            key = f"{fid_label(fid).split(' ')[0]}={self._status(fid, regs)}"
            self.statuses[key] = self.statuses.get(key, 0) + 1
        return regs

    def write(self, cpu: int, pa: int, data: bytes, note: str = "") -> bool:
        self.steps.append(Step("write", cpu, pa=pa, data=data, note=note))
        return self.r.write(cpu, pa, data)

    @staticmethod
    def _status(fid: int, regs: tuple[int, ...]) -> str:
        if ffa.is_ffa(fid & 0xFFFF_FFFF):
            code = ffa.error_of(regs)
            return code.name if code is not None else "ok"
        x0 = regs[0]
        if x0 == MASK64:
            return "unknown"
        return "ok" if x0 == 0 else f"{x0 & 0xFF}"

    # ------------------------------------------------------------------ run
    def run(self, steps: int, *, deadline: float | None = None) -> HostRun:
        """Set up the benign realm, then issue about ``steps`` random steps (the setup's
        own calls count too); stop at the first failure or at ``deadline``."""
        start = time.perf_counter()
        try:
            if self.start() is None:
                while len(self.steps) < steps and self.r.failure is None:
                    if deadline is not None and time.perf_counter() > deadline:
                        break
                    action = self.rng.choices(list(ACTION_WEIGHTS),
                                              weights=list(ACTION_WEIGHTS.values()))[0]
                    self.act(action)
        finally:
            dispose(self.p)
        return HostRun(self.seed, self.steps, self.r.failure, time.perf_counter() - start,
                       self.actions, self.statuses)

    def start(self) -> Failure | None:
        """:meth:`setup`; returns the failure if one happened."""
        try:
            self.setup()
        except _Stop:
            pass
        except RuntimeError as exc:
            self.r.failure = exception_failure(exc, self.r.count, "setting the realm up")
        return self.r.failure

    def act(self, action: str, rng: random.Random | None = None) -> Failure | None:
        """One action (a key of :data:`ACTION_WEIGHTS`), its choices drawn from ``rng``
        (by default the run's own); returns the failure if one happened. For drivers other
        than :meth:`run`, e.g. a Hypothesis state machine choosing the actions."""
        if rng is not None:
            self.rng = rng
        self.actions[action] = self.actions.get(action, 0) + 1
        try:
            getattr(self, f"act_{action}")()
        except _Stop:
            pass
        except Exception as exc:  # a bug of the fuzzer: report it, keep the campaign going
            self.r.failure = exception_failure(exc, self.r.count, f"action {action}")
        return self.r.failure

    def setup(self) -> None:
        """The benign realm, built by a VMM whose every RMI call and write is a step."""
        vmm = Vmm(self.p)
        vmm.client = RmiClient(self.p, _RecordingPort(self, 0), pool_offset=VMM_POOL_OFFSET)
        vmm.builder = RealmBuilder(vmm.client)
        layout = GuestLayout(ram_base=GUEST_BASE, ram_size=GUEST_RAM, s2sz=S2SZ)
        image = benign_guest(layout)
        spec = RealmSpec(segments=(Segment(image.base, image.data),), entry=image.entry,
                         ram=((GUEST_BASE, GUEST_RAM),), s2sz=S2SZ, vcpus=2,
                         uart_ipa=layout.uart_ipa, shared=((SHARED_IPA, G),), vmid=1)
        try:
            vm = vmm.create(spec)
        except RuntimeError as err:
            if self.r.failure is None:
                raise RuntimeError(f"the benign realm could not be built: {err}") from err
            raise _Stop from err
        self.vm = vm
        h = vm.handle
        self.roles["rd"].append(h.rd)
        self.roles["rec"] += vm.recs
        self.roles["run"] += vm.run_pages
        self.roles["rtt"] += [h.rtt_base + i * G for i in range(h.num_start)]
        self.roles["rtt"] += list(h.rtts.values())
        self.roles["data"] += list(h.data.values())
        self.ipas += [ipa for ipa in h.data]
        for rec in vm.recs:
            self.roles["delegated"] += vm.handle.aux[rec][:2]
        for (level, ipa) in h.rtts:
            self.tables.append((h.rd, ipa, level))
        regs = self.smc(0, ffa.FFA_RXTX_MAP_64, *self.mailbox, 1, note="FFA_RXTX_MAP_64 (setup)")
        if regs is None:
            raise _Stop
        if ffa.error_of(regs) is None:
            self.rxtx = self.mailbox

    # ------------------------------------------------------------------ drawing
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, values: Sequence[int]) -> int:
        return values[self.rng.randrange(len(values))]

    def garbage_value(self) -> int:
        rng = self.rng
        k = rng.randrange(6)
        if k == 0:
            return rng.getrandbits(64)
        if k == 1:
            return self.pick(self.pool) + rng.choice((1, 8, 0x800, 0xFFF))
        if k == 2:
            return rng.randrange(16)
        return self.pick(self.garbage)

    def arg(self, kind: str) -> int:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12:
            return self.garbage_value()
        if roll < 0.2 and self.stale:
            return self.pick(self.stale)
        role = ROLE_OF.get(kind)
        if role is not None:
            values = self.roles[role]
            if kind == "delegated" and (not values or rng.random() < 0.25):
                values = self.pool
            return self.pick(values) if values else self.pick(self.pool)
        if kind == "ipa":
            base = self.pick(self.ipas)
            return base if rng.random() < 0.8 else base + rng.choice((G, 0x20_0000, 0x800))
        if kind == "uipa":
            return self.pick(self.uipas)
        if kind == "ipa_top":
            return self.pick(self.ipas) + rng.choice((G, 2 * G, 0x20_0000, 0x4000_0000, 0))
        if kind == "level":
            return rng.choices((3, 2, 1, 0, -1, 4), weights=(10, 6, 3, 1, 1, 1))[0]
        if kind == "desc":
            oa = self.pick(self.pool) if rng.random() < 0.8 else self.pick(self.garbage)
            attrs = rng.choice((0b111 << 2 | 0b11 << 6, 0b111 << 2 | 0b01 << 6, 0,
                                rng.getrandbits(12) & ~0x3))
            return (oa & ~(G - 1)) | attrs
        if kind == "flags":
            return rng.choice((0, 1, 1, 2))
        if kind == "psci_status":
            return rng.choice((0, 0, -1 & MASK64, -2 & MASK64, -3 & MASK64, -4 & MASK64, 7))
        if kind == "version":
            return rng.choice((RMI_VERSION_1_0, RMI_VERSION_1_0, 0x1_0001, 0x2_0000, 0))
        return rng.choice((0, 1, 2, 3, rng.getrandbits(64)))

    def pick_table(self) -> tuple[int, int, int]:
        return self.tables[self.rng.randrange(len(self.tables))]

    @property
    def protected(self) -> set[int]:
        vm = self.vm
        return set() if vm is None else {vm.handle.rd, *vm.recs}

    def cpu(self) -> int:
        return self.rng.randrange(len(self.p.cpus))

    # ------------------------------------------------------------------ knowledge
    def learn(self, name: str, args: Sequence[int], regs: tuple[int, ...] | None) -> None:
        """Update what the host knows from a successful RMI command."""
        if regs is None or regs[0] != 0:
            return
        roles = self.roles

        def add(role: str, value: int) -> None:
            if value not in roles[role]:
                roles[role].append(value)

        def drop(role: str, value: int) -> None:
            if value in roles[role]:
                roles[role].remove(value)
                if value not in self.stale:
                    self.stale.append(value)

        if name == "GRANULE_DELEGATE":
            add("delegated", args[0])
            if args[0] in roles["ns"]:
                roles["ns"].remove(args[0])
        elif name == "GRANULE_UNDELEGATE":
            drop("delegated", args[0])
            if args[0] in self.pool:
                add("ns", args[0])
        elif name == "REALM_CREATE":
            drop("delegated", args[0])
            add("rd", args[0])
        elif name == "REALM_DESTROY":
            drop("rd", args[0])
        elif name == "REC_CREATE":
            drop("delegated", args[1])
            add("rec", args[1])
        elif name == "REC_DESTROY":
            drop("rec", args[0])
        elif name in ("DATA_CREATE", "DATA_CREATE_UNKNOWN"):
            drop("delegated", args[1])
            add("data", args[1])
            if args[2] not in self.ipas:
                self.ipas.append(args[2])
        elif name == "DATA_DESTROY" and regs[1] in roles["data"]:
            drop("data", regs[1])
            add("delegated", regs[1])
        elif name == "RTT_CREATE":
            drop("delegated", args[1])
            add("rtt", args[1])
            self.tables.append((args[0], args[2], args[3]))
        elif name == "RTT_DESTROY" and regs[1] in roles["rtt"]:
            drop("rtt", regs[1])
            add("delegated", regs[1])

    def rmi(self, cpu: int, name: str, *args: int, note: str = "") -> tuple[int, ...] | None:
        regs = self.smc(cpu, FID[name], *args, note=note)
        if regs is None:
            raise _Stop
        self.learn(name, args, regs)
        return regs

    def delegate(self, cpu: int, g: int) -> bool:
        if g in self.roles["delegated"]:
            return True
        regs = self.rmi(cpu, "GRANULE_DELEGATE", g)
        return regs is not None and regs[0] == 0

    def scratch(self) -> int:
        """A Non-secure pool granule for a parameter structure."""
        values = self.roles["ns"] or self.pool
        g = self.pick(values)
        if g not in self.roles["params"]:
            self.roles["params"].append(g)
        return g

    # ------------------------------------------------------------------ actions
    def act_rmi(self) -> None:
        rng = self.rng
        name = rng.choices(list(RMI_WEIGHTS), weights=list(RMI_WEIGHTS.values()))[0]
        args = [self.arg(kind) for kind in RMI_ARGS[name]]
        if name in ("RTT_FOLD", "RTT_DESTROY", "RTT_READ_ENTRY") and self.tables and (
                rng.random() < 0.6):
            rd, ipa, level = self.pick_table()
            args[:3] = [rd, ipa, level]
        if name in DESTROYERS and args[0] in self.protected and rng.random() < 0.97:
            return  # leave the benign realm alive most of the time
        if rng.random() < 0.1:
            args += [rng.getrandbits(64) for _ in range(rng.randrange(1, 8))]
        fid = FID[name] | ((1 << 16) if rng.random() < 0.04 else 0)
        regs = self.smc(self.cpu(), fid, *args)
        if regs is None:
            raise _Stop
        if not fid & (1 << 16):
            self.learn(name, [a & MASK64 for a in args], regs)

    def act_realm_create(self) -> None:
        rng = self.rng
        cpu = self.cpu()
        rd = self.pick(self.pool)
        s2sz = rng.choice((32, 36, 39, 40, 40, 44, 48))
        sl = default_start_level(s2sz)
        n = num_root_tables(s2sz, sl)
        base_index = rng.randrange(0, POOL_SIZE - n + 1)
        rtt = self.pool[base_index] & ~(n * G - 1) if rng.random() < 0.8 else self.pick(self.pool)
        for g in [rd, *(rtt + i * G for i in range(n))]:
            if g in self.pool:
                self.delegate(cpu, g)
        self.vmid += 1
        fields: dict[str, Any] = {
            "rtt_base": rtt, "s2sz": s2sz, "vmid": self.vmid if rng.random() < 0.9 else 1,
            "hash_algo": rng.choice((0, 0, 1, 2)), "rtt_level_start": sl,
            "rtt_num_start": n, "num_bps": rng.choice((1, 2, 3)), "num_wps": 1,
            "flags": 0,
        }
        if rng.random() < 0.3:
            key = rng.choice(list(fields))
            fields[key] = rng.choice((0, 1, -1 & MASK64, rng.getrandbits(16), 64))
        params = self.scratch()
        data = realm_params(**fields)
        if not self.write(cpu, params, data, note="RmiRealmParams"):
            return
        self.rmi(cpu, "REALM_CREATE", rd, params)

    def act_rec_create(self) -> None:
        rng = self.rng
        if not self.roles["rd"]:
            return
        cpu = self.cpu()
        rd = self.pick(self.roles["rd"])
        candidates = [g for g in self.pool if g not in self.roles["params"]]
        rng.shuffle(candidates)
        rec, aux = candidates[0], candidates[1:17]
        for g in [rec, *aux]:
            self.delegate(cpu, g)
        params = self.scratch()
        if params in aux or params == rec:
            return
        data = pack_rec_params(pc=rng.choice((GUEST_BASE, 0, GUEST_BASE + 2)),
                               mpidr=rng.choice((0, 1, 2, 0x100, 0x10)),
                               runnable=rng.random() < 0.7,
                               aux=aux if rng.random() < 0.9 else aux[:rng.randrange(17)],
                               gprs=[rng.getrandbits(64) for _ in range(rng.randrange(9))])
        if not self.write(cpu, params, data, note="RmiRecParams"):
            return
        self.rmi(cpu, "REC_CREATE", rd, rec, params)

    def act_data_create(self) -> None:
        rng = self.rng
        if not self.roles["rd"]:
            return
        cpu = self.cpu()
        rd = self.pick(self.roles["rd"])
        ipa = self.pick(self.ipas) & ~(G - 1)
        level_base = ipa & ~(0x20_0000 - 1)
        for level in (2, 3):
            if rng.random() < 0.6:
                g = self.pick(self.pool)
                if self.delegate(cpu, g):
                    base = level_base if level == 3 else ipa & ~(0x4000_0000 - 1)
                    self.rmi(cpu, "RTT_CREATE", rd, g, base, level)
        if rng.random() < 0.5:
            self.rmi(cpu, "RTT_INIT_RIPAS", rd, ipa, ipa + G * rng.randrange(1, 4))
        g = self.pick(self.pool)
        if not self.delegate(cpu, g):
            return
        if rng.random() < 0.5:
            src = self.pick(self.roles["ns"] or self.pool)
            if rng.random() < 0.5:  # code for the realm's RECs to run: random words
                self.write(cpu, src, rng.randbytes(4 * rng.randrange(1, 64)), note="code")
            self.rmi(cpu, "DATA_CREATE", rd, g, ipa, src, rng.choice((0, 1)))
        else:
            self.rmi(cpu, "DATA_CREATE_UNKNOWN", rd, g, ipa)
        if rng.random() < 0.2:
            self.rmi(cpu, "REALM_ACTIVATE", rd)

    def act_rec_run(self) -> None:
        """Run the benign realm's REC 0 (sometimes REC 1) as a VMM would."""
        rng = self.rng
        vm = self.vm
        if vm is None:
            return
        idx = 0 if rng.random() < 0.6 else 1
        cpu = self.cpu()
        rec, run = vm.recs[idx], vm.run_pages[idx]
        if self.psci_pending.get(idx) and rng.random() < 0.9:
            # the REC cannot run before its PSCI request is completed
            target = vm.recs[1 - idx] if rng.random() < 0.95 else self.pick(
                self.roles["rec"] or vm.recs)
            regs = self.rmi(cpu, "PSCI_COMPLETE", rec, target, 0)
            if regs is not None and regs[0] == 0:
                self.psci_pending[idx] = False
        flags = self.pending.get(idx, 0)
        if rng.random() < 0.15:
            flags = rng.getrandbits(5)
        gprs = [0] * 31
        if rng.random() < 0.2:
            gprs = [rng.getrandbits(64) for _ in range(31)]
        enter = REC_ENTER.pack({"flags": flags, "gprs": b"".join(
            v.to_bytes(8, "little") for v in gprs)})
        if not self.write(cpu, run, enter, note=f"RmiRecEnter flags {flags:#x}"):
            return
        regs = self.rmi(cpu, "REC_ENTER", rec, run, note="RMI_REC_ENTER (benign realm)")
        if regs is None or regs[0] != 0:
            return
        try:
            raw = self.p.host.read(run + REC_EXIT_OFFSET, REC_EXIT.size)
        except ArchFault:
            return
        ex = REC_EXIT.unpack(raw)
        reason = int(ex["exit_reason"])
        esr = int(ex["esr"])
        self.pending[idx] = 0
        if reason == RecExitReason.SYNC and esr >> 26 == 0x24 and esr & (1 << 24):
            self.pending[idx] = ENTER_EMUL_MMIO
        elif reason == RecExitReason.PSCI:
            self.psci_pending[idx] = True
            if rng.random() < 0.8:
                target = vm.recs[1 - idx] if rng.random() < 0.9 else self.pick(
                    self.roles["rec"] or vm.recs)
                status = 0 if rng.random() < 0.8 else self.arg("psci_status")
                done = self.rmi(cpu, "PSCI_COMPLETE", rec, target, status)
                self.psci_pending[idx] = done is None or done[0] != 0
        elif reason == RecExitReason.RIPAS_CHANGE:
            if rng.random() < 0.2:
                self.pending[idx] = 1 << 4  # RIPAS_RESPONSE: reject
            elif rng.random() < 0.8:
                base, top = int(ex["ripas_base"]), int(ex["ripas_top"])
                if rng.random() < 0.2:
                    base, top = self.arg("ipa"), self.arg("ipa_top")
                self.rmi(cpu, "RTT_SET_RIPAS", vm.handle.rd, rec, base, top)

    def act_write_page(self) -> None:
        """Corrupt a RecRun page (its RmiRecEnter half) or a parameter page."""
        rng = self.rng
        runs = self.roles["run"]
        targets = [("run", g) for g in runs] + [("params", g) for g in self.roles["params"]]
        if not targets:
            targets = [("params", self.pick(self.pool))]
        what, g = targets[rng.randrange(len(targets))]
        if what == "run":
            fields = [(f.offset, min(f.width, 8)) for f in REC_ENTER.fields.values()]
            fields += [(0x200 + 8 * i, 8) for i in range(31)] + [(0x308 + 8 * i, 8)
                                                                 for i in range(16)]
        else:
            layout = rng.choice((REALM_PARAMS, REC_PARAMS))
            fields = [(f.offset, min(f.width, 8)) for f in layout.fields.values()]
            fields += [(0x808 + 8 * i, 8) for i in range(16)]
        offset, width = fields[rng.randrange(len(fields))]
        if rng.random() < 0.15:
            offset = rng.randrange(0, G - 8) & ~7
            width = 8
        value = rng.choice((0, 1, MASK64, 1 << 63, rng.getrandbits(64), self.pick(self.pool),
                            rng.randrange(32)))
        data = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
        self.write(self.cpu(), g + offset, data, note=f"corrupt {what} +{offset:#x}")

    def act_odd_fid(self) -> None:
        rng = self.rng
        if rng.random() < 0.7:
            fid = self.pick(ODD_FIDS)
        else:
            fid = rng.choice((0xC400_0000 | rng.randrange(0x10000),
                              0x8400_0000 | rng.randrange(0x10000), rng.getrandbits(64),
                              0xC400_0150 + rng.randrange(0x30)))
        args = [self.garbage_value() if rng.random() < 0.5 else self.pick(self.pool)
                for _ in range(rng.randrange(8))]
        if self.smc(self.cpu(), fid, *args) is None:
            raise _Stop

    # ------------------------------------------------------------------ FF-A
    def act_ffa(self) -> None:
        rng = self.rng
        cpu = self.cpu()
        k = rng.choices(("version", "features", "id", "info", "map", "unmap", "release",
                         "direct", "send", "reclaim"),
                        weights=(1, 1, 1, 2, 3, 1, 1, 6, 8, 5))[0]
        regs: tuple[int, ...] | None
        if k == "version":
            regs = self.smc(cpu, ffa.FFA_VERSION, rng.choice((ffa.FFA_VERSION_1_1,
                                                               ffa.FFA_VERSION_1_0, 1 << 31,
                                                               rng.getrandbits(32))))
        elif k == "features":
            regs = self.smc(cpu, ffa.FFA_FEATURES, rng.choice(
                (*ffa.NAMES, rng.getrandbits(32), ffa.FFA_MEM_LEND_64)), rng.getrandbits(2))
        elif k == "id":
            regs = self.smc(cpu, ffa.FFA_ID_GET)
        elif k == "info":
            uuid = [0, 0, 0, 0] if rng.random() < 0.7 else [rng.getrandbits(32)
                                                               for _ in range(4)]
            regs = self.smc(cpu, ffa.FFA_PARTITION_INFO_GET, *uuid, rng.choice((0, 1)))
        elif k == "map":
            tx, rx = self.mailbox
            if rng.random() < 0.3:
                tx, rx = self.pick(self.pool), self.pick(self.pool)
            if rng.random() < 0.1:
                tx = self.garbage_value()
            pages = rng.choice((1, 1, 1, 2, 0, 64))
            fid = ffa.FFA_RXTX_MAP_64 if rng.random() < 0.8 else ffa.FFA_RXTX_MAP_32
            regs = self.smc(cpu, fid, tx, rx, pages)
            if regs is not None and ffa.error_of(regs) is None:
                self.rxtx = (tx, rx)
        elif k == "unmap":
            if rng.random() < 0.7:  # keep the mailbox mapped most of the time
                return
            regs = self.smc(cpu, ffa.FFA_RXTX_UNMAP, rng.choice((0, 0, 0x8001 << 16)))
            if regs is not None and ffa.error_of(regs) is None:
                self.rxtx = None
        elif k == "release":
            regs = self.smc(cpu, ffa.FFA_RX_RELEASE)
        elif k == "direct":
            regs = self.ffa_direct(cpu)
        elif k == "send":
            regs = self.ffa_send(cpu)
        else:
            handle = self.pick(self.handles[4:] or self.handles) if rng.random() < 0.8 else (
                self.pick(self.handles))
            regs = self.smc(cpu, ffa.FFA_MEM_RECLAIM, handle & 0xFFFF_FFFF, handle >> 32,
                            rng.choice((0, 0, 1, 2, 4)))
        if regs is None:
            raise _Stop

    def ffa_direct(self, cpu: int) -> tuple[int, ...] | None:
        rng = self.rng
        receiver = rng.choice((ECHO_ID, ECHO_ID, KEYSTORE_ID, ffa.SPMC_ID, 0x0001,
                               rng.getrandbits(16)))
        sender = 0 if rng.random() < 0.9 else rng.getrandbits(16)
        command = rng.choice((sp.ECHO, sp.ECHO_COUNT, sp.ECHO_READ, sp.ECHO_WRITE,
                              sp.ECHO_RETRIEVE, sp.ECHO_RELINQUISH, sp.ECHO_FILL, 1, 2, 3,
                              rng.getrandbits(8)))
        addr = rng.choice((self.pick(self.pool), self.pick(self.garbage),
                           self.p.region("secure_dram").base + rng.randrange(0, 0x100000, 8)))
        handle = self.pick(self.handles[4:] or self.handles) if rng.random() < 0.8 else (
            self.pick(self.handles))
        if command in (sp.ECHO_RETRIEVE, sp.ECHO_RELINQUISH) and rng.random() < 0.8:
            receiver = ECHO_ID
            payload = [command, handle, 0 if rng.random() < 0.9 else rng.getrandbits(32),
                       rng.choice((ffa.PERM_RW_NX, ffa.PERM_RW_NX, ffa.PERM_RO_NX, 0xF)),
                       0 if rng.random() < 0.9 else rng.getrandbits(8)]
        else:
            payload = [command, rng.choice((addr, handle, rng.getrandbits(64))),
                       rng.choice((0, 8, 64, rng.getrandbits(64))),
                       rng.choice((0x5A5A_5A5A, 0, rng.getrandbits(64))),
                       rng.getrandbits(64)]
        fid = ffa.FFA_MSG_SEND_DIRECT_REQ_64 if rng.random() < 0.9 else (
            ffa.FFA_MSG_SEND_DIRECT_REQ_32)
        return self.smc(cpu, fid, ffa.direct_msg_ids(sender, receiver),
                        0 if rng.random() < 0.9 else 1 << 31, *payload,
                        note=f"{ffa.fid_name(fid)} to {receiver:#x} command {command}")

    def ffa_send(self, cpu: int) -> tuple[int, ...] | None:
        rng = self.rng
        fid = self.pick(FFA_SEND)
        kind = ffa.SEND_CALLS[fid]
        ns = self.roles["ns"]
        first = self.pick(ns) if ns and rng.random() < 0.85 else self.pick(self.pool)
        pages = 2 if rng.random() < 0.3 and first + G in ns else 1
        constituents = [(first, pages)]
        if rng.random() < 0.2:
            constituents.append((self.pick(self.pool), 1))
        if rng.random() < 0.1:
            constituents = [(self.garbage_value() & ~(G - 1), rng.choice((1, 3, 0)))]
        permissions = 0 if kind is ffa.TransactionType.DONATE else ffa.PERM_RW_NX
        if rng.random() < 0.15:
            permissions = rng.getrandbits(8)
        flags = kind.flags if rng.random() < 0.5 else 0
        if rng.random() < 0.1:
            flags = rng.getrandbits(32)
        desc = ffa.memory_region(sender=0 if rng.random() < 0.9 else 0x8001,
                                 receiver=rng.choice((ECHO_ID, ECHO_ID, KEYSTORE_ID, 0x7FFF)),
                                 constituents=constituents, permissions=permissions,
                                 flags=flags, tag=rng.getrandbits(8) if rng.random() < 0.1
                                 else 0)
        if rng.random() < 0.1:
            i = rng.randrange(len(desc))
            desc = desc[:i] + bytes([rng.getrandbits(8)]) + desc[i + 1 :]
        tx = self.rxtx[0] if self.rxtx is not None else self.pick(self.pool)
        if not self.write(cpu, tx, desc, note=f"{kind.name} descriptor in TX"):
            return self.smc(cpu, fid, len(desc), len(desc), 0, 0)
        length = len(desc) if rng.random() < 0.85 else rng.choice((0, 1, 4096, 1 << 20))
        regs = self.smc(cpu, fid, length, length, 0, 0)
        if regs is not None and ffa.error_of(regs) is None:
            handle = ffa.handle_of(regs)
            if handle not in self.handles:
                self.handles.append(handle)
        return regs


# ============================================================================ shrinking
def shrink_steps(
    steps: Sequence[Step],
    failure: Failure,
    config: PlatformConfig = HOST_CONFIG,
    *,
    max_tests: int = 400,
    budget_s: float = 60.0,
    stats: ShrinkStats | None = None,
) -> list[Step]:
    """The smallest sub-sequence of ``steps`` (delta debugging) that still fails with
    ``failure``'s signature on a fresh platform. Steps after the failing one are dropped
    first."""
    signature = failure.signature

    def still_fails(candidate: list[Step]) -> bool:
        r = replay(candidate, config)
        return r.failure is not None and r.failure.signature == signature

    prefix = list(steps[: failure.step + 1]) if failure.step < len(steps) else list(steps)
    if not still_fails(prefix):  # not deterministic: keep everything
        return list(steps)
    return shrink(prefix, still_fails, max_tests=max_tests, budget_s=budget_s, stats=stats)


def config_python(config: PlatformConfig) -> str:
    """``PlatformConfig(...)`` with the fields that differ from the defaults."""
    default = PlatformConfig()
    parts = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value != getattr(default, f.name):
            parts.append(f"{f.name}={value:#x}" if isinstance(value, int) and not isinstance(
                value, bool) and value > 255 else f"{f.name}={value!r}")
    return f"PlatformConfig({', '.join(parts)})"


def reproducer(
    steps: Sequence[Step],
    failure: Failure | None = None,
    *,
    config: PlatformConfig = HOST_CONFIG,
    title: str = "",
) -> str:
    """A standalone Python script that boots the platform with ``config`` (invariant checker
    on), replays ``steps`` and asserts that the failure (``failure``, or the one a replay
    finds now) happens again. The script exits 0 and prints the failure when it reproduces;
    it raises AssertionError when the failure no longer occurs."""
    if failure is None:
        failure = replay(steps, config).failure
        if failure is None:
            raise ValueError("the steps do not fail")
    lines = [
        *reproducer_header("host", title, f"{len(steps)} steps", failure),
        "from ccasim import Platform, PlatformConfig",
        "from ccasim.fuzz.host import Replay",
        "",
        f"p = Platform({config_python(config)}, check_invariants=True)",
        "r = Replay(p)",
    ]
    lines += [step.python("r") for step in steps]
    lines += [f"sys.exit(r.report(expect={failure.signature!r}))", ""]
    return "\n".join(lines)


def run_host(seed: int, steps: int, config: PlatformConfig = HOST_CONFIG,
             deadline: float | None = None) -> HostRun:
    """One seeded run of ``steps`` host steps."""
    return HostFuzzer(seed, config).run(steps, deadline=deadline)


__all__ = ["ACTION_WEIGHTS", "HOST_CONFIG", "HostFuzzer", "HostRun", "Replay", "Step",
           "benign_guest", "config_python", "page", "replay", "reproducer", "run_host",
           "shrink_steps"]
