"""Processing elements: register file, exception level, security state, the PE-side GPC.

A :class:`ProcessingElement` is the silicon view of one CPU. Software of every world runs
"on" it: Python-modelled firmware (EL3, the RMM) and, later, AArch64 guest code. What is
architectural is kept architectural: the security state of an access comes from
SCR_EL3.{NSE,NS} and the current EL; every memory access goes through this PE's granule
protection checker; the RME maintenance instructions are UNDEFINED below EL3.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .faults import (
    AccessKind,
    GranuleProtectionCheckException,
    GranuleProtectionFault,
    UndefinedInstruction,
)
from .gpc import GranuleProtectionChecker
from .gpt import PARANGE_BITS, Gpccr
from .memory import PhysicalMemory
from .security import (
    SCR_GPF,
    PhysicalAddressSpace,
    SecurityState,
    emittable,
    state_from_scr,
)

MASK64 = (1 << 64) - 1
_U64 = struct.Struct("<Q")
_WORLD_BITS = (1 << 62) | 1  # SCR_EL3.{NSE, NS}
# _ADMITS[gpi][pas]: the GPI lets an access to that PAS pass, for the GPIs whose verdict does
# not depend on the security state (NSO does: it always takes the full check).
_ADMITS = tuple(
    tuple(gpi == 0b1111 or (gpi & 0b1100 == 0b1000 and gpi & 0b11 == pas) for pas in range(4))
    for gpi in range(16)
)
_ROOT_STATE = (
    SecurityState.ROOT,
    PhysicalAddressSpace.ROOT,
    emittable(SecurityState.ROOT),
)
_STATE_CACHE: dict[
    tuple[int, int],
    tuple[SecurityState, PhysicalAddressSpace, frozenset[PhysicalAddressSpace]],
] = {}

# TLBI RPA*OS size field (rme-hardware §5): SIZE -> bytes
RPA_SIZES = {
    0: 4 << 10,
    1: 16 << 10,
    2: 64 << 10,
    3: 2 << 20,
    4: 32 << 20,
    5: 512 << 20,
    6: 1 << 30,
    7: 16 << 30,
    8: 64 << 30,
    9: 512 << 30,
}
RPA_SIZE_CODE = {size: code for code, size in RPA_SIZES.items()}


def rpa_operand(pa: int, size: int) -> int:
    """Xt for TLBI RPAOS/RPALOS: (PA >> 12) | (SIZE << 44)."""
    return (pa >> 12) | (RPA_SIZE_CODE[size] << 44)


@dataclass
class MaintenanceOp:
    """A recorded RME maintenance instruction (for ordering checks and traces)."""

    pe: int
    op: str
    pa: int | None = None
    size: int | None = None
    pas: PhysicalAddressSpace | None = None


class ProcessingElement:
    """One PE. ``x`` holds x0..x30; ``el`` the current exception level."""

    def __init__(
        self,
        index: int,
        memory: PhysicalMemory,
        pa_bits: int,
        l0gptsz: int,
        peers: list[ProcessingElement],
    ) -> None:
        self.index = index
        self.memory = memory
        self.pa_bits = pa_bits
        self.peers = peers  # every PE of the system, this one included (OS broadcast domain)
        self.x: list[int] = [0] * 31
        self.el = 3
        self.gpc = GranuleProtectionChecker(memory, pa_bits)
        self.maintenance_log: list[MaintenanceOp] | None = None
        self.tracer: Any = None  # a ccasim.trace.Tracer when tracing
        self.smc_vector: Callable[[ProcessingElement], None] | None = None
        parange = {bits: enc for enc, bits in PARANGE_BITS.items()}[pa_bits]
        self._l0gptsz = l0gptsz
        self.sysregs: dict[str, int] = {
            "SCR_EL3": 0,
            "GPCCR_EL3": Gpccr(l0gptsz=l0gptsz).encode(),
            "GPTBR_EL3": 0,
            "MFAR_EL3": 0,
            "SPSR_EL3": 0,
            "ELR_EL3": 0,
            "MPIDR_EL1": mpidr_for(index),
            "ID_AA64MMFR0_EL1": parange,
            # RME field [55:52] = 1 (FEAT_RME); EL3/EL2/EL1/EL0 AArch64 (fields = 1 / 2)
            "ID_AA64PFR0_EL1": (1 << 52) | 0x2222,
        }
        self.security_state: SecurityState = SecurityState.ROOT
        self.natural_pas: PhysicalAddressSpace = PhysicalAddressSpace.ROOT
        self._emittable: frozenset[PhysicalAddressSpace] = frozenset()
        self._refresh_state()

    # ------------------------------------------------------------------ state
    def _refresh_state(self) -> None:
        key = (self.sysregs["SCR_EL3"] & _WORLD_BITS, self.el)
        cached = _STATE_CACHE.get(key)
        if cached is None:
            state = state_from_scr(key[0], self.el)
            cached = _STATE_CACHE[key] = (state, state.natural_pas, emittable(state))
        self.security_state, self.natural_pas, self._emittable = cached

    def read_sysreg(self, name: str) -> int:
        if name.endswith("_EL3") and self.el != 3:
            raise UndefinedInstruction(f"MRS {name} at EL{self.el}")
        return self.sysregs[name]

    def write_sysreg(self, name: str, value: int) -> None:
        if name.endswith("_EL3") and self.el != 3:
            raise UndefinedInstruction(f"MSR {name} at EL{self.el}")
        if name == "GPCCR_EL3":
            # L0GPTSZ is read-only, fixed by the implementation.
            value = (value & ~(0xF << 20)) | (self._l0gptsz << 20)
        self.sysregs[name] = value & MASK64
        if name in ("GPCCR_EL3", "GPTBR_EL3"):
            self.gpc.configure(self.sysregs["GPCCR_EL3"], self.sysregs["GPTBR_EL3"])
        elif name == "SCR_EL3":
            self._refresh_state()

    def set_scr(self, value: int) -> None:
        """Write SCR_EL3 from EL3 firmware (the world switch's fast path). At EL3 the
        security state is Root whatever SCR_EL3 says; it takes effect at the ERET."""
        self.sysregs["SCR_EL3"] = value
        if self.el != 3:
            self._refresh_state()

    def set_el(self, el: int) -> None:
        """Change the current EL (exception entry / ERET are the only callers)."""
        self.el = el
        self._refresh_state()

    # ------------------------------------------------------------------ exceptions
    def smc(self) -> None:
        """Execute SMC: an exception to EL3 (SMCCC arguments are already in x0..x7).

        The return state goes to SPSR_EL3 (EL in bits [3:2]); EL3 software returns with
        :meth:`eret`, possibly after switching worlds.
        """
        if self.el == 0:
            raise UndefinedInstruction("SMC at EL0")
        if self.smc_vector is None:
            raise UndefinedInstruction("SMC with no EL3 firmware")
        self.sysregs["SPSR_EL3"] = (self.el << 2) | 1  # ELxh
        self.el = 3  # exception entry to EL3: Root state
        self.security_state, self.natural_pas, self._emittable = _ROOT_STATE
        self.smc_vector(self)

    def eret(self) -> None:
        """Return from EL3 to the EL recorded in SPSR_EL3, in the world SCR_EL3 selects."""
        if self.el != 3:
            raise UndefinedInstruction("ERET modelled only from EL3")
        sysregs = self.sysregs
        el = self.el = (sysregs["SPSR_EL3"] >> 2) & 3
        cached = _STATE_CACHE.get((sysregs["SCR_EL3"] & _WORLD_BITS, el))
        if cached is None:
            self._refresh_state()
        else:
            self.security_state, self.natural_pas, self._emittable = cached

    # ------------------------------------------------------------------ memory
    def _pas(self, pas: PhysicalAddressSpace | None) -> PhysicalAddressSpace:
        if pas is None:
            return self.natural_pas
        if pas is self.natural_pas:
            return pas
        if pas not in self._emittable:
            raise ValueError(
                f"{self.security_state.name} state cannot emit an access to the {pas.name} PAS"
            )
        return pas

    # The access paths below test the GPT cache inline and fall back to
    # GranuleProtectionChecker.check (which walks the GPT and raises the faults) on a miss or
    # a denial; DRAM is then accessed through the region buffers directly.
    def _checked(self, pa: int, size: int, target: PhysicalAddressSpace,
                 access: AccessKind) -> None:
        try:
            self.gpc.check(pa, size, target, self.security_state, access)
        except GranuleProtectionCheckException as fault:
            self._record_fault(fault)
            raise

    def _gpc_passes(self, pa: int, last: int, target: int) -> bool:
        """Cached GPI admits ``target`` for a single-granule access (no walk)."""
        gpc = self.gpc
        if not gpc.enabled:
            return True
        shift = gpc._shift
        g = pa >> shift
        if g != last >> shift:
            return False
        entry = gpc._cache.get(g)
        return entry is not None and _ADMITS[entry[0]][target]

    def read(self, pa: int, size: int, pas: PhysicalAddressSpace | None = None) -> bytes:
        """A data read in the current security state, checked by the GPC."""
        target = self.natural_pas if pas is None or pas is self.natural_pas else self._pas(pas)
        gpc = self.gpc
        if gpc.enabled:
            shift = gpc._shift
            g = pa >> shift
            entry = gpc._cache.get(g) if g == (pa + size - 1) >> shift else None
            if entry is None or not _ADMITS[entry[0]][target]:
                self._checked(pa, size, target, AccessKind.READ)
        for base, end, buf in self.memory._dram:
            if base <= pa and pa + size <= end:
                return buf[pa - base : pa - base + size]
        return self.memory.read(pa, size, target, self.security_state)

    def write(self, pa: int, data: bytes, pas: PhysicalAddressSpace | None = None) -> None:
        """A data write in the current security state, checked by the GPC."""
        target = self.natural_pas if pas is None or pas is self.natural_pas else self._pas(pas)
        size = len(data)
        gpc = self.gpc
        if gpc.enabled:
            shift = gpc._shift
            g = pa >> shift
            entry = gpc._cache.get(g) if g == (pa + size - 1) >> shift else None
            if entry is None or not _ADMITS[entry[0]][target]:
                self._checked(pa, size, target, AccessKind.WRITE)
        memory = self.memory
        if not memory.code_pages:  # else PhysicalMemory.write invalidates translated code
            for base, end, buf in memory._dram:
                if base <= pa and pa + size <= end:
                    buf[pa - base : pa - base + size] = data
                    return
        memory.write(pa, data, target, self.security_state)

    def zero(self, pa: int, size: int, pas: PhysicalAddressSpace | None = None) -> None:
        """Zero DRAM with ordinary stores (checked by the GPC); whole host pages are dropped
        rather than written, so scrubbing costs no memory."""
        target = self.natural_pas if pas is None or pas is self.natural_pas else self._pas(pas)
        if not self._gpc_passes(pa, pa + size - 1, target):
            self._checked(pa, size, target, AccessKind.WRITE)
        self.memory.zero(pa, size)

    def read_u64(self, pa: int, pas: PhysicalAddressSpace | None = None) -> int:
        # the PAS choice and _gpc_passes inlined: this is the hottest access of the model
        target = self.natural_pas if pas is None or pas is self.natural_pas else self._pas(pas)
        gpc = self.gpc
        if gpc.enabled:
            shift = gpc._shift
            g = pa >> shift
            entry = gpc._cache.get(g) if g == (pa + 7) >> shift else None
            if entry is None or not _ADMITS[entry[0]][target]:
                self._checked(pa, 8, target, AccessKind.READ)
        for base, end, buf in self.memory._dram:
            if base <= pa and pa + 8 <= end:
                return int(_U64.unpack_from(buf, pa - base)[0])
        return self.memory.read_u64(pa, target, self.security_state)

    def write_u64(self, pa: int, value: int, pas: PhysicalAddressSpace | None = None) -> None:
        target = self.natural_pas if pas is None or pas is self.natural_pas else self._pas(pas)
        gpc = self.gpc
        if gpc.enabled:
            shift = gpc._shift
            g = pa >> shift
            entry = gpc._cache.get(g) if g == (pa + 7) >> shift else None
            if entry is None or not _ADMITS[entry[0]][target]:
                self._checked(pa, 8, target, AccessKind.WRITE)
        memory = self.memory
        if not memory.code_pages:  # else PhysicalMemory.write_u64 invalidates translated code
            for base, end, buf in memory._dram:
                if base <= pa and pa + 8 <= end:
                    _U64.pack_into(buf, pa - base, value & MASK64)
                    return
        memory.write_u64(pa, value & MASK64, target, self.security_state)

    def _record_fault(self, fault: GranuleProtectionCheckException) -> None:
        """Latch MFAR_EL3 for faults that are taken to EL3 as GPC exceptions (§4 routing):
        GPT walk/address-size/fetch-abort faults always; GPFs at EL3 (as an abort at EL3)
        or below EL3 when SCR_EL3.GPF = 1."""
        to_el3 = (
            not isinstance(fault, GranuleProtectionFault)
            or self.el == 3
            or bool(self.sysregs["SCR_EL3"] & SCR_GPF)
        )
        if to_el3:
            self.sysregs["MFAR_EL3"] = fault.mfar_el3
        if self.tracer is not None:
            self.tracer.instant(type(fault).__name__, "fault", self.index, {
                "pa": hex(fault.pa), "pas": fault.pas.name,
                "state": fault.security_state.name, "access": str(fault.access),
                "level": fault.level})

    # ------------------------------------------------------------------ RME maintenance
    def _el3_only(self, what: str) -> None:
        if self.el != 3:
            raise UndefinedInstruction(f"{what} at EL{self.el}")

    def _log(
        self,
        op: str,
        pa: int | None = None,
        size: int | None = None,
        pas: PhysicalAddressSpace | None = None,
    ) -> None:
        if self.maintenance_log is not None:
            self.maintenance_log.append(MaintenanceOp(self.index, op, pa, size, pas))

    def tlbi_paall(self) -> None:
        """TLBI PAALL: invalidate this PE's cached GPT information."""
        self._el3_only("TLBI PAALL")
        self._log("TLBI PAALL")
        self.gpc.invalidate_all()

    def tlbi_paallos(self) -> None:
        """TLBI PAALLOS: invalidate cached GPT information on every PE (Outer Shareable)."""
        self._el3_only("TLBI PAALLOS")
        self._log("TLBI PAALLOS")
        for pe in self.peers:
            pe.gpc.invalidate_all()

    def _tlbi_range(self, name: str, xt: int) -> None:
        if self.el != 3:
            raise UndefinedInstruction(f"{name} at EL{self.el}")
        size_code = (xt >> 44) & 0xF
        size = RPA_SIZES.get(size_code)
        pa = (xt & ((1 << 40) - 1)) << 12
        if size is None:
            return  # reserved size: the architecture makes this CONSTRAINED UNPREDICTABLE
        pa &= ~(size - 1)
        if self.maintenance_log is not None:
            self._log(name, pa, size)
        for pe in self.peers:
            gpc = pe.gpc
            if size == 1 << gpc._shift:  # one granule: the common case of a transition
                for listener in gpc.listeners:
                    listener()
                gpc._cache.pop(pa >> gpc._shift, None)
            else:
                gpc.invalidate_range(pa, size)

    def tlbi_rpalos(self, xt: int) -> None:
        """TLBI RPALOS, Xt: invalidate last-level GPT info for a PA range, all PEs."""
        self._tlbi_range("TLBI RPALOS", xt)

    def tlbi_rpaos(self, xt: int) -> None:
        """TLBI RPAOS, Xt: invalidate GPT info at any level for a PA range, all PEs."""
        self._tlbi_range("TLBI RPAOS", xt)

    def dc_cipapa(self, pa: int, pas: PhysicalAddressSpace) -> None:
        """DC CIPAPA: clean and invalidate to the PoPA. The model keeps no data caches in
        front of the PoPA, so the operation is complete as soon as it is issued; it is still
        executed (and logged) in the order firmware issues it."""
        if self.el != 3:
            raise UndefinedInstruction(f"DC CIPAPA at EL{self.el}")
        if self.maintenance_log is not None:
            self._log("DC CIPAPA", pa, 64, pas)

    def dsb(self, domain: str = "OSH") -> None:
        """DSB: every access and maintenance operation in the model completes in order, so a
        barrier has nothing to wait for; logged to keep the firmware sequence visible."""
        if self.maintenance_log is not None:
            self._log(f"DSB {domain}")


def mpidr_for(index: int) -> int:
    """MPIDR_EL1 for PE ``index``: U=0, MT=0, one cluster of up to 256 PEs (Aff0 = index
    mod 256, Aff1 = index // 256), bit 31 RES1."""
    return (1 << 31) | ((index // 256) << 8) | (index % 256)
