"""Guest execution on a PE with Unicorn, the emulator's page mappings acting as the TLB.

One :class:`ExecutionEngine` per PE. Physical memory is shared with the emulator without
copies: each DRAM region's buffer is mapped once at its PA (``uc_mem_map_ptr``), and MMIO
regions are mapped with callbacks into their devices. The engine runs with
``UC_TLB_VIRTUAL``: every TLB miss calls :meth:`ExecutionEngine._fill`, which performs the
architectural translation — stage 1 if the guest's MMU is on, stage 2 through the realm's
RTTs (table reads checked by the GPC), then the GPC on the output address — and only then
gives Unicorn the page. Unicorn caches that page until the TLB is flushed, which happens
exactly when a cached translation could have become stale: on any GPT maintenance (TLBI PA*
on any PE), when the RMM changes a realm's stage 2, and when the stage-2 context changes.

Unicorn performs no architectural exception entry of its own (guest-execution-unicorn §1):
SMC, undefined instructions, aborts and WFx stop the run and are reported as a
:class:`Stop`; the caller (the RMM at EL2) decides what happens, and
:meth:`ExecutionEngine.take_exception` performs an exception entry into the guest's EL1.
"""

from __future__ import annotations

import ctypes
import enum
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from unicorn import (
    UC_ARCH_ARM64,
    UC_HOOK_INSN,
    UC_HOOK_INTR,
    UC_HOOK_MEM_FETCH_UNMAPPED,
    UC_HOOK_MEM_READ_UNMAPPED,
    UC_HOOK_MEM_WRITE_UNMAPPED,
    UC_HOOK_TLB_FILL,
    UC_MODE_ARM,
    UC_PROT_ALL,
    UC_PROT_EXEC,
    UC_PROT_READ,
    UC_PROT_WRITE,
    UC_TLB_VIRTUAL,
)
from unicorn import arm64_const as A
from unicorn.unicorn import Uc, UcError
from unicorn.unicorn_const import UC_CTL_IO_WRITE, UC_CTL_TLB_FLUSH

from .faults import AccessKind, ArchFault
from .memory import PhysicalMemory, RegionKind
from .security import PhysicalAddressSpace as Pas
from .stage1 import Stage1Regs, translate_stage1
from .stage2 import Stage2Config, Stage2Fault, translate_stage2

_uclib: Any = None  # the C entry points behind Unicorn's Python binding (unicorn 2.1)
_CpReg: Any = None
try:
    from unicorn.unicorn_py3.arch.arm64 import UcRegCP64
    from unicorn.unicorn_py3.unicorn import uclib

    _uclib, _CpReg = uclib, UcRegCP64
except ImportError:  # pragma: no cover - another binding layout: use the binding
    pass

if TYPE_CHECKING:
    from .pe import ProcessingElement

UC_PAGE = 0x400  # Unicorn's AArch64 target page (1 KiB)
_ACCESS = {16: AccessKind.READ, 17: AccessKind.WRITE, 18: AccessKind.FETCH}
_UNTIL = 0xFFFF_FFFF_FFFF_FFF0  # never reached: runs end by stops

# System registers by (CRn, CRm, op0, op1, op2)
SCTLR_EL1 = (1, 0, 3, 0, 0)
TCR_EL1 = (2, 0, 3, 0, 2)
TTBR0_EL1 = (2, 0, 3, 0, 0)
TTBR1_EL1 = (2, 0, 3, 0, 1)
MAIR_EL1 = (10, 2, 3, 0, 0)
SPSR_EL1 = (4, 0, 3, 0, 0)
CNTV_CTL_EL0 = (14, 3, 3, 3, 1)
CNTV_CVAL_EL0 = (14, 3, 3, 3, 2)
CNTP_CTL_EL0 = (14, 2, 3, 3, 1)
CNTP_CVAL_EL0 = (14, 2, 3, 3, 2)

PSTATE_EL1H_DAIF = 0x3C5
SCTLR_EL1_RESET = 0x30D0_0800  # RES1 bits; MMU and caches off

GPR = [getattr(A, f"UC_ARM64_REG_X{i}") for i in range(31)]


