"""A KVM/kvmtool-like VMM for realms, built only on the RMI (issue: the host side).

:class:`Vmm` creates a realm from a :class:`RealmSpec` the reproducible way (REALM_CREATE,
INIT_RIPAS over all RAM, measured DATA_CREATE in ascending IPA order, RECs with only the
boot vCPU runnable, REALM_ACTIVATE), runs its vCPUs with an exit-handling loop, and tears
everything down again, undelegating every granule it gave the RMM.

Exit handling (rmm-abi §7.2):

* data aborts at unprotected IPAs are emulated MMIO: a PL011 console at ``spec.uart_ipa``;
  other unprotected IPAs read as zero and ignore writes;
* stage-2 aborts at protected IPAs with RIPAS RAM are faulted in with DATA_CREATE_UNKNOWN;
* PSCI: CPU_ON / AFFINITY_INFO are completed with RMI_PSCI_COMPLETE, CPU_OFF stops a vCPU,
  SYSTEM_OFF / SYSTEM_RESET end the run;
* RIPAS change requests follow a policy (accept by default) through RMI_RTT_SET_RIPAS;
* host calls go to a user hook;
* IRQ, FIQ and WFx exits simply re-enter.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..arch.memory import GRANULE_SIZE
from ..arch.pl011 import FR_RXFE, FR_TXFE, UARTDR, UARTFR
from ..platform import Platform, WorldPort
from ..rmm.recrun import REC_ENTER, REC_EXIT, RecExitReason, pack_words, words
from ..rmm.s2tt import level_size
from .rmi import RealmBuilder, RealmHandle, RmiClient

ENTER_EMUL_MMIO = 1 << 0
ENTER_INJECT_SEA = 1 << 1
ENTER_RIPAS_REJECT = 1 << 4
PSCI_CPU_ON = (0x8400_0003, 0xC400_0003)
PSCI_AFFINITY_INFO = (0x8400_0004, 0xC400_0004)
PSCI_CPU_OFF = 0x8400_0002
PSCI_SYSTEM_OFF = 0x8400_0008
PSCI_SYSTEM_RESET = 0x8400_0009
EC_IABT = 0x20
EC_DABT = 0x24
HASH_ALGORITHMS = {"sha256": 0, "sha-256": 0, "sha512": 1, "sha-512": 1}


@dataclass(frozen=True)
class Segment:
    """Bytes loaded at a protected IPA (granule-aligned), measured or not."""

    ipa: int
    data: bytes
    measured: bool = True


@dataclass(frozen=True)
class RealmSpec:
    """Everything that defines a realm (and, with the fixed build order, its RIM)."""

    segments: tuple[Segment, ...]
    entry: int
    ram: tuple[tuple[int, int], ...] = ((0x8000_0000, 0x20_0000),)
    s2sz: int = 40
    hash_algorithm: str = "sha256"
    rpv: bytes = b""
    vcpus: int = 1
    boot_args: tuple[int, ...] = ()
    uart_ipa: int | None = None
    num_bps: int = 1
    num_wps: int = 1
    vmid: int | None = None
    shared: tuple[tuple[int, int], ...] = ()  # (unprotected IPA, size): host memory windows

    @property
    def algorithm(self) -> int:
        try:
            return HASH_ALGORITHMS[self.hash_algorithm.lower()]
        except KeyError:
            raise ValueError(f"unknown hash algorithm {self.hash_algorithm!r}") from None

    @property
    def console_ipa(self) -> int:
        return (1 << (self.s2sz - 1)) + 0x1C09_0000 if self.uart_ipa is None else self.uart_ipa

    def data_pages(self) -> list[tuple[int, bytes, bool]]:
        """(IPA, 4 KB content, measured) of every loaded granule, ascending by IPA."""
        pages: dict[int, tuple[bytearray, bool]] = {}
        for seg in self.segments:
            start = seg.ipa
            end = seg.ipa + len(seg.data)
            ipa = start & ~(GRANULE_SIZE - 1)
            while ipa < end:
                buf, measured = pages.setdefault(ipa, (bytearray(GRANULE_SIZE), seg.measured))
                lo, hi = max(ipa, start), min(ipa + GRANULE_SIZE, end)
                buf[lo - ipa : hi - ipa] = seg.data[lo - start : hi - start]
                pages[ipa] = (buf, measured and seg.measured)
                ipa += GRANULE_SIZE
        return [(ipa, bytes(buf), m) for ipa, (buf, m) in sorted(pages.items())]


@dataclass(frozen=True)
class HostCall:
    rec_index: int
    imm: int
    gprs: tuple[int, ...]


@dataclass
class RunResult:
    reason: str  # "system_off", "system_reset", "exit_limit", "time_limit", "error"
    exits: Counter[str]
    console: bytes
    seconds: float
    error: str | None = None


@dataclass
class RealmVm:
    spec: RealmSpec
    handle: RealmHandle
    recs: list[int]
    run_pages: list[int]
    runnable: set[int] = field(default_factory=set)
    console: bytearray = field(default_factory=bytearray)
    faulted_in: dict[int, int] = field(default_factory=dict)  # ipa -> granule
    shared_pages: dict[int, int] = field(default_factory=dict)  # unprotected ipa -> NS PA
    host_calls: list[HostCall] = field(default_factory=list)


class Vmm:
    def __init__(
        self,
        platform: Platform,
        *,
        console: Callable[[bytes], None] | None = None,
        host_call: Callable[[HostCall], Sequence[int] | None] | None = None,
        ripas_policy: Callable[[int, int, int], bool] | None = None,
    ) -> None:
        self.platform = platform
        self.client = RmiClient(platform)
        self.builder = RealmBuilder(self.client)
        self.console_sink = console
        self.host_call_hook = host_call
        self.ripas_policy = ripas_policy or (lambda base, top, ripas: True)
        self._next_vmid = 1

    # ------------------------------------------------------------------ creation
    def create(
        self, spec: RealmSpec, progress: Callable[[int, int], None] | None = None
    ) -> RealmVm:
        """Build a realm: REALM_CREATE, INIT_RIPAS over RAM, measured DATA_CREATE in
        ascending IPA order, RECs (only the boot vCPU runnable), REALM_ACTIVATE."""
        b = self.builder
        vmid = spec.vmid if spec.vmid is not None else self._alloc_vmid()
        handle = b.create(
            s2sz=spec.s2sz,
            vmid=vmid,
            hash_algo=spec.algorithm,
            num_bps=spec.num_bps,
            num_wps=spec.num_wps,
            rpv=spec.rpv,
        )
        vm = RealmVm(spec, handle, [], [], runnable={0})
        try:
            for base, size in sorted(spec.ram):
                b.init_ripas(handle, base, base + size)
            pages = spec.data_pages()
            for done, (ipa, content, measured) in enumerate(pages, start=1):
                b.add_data(handle, ipa, content, measure=measured)
                if progress is not None:
                    progress(done, len(pages))
            for i in range(spec.vcpus):
                gprs = spec.boot_args if i == 0 else ()
                vm.recs.append(
                    b.add_rec(handle, pc=spec.entry if i == 0 else 0, gprs=gprs, runnable=i == 0)
                )
                vm.run_pages.append(self.client.pool.alloc())
            for base, size in spec.shared:
                self._map_shared(vm, base, size)
            b.activate(handle)
        except Exception:
            # Nothing is left half-built: tear down what exists, undelegate every granule.
            self.destroy(vm)
            raise
        return vm

    def _map_shared(self, vm: RealmVm, base: int, size: int) -> None:
        """Host memory at unprotected IPAs: NS granules mapped with RTT_MAP_UNPROTECTED
        (Normal memory, read/write) — a channel for bulk data that needs no exits."""
        if base < 1 << (vm.spec.s2sz - 1) or base % GRANULE_SIZE or size % GRANULE_SIZE:
            raise ValueError("shared windows are granule-aligned unprotected IPA ranges")
        for ipa in range(base, base + size, GRANULE_SIZE):
            self.builder.ensure_table(vm.handle, ipa, 3)
            page = self.client.pool.alloc()
            self.platform.host.write(page, bytes(GRANULE_SIZE))
            desc = page | (0b111 << 2) | (0b11 << 6)  # MemAttr, S2AP read/write
            r = self.client.call("RTT_MAP_UNPROTECTED", vm.handle.rd, ipa, 3, desc)
            if not r.ok:
                raise RuntimeError(f"RTT_MAP_UNPROTECTED {ipa:#x}: {r[0]:#x}")
            vm.shared_pages[ipa] = page

    def read_shared(self, vm: RealmVm, ipa: int, size: int) -> bytes:
        """Read a shared window as the host (Non-secure accesses to its own pages)."""
        out = bytearray()
        while size > 0:
            page = vm.shared_pages.get(ipa & ~(GRANULE_SIZE - 1))
            if page is None:
                raise ValueError(f"IPA {ipa:#x} is not in a shared window")
            off = ipa % GRANULE_SIZE
            n = min(size, GRANULE_SIZE - off)
            out += self.platform.host.read(page + off, n)
            ipa, size = ipa + n, size - n
        return bytes(out)

    def _alloc_vmid(self) -> int:
        vmid = self._next_vmid
        self._next_vmid += 1
        return vmid

    # ------------------------------------------------------------------ running
    def run(
        self, vm: RealmVm, *, max_exits: int = 1_000_000, timeout_s: float | None = None
    ) -> RunResult:
        """Run the realm's vCPUs (round robin) until SYSTEM_OFF/RESET or a limit."""
        start = time.perf_counter()
        exits: Counter[str] = Counter()
        pending: dict[int, tuple[int, list[int]]] = {}
        cpus = self.platform.cpus
        reason, error = "exit_limit", None
        for _ in range(max_exits):
            if not vm.runnable:
                reason = "no_runnable_vcpu"
                break
            if timeout_s is not None and time.perf_counter() - start > timeout_s:
                reason = "time_limit"
                break
            for idx in sorted(vm.runnable):
                flags, gprs = pending.pop(idx, (0, []))
                outcome = self._enter(
                    vm, idx, flags, gprs, cpus[idx % len(cpus)].host, exits, pending
                )
                if outcome is not None:
                    reason, error = outcome
                    break
            else:
                continue
            break
        return RunResult(reason, exits, bytes(vm.console), time.perf_counter() - start, error)

    def _enter(
        self,
        vm: RealmVm,
        idx: int,
        flags: int,
        gprs: list[int],
        port: WorldPort,
        exits: Counter[str],
        pending: dict[int, tuple[int, list[int]]],
    ) -> tuple[str, str | None] | None:
        host = port  # the Normal world on the PE this vCPU runs on
        run = vm.run_pages[idx]
        enter = REC_ENTER.pack({"flags": flags, "gprs": pack_words(gprs + [0] * (31 - len(gprs)))})
        host.write(run, enter)
        x = host.smc(0xC400_015C, vm.recs[idx], run)
        if x[0] != 0:
            status, index = x[0] & 0xFF, (x[0] >> 8) & 0xFF
            if status == 2 and index == 1:
                return "system_off", None
            return "error", f"RMI_REC_ENTER returned {x[0]:#x}"
        ex = REC_EXIT.unpack(host.read(run + 0x800, REC_EXIT.size))
        reason = RecExitReason(int(ex["exit_reason"]))
        exits[reason.name] += 1
        if reason is RecExitReason.SYNC:
            return self._sync(vm, idx, ex, pending)
        if reason is RecExitReason.PSCI:
            return self._psci(vm, idx, ex, pending)
        if reason is RecExitReason.RIPAS_CHANGE:
            return self._ripas_change(vm, idx, ex, pending)
        if reason is RecExitReason.HOST_CALL:
            regs = words(ex["gprs"], 31)  # type: ignore[arg-type]
            call = HostCall(idx, int(ex["imm"]), tuple(regs))
            vm.host_calls.append(call)
            answer = self.host_call_hook(call) if self.host_call_hook else None
            pending[idx] = (0, list(answer) if answer is not None else regs)
            return None
        if reason is RecExitReason.SERROR:
            return "error", f"SError from vCPU {idx}, ESR {int(ex['esr']):#x}"
        return None  # IRQ / FIQ: re-enter

    def _sync(
        self,
        vm: RealmVm,
        idx: int,
        ex: dict[str, int | bytes],
        pending: dict[int, tuple[int, list[int]]],
    ) -> tuple[str, str | None] | None:
        esr = int(ex["esr"])
        ec = esr >> 26
        hpfar = int(ex["hpfar"])
        ipa = ((hpfar >> 4) << 12) | (int(ex["far"]) & 0xFFF)
        spec = vm.spec
        if ec in (EC_DABT, EC_IABT) and ipa >= 1 << (spec.s2sz - 1):
            if ec == EC_DABT and esr & (1 << 24):
                value = self._mmio(vm, ipa, esr, words(ex["gprs"], 1)[0])  # type: ignore[arg-type]
                pending[idx] = (ENTER_EMUL_MMIO, [value])
            else:
                pending[idx] = (ENTER_INJECT_SEA, [])
            return None
        if ec in (EC_DABT, EC_IABT):
            # A protected IPA the RMM could not map: fault the page in (RIPAS RAM).
            page = ipa & ~(GRANULE_SIZE - 1)
            if page in vm.faulted_in or page in vm.handle.data:
                return "error", f"repeated stage-2 fault at protected IPA {page:#x}"
            self.builder.ensure_table(vm.handle, page, 3)
            data = self.client.new_delegated()
            r = self.client.call("DATA_CREATE_UNKNOWN", vm.handle.rd, data, page)
            if not r.ok:
                self.client.undelegate(data)
                return "error", f"cannot fault in IPA {page:#x}: {r[0]:#x}"
            vm.faulted_in[page] = data
            return None
        return None  # WFx, trapped GIC system registers: nothing to emulate

    def _mmio(self, vm: RealmVm, ipa: int, esr: int, value: int) -> int:
        """Emulate one access; returns the value a read produces."""
        is_write = bool(esr & (1 << 6))
        offset = ipa - vm.spec.console_ipa
        if 0 <= offset < GRANULE_SIZE:
            if is_write and offset == UARTDR:
                byte = bytes([value & 0xFF])
                vm.console += byte
                if self.console_sink is not None:
                    self.console_sink(byte)
            elif not is_write and offset == UARTFR:
                return FR_TXFE | FR_RXFE
        return 0

    def _psci(
        self,
        vm: RealmVm,
        idx: int,
        ex: dict[str, int | bytes],
        pending: dict[int, tuple[int, list[int]]],
    ) -> tuple[str, str | None] | None:
        regs = words(ex["gprs"], 2)  # type: ignore[arg-type]
        fid = regs[0]
        if fid == PSCI_SYSTEM_OFF:
            return "system_off", None
        if fid == PSCI_SYSTEM_RESET:
            return "system_reset", None
        if fid == PSCI_CPU_OFF:
            vm.runnable.discard(idx)
            return None
        if fid in PSCI_CPU_ON or fid in PSCI_AFFINITY_INFO:
            target = _mpidr_index(regs[1])
            if target >= len(vm.recs):
                return "error", f"PSCI exit names vCPU {target}"
            r = self.client.call("PSCI_COMPLETE", vm.recs[idx], vm.recs[target], 0)
            if not r.ok:
                return "error", f"RMI_PSCI_COMPLETE returned {r[0]:#x}"
            if fid in PSCI_CPU_ON:
                vm.runnable.add(target)
        return None

    def _ripas_change(
        self,
        vm: RealmVm,
        idx: int,
        ex: dict[str, int | bytes],
        pending: dict[int, tuple[int, list[int]]],
    ) -> tuple[str, str | None] | None:
        base, top = int(ex["ripas_base"]), int(ex["ripas_top"])
        ripas = int(ex["ripas_value"])
        if not self.ripas_policy(base, top, ripas):
            pending[idx] = (ENTER_RIPAS_REJECT, [])
            return None
        addr = base
        while addr < top:
            r = self.client.call("RTT_SET_RIPAS", vm.handle.rd, vm.recs[idx], addr, top)
            if r.status == 4 and r.index < 3:  # the walk stopped early: add a level
                self.builder.ensure_table(vm.handle, addr, r.index + 1)
                continue
            if not r.ok:
                break
            addr = r[1]
        pending[idx] = (0, [])
        return None

    # ------------------------------------------------------------------ teardown
    def destroy(self, vm: RealmVm) -> None:
        """Destroy the realm and undelegate every granule the host gave the RMM."""
        c = self.client
        for ipa, page in sorted(vm.shared_pages.items()):
            c.call("RTT_UNMAP_UNPROTECTED", vm.handle.rd, ipa, 3)
            c.pool.free(page)
        for ipa, data in sorted(vm.faulted_in.items()):
            vm.handle.data[ipa] = data
        self.builder.destroy(vm.handle)
        for page in vm.run_pages:
            c.pool.free(page)


def _mpidr_index(mpidr: int) -> int:
    return (
        (mpidr & 0xF)
        | ((mpidr >> 8) & 0xFF) << 4
        | ((mpidr >> 16) & 0xFF) << 12
        | ((mpidr >> 32) & 0xFF) << 20
    )


__all__ = ["HostCall", "RealmSpec", "RealmVm", "RunResult", "Segment", "Vmm", "level_size"]
