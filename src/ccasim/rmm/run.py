"""Running a REC (rmm-abi §7, errata E-1..E-8): entry completions, the run loop, exits.

The REC's vCPU runs on the PE's :class:`~ccasim.arch.execution.ExecutionEngine` at R-EL1.
Its register context is saved in the REC's auxiliary granules between runs (aux 0..3), so
a REC can run on any PE. Every stop of the engine comes back here, at R-EL2, where it is
handled as TF-RMM handles the corresponding exception: RSI and PSCI calls, aborts
(injected into the realm or reported to the host), WFx, undefined instructions.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..arch import insn as isa
from ..arch.address import effective_address
from ..arch.execution import (
    CNTP_CTL_EL0,
    CNTP_CVAL_EL0,
    CNTV_CTL_EL0,
    CNTV_CVAL_EL0,
    SCTLR_EL1,
    SCTLR_EL1_RESET,
    ExecutionEngine,
    Stop,
    StopKind,
)
from ..arch.faults import AccessKind, ExternalAbort, GranuleProtectionCheckException
from ..arch.memory import GRANULE_SIZE
from ..arch.pe import ProcessingElement
from ..arch.security import PhysicalAddressSpace as Pas
from ..arch.stage2 import Stage2Config, Stage2Fault
from ..trace import fid_name
from . import psci, s2tt
from .context import EmulatedAbort, RecExit, RunContext
from .objects import (
    PSTATE_EL1H_DAIF,
    REC_CONTEXT_VALID,
    REC_HOST_CALL_PENDING,
    REC_MMIO_READ,
    REC_PSCI_RESULT_PENDING,
    REC_RESET_PENDING,
    Realm,
    Rec,
)
from .recrun import (
    ENTER_EMUL_MMIO,
    ENTER_INJECT_SEA,
    ENTER_RIPAS_RESPONSE,
    ENTER_TRAP_WFE,
    ENTER_TRAP_WFI,
    REC_EXIT,
    RecExitReason,
    pack_words,
    words,
)
from .rsi import dispatch as rsi_dispatch
from .rsi import is_rsi
from .rsi.host_call import HOST_CALL
from .s2tt import Ripas

if TYPE_CHECKING:
    from .rmm import Rmm

MASK64 = (1 << 64) - 1
CONTEXT_AUX = 4  # aux granules 0..3 hold the saved vCPU context
SMCCC_VERSION = 0x8000_0000

EC_UNKNOWN = 0x00
EC_WFX = 0x01
EC_SVC64 = 0x15
EC_HVC64 = 0x16
EC_SMC64 = 0x17
EC_SYSREG = 0x18
EC_IABT_LOWER = 0x20
EC_IABT_CUR = 0x21
EC_DABT_LOWER = 0x24
EC_DABT_CUR = 0x25
EC_BRK = 0x3C
IL = 1 << 25
ISV = 1 << 24
FSC_SEA = 0x10
EA = 1 << 9
S1PTW = 1 << 7
WNR = 1 << 6
# Fields of a reported data abort (rmm-abi §7.2)
ESR_EC = 0x3F << 26
ESR_ISV_SAS_SF = ISV | (0x3 << 22) | (1 << 15)
ESR_WNR = WNR
ESR_SET = 0x3 << 11
ESR_FNV = 1 << 10
ESR_EA = EA
ESR_DFSC = 0x3F
MASK_EMULATABLE = ESR_EC | ESR_ISV_SAS_SF | ESR_WNR | ESR_SET | ESR_FNV | ESR_EA | ESR_DFSC
MASK_NOT_EMULATABLE = ESR_EC | ESR_SET | ESR_FNV | ESR_EA | ESR_DFSC

MAX_HANDLED_STOPS = 100_000  # stops handled inside the realm before the timer IRQ wins
RUN_SLICE_S = 0.05


class RecRunner:
    """Runs RECs for one RMM; one :class:`ExecutionEngine` per PE, created on first use."""

    def __init__(self, rmm: Rmm) -> None:
        self.rmm = rmm
        self.engines: dict[int, ExecutionEngine] = {}
        # The context image read from a running REC's aux granules at entry (REC PA ->
        # bytes). Nothing else can write them while the REC runs, so at exit only the
        # granules whose bytes changed need writing back.
        self._aux_images: dict[int, bytes] = {}
        # The REC whose context each engine still holds since saving it (PE index -> REC
        # PA), and the image last saved for each REC (REC PA -> (PE index, bytes)): when
        # the engine holds exactly what the REC's aux granules hold, entry skips the read.
        self._resident: dict[int, int] = {}
        self._saved: dict[int, tuple[int, bytes]] = {}
        rmm.stage2_listeners.append(self._stage2_changed)

    def engine(self, pe: ProcessingElement) -> ExecutionEngine:
        engine = self.engines.get(pe.index)
        if engine is None:
            engine = self.engines[pe.index] = ExecutionEngine(pe, pe.memory)
        return engine

    def _stage2_changed(self, vmid: int, ipa: int, size: int) -> None:
        """TLBI IPAS2E1IS / VMALLS12E1IS: broadcast to every PE's TLB."""
        for engine in self.engines.values():
            if engine.stage2 is not None and engine.stage2.vmid == vmid:
                engine.flush_tlb()

    # ------------------------------------------------------------------ context
    def _load_context(self, ctx: RunContext) -> None:
        rec, engine, pe = ctx.rec, ctx.engine, ctx.pe
        engine.vmpidr = rec.mpidr
        self._aux_images.pop(rec.pa, None)
        resident = self._resident.pop(pe.index, None)
        if rec.flags & REC_CONTEXT_VALID:
            saved = self._saved.get(rec.pa)
            if resident == rec.pa and saved is not None and saved[0] == pe.index:
                self._aux_images[rec.pa] = saved[1]  # the engine still holds this context
            else:
                length = rec["context_len"]
                blob = b"".join(pe.read(a, GRANULE_SIZE, Pas.REALM)
                                for a in rec.aux[:CONTEXT_AUX])
                self._aux_images[rec.pa] = blob
                engine.restore_context(blob[:length])
        else:
            engine.reset_context(rec.pc, rec.gprs, rec.mpidr)
        if rec.flags & REC_RESET_PENDING:  # a completed PSCI CPU_ON (rmm-abi §6)
            engine.set_x(0, rec.gprs[0])
            engine.pc = rec.pc
            sctlr = engine.sysreg(SCTLR_EL1)
            engine.set_sysreg(SCTLR_EL1, SCTLR_EL1_RESET | (sctlr & (1 << 25)))  # keep EE
            engine.set_pstate(PSTATE_EL1H_DAIF)
            rec.flags &= ~REC_RESET_PENDING

    def _save_context(self, ctx: RunContext) -> None:
        rec, pe = ctx.rec, ctx.pe
        blob = ctx.engine.save_context()
        if len(blob) > CONTEXT_AUX * GRANULE_SIZE:
            raise RuntimeError("vCPU context larger than its auxiliary granules")
        old = self._aux_images.pop(rec.pa, None)
        for i, addr in enumerate(rec.aux[:CONTEXT_AUX]):
            start = i * GRANULE_SIZE
            chunk = blob[start : start + GRANULE_SIZE]
            if chunk and (old is None or old[start : start + len(chunk)] != chunk):
                pe.write(addr, chunk, Pas.REALM)
        if rec["context_len"] != len(blob):
            rec["context_len"] = len(blob)
        if not rec.flags & REC_CONTEXT_VALID:
            rec.flags |= REC_CONTEXT_VALID
        self._saved[rec.pa] = (pe.index, blob)
        self._resident[pe.index] = rec.pa

    # ------------------------------------------------------------------ entry
    def run(self, pe: ProcessingElement, realm: Realm, rec: Rec,
            enter: dict[str, int | bytes]) -> dict[str, int | bytes]:
        engine = self.engine(pe)
        ctx = RunContext(self.rmm, pe, engine, realm, rec)
        tracer = self.rmm.tracer
        begin = tracer.now() if tracer is not None else 0.0
        saved_el = pe.el
        pe.set_el(1)
        try:
            self._load_context(ctx)
            engine.set_stage2(Stage2Config(realm.rtt_base, realm.s2sz, realm.rtt_level_start,
                                           realm.rtt_num_start, pe.pa_bits, realm.vmid))
            flags = int(enter["flags"])
            exit_ = self._complete_entry(ctx, flags, enter)
            if exit_ is None:
                if rec["last_esr"] or rec["last_far"] or rec["last_hpfar"]:
                    rec["last_esr"] = rec["last_far"] = rec["last_hpfar"] = 0  # E-2
                if rec.flags & REC_MMIO_READ:
                    rec.flags &= ~REC_MMIO_READ
                exit_ = self._run_loop(ctx, flags)
                values = self._exit_values(ctx, exit_, ran=True)
            else:
                values = self._exit_values(ctx, exit_, ran=False)
            self._save_context(ctx)
        finally:
            pe.set_el(saved_el)
        rec.store(pe)
        if tracer is not None:
            tracer.span(f"REC {rec.rec_idx} runs", "rec", pe.index, begin, {
                "rec": hex(rec.pa), "exit_reason": RecExitReason(int(values["exit_reason"])).name,
                "esr": hex(int(values["esr"])), "hpfar": hex(int(values["hpfar"]))})
        return values

    def _complete_entry(self, ctx: RunContext, flags: int,
                        enter: dict[str, int | bytes]) -> RecExit | None:
        """rmm-abi §7.1 steps 2-7 in REL0 order (step 1, the GIC copy, ran in REC_ENTER)."""
        rec, engine = ctx.rec, ctx.engine
        if rec.flags & REC_PSCI_RESULT_PENDING:
            ctx.results(rec["psci_result"], 0, 0, 0)
            rec.flags &= ~REC_PSCI_RESULT_PENDING
        esr = rec["last_esr"]
        if flags & ENTER_INJECT_SEA:  # E-3
            ec = (esr >> 26) & 0x3F
            new_ec = EC_DABT_LOWER if (engine.pstate & 0xF) == 0 else EC_DABT_CUR
            iss = (esr & 0x1FF_FFFF & ~0x3F & ~ESR_FNV & ~S1PTW) | EA | FSC_SEA
            del ec
            engine.take_exception((new_ec << 26) | (esr & IL) | iss, rec["last_far"])
        elif flags & ENTER_EMUL_MMIO:  # E-4: the raw saved ESR decides
            if rec.flags & REC_MMIO_READ:
                gprs = words(enter["gprs"], 1)  # type: ignore[arg-type]
                engine.set_x((esr >> 16) & 0x1F, mmio_load_value(esr, gprs[0]))
            engine.pc = engine.pc + 4
        # RIPAS change completion (steps 4-5; E-5)
        if rec["set_ripas_base"] != rec["set_ripas_top"]:
            addr, top = rec["set_ripas_addr"], rec["set_ripas_top"]
            reject = (flags & ENTER_RIPAS_RESPONSE and rec["set_ripas_value"] == Ripas.RAM
                      and addr != top)
            ctx.results(0, addr, 1 if reject else 0)
            rec["set_ripas_base"] = rec["set_ripas_top"] = rec["set_ripas_addr"] = 0
        # Host call completion (step 7; E-7)
        if rec.flags & REC_HOST_CALL_PENDING:
            ipa = rec["host_call_ipa"]
            try:
                pa = ctx.page(ipa)
            except EmulatedAbort as abort:
                return self._emulated_abort(ctx, ipa, abort.level)
            except Exception:  # RIPAS EMPTY: nothing copied, x0 keeps the FID
                pass
            else:
                ctx.pe.write(pa + HOST_CALL.offset("gprs"), bytes(enter["gprs"]),
                             Pas.REALM)
                ctx.results(0)
            rec.flags &= ~REC_HOST_CALL_PENDING
        engine.trap_wfi = bool(flags & ENTER_TRAP_WFI)
        engine.trap_wfe = bool(flags & ENTER_TRAP_WFE)
        return None

    def _emulated_abort(self, ctx: RunContext, ipa: int, level: int) -> RecExit:
        """An RSI call's unmapped page: a stage-2 data abort exit with PC not advanced.
        The reported ESR is EC and DFSC only, ISV = IL = 0 (E-15); the saved syndrome stays
        the SMC trap's, so EMUL_MMIO / INJECT_SEA cannot follow (E-2)."""
        esr = (EC_DABT_LOWER << 26) | (0x04 + level)
        ctx.rec["last_esr"], ctx.rec["last_far"], ctx.rec["last_hpfar"] = (
            (EC_SMC64 << 26) | IL, 0, 0)
        return RecExit(RecExitReason.SYNC, {"esr": esr, "far": 0, "hpfar": ipa >> 8})

    # ------------------------------------------------------------------ the loop
    def _run_loop(self, ctx: RunContext, flags: int) -> RecExit:
        engine = ctx.engine
        deadline = time.monotonic() + RUN_SLICE_S
        for _ in range(MAX_HANDLED_STOPS):
            stop = engine.run()
            exit_ = self._handle(ctx, stop)
            if exit_ is not None:
                return exit_
            if time.monotonic() > deadline:
                break
        return RecExit(RecExitReason.IRQ)

    def _handle(self, ctx: RunContext, stop: Stop) -> RecExit | None:
        engine = ctx.engine
        kind = stop.kind
        if kind is StopKind.SMC:
            return self._smc(ctx)
        if kind is StopKind.ABORT:
            return self._abort(ctx, stop)
        if kind in (StopKind.WFI, StopKind.WFE):
            wfe = kind is StopKind.WFE
            if (engine.trap_wfe if wfe else engine.trap_wfi):
                # ESR_EL2 holds EC, IL, CV = 1, COND = 0b1110 and TI; the host sees only EC
                # and TI (rmm-abi §7.2).
                raw = (EC_WFX << 26) | IL | (1 << 24) | (0xE << 20) | int(wfe)
                ctx.rec["last_esr"], ctx.rec["last_far"], ctx.rec["last_hpfar"] = raw, 0, 0
                return RecExit(RecExitReason.SYNC, {"esr": (EC_WFX << 26) | int(wfe)})
            return RecExit(RecExitReason.IRQ)  # the PE waits until a physical interrupt
        if kind is StopKind.TIMESLICE:
            return RecExit(RecExitReason.IRQ)
        if kind is StopKind.SVC:
            insn = engine.fetch_insn(stop.pc - 4) or 0
            engine.pc = stop.pc
            engine.take_exception((EC_SVC64 << 26) | IL | ((insn >> 5) & 0xFFFF), None)
            return None
        if kind is StopKind.BRK:
            insn = engine.fetch_insn(stop.pc) or 0
            engine.take_exception((EC_BRK << 26) | IL | ((insn >> 5) & 0xFFFF), None)
            return None
        # UNDEFINED (HVC, unknown system registers, UDF) and anything else: UNDEF in EL1.
        return self._undefined(ctx, stop)

    def _undefined(self, ctx: RunContext, stop: Stop) -> RecExit | None:
        engine = ctx.engine
        insn = engine.fetch_insn(stop.pc)
        sysreg = decode_sysreg(insn) if insn is not None else None
        if sysreg is not None:
            op0, op1, crn, crm, op2, rt, is_read = sysreg
            if not is_read and (op0, op1, crn, crm) == (3, 0, 12, 11) and op2 in (1, 5, 7):
                # ICC_DIR/SGI1R/SGI0R writes exit to the host with the full ESR (§7.2)
                iss = (op0 << 20) | (op2 << 17) | (op1 << 14) | (crn << 10) | (rt << 5) | (
                    crm << 1)
                esr = (EC_SYSREG << 26) | IL | iss
                ctx.rec["last_esr"], ctx.rec["last_far"], ctx.rec["last_hpfar"] = esr, 0, 0
                engine.pc = stop.pc + 4
                return RecExit(RecExitReason.SYNC,
                               {"esr": esr, "gprs": pack_words([engine.x(rt)] + [0] * 30)})
            # Other trapped system registers read as zero and ignore writes, with no exit.
            if is_read:
                engine.set_x(rt, 0)
            engine.pc = stop.pc + 4
            return None
        # UNDEF in the realm; after an HVC, which traps to EL2 first, ELR_EL1 = ELR_EL2 =
        # the instruction after it (errata E-12)
        is_hvc = insn is not None and insn & 0xFFE0_001F == 0xD400_0002
        engine.pc = stop.pc + 4 if is_hvc else stop.pc
        engine.take_exception((EC_UNKNOWN << 26) | IL, None)
        return None

    def _smc(self, ctx: RunContext) -> RecExit | None:
        engine = ctx.engine
        fid32 = engine.x(0) & 0xFFFF_FFFF  # only x0[31:0] selects the function (E-18)
        fid = fid32 & 0xFFFE_FFFF  # SVE hint stripped for routing
        tracer = self.rmm.tracer
        if tracer is not None:
            tracer.instant(fid_name(fid), "rsi", ctx.pe.index,
                           {"args": [hex(v) for v in engine.xs(1, 4)]})
        try:
            if is_rsi(fid):
                return rsi_dispatch(ctx, fid)
            if psci.is_psci(fid):
                # PSCI decodes the FID again with the SVE hint: set, it is NOT_SUPPORTED
                return psci.handle(ctx, fid32)
        except EmulatedAbort as abort:
            engine.pc = engine.pc - 4  # the RSI call is retried after the host maps the page
            return self._emulated_abort(ctx, abort.ipa, abort.level)
        # x1..x3 read as zero after any call that returns through the dispatcher (E-17)
        if fid == SMCCC_VERSION:
            ctx.results(0x0001_0002, 0, 0, 0)
            return None
        ctx.results(MASK64, 0, 0, 0)  # SMC_UNKNOWN
        return None

    # ------------------------------------------------------------------ aborts
    def _abort(self, ctx: RunContext, stop: Stop) -> RecExit | None:
        engine, realm, rec = ctx.engine, ctx.realm, ctx.rec
        fault = stop.fault
        fetch = stop.access is AccessKind.FETCH
        from_el0 = (engine.pstate & 0xF) == 0
        # FAR: the accessed address; for a fetch, the PC (the TLB fill only knows the page)
        stop.va = stop.pc if fetch else self._fault_address(engine, stop)
        if isinstance(fault, Stage2Fault):
            insn = None if fetch else engine.fetch_insn(stop.pc)
            access = isa.decode_data_abort(insn) if insn is not None else None
            ipa = (fault.ipa & ~0xFFF) | (stop.va & 0xFFF)
            hpfar = (ipa >> 12) << 4
            if ipa >> realm.s2sz or (fetch and not realm.geometry.in_par(ipa)):
                self._inject_sea(ctx, stop, fetch, from_el0, access, fault.s1ptw)
                return None
            if realm.geometry.in_par(ipa):
                w = s2tt.walk(ctx.pe, realm.geometry, ipa & ~0xFFF, 3)
                # RIPAS EMPTY, assigned or not (TF-RMM ipa_is_empty): SEA, no exit
                if s2tt.ripas_of(w.kind) == Ripas.EMPTY:
                    self._inject_sea(ctx, stop, fetch, from_el0, access, fault.s1ptw)
                    return None
                ec = EC_IABT_LOWER if fetch else EC_DABT_LOWER
                raw = (ec << 26) | IL | fault.fsc | (S1PTW if fault.s1ptw else 0)
                if access is not None and not fetch:
                    raw |= access.iss(fault.fsc) & ~0x3F
                rec["last_esr"], rec["last_far"], rec["last_hpfar"] = raw, stop.va, hpfar
                if fetch and fault.kind.name != "TRANSLATION":
                    return RecExit(RecExitReason.SYNC, {"hpfar": hpfar})
                return RecExit(RecExitReason.SYNC, {"esr": raw & MASK_NOT_EMULATABLE,
                                                    "far": 0, "hpfar": hpfar})
            # Unprotected IPA, data access: emulatable MMIO when the syndrome is valid.
            raw = (EC_DABT_LOWER << 26) | IL | fault.fsc | (S1PTW if fault.s1ptw else 0)
            if access is not None:
                raw |= access.iss(fault.fsc) & ~0x3F
            rec["last_esr"], rec["last_far"], rec["last_hpfar"] = raw, stop.va, hpfar
            fields: dict[str, int | bytes] = {"hpfar": hpfar}
            if access is not None and access.isv and not fault.s1ptw:
                fields["esr"] = raw & MASK_EMULATABLE
                fields["far"] = stop.va & 0xFFF
                if access.wnr:
                    fields["gprs"] = pack_words(
                        [isa.store_value(access, engine.x(access.srt))] + [0] * 30)
                else:
                    rec.flags |= REC_MMIO_READ
            else:
                rec["last_esr"] = raw & ~ISV
                fields["esr"] = raw & MASK_NOT_EMULATABLE
            return RecExit(RecExitReason.SYNC, fields)
        if isinstance(fault, GranuleProtectionCheckException):
            esr = (EC_DABT_LOWER << 26) | IL | 0x28 | (WNR if stop.access is AccessKind.WRITE
                                                         else 0)
            rec["last_esr"], rec["last_far"], rec["last_hpfar"] = esr, stop.va, 0
            return RecExit(RecExitReason.SYNC, {"esr": esr & MASK_NOT_EMULATABLE})
        if isinstance(fault, ExternalAbort):
            # Synchronous external abort (SET = UER): inject into the realm and report.
            self._inject_sea(ctx, stop, fetch, from_el0)
            esr = ((EC_IABT_LOWER if fetch else EC_DABT_LOWER) << 26) | IL | EA | FSC_SEA
            return RecExit(RecExitReason.SYNC, {"esr": esr & MASK_NOT_EMULATABLE})
        # A stage-1 fault of the guest's own translation: an abort taken in the realm.
        fsc_fn = getattr(fault, "fsc", None)
        fsc = int(fsc_fn()) if callable(fsc_fn) else 0x04
        ec = (EC_IABT_LOWER if fetch else EC_DABT_LOWER) + (0 if from_el0 else 1)
        wnr = WNR if stop.access is AccessKind.WRITE else 0
        engine.pc = stop.pc
        engine.take_exception((ec << 26) | IL | wnr | fsc, stop.va)
        return None

    @staticmethod
    def _fault_address(engine: ExecutionEngine, stop: Stop) -> int:
        """FAR: the accessed address, from the instruction (the TLB fill only knows the
        page)."""
        insn = engine.fetch_insn(stop.pc)
        if insn is None:
            return stop.va
        va = effective_address(insn, engine.x, engine.sp, stop.pc)
        if va is None or (va ^ stop.va) >> 10:
            return stop.va
        return va

    def _inject_sea(self, ctx: RunContext, stop: Stop, fetch: bool, from_el0: bool,
                    access: isa.DataAccess | None = None, s1ptw: bool = False) -> None:
        """An SEA injected into the realm (errata E-12): the trap's ISS with FSC 0x10, EA
        set, FnV and S1PTW clear."""
        ec = (EC_IABT_LOWER if fetch else EC_DABT_LOWER) + (0 if from_el0 else 1)
        wnr = WNR if stop.access is AccessKind.WRITE else 0
        iss = wnr
        if access is not None and not fetch:
            iss = access.iss(FSC_SEA, s1ptw=s1ptw) & ~0x3F & ~S1PTW & ~ESR_FNV
        ctx.engine.pc = stop.pc
        ctx.engine.take_exception((ec << 26) | IL | EA | iss | FSC_SEA, stop.va)
        return None

    # ------------------------------------------------------------------ exit record
    def _exit_values(self, ctx: RunContext, exit_: RecExit,
                     ran: bool) -> dict[str, int | bytes]:
        values: dict[str, int | bytes] = {name: 0 for name in REC_EXIT.fields}
        values["gprs"] = bytes(31 * 8)
        values["gicv3_lrs"] = bytes(16 * 8)
        if ran:
            engine, rec = ctx.engine, ctx.rec
            values["gicv3_hcr"] = rec["gicv3_hcr"]
            # only the implemented list registers are copied (E-16)
            num_lrs = self.rmm.features.gic_num_lrs
            values["gicv3_lrs"] = rec.raw("gicv3_lrs")[: 8 * num_lrs].ljust(16 * 8, b"\0")
            values["cntp_ctl"] = engine.sysreg(CNTP_CTL_EL0)
            values["cntp_cval"] = engine.sysreg(CNTP_CVAL_EL0)
            values["cntv_ctl"] = engine.sysreg(CNTV_CTL_EL0)
            values["cntv_cval"] = engine.sysreg(CNTV_CVAL_EL0)
        values.update(exit_.fields)
        values["exit_reason"] = exit_.reason
        return values


def decode_sysreg(insn: int) -> tuple[int, int, int, int, int, int, bool] | None:
    """(op0, op1, CRn, CRm, op2, Rt, is_read) of an MRS/MSR (register), else None."""
    if insn & 0xFFD0_0000 != 0xD510_0000:
        return None
    return (
        2 + ((insn >> 19) & 1),
        (insn >> 16) & 0x7,
        (insn >> 12) & 0xF,
        (insn >> 8) & 0xF,
        (insn >> 5) & 0x7,
        insn & 0x1F,
        bool(insn & (1 << 21)),
    )


def mmio_load_value(esr: int, value: int) -> int:
    """The register value an emulated load produces (ISS SAS, SSE, SF of the saved ESR)."""
    bits = 8 << ((esr >> 22) & 0x3)
    value &= (1 << bits) - 1
    if esr & (1 << 21) and value >> (bits - 1):  # SSE: sign extend
        value -= 1 << bits
    width = 64 if esr & (1 << 15) else 32
    return value & ((1 << width) - 1)