class StopKind(enum.Enum):
    SMC = "smc"
    UNDEFINED = "undefined"  # HVC at EL1 without EL2 routing, UDF, unknown system register...
    ABORT = "abort"  # a translation/GPC/external fault on an access or fetch
    WFI = "wfi"
    WFE = "wfe"
    SVC = "svc"
    BRK = "brk"
    TIMESLICE = "timeslice"  # the physical timer fired: the host gets the PE back
    EXCEPTION = "exception"  # any other exception Unicorn reports


@dataclass
class Stop:
    kind: StopKind
    pc: int  # the PC the guest will resume at (after an SMC; at the instruction otherwise)
    fault: Exception | None = None
    va: int = 0
    access: AccessKind = AccessKind.READ
    intno: int = 0


class Watchdog:
    """The physical timer: stops a run that lasts longer than ``slice_s`` so that control
    returns to the host (an IRQ exit), however the guest loops. One thread for all PEs;
    a run pays only two attribute writes."""

    def __init__(self, slice_s: float = 0.05) -> None:
        self.slice_s = slice_s
        self.engines: list[ExecutionEngine] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, engine: ExecutionEngine) -> None:
        with self._lock:
            self.engines.append(engine)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ccasim-timer",
                                                daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        seen: dict[int, int] = {}
        while True:
            time.sleep(self.slice_s)
            for engine in list(self.engines):
                gen = engine.run_generation
                if engine.running and seen.get(id(engine)) == gen:
                    engine.timer_fired = True
                    engine.uc.emu_stop()
                seen[id(engine)] = gen


WATCHDOG = Watchdog()


