"""The assembled platform and the harness contract (DESIGN.md "The harness contract").

``Platform(config)`` builds the hardware (memory map, sparse DRAM, a PL011, the PEs with
their granule protection checkers), installs EL3 firmware and the RMM, and cold boots:
EL3 writes the GPT, enables the GPC on every PE, boots the RMM through the RMM-EL3
handshake and finally drops every PE into the Normal world at EL2, where ``p.host`` (PE 0)
and ``p.cpus[i].host`` issue SMCs and memory accesses as a hypervisor would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import __version__
from .arch.gpt import Gpi
from .arch.memory import PhysicalMemory, Region
from .arch.pe import MASK64, ProcessingElement
from .arch.pl011 import Pl011
from .arch.security import PhysicalAddressSpace, SecurityState, scr_for
from .checker import InvariantChecker
from .config import RMM_PRIVATE_BASE, PlatformConfig
from .firmware.attestation import PlatformAttestation
from .firmware.el3 import SCR_BASE, FirmwareError, Monitor
from .firmware.firme import FirmeService
from .firmware.psci import Psci
from .firmware.rmmd import Rmmd
from .firmware.spmd import Spmd
from .rmm import Rmm
from .rmm.features import RmmFeatures
from .secure import Spmc
from .trace import Tracer

_DEFAULT_EL = {
    SecurityState.NON_SECURE: 2,
    SecurityState.SECURE: 2,
    SecurityState.REALM: 2,
    SecurityState.ROOT: 3,
}


class WorldPort:
    """Software running in one security state at one EL on one PE.

    ``p.host`` is the Normal world at NS-EL2 on PE 0. Other ports (``cpu.probe(state)``)
    stand in for code of another world — the way a test or a security researcher pokes the
    hardware from Secure or Realm state: the PE is put in that state for the duration of
    each call, exactly as if that world's code were running, and every access is still
    checked by the GPC.
    """

    def __init__(self, pe: ProcessingElement, state: SecurityState, el: int) -> None:
        self.pe = pe
        self.state = state
        self.el = el

    @contextmanager
    def _running(self) -> Iterator[ProcessingElement]:
        pe = self.pe
        saved = (pe.el, pe.sysregs["SCR_EL3"])
        if (pe.el, pe.security_state) != (self.el, self.state):
            pe.set_el(3)
            if self.state is not SecurityState.ROOT:
                pe.write_sysreg("SCR_EL3", SCR_BASE | scr_for(self.state))
            pe.set_el(self.el)
            try:
                yield pe
            finally:
                pe.set_el(3)
                pe.write_sysreg("SCR_EL3", saved[1])
                pe.set_el(saved[0])
        else:
            yield pe

    def smc(self, fid: int, *args: int) -> tuple[int, ...]:
        """Like an SMC instruction: x0 = fid, x1.. = args; returns x0..x7 after return."""
        if len(args) > 17:
            raise ValueError("SMCCC passes at most 17 arguments (x1..x17)")
        pe = self.pe
        if pe.el != self.el or pe.security_state is not self.state:
            with self._running() as pe:
                return self._smc(pe, fid, args)
        return self._smc(pe, fid, args)

    @staticmethod
    def _smc(pe: ProcessingElement, fid: int, args: tuple[int, ...]) -> tuple[int, ...]:
        x = pe.x
        x[0] = fid & MASK64
        for i, value in enumerate(args, start=1):
            x[i] = value & MASK64
        pe.smc()
        return tuple(pe.x[:8])

    def read(self, pa: int, size: int, pas: PhysicalAddressSpace | None = None) -> bytes:
        """A load in this world; raises GranuleProtectionFault when the GPC says no."""
        pe = self.pe
        if pe.el == self.el and pe.security_state is self.state:
            return pe.read(pa, size, pas)
        with self._running() as pe:
            return pe.read(pa, size, pas)

    def write(self, pa: int, data: bytes, pas: PhysicalAddressSpace | None = None) -> None:
        """A store in this world; raises GranuleProtectionFault when the GPC says no."""
        pe = self.pe
        if pe.el == self.el and pe.security_state is self.state:
            pe.write(pa, bytes(data), pas)
            return
        with self._running() as pe:
            pe.write(pa, bytes(data), pas)

    def read_u64(self, pa: int, pas: PhysicalAddressSpace | None = None) -> int:
        return int.from_bytes(self.read(pa, 8, pas), "little")


class El3Port(WorldPort):
    """Root-state access on PE 0 (may emit any PAS; still GPC-checked), and EL3 registers."""

    def __init__(self, platform: Platform) -> None:
        super().__init__(platform.pes[0], SecurityState.ROOT, 3)
        self.platform = platform
        self.monitor = platform.monitor

    def sysreg(self, name: str, cpu: int = 0) -> int:
        return self.platform.pes[cpu].sysregs[name]

    def read(
        self, pa: int, size: int, pas: PhysicalAddressSpace | None = PhysicalAddressSpace.ROOT
    ) -> bytes:
        return super().read(pa, size, pas)

    def write(
        self, pa: int, data: bytes, pas: PhysicalAddressSpace | None = PhysicalAddressSpace.ROOT
    ) -> None:
        super().write(pa, data, pas)

    def gpi(self, pa: int) -> Gpi:
        """The GPI the GPT holds for ``pa`` (an uncached architectural walk)."""
        gpi, _level = self.pe.gpc.lookup(pa)
        return Gpi(gpi)

    def cpak_public_pem(self) -> str:
        """The platform attestation public key (PEM), to verify platform tokens."""
        return self.platform.attestation.cpak_public_pem()

    def gpt_summary(self) -> list[tuple[Region, dict[int, int]]]:
        """Per memory-map region, granule counts by GPI, from a software walk at EL3."""
        with self._running() as pe:
            return self.monitor.gpt.summary(pe)

    @property
    def rmm_boot_status(self) -> int | None:
        return self.platform.rmmd.boot_status.get(0)


class Cpu:
    """One PE as the harness sees it."""

    def __init__(self, pe: ProcessingElement) -> None:
        self.pe = pe
        self.index = pe.index
        self.host = WorldPort(pe, SecurityState.NON_SECURE, 2)

    @property
    def mpidr(self) -> int:
        return self.pe.sysregs["MPIDR_EL1"]

    def probe(self, state: SecurityState, el: int | None = None) -> WorldPort:
        """A port for code of ``state`` on this PE (default EL: 2, Root: 3)."""
        return WorldPort(self.pe, state, _DEFAULT_EL[state] if el is None else el)


class Platform:
    """A booted RME platform. See DESIGN.md for the contract."""

    def __init__(
        self, config: PlatformConfig | None = None, *, check_invariants: bool = False
    ) -> None:
        self.config = config or PlatformConfig()
        self.memory_map = self.config.memory_map()
        self.memory = PhysicalMemory(self.memory_map)
        self.uart = Pl011()
        self.memory.attach("uart0", self.uart)
        self.pes: list[ProcessingElement] = []
        for i in range(self.config.cpus):
            self.pes.append(
                ProcessingElement(
                    i,
                    self.memory,
                    self.config.pa_bits,
                    _l0gptsz_field(self.config.l0gptsz),
                    self.pes,
                )
            )
        self.monitor = Monitor(self.config, self.memory_map, self.pes)
        self.rmm = Rmm(
            RmmFeatures(
                pa_bits=self.config.pa_bits,
                num_bps=self.config.num_bps,
                num_wps=self.config.num_wps,
                pmu_counters=self.config.pmu_counters,
                sve_vl=self.config.sve_vl,
                hash_sha256="sha256" in self.config.hash_algorithms,
                hash_sha512="sha512" in self.config.hash_algorithms,
                vmid_bits=self.config.vmid_bits,
            ),
            self.memory.buffer("rmm"),
            RMM_PRIVATE_BASE,
            token_format="legacy" if self.config.token_format == "legacy" else "cmw",
        )
        self.attestation = PlatformAttestation(self.config, __version__)
        self.rmmd = Rmmd(self.monitor, self.rmm, self.attestation)
        self.psci = Psci(self.monitor)
        self.firme = FirmeService(self.monitor)
        # The Secure world: the SPM dispatcher at EL3 and the SPMC at S-EL2 (FF-A).
        self.spmc = Spmc(self.config, self.memory_map)
        self.spmd = Spmd(self.monitor, self.spmc)
        self.cpus = [Cpu(pe) for pe in self.pes]
        self.el3 = El3Port(self)
        self.tracer: Tracer | None = None
        self._cold_boot()
        # check_invariants: verify the architecture's invariants after every SMC, REC exit
        # and GPT transition (ccasim.checker); raises InvariantViolation at the first one.
        self.checker: InvariantChecker | None = (
            InvariantChecker(self).attach() if check_invariants else None
        )

    def _cold_boot(self) -> None:
        """BL31 cold boot on PE 0, warm boot of the others, then exit to the Normal world."""
        primary = self.pes[0]
        gpt = self.monitor.gpt
        gpt.build(primary)
        for pe in self.pes:
            gpt.enable(pe)
        self.rmmd.write_manifest(primary)
        if self.rmmd.boot(primary, cold=True) == 0:
            for pe in self.pes[1:]:
                self.rmmd.boot(pe, cold=False)
        self.spmd.boot(primary)
        for pe in self.pes:
            if pe.el != 3:
                raise FirmwareError("PE left cold boot outside EL3")
            self.monitor.exit_to_normal_world(pe)

    # ------------------------------------------------------------------ contract
    @property
    def host(self) -> WorldPort:
        return self.cpus[0].host

    @property
    def pa_bits(self) -> int:
        return self.config.pa_bits

    def attach_tracer(self, tracer: Tracer | None) -> None:
        """Record a trace of SMCs, world switches, REC runs, GPT transitions and faults."""
        self.tracer = tracer
        self.monitor.tracer = tracer
        self.monitor.gpt.tracer = tracer
        self.rmm.tracer = tracer
        for pe in self.pes:
            pe.tracer = tracer

    def region(self, name: str) -> Region:
        return self.memory_map[name]

    def regions(self) -> list[Region]:
        return list(self.memory_map)


def _l0gptsz_field(bits: int) -> int:
    return {30: 0, 34: 4, 36: 6, 39: 9}[bits]