class ExecutionEngine:
    """Executes guest code on one PE (see the module docstring)."""

    def __init__(self, pe: ProcessingElement, memory: PhysicalMemory) -> None:
        self.pe = pe
        self.memory = memory
        uc: Any = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        self.uc = uc
        self._keepalive: list[Any] = []
        for region in memory.map:
            if region.kind is RegionKind.DRAM:
                buf = memory.buffer(region.name)
                ptr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
                uc.mem_map_ptr(region.base, region.size, UC_PROT_ALL, ptr)
            else:
                uc.mmio_map(region.base, region.size, self._mmio_read, region.base,
                            self._mmio_write, region.base)
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        # Runs end only by stops: with "exits" enabled and none set, emu_start's ``until``
        # is ignored (otherwise Unicorn translates that address through the TLB as well).
        uc.ctl_exits_enabled(True)
        uc.ctl_set_exits([])
        uc.hook_add(UC_HOOK_TLB_FILL, self._fill)
        uc.hook_add(UC_HOOK_INTR, self._intr)
        # MRS of MPIDR_EL1 returns the vCPU's virtual MPIDR (VMPIDR_EL2), which Unicorn
        # cannot hold itself.
        uc.hook_add(UC_HOOK_INSN, self._mrs, None, 1, 0, A.UC_ARM64_INS_MRS)
        self.vmpidr = 0x8000_0000
        uc.hook_add(UC_HOOK_MEM_READ_UNMAPPED | UC_HOOK_MEM_WRITE_UNMAPPED
                    | UC_HOOK_MEM_FETCH_UNMAPPED, self._unmapped)
        self._context: Any = None
        # Register accesses straight through the C API: the binding's reg_read costs about
        # 2 us, most of a REC entry's register traffic (guest-execution-unicorn §4).
        self._uch = getattr(uc, "_uch", None) if _uclib is not None else None
        self._u64 = ctypes.c_uint64()
        self._u64_ref = ctypes.byref(self._u64)
        self._cp = _CpReg() if _CpReg is not None else None
        self._cp_ref = ctypes.byref(self._cp) if self._cp is not None else None
        self._code_generation = memory.code_generation
        self.stage2: Stage2Config | None = None
        self._stop: Stop | None = None
        self.running = False
        self.run_generation = 0
        self.timer_fired = False
        # HCR_EL2.TWI / TWE for the current run (set by the RMM from the REC entry flags)
        self.trap_wfi = False
        self.trap_wfe = False
        self.fills = 0
        self.flushes = 0
        pe.gpc.listeners.append(self.flush_tlb)
        WATCHDOG.register(self)

    # ------------------------------------------------------------------ TLB
    def flush_tlb(self) -> None:
        """Drop every cached translation (TLBI of any kind that may affect this PE)."""
        self.flushes += 1
        self.uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)

    def set_stage2(self, cfg: Stage2Config | None) -> None:
        """Program VTTBR/VTCR for the realm about to run; a new context flushes the TLB."""
        if cfg != self.stage2:
            self.stage2 = cfg
            self.flush_tlb()

    # ------------------------------------------------------------------ translation
    def translate(self, va: int, access: AccessKind) -> tuple[int, Pas, int]:
        """The architectural translation of one guest access: (PA, PAS, Unicorn perms).

        Stage 1 when the guest's MMU is on (its table walks are themselves translated by
        stage 2 and checked by the GPC), then stage 2, then the GPC on the output address.
        Raises Stage1Fault / Stage2Fault / GPC faults / ExternalAbort.
        """
        pe = self.pe
        write = access is AccessKind.WRITE
        fetch = access is AccessKind.FETCH
        cfg = self.stage2
        if cfg is None:
            raise RuntimeError("no stage-2 context programmed")
        ipa = va
        s1_perms = UC_PROT_ALL
        sctlr = self.sysreg(SCTLR_EL1)
        if sctlr & 1:
            pstate = self.pstate
            regs = Stage1Regs(sctlr, self.sysreg(TCR_EL1), self.sysreg(TTBR0_EL1),
                              self.sysreg(TTBR1_EL1), self.sysreg(MAIR_EL1))
            s1 = translate_stage1(regs, va, el=(pstate >> 2) & 3, write=write, fetch=fetch,
                                  pan=bool(pstate & (1 << 22)), read_desc=self._read_s1_desc,
                                  pa_bits=cfg.ipa_bits)
            ipa = s1.ipa
            s1_perms = ((UC_PROT_READ if s1.readable else 0)
                        | (UC_PROT_WRITE if s1.writable else 0)
                        | (UC_PROT_EXEC if s1.executable else 0))
        result = translate_stage2(cfg, ipa, write=write, fetch=fetch,
                                  read_desc=self._read_table)
        pe.gpc.check(result.pa, 1, result.pas, pe.security_state, access)
        perms = s1_perms & (
            (UC_PROT_READ if result.readable else 0)
            | (UC_PROT_WRITE if result.writable else 0)
            | (UC_PROT_EXEC if result.executable else 0)
        )
        return result.pa, result.pas, perms

    def _read_s1_desc(self, ipa: int) -> int:
        """A stage-1 table walk access: translated by stage 2 (faults have S1PTW set) and
        checked by the GPC."""
        cfg = self.stage2
        assert cfg is not None
        r = translate_stage2(cfg, ipa, write=False, fetch=False, read_desc=self._read_table,
                             s1ptw=True)
        pe = self.pe
        pe.gpc.check(r.pa, 8, r.pas, pe.security_state, AccessKind.READ)
        return self.memory.read_u64(r.pa, r.pas, pe.security_state)

    def _read_table(self, pa: int) -> int:
        cfg = self.stage2
        return self.pe.read_u64(pa, cfg.world_pas if cfg is not None else Pas.REALM)

    def _fill(self, uc: Uc, vaddr: int, access: int, entry: Any, _ud: Any) -> bool:
        kind = _ACCESS.get(access, AccessKind.READ)
        self.fills += 1
        try:
            pa, _pas, perms = self.translate(vaddr, kind)
        except (Stage2Fault, ArchFault) as fault:
            self._stop = Stop(StopKind.ABORT, self.pc, fault, vaddr, kind)
            return False
        except Exception as fault:  # a stage-1 fault (or any walker error)
            self._stop = Stop(StopKind.ABORT, self.pc, fault, vaddr, kind)
            return False
        if kind is AccessKind.FETCH:
            # Remember code pages: writes to them from outside the emulator must drop the
            # translation-block cache (see PhysicalMemory.code_pages).
            self.memory.code_pages.add(pa >> 12)
        else:
            perms &= ~UC_PROT_EXEC  # a later fetch comes back here and is recorded
        entry.paddr = pa & ~(UC_PAGE - 1)
        entry.perms = perms
        return True

    def _unmapped(self, uc: Uc, access: int, address: int, size: int, value: int,
                  _ud: Any) -> bool:
        kind = {19: AccessKind.READ, 20: AccessKind.WRITE, 21: AccessKind.FETCH}.get(
            access, AccessKind.READ)
        from .faults import ExternalAbort

        pas = self.stage2.world_pas if self.stage2 is not None else Pas.REALM
        fault = ExternalAbort(address, pas, self.pe.security_state, kind)
        self._stop = Stop(StopKind.ABORT, self.pc, fault, address, kind)
        return False

    def _mmio_read(self, uc: Uc, offset: int, size: int, base: int) -> int:
        return int.from_bytes(self.memory.read(base + offset, size), "little")

    def _mmio_write(self, uc: Uc, offset: int, size: int, value: int, base: int) -> None:
        self.memory.write(base + offset, (value & ((1 << (8 * size)) - 1)).to_bytes(size,
                                                                                    "little"))

    def _mrs(self, uc: Uc, reg: int, cp: Any, _ud: Any) -> int:
        if (cp.op0, cp.op1, cp.crn, cp.crm, cp.op2) == (3, 0, 0, 0, 5):  # MPIDR_EL1
            uc.reg_write(reg, self.vmpidr)
            return 1
        return 0

    # ------------------------------------------------------------------ exceptions
    def _intr(self, uc: Uc, intno: int, _ud: Any) -> None:
        pc = self.pc
        if intno == 13:
            self._stop = Stop(StopKind.SMC, pc, intno=intno)  # PC is past the SMC
        elif intno == 1:
            self._stop = Stop(StopKind.UNDEFINED, pc, intno=intno)
        elif intno == 2:
            self._stop = Stop(StopKind.SVC, pc, intno=intno)
        elif intno == 7:
            self._stop = Stop(StopKind.BRK, pc, intno=intno)
        else:
            self._stop = Stop(StopKind.EXCEPTION, pc, intno=intno)
        uc.emu_stop()

    # ------------------------------------------------------------------ running
    def run(self) -> Stop:
        """Run from the current PC until something stops the guest."""
        if self.memory.code_generation != self._code_generation:
            self._code_generation = self.memory.code_generation
            self.uc.ctl_flush_tb()
        self._stop = None
        self.timer_fired = False
        self.run_generation += 1
        self.running = True
        pc = self.pc
        try:
            self.uc.emu_start(pc, _UNTIL)
        except UcError:
            pass
        finally:
            self.running = False
        if self._stop is not None:
            return self._stop
        pc = self.pc
        if self.timer_fired:
            return Stop(StopKind.TIMESLICE, pc)
        insn = self.fetch_insn(pc - 4)
        if insn is not None and insn & 0xFFFF_FF9F == 0xD503_201F:  # hint: WFE/WFI
            return Stop(StopKind.WFI if insn & 0x20 else StopKind.WFE, pc)
        return Stop(StopKind.EXCEPTION, pc)

    def fetch_insn(self, va: int) -> int | None:
        """The instruction word at ``va`` as the guest would fetch it, or None on a fault."""
        try:
            pa, pas, _ = self.translate(va, AccessKind.FETCH)
            return int.from_bytes(self.memory.read(pa, 4, pas, self.pe.security_state),
                                  "little")
        except Exception:
            return None

    # ------------------------------------------------------------------ registers
    def _read(self, reg: int) -> int:
        if self._uch is None:
            return int(self.uc.reg_read(reg))
        status = _uclib.uc_reg_read(self._uch, reg, self._u64_ref)
        if status:
            raise UcError(status)
        return int(self._u64.value)

    def _write(self, reg: int, value: int) -> None:
        if self._uch is None:
            self.uc.reg_write(reg, value)
            return
        self._u64.value = value
        status = _uclib.uc_reg_write(self._uch, reg, self._u64_ref)
        if status:
            raise UcError(status)

    @property
    def pc(self) -> int:
        return self._read(A.UC_ARM64_REG_PC)

    @pc.setter
    def pc(self, value: int) -> None:
        self._write(A.UC_ARM64_REG_PC, value)

    @property
    def sp(self) -> int:
        return int(self.uc.reg_read(A.UC_ARM64_REG_SP))

    def x(self, n: int) -> int:
        return 0 if n == 31 else self._read(GPR[n])

    def set_x(self, n: int, value: int) -> None:
        if n != 31:
            self._write(GPR[n], value & ((1 << 64) - 1))

    def xs(self, first: int, count: int) -> list[int]:
        read = self._read
        return [read(reg) for reg in GPR[first : first + count]]

    def sysreg(self, enc: tuple[int, int, int, int, int]) -> int:
        cp = self._cp
        if self._uch is None or cp is None:
            return int(self.uc.reg_read(A.UC_ARM64_REG_CP_REG, enc))
        cp.crn, cp.crm, cp.op0, cp.op1, cp.op2 = enc
        cp.val = 0
        status = _uclib.uc_reg_read(self._uch, A.UC_ARM64_REG_CP_REG, self._cp_ref)
        if status:
            raise UcError(status)
        return int(cp.val)

    def set_sysreg(self, enc: tuple[int, int, int, int, int], value: int) -> None:
        cp = self._cp
        if self._uch is None or cp is None:
            self.uc.reg_write(A.UC_ARM64_REG_CP_REG, (*enc, value))
            return
        cp.crn, cp.crm, cp.op0, cp.op1, cp.op2 = enc
        cp.val = value
        status = _uclib.uc_reg_write(self._uch, A.UC_ARM64_REG_CP_REG, self._cp_ref)
        if status:
            raise UcError(status)

    @property
    def pstate(self) -> int:
        return int(self.uc.reg_read(A.UC_ARM64_REG_PSTATE))

    def set_pstate(self, value: int) -> None:
        """Write PSTATE and make the EL change take effect (a CP-register write rebuilds
        Unicorn's cached EL state, guest-execution-unicorn §1)."""
        self.uc.reg_write(A.UC_ARM64_REG_PSTATE, value)
        self.set_sysreg(MAIR_EL1, self.sysreg(MAIR_EL1))

    def take_exception(
        self, esr: int, far: int | None, *, vector_offset: int | None = None
    ) -> None:
        """Exception entry to EL1 (Arm ARM D1.10): ESR/FAR/ELR/SPSR_EL1, PSTATE = EL1h with
        DAIF masked, PC = VBAR_EL1 + the vector for the current mode."""
        uc = self.uc
        pstate = self.pstate
        if vector_offset is None:
            mode = pstate & 0xF
            if pstate & 0x10:
                vector_offset = 0x600  # from AArch32
            elif mode == 0b0101:
                vector_offset = 0x200  # current EL, SP_EL1
            elif mode == 0b0100:
                vector_offset = 0x000  # current EL, SP_EL0
            else:
                vector_offset = 0x400  # lower EL, AArch64
        uc.reg_write(A.UC_ARM64_REG_ELR_EL1, self.pc)
        self.set_sysreg(SPSR_EL1, pstate)
        uc.reg_write(A.UC_ARM64_REG_ESR_EL1, esr)
        if far is not None:
            uc.reg_write(A.UC_ARM64_REG_FAR_EL1, far)
        vbar = int(uc.reg_read(A.UC_ARM64_REG_VBAR_EL1))
        self.set_pstate(PSTATE_EL1H_DAIF | (pstate & (1 << 22)))  # keep PAN
        self.pc = vbar + vector_offset

    # ------------------------------------------------------------------ context
    def save_context(self) -> bytes:
        """The vCPU's register state as bytes (to be stored in the REC's granules)."""
        ctx = self._context
        if ctx is None:
            ctx = self._context = self.uc.context_save()
        else:
            self.uc.context_update(ctx)
        return ctypes.string_at(ctx.context, ctx.size)

    def restore_context(self, blob: bytes) -> None:
        ctx = self._context
        if ctx is None:
            ctx = self._context = self.uc.context_save()
        if len(blob) != ctx.size:
            raise ValueError("vCPU context of the wrong size")
        ctypes.memmove(ctx.context, blob, len(blob))
        self.uc.context_restore(ctx)

    def reset_context(self, pc: int, gprs: list[int], mpidr: int) -> None:
        """A REC's initial state (rmm-abi §4.2): x0..x7 and pc given, other GPRs zero,
        PSTATE EL1h with DAIF masked, SCTLR_EL1 with MMU and caches off."""
        uc = self.uc
        for i in range(31):
            uc.reg_write(GPR[i], gprs[i] if i < len(gprs) else 0)
        uc.reg_write(A.UC_ARM64_REG_SP_EL0, 0)
        uc.reg_write(A.UC_ARM64_REG_SP_EL1, 0)
        self.set_sysreg(SCTLR_EL1, SCTLR_EL1_RESET)
        self.set_pstate(PSTATE_EL1H_DAIF)
        self.pc = pc
