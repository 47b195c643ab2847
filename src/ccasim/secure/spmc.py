"""The Secure Partition Manager Core at S-EL2 (standing in for Hafnium as an SPMC).

Entered by EL3 only (:mod:`ccasim.firmware.spmd`): once at cold boot, and for each FF-A
call the Normal world makes. It leaves by an SMC to EL3 carrying its answer
(``FFA_SUCCESS``, ``FFA_ERROR``, ``FFA_MSG_SEND_DIRECT_RESP``), or ``FFA_MSG_WAIT`` at the
end of boot.

What it owns:

* its Secure memory (the ``secure_dram`` region, Secure PAS from boot): a pool of granules
  for stage-2 tables, then one window per partition holding the partition's image, data,
  RX/TX buffers and stack;
* the partitions (:mod:`.partitions`): AArch64 code at S-EL1, run on the PE's
  :class:`~ccasim.arch.execution.ExecutionEngine` — the same machinery that runs realm
  guests — under a stage 2 the SPMC writes (:mod:`.mmu`), with every access checked by the
  GPC in Secure state. A partition's FF-A calls (SMCs) stop the engine and are handled
  here, at S-EL2; aborts are injected back into the partition as synchronous external
  aborts;
* the memory sharing state: every live FFA_MEM_SHARE / LEND / DONATE transaction by
  handle. LEND and DONATE move the granules from the Non-secure to the Secure PAS with
  ``FIRME_GM_GPI_SET`` (an SMC to EL3, which rewrites the GPT); SHARE leaves them
  Non-secure and maps them into the borrower with the stage-2 NS bit. RECLAIM scrubs what
  a borrower could have written (Secure-PAS stores) and returns the granules to the
  Non-secure PAS.

Every command has the same layout: decode -> checks in order, each failing with an FF-A
error and changing nothing -> state changes -> outputs. A failed check raises
:class:`FfaCallError`, converted to ``FFA_ERROR`` registers in exactly one place per caller
(the Normal world and partitions).

Model choices (deviations, documented): partitions are loaded and mapped at boot, but each
one's own initialisation code (up to its FFA_MSG_WAIT) runs when the first message is sent
to it, so a platform that never talks to the Secure world never creates an emulator; one
execution context per partition (UP partitions); one borrower per transaction; descriptors
must fit one fragment (no FFA_MEM_FRAG_RX/TX); only the FF-A v1.1 descriptor format.
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..arch.address import effective_address
from ..arch.execution import ExecutionEngine, Stop, StopKind
from ..arch.faults import AccessKind, ArchFault
from ..arch.memory import GRANULE_SIZE, MemoryMap
from ..arch.pe import ProcessingElement
from ..arch.security import PhysicalAddressSpace as Pas
from ..arch.stage2 import Stage2Fault
from ..config import PlatformConfig
from ..firmware import smccc
from . import ffa
from .ffa import (
    COMPOSITE,
    CONSTITUENT,
    EMAD,
    MASK32,
    MTD,
    RELINQUISH,
    Constituent,
    FfaError,
    TransactionType,
)
from .mmu import PartitionStage2, TablePool, TablesExhausted
from .partitions import DEFAULT_PARTITIONS, PartitionManifest

MASK64 = (1 << 64) - 1
GPI_SECURE = 0b1000
GPI_NON_SECURE = 0b1001
FIRME_SUCCESS = 0
FIRME_INCOMPLETE = -4

TABLE_POOL_SIZE = 512 << 10  # start of secure_dram: stage-2 tables
PARTITION_WINDOW = 256 << 10  # then one window per partition
MAX_SHARES = 64  # live memory transactions
RUN_LIMIT_S = 5.0  # a direct request that runs longer aborts the partition
MAX_CONSECUTIVE_FAULTS = 16  # exceptions injected without an FF-A call in between

EC_UNKNOWN = 0x00
EC_SVC64 = 0x15
EC_IABT_LOWER = 0x20
EC_IABT_CUR = 0x21
EC_DABT_LOWER = 0x24
EC_DABT_CUR = 0x25
EC_BRK = 0x3C
ESR_IL = 1 << 25
ESR_WNR = 1 << 6
FSC_SEA = 0x10


class FfaCallError(Exception):
    """A failed check: the call returns FFA_ERROR(``code``) and changes nothing."""

    def __init__(self, code: FfaError, label: str) -> None:
        super().__init__(f"{code.name}: {label}")
        self.code = code
        self.label = label


def fail(code: FfaError, label: str) -> FfaCallError:
    return FfaCallError(code, label)


class PartitionState(enum.Enum):
    CREATED = "created"  # loaded and mapped; its initialisation has not run yet
    WAITING = "waiting"  # blocked in FFA_MSG_WAIT / after a response: can take a request
    RUNNING = "running"  # handling a direct request
    ABORTED = "aborted"  # failed its initialisation, looped or faulted without end


@dataclass
class Mailbox:
    """An endpoint's RX/TX buffer pair. ``rx_full``: the RX buffer holds a message and
    belongs to the endpoint until it calls FFA_RX_RELEASE."""

    tx: int
    rx: int
    size: int
    pas: Pas
    rx_full: bool = False

    def pages(self) -> set[int]:
        return {b + off for b in (self.tx, self.rx) for off in range(0, self.size, GRANULE_SIZE)}


@dataclass
class Partition:
    manifest: PartitionManifest
    base: int
    entry: int
    data_start: int  # [base, data_start) code, read-only executable; then data, RW XN
    end: int
    stage2: PartitionStage2
    vmid: int
    state: PartitionState = PartitionState.CREATED
    context: bytes | None = None
    mailbox: Mailbox | None = None
    requests: int = 0

    @property
    def endpoint_id(self) -> int:
        return self.manifest.endpoint_id

    def owns_rw(self, ipa: int, size: int) -> bool:
        return self.data_start <= ipa and ipa + size <= self.end


@dataclass
class ShareState:
    """One live memory transaction (sender -> one borrowing partition)."""

    handle: int
    kind: TransactionType
    sender: int
    receiver: int
    constituents: tuple[Constituent, ...]
    permissions: int  # as the sender gave them
    attributes: int
    flags: int
    tag: int
    retrieved: bool = False
    granted: int = 0  # permissions the borrower was mapped with
    written: bool = False  # the borrower has had write access: scrub before reclaim
    clear_after_relinquish: bool = False  # the borrower's retrieve asked for it

    def granules(self) -> list[int]:
        return [pa for c in self.constituents for pa in c.granules()]


@dataclass
class CallRecord:
    """The last FF-A error the SPMC returned, for tests and debugging."""

    fid: int
    error: FfaCallError


Handler = Callable[[ProcessingElement, "Partition | None", Sequence[int]], tuple[int, ...]]


@dataclass
class Spmc:
    """The SPMC: see the module docstring. ``partitions`` are manifests, in ID order."""

    config: PlatformConfig
    memory_map: MemoryMap
    manifests: Sequence[PartitionManifest] = DEFAULT_PARTITIONS
    ffa_version: int = ffa.FFA_VERSION_1_1
    partitions: dict[int, Partition] = field(default_factory=dict)
    shares: dict[int, ShareState] = field(default_factory=dict)
    nwd_mailbox: Mailbox | None = None
    last_error: CallRecord | None = None
    booted: bool = False

    def owned_granules(self) -> set[int]:
        """Granules of Non-secure DRAM the SPMC has moved to the Secure PAS: those of live
        LEND / DONATE transactions and those donated for good (the invariant checker's
        contract: exactly these hold GPI Secure in tracked DRAM)."""
        owned = set(self._donated)
        for share in self.shares.values():
            if share.kind in (TransactionType.LEND, TransactionType.DONATE):
                owned.update(share.granules())
        return owned

    def __post_init__(self) -> None:
        self._busy_pages: dict[int, int] = {}  # NS-DRAM granule -> handle of its transaction
        self._donated: set[int] = set()  # granules donated to partitions: theirs for good
        self._next_handle = 1
        self._engines: dict[int, ExecutionEngine] = {}
        self.pool: TablePool | None = None
        self._nwd_calls: dict[int, Handler] = {
            ffa.FFA_FEATURES: self._features,
            ffa.FFA_RXTX_MAP_32: self._rxtx_map,
            ffa.FFA_RXTX_MAP_64: self._rxtx_map,
            ffa.FFA_RXTX_UNMAP: self._rxtx_unmap,
            ffa.FFA_RX_RELEASE: self._rx_release,
            ffa.FFA_PARTITION_INFO_GET: self._partition_info_get,
            ffa.FFA_MSG_SEND_DIRECT_REQ_64: self._direct_req,
            **{fid: self._mem_send for fid in ffa.SEND_CALLS},
            ffa.FFA_MEM_RECLAIM: self._mem_reclaim,
        }
        self._sp_calls: dict[int, Handler] = {
            ffa.FFA_VERSION: self._version,
            ffa.FFA_FEATURES: self._features,
            ffa.FFA_ID_GET: self._id_get,
            ffa.FFA_RXTX_MAP_32: self._rxtx_map,
            ffa.FFA_RXTX_MAP_64: self._rxtx_map,
            ffa.FFA_RXTX_UNMAP: self._rxtx_unmap,
            ffa.FFA_RX_RELEASE: self._rx_release,
            ffa.FFA_PARTITION_INFO_GET: self._partition_info_get,
            ffa.FFA_MEM_RETRIEVE_REQ_32: self._mem_retrieve,
            ffa.FFA_MEM_RETRIEVE_REQ_64: self._mem_retrieve,
            ffa.FFA_MEM_RELINQUISH: self._mem_relinquish,
        }

    # ================================================================== EL3 -> SPMC
    def cold_boot(self, pe: ProcessingElement) -> None:
        """Load the partitions into Secure memory and build their stage 2; then
        FFA_MSG_WAIT to EL3 (FFA_ERROR(NO_MEMORY) if they do not fit)."""
        region = self.memory_map["secure_dram"]
        try:
            if TABLE_POOL_SIZE + len(self.manifests) * PARTITION_WINDOW > region.size:
                raise fail(FfaError.NO_MEMORY, "secure_dram too small for the partitions")
            self.pool = TablePool(region.base, TABLE_POOL_SIZE)
            for index, manifest in enumerate(self.manifests):
                self._load(pe, index, manifest, region.base + TABLE_POOL_SIZE
                           + index * PARTITION_WINDOW)
        except (FfaCallError, TablesExhausted) as err:
            code = err.code if isinstance(err, FfaCallError) else FfaError.NO_MEMORY
            self._el3_call(pe, ffa.FFA_ERROR, 0, int(code) & MASK32)
            return
        self.booted = True
        self._el3_call(pe, ffa.FFA_MSG_WAIT)

    def _load(self, pe: ProcessingElement, index: int, manifest: PartitionManifest,
              base: int) -> None:
        image = manifest.image(base)
        if image.size > PARTITION_WINDOW:
            raise fail(FfaError.NO_MEMORY, f"partition {manifest.name} larger than its window")
        pe.write(base, image.data, Pas.SECURE)
        for symbol, secret in manifest.provision(self.config.seed).items():
            pe.write(image.symbol(symbol), secret, Pas.SECURE)
        assert self.pool is not None
        stage2 = PartitionStage2(pe, self.pool, vmid=index + 1)
        data_start = image.symbol("__data_start")
        end = base + -(-image.size // GRANULE_SIZE) * GRANULE_SIZE
        for ipa in range(base, end, GRANULE_SIZE):
            code = ipa < data_start
            stage2.map_page(pe, ipa, ipa, ns=False, write=not code, execute=code)
        self.partitions[manifest.endpoint_id] = Partition(
            manifest, base, image.entry, data_start, end, stage2, index + 1)

    def handle_ffa(self, pe: ProcessingElement) -> None:
        """An FF-A call from the Normal world, x0..x7 as the SPMD forwarded them."""
        args = list(pe.x[:8])
        fid = args[0] = args[0] & 0xFFFF_FFFF & ~smccc.FID_SVE_HINT
        handler = self._nwd_calls.get(fid)
        try:
            if handler is None:
                raise fail(FfaError.NOT_SUPPORTED, "not offered to the Normal world")
            results = handler(pe, None, args)
        except FfaCallError as err:
            self.last_error = CallRecord(fid, err)
            results = ffa.error_regs(err.code)
        self._el3_call(pe, *results)

    @staticmethod
    def _el3_call(pe: ProcessingElement, fid: int, *args: int) -> tuple[int, ...]:
        pe.x[0] = fid & MASK64
        for i, value in enumerate(args, start=1):
            pe.x[i] = value & MASK64
        pe.smc()
        return tuple(pe.x[:8])

    # ================================================================== simple calls
    def _version(self, pe: ProcessingElement, caller: Partition | None,
                 args: Sequence[int]) -> tuple[int, ...]:
        if args[1] & (1 << 31):
            return (smccc.to_u64(FfaError.NOT_SUPPORTED),)
        return (self.ffa_version,)

    def _id_get(self, pe: ProcessingElement, caller: Partition | None,
                args: Sequence[int]) -> tuple[int, ...]:
        return ffa.success_regs(caller.endpoint_id if caller else ffa.NWD_ENDPOINT_ID)

    def _features(self, pe: ProcessingElement, caller: Partition | None,
                  args: Sequence[int]) -> tuple[int, ...]:
        """FFA_FEATURES(w1 = function ID or feature ID): FFA_SUCCESS with w2 = interface
        properties (for FFA_RXTX_MAP: 0 = 4 KiB minimum buffer size and alignment)."""
        what = args[1] & MASK32
        if not what & (1 << 31):
            raise fail(FfaError.NOT_SUPPORTED, "feature IDs (NPI/SRI/MEI)")
        table = self._nwd_calls if caller is None else self._sp_calls
        offered = set(table) | {ffa.FFA_VERSION, ffa.FFA_ID_GET, ffa.FFA_FEATURES}
        if caller is not None:
            offered |= {ffa.FFA_MSG_WAIT, ffa.FFA_MSG_SEND_DIRECT_RESP_64, ffa.FFA_ERROR,
                        ffa.FFA_SUCCESS_32}
        else:
            offered |= {ffa.FFA_ERROR, ffa.FFA_SUCCESS_32, ffa.FFA_SUCCESS_64}
        if what not in offered:
            raise fail(FfaError.NOT_SUPPORTED, "function not implemented")
        return ffa.success_regs(0)

    # ================================================================== RX/TX buffers
    def _mailbox(self, caller: Partition | None) -> Mailbox | None:
        return self.nwd_mailbox if caller is None else caller.mailbox

    def _rxtx_map(self, pe: ProcessingElement, caller: Partition | None,
                  args: Sequence[int]) -> tuple[int, ...]:
        """FFA_RXTX_MAP(x1 = TX, x2 = RX, w3[5:0] = pages): the caller's buffer pair."""
        wide = args[0] == ffa.FFA_RXTX_MAP_64
        mask = MASK64 if wide else MASK32
        tx, rx, count = args[1] & mask, args[2] & mask, args[3] & MASK32
        if count & ~0x3F or count == 0:
            raise fail(FfaError.INVALID_PARAMETERS, "page count")
        if self._mailbox(caller) is not None:
            raise fail(FfaError.DENIED, "buffers already mapped")
        size = count * GRANULE_SIZE
        if tx % GRANULE_SIZE or rx % GRANULE_SIZE:
            raise fail(FfaError.INVALID_PARAMETERS, "buffer alignment")
        if tx < rx + size and rx < tx + size:
            raise fail(FfaError.INVALID_PARAMETERS, "TX and RX overlap")
        if caller is None:
            pages = [b + o for b in (tx, rx) for o in range(0, size, GRANULE_SIZE)]
            self._check_nwd_owned(pe, pages)
            self.nwd_mailbox = Mailbox(tx, rx, size, Pas.NON_SECURE)
        else:
            if not (caller.owns_rw(tx, size) and caller.owns_rw(rx, size)):
                raise fail(FfaError.INVALID_PARAMETERS, "buffers outside the partition's RW data")
            caller.mailbox = Mailbox(tx, rx, size, Pas.SECURE)
        return ffa.success_regs()

    def _rxtx_unmap(self, pe: ProcessingElement, caller: Partition | None,
                    args: Sequence[int]) -> tuple[int, ...]:
        """FFA_RXTX_UNMAP(w1[31:16] = endpoint ID: 0 from an endpoint without a
        hypervisor)."""
        if args[1] & MASK32:
            raise fail(FfaError.INVALID_PARAMETERS, "w1 must be zero")
        if self._mailbox(caller) is None:
            raise fail(FfaError.INVALID_PARAMETERS, "no buffers mapped")
        if caller is None:
            self.nwd_mailbox = None
        else:
            caller.mailbox = None
        return ffa.success_regs()

    def _rx_release(self, pe: ProcessingElement, caller: Partition | None,
                    args: Sequence[int]) -> tuple[int, ...]:
        mailbox = self._mailbox(caller)
        if mailbox is None or not mailbox.rx_full:
            raise fail(FfaError.DENIED, "RX buffer not owned by the caller")
        mailbox.rx_full = False
        return ffa.success_regs()

    def _read_tx(self, pe: ProcessingElement, mailbox: Mailbox, size: int) -> bytes:
        try:
            return pe.read(mailbox.tx, size, mailbox.pas)
        except ArchFault as fault:
            raise fail(FfaError.ABORTED, "TX buffer not accessible") from fault

    def _write_rx(self, pe: ProcessingElement, mailbox: Mailbox, data: bytes) -> None:
        if len(data) > mailbox.size:
            raise fail(FfaError.NO_MEMORY, "message larger than the RX buffer")
        try:
            pe.write(mailbox.rx, data, mailbox.pas)
        except ArchFault as fault:
            raise fail(FfaError.ABORTED, "RX buffer not accessible") from fault
        mailbox.rx_full = True

    # ================================================================== discovery
    def _partition_info_get(self, pe: ProcessingElement, caller: Partition | None,
                            args: Sequence[int]) -> tuple[int, ...]:
        """FFA_PARTITION_INFO_GET(w1..w4 = UUID, null = all; w5 bit 0 = count only)."""
        uuid = tuple(a & MASK32 for a in args[1:5])
        flags = args[5] & MASK32
        if flags & ~ffa.PARTITION_INFO_COUNT_FLAG:
            raise fail(FfaError.INVALID_PARAMETERS, "flags")
        found = [p for p in self.partitions.values()
                 if not any(uuid) or p.manifest.uuid == uuid]
        if not found:
            raise fail(FfaError.INVALID_PARAMETERS, "unknown UUID")
        if flags & ffa.PARTITION_INFO_COUNT_FLAG:
            return ffa.success_regs(len(found))
        mailbox = self._mailbox(caller)
        if mailbox is None or mailbox.rx_full:
            raise fail(FfaError.BUSY, "RX buffer not available")
        blob = b"".join(ffa.PARTITION_INFO.pack({
            "id": p.endpoint_id, "exec_ctx_count": 1, "properties": p.manifest.properties,
            "uuid": ffa.uuid_bytes(p.manifest.uuid)}) for p in found)
        self._write_rx(pe, mailbox, blob)
        return ffa.success_regs(len(found), ffa.PARTITION_INFO.size)

    # ================================================================== direct messages
    def _direct_req(self, pe: ProcessingElement, caller: Partition | None,
                    args: Sequence[int]) -> tuple[int, ...]:
        """FFA_MSG_SEND_DIRECT_REQ_64 from the Normal world: run the receiver with x0..x7
        until it answers with FFA_MSG_SEND_DIRECT_RESP_64."""
        ids = args[1] & MASK32
        sender, receiver = ids >> 16, ids & 0xFFFF
        if ffa.is_secure_id(sender):
            raise fail(FfaError.INVALID_PARAMETERS, "sender is not a Normal-world ID")
        part = self.partitions.get(receiver)
        if part is None:
            raise fail(FfaError.INVALID_PARAMETERS, "no such partition")
        if args[2] & MASK32:
            raise fail(FfaError.INVALID_PARAMETERS, "flags (framework messages unsupported)")
        if part.state is PartitionState.ABORTED:
            raise fail(FfaError.ABORTED, "partition aborted")
        if part.state is PartitionState.RUNNING:
            raise fail(FfaError.BUSY, "partition busy")
        if part.state is PartitionState.CREATED:
            self._start(pe, part)
        part.state = PartitionState.RUNNING
        part.requests += 1
        request = [ffa.FFA_MSG_SEND_DIRECT_REQ_64, ids, 0, *args[3:8]]
        response = self._run(pe, part, request, requester=sender)
        if response is None:
            raise fail(FfaError.ABORTED, "partition aborted while handling the request")
        part.state = PartitionState.WAITING
        return (ffa.FFA_MSG_SEND_DIRECT_RESP_64, response[1] & MASK32, 0, *response[3:8])

    # ================================================================== partitions
    def engine(self, pe: ProcessingElement) -> ExecutionEngine:
        engine = self._engines.get(pe.index)
        if engine is None:
            engine = self._engines[pe.index] = ExecutionEngine(pe, pe.memory)
        return engine

    def _stage2_changed(self, part: Partition) -> None:
        """TLBI VMALLS12E1IS for the partition's VMID: drop cached translations."""
        for engine in self._engines.values():
            if engine.stage2 is not None and engine.stage2.vmid == part.vmid:
                engine.flush_tlb()

    def _start(self, pe: ProcessingElement, part: Partition) -> None:
        """Run the partition's initialisation until its FFA_MSG_WAIT."""
        part.state = PartitionState.RUNNING
        if self._run(pe, part, None, requester=None) is None:
            raise fail(FfaError.ABORTED, "partition initialisation failed")
        part.state = PartitionState.WAITING

    def _run(self, pe: ProcessingElement, part: Partition, regs: list[int] | None,
             requester: int | None) -> list[int] | None:
        """Run ``part`` at S-EL1 until it ends its turn: FFA_MSG_WAIT during
        initialisation (``requester`` None), else a valid FFA_MSG_SEND_DIRECT_RESP_64 to
        ``requester``. Returns its x0..x7 then, or None if it had to be aborted."""
        engine = self.engine(pe)
        engine.set_stage2(part.stage2.config)
        if part.context is None:
            engine.reset_context(part.entry, [], pe.sysregs["MPIDR_EL1"])
        else:
            engine.restore_context(part.context)
        for i, value in enumerate(regs or []):
            engine.set_x(i, value)
        engine.trap_wfi = engine.trap_wfe = False
        deadline = time.monotonic() + RUN_LIMIT_S
        faults = 0
        saved_el = pe.el
        try:
            while time.monotonic() < deadline and faults <= MAX_CONSECUTIVE_FAULTS:
                pe.set_el(1)
                try:
                    stop = engine.run()
                finally:
                    pe.set_el(saved_el)
                if stop.kind is StopKind.SMC:
                    faults = 0
                    done = self._partition_smc(pe, part, engine, requester)
                    if done is not None:
                        return done
                elif stop.kind in (StopKind.TIMESLICE, StopKind.WFI, StopKind.WFE):
                    continue
                else:
                    faults += 1
                    self._inject(engine, stop)
            part.state = PartitionState.ABORTED
            return None
        finally:
            part.context = engine.save_context()

    def _partition_smc(self, pe: ProcessingElement, part: Partition, engine: ExecutionEngine,
                       requester: int | None) -> list[int] | None:
        args = engine.xs(0, 8)
        fid = args[0] = args[0] & 0xFFFF_FFFF & ~smccc.FID_SVE_HINT
        if fid == ffa.FFA_MSG_WAIT:
            if requester is None:
                return args
            results: tuple[int, ...] = ffa.error_regs(FfaError.DENIED)  # must respond first
        elif fid == ffa.FFA_MSG_SEND_DIRECT_RESP_64:
            ids = args[1] & MASK32
            if requester is None:
                results = ffa.error_regs(FfaError.DENIED)
            elif (ids >> 16, ids & 0xFFFF) != (part.endpoint_id, requester) or args[2] & MASK32:
                results = ffa.error_regs(FfaError.INVALID_PARAMETERS)
            else:
                return args
        elif fid == ffa.FFA_ERROR and requester is None:
            part.state = PartitionState.ABORTED
            raise fail(FfaError.ABORTED, "partition reported an initialisation error")
        elif not ffa.is_ffa(fid):
            results = (smccc.SMC_UNKNOWN,)
        else:
            handler = self._sp_calls.get(fid)
            try:
                if handler is None:
                    raise fail(FfaError.NOT_SUPPORTED, "not offered to partitions")
                results = handler(pe, part, args)
            except FfaCallError as err:
                self.last_error = CallRecord(fid, err)
                results = ffa.error_regs(err.code)
        for i, value in enumerate(results):
            engine.set_x(i, value & MASK64)
        return None

    def _inject(self, engine: ExecutionEngine, stop: Stop) -> None:
        """A synchronous exception into the partition's EL1 (the SPMC reflects stage-2
        faults and granule protection faults as synchronous external aborts)."""
        from_el0 = (engine.pstate & 0xF) == 0
        engine.pc = stop.pc
        if stop.kind is StopKind.ABORT:
            fetch = stop.access is AccessKind.FETCH
            ec = (EC_IABT_LOWER if fetch else EC_DABT_LOWER) + (0 if from_el0 else 1)
            wnr = ESR_WNR if stop.access is AccessKind.WRITE else 0
            far = stop.va
            if isinstance(stop.fault, Stage2Fault | ArchFault) and not fetch:
                insn = engine.fetch_insn(stop.pc)
                va = None if insn is None else effective_address(insn, engine.x, engine.sp,
                                                                 stop.pc)
                if va is not None and not (va ^ stop.va) >> 10:
                    far = va
            engine.take_exception((ec << 26) | ESR_IL | wnr | FSC_SEA, far)
        elif stop.kind is StopKind.SVC:
            engine.take_exception((EC_SVC64 << 26) | ESR_IL, None)
        elif stop.kind is StopKind.BRK:
            engine.take_exception((EC_BRK << 26) | ESR_IL, None)
        else:
            engine.take_exception((EC_UNKNOWN << 26) | ESR_IL, None)

    # ================================================================== memory: send
    def _new_handle(self) -> int:
        handle = self._next_handle  # bit 63 clear: allocated by the SPMC
        self._next_handle += 1
        return handle

    def _check_nwd_owned(self, pe: ProcessingElement, granules: Iterable[int]) -> None:
        """The granules are Normal-world DRAM that nothing else holds: in ``ns_dram``, not
        in a live transaction or donated, not the Normal world's RX/TX buffers, and in the
        Non-secure PAS now — checked by a Secure-state read of the NS PAS, which the GPC
        refuses for a granule delegated to a realm or lent to the Secure world."""
        region = self.memory_map["ns_dram"]
        mailbox_pages = self.nwd_mailbox.pages() if self.nwd_mailbox else set()
        granules = list(granules)
        for pa in granules:
            if not region.contains(pa, GRANULE_SIZE):
                raise fail(FfaError.DENIED, "not Normal-world DRAM")
        for pa in granules:
            if pa in self._busy_pages or pa in self._donated:
                raise fail(FfaError.DENIED, "already in a memory transaction")
            if pa in mailbox_pages:
                raise fail(FfaError.DENIED, "the Normal world's RX/TX buffers")
        for pa in granules:
            try:
                pe.read(pa, 1, Pas.NON_SECURE)
            except ArchFault as fault:
                raise fail(FfaError.DENIED, "not in the Non-secure PAS") from fault

    def _mem_send(self, pe: ProcessingElement, caller: Partition | None,
                  args: Sequence[int]) -> tuple[int, ...]:
        """FFA_MEM_SHARE / LEND / DONATE from the Normal world, descriptor in its TX."""
        kind = ffa.SEND_CALLS[args[0]]
        data = self._transaction_descriptor(pe, self.nwd_mailbox, args)
        region = self._validate_send(kind, data)
        granules = [pa for c in region.constituents for pa in c.granules()]
        self._check_nwd_owned(pe, granules)
        if len(self.shares) >= MAX_SHARES:
            raise fail(FfaError.NO_MEMORY, "too many live transactions")
        if kind is not TransactionType.SHARE:
            self._set_pas(pe, region.constituents, GPI_SECURE)
            if region.flags & ffa.MTD_FLAG_ZERO_MEMORY:
                for pa in granules:
                    pe.zero(pa, GRANULE_SIZE, Pas.SECURE)
        handle = self._new_handle()
        self.shares[handle] = ShareState(
            handle, kind, region.sender, region.receiver, region.constituents,
            region.permissions, region.attributes, region.flags, region.tag)
        for pa in granules:
            self._busy_pages[pa] = handle
        return ffa.success_regs(handle & MASK32, handle >> 32)

    def _transaction_descriptor(self, pe: ProcessingElement, mailbox: Mailbox | None,
                                args: Sequence[int]) -> bytes:
        """w1 total length, w2 fragment length, x3 address and w4 page count (MBZ: the
        descriptor is in the caller's TX buffer)."""
        total, fragment = args[1] & MASK32, args[2] & MASK32
        if mailbox is None:
            raise fail(FfaError.INVALID_PARAMETERS, "no TX buffer mapped")
        if args[3] or args[4] & MASK32:
            raise fail(FfaError.INVALID_PARAMETERS, "descriptor not in the TX buffer")
        if fragment > total or total > mailbox.size or total < MTD.size + EMAD.size:
            raise fail(FfaError.INVALID_PARAMETERS, "descriptor length")
        if fragment < total:
            raise fail(FfaError.NOT_SUPPORTED, "fragmented descriptor")
        return self._read_tx(pe, mailbox, total)

    def _validate_send(self, kind: TransactionType, data: bytes) -> ffa.ParsedRegion:
        total = len(data)
        mtd = MTD.unpack(data)
        sender, attributes, flags = int(mtd["sender_id"]), int(mtd["attributes"]), int(
            mtd["flags"])
        if ffa.is_secure_id(sender):
            raise fail(FfaError.INVALID_PARAMETERS, "sender is not a Normal-world ID")
        if mtd["handle"]:
            raise fail(FfaError.INVALID_PARAMETERS, "handle must be zero")
        if mtd["reserved_36"] or mtd["reserved_40"]:
            raise fail(FfaError.INVALID_PARAMETERS, "reserved fields")
        if mtd["emad_size"] != EMAD.size:
            raise fail(FfaError.INVALID_PARAMETERS, "endpoint descriptor size")
        if mtd["emad_count"] == 0:
            raise fail(FfaError.INVALID_PARAMETERS, "no borrower")
        if mtd["emad_count"] != 1:
            raise fail(FfaError.NOT_SUPPORTED, "more than one borrower")
        emad_offset = int(mtd["emad_offset"])
        if emad_offset % 16 or emad_offset < MTD.size or emad_offset + EMAD.size > total:
            raise fail(FfaError.INVALID_PARAMETERS, "endpoint descriptor offset")
        if flags & ~(ffa.MTD_FLAG_ZERO_MEMORY | ffa.MTD_FLAG_TIME_SLICING | ffa.MTD_TYPE_MASK):
            raise fail(FfaError.INVALID_PARAMETERS, "flags")
        if (flags & ffa.MTD_TYPE_MASK) >> ffa.MTD_TYPE_SHIFT not in (0, kind):
            raise fail(FfaError.INVALID_PARAMETERS, "transaction type does not match the call")
        if flags & ffa.MTD_FLAG_ZERO_MEMORY and kind is TransactionType.SHARE:
            raise fail(FfaError.INVALID_PARAMETERS, "zeroing shared memory")
        if attributes & ~0x3F or (attributes & ffa.ATTR_TYPE_MASK) not in (
                ffa.ATTR_TYPE_NOT_SPECIFIED, ffa.ATTR_TYPE_NORMAL):
            raise fail(FfaError.INVALID_PARAMETERS, "memory region attributes")
        emad = EMAD.unpack(data[emad_offset:])
        receiver, perms = int(emad["endpoint_id"]), int(emad["permissions"])
        if receiver not in self.partitions:
            raise fail(FfaError.INVALID_PARAMETERS, "borrower is not a partition")
        if emad["flags"] or emad["reserved"] or perms & ~0xF:
            raise fail(FfaError.INVALID_PARAMETERS, "endpoint descriptor reserved bits")
        data_access, instr = perms & ffa.DATA_ACCESS_MASK, perms & ffa.INSTR_ACCESS_MASK
        if kind is TransactionType.DONATE:
            if perms:
                raise fail(FfaError.INVALID_PARAMETERS, "donate: permissions not specified")
        else:
            if data_access not in (ffa.DATA_RO, ffa.DATA_RW):
                raise fail(FfaError.INVALID_PARAMETERS, "data access permission")
            if instr == ffa.INSTR_X:
                raise fail(FfaError.DENIED, "executable access")
            if instr == ffa.INSTR_ACCESS_MASK:
                raise fail(FfaError.INVALID_PARAMETERS, "instruction access permission")
        comp_offset = int(emad["composite_offset"])
        if (comp_offset % 8 or comp_offset < emad_offset + EMAD.size
                or comp_offset + COMPOSITE.size > total):
            raise fail(FfaError.INVALID_PARAMETERS, "composite descriptor offset")
        comp = COMPOSITE.unpack(data[comp_offset:])
        count = int(comp["address_range_count"])
        first = comp_offset + COMPOSITE.size
        if count == 0 or first + count * CONSTITUENT.size > total or comp["reserved"]:
            raise fail(FfaError.INVALID_PARAMETERS, "constituent count")
        constituents = []
        for i in range(count):
            c = CONSTITUENT.unpack(data[first + i * CONSTITUENT.size :])
            address, pages = int(c["address"]), int(c["page_count"])
            if address % GRANULE_SIZE or pages == 0 or c["reserved"]:
                raise fail(FfaError.INVALID_PARAMETERS, "constituent address or size")
            if address + pages * GRANULE_SIZE > 1 << 64:
                raise fail(FfaError.INVALID_PARAMETERS, "constituent wraps")
            constituents.append(Constituent(address, pages))
        if sum(c.pages for c in constituents) != comp["total_page_count"]:
            raise fail(FfaError.INVALID_PARAMETERS, "total page count")
        ordered = sorted(constituents, key=lambda c: c.address)
        for a, b in itertools.pairwise(ordered):
            if a.end > b.address:
                raise fail(FfaError.INVALID_PARAMETERS, "overlapping constituents")
        return ffa.ParsedRegion(sender, attributes, flags, 0, int(mtd["tag"]), receiver, perms,
                                0, int(comp["total_page_count"]), tuple(constituents))

    def _set_pas(self, pe: ProcessingElement, constituents: Sequence[Constituent],
                 gpi: int) -> None:
        """FIRME_GM_GPI_SET over every constituent; on a refusal, undo what was done and
        fail with DENIED (nothing changed)."""
        done: list[Constituent] = []
        back = GPI_NON_SECURE if gpi == GPI_SECURE else GPI_SECURE
        for c in constituents:
            base, left = c.address, c.pages
            while left:
                x = self._el3_call(pe, smccc.FIRME_GM_GPI_SET, base, left, gpi)
                status, moved = smccc.to_signed(x[0]), x[1]
                if moved:
                    done.append(Constituent(base, moved))
                if status == FIRME_SUCCESS:
                    break
                if status != FIRME_INCOMPLETE:
                    for d in done:
                        self._firme_all(pe, d, back)
                    raise fail(FfaError.DENIED, "the monitor refused the PAS change")
                base, left = base + moved * GRANULE_SIZE, left - moved

    def _firme_all(self, pe: ProcessingElement, c: Constituent, gpi: int) -> None:
        base, left = c.address, c.pages
        while left:
            x = self._el3_call(pe, smccc.FIRME_GM_GPI_SET, base, left, gpi)
            status, moved = smccc.to_signed(x[0]), x[1]
            if status not in (FIRME_SUCCESS, FIRME_INCOMPLETE) or not moved:
                raise RuntimeError(f"SPMC panic: EL3 refused to restore {base:#x}: {status}")
            base, left = base + moved * GRANULE_SIZE, left - moved

    # ================================================================== memory: reclaim
    def _mem_reclaim(self, pe: ProcessingElement, caller: Partition | None,
                     args: Sequence[int]) -> tuple[int, ...]:
        """FFA_MEM_RECLAIM(w1/w2 = handle, w3 = flags): end a transaction the borrower has
        relinquished. Lent or donated granules are scrubbed if the borrower could write
        them (or if asked) with Secure-PAS stores, then returned to the Non-secure PAS."""
        handle = (args[1] & MASK32) | ((args[2] & MASK32) << 32)
        flags = args[3] & MASK32
        if flags & ~(ffa.RECLAIM_FLAG_ZERO | ffa.RECLAIM_FLAG_TIME_SLICING):
            raise fail(FfaError.INVALID_PARAMETERS, "flags")
        state = self.shares.get(handle)
        if state is None:
            raise fail(FfaError.INVALID_PARAMETERS, "unknown handle")
        if state.retrieved:
            raise fail(FfaError.DENIED, "still retrieved by the borrower")
        if flags & ffa.RECLAIM_FLAG_ZERO and state.kind is TransactionType.SHARE:
            raise fail(FfaError.INVALID_PARAMETERS, "zeroing shared memory")
        granules = state.granules()
        if state.kind is not TransactionType.SHARE:
            if state.written or flags & ffa.RECLAIM_FLAG_ZERO:
                for pa in granules:
                    pe.zero(pa, GRANULE_SIZE, Pas.SECURE)
            for c in state.constituents:
                self._firme_all(pe, c, GPI_NON_SECURE)
        del self.shares[handle]
        for pa in granules:
            self._busy_pages.pop(pa, None)
        return ffa.success_regs()

    # ================================================================== memory: borrower
    def _mem_retrieve(self, pe: ProcessingElement, caller: Partition | None,
                      args: Sequence[int]) -> tuple[int, ...]:
        """FFA_MEM_RETRIEVE_REQ from a partition: map the memory (IPA = PA) and write the
        retrieve response to its RX buffer."""
        assert caller is not None
        data = self._transaction_descriptor(pe, caller.mailbox, args)
        mtd = MTD.unpack(data)
        state = self.shares.get(int(mtd["handle"]))
        if state is None:
            raise fail(FfaError.INVALID_PARAMETERS, "unknown handle")
        if mtd["sender_id"] != state.sender:
            raise fail(FfaError.INVALID_PARAMETERS, "sender does not match")
        if mtd["tag"] != state.tag:
            raise fail(FfaError.INVALID_PARAMETERS, "tag does not match")
        if mtd["emad_size"] != EMAD.size or mtd["emad_count"] != 1:
            raise fail(FfaError.INVALID_PARAMETERS, "endpoint descriptors")
        flags = int(mtd["flags"])
        if flags & ~(ffa.MTD_TYPE_MASK | ffa.MTD_FLAG_ZERO_AFTER_RELINQUISH
                     | ffa.MTD_ALIGNMENT_HINT_MASK):
            raise fail(FfaError.INVALID_PARAMETERS, "flags")
        if (flags & ffa.MTD_TYPE_MASK) >> ffa.MTD_TYPE_SHIFT not in (0, state.kind):
            raise fail(FfaError.INVALID_PARAMETERS, "transaction type does not match")
        clear_after = bool(flags & ffa.MTD_FLAG_ZERO_AFTER_RELINQUISH)
        if clear_after and state.kind is TransactionType.SHARE:
            raise fail(FfaError.INVALID_PARAMETERS, "zeroing shared memory")
        emad_offset = int(mtd["emad_offset"])
        if emad_offset % 16 or emad_offset < MTD.size or emad_offset + EMAD.size > len(data):
            raise fail(FfaError.INVALID_PARAMETERS, "endpoint descriptor offset")
        emad = EMAD.unpack(data[emad_offset:])
        if emad["endpoint_id"] != caller.endpoint_id or state.receiver != caller.endpoint_id:
            raise fail(FfaError.INVALID_PARAMETERS, "caller is not the borrower")
        if state.retrieved:
            raise fail(FfaError.DENIED, "already retrieved")
        requested = int(emad["permissions"])
        if requested & ~0xF or requested & ffa.INSTR_ACCESS_MASK == ffa.INSTR_ACCESS_MASK:
            raise fail(FfaError.INVALID_PARAMETERS, "permissions")
        if requested & ffa.INSTR_ACCESS_MASK == ffa.INSTR_X:
            raise fail(FfaError.DENIED, "executable access")
        sent = state.permissions & ffa.DATA_ACCESS_MASK
        data_access = requested & ffa.DATA_ACCESS_MASK
        if data_access == ffa.DATA_ACCESS_MASK:
            raise fail(FfaError.INVALID_PARAMETERS, "data access permission")
        if state.kind is TransactionType.DONATE:
            data_access = data_access or ffa.DATA_RW
        elif data_access == ffa.DATA_NOT_SPECIFIED:
            data_access = sent
        elif data_access == ffa.DATA_RW and sent == ffa.DATA_RO:
            raise fail(FfaError.DENIED, "write access to read-only memory")
        mailbox = caller.mailbox
        assert mailbox is not None
        if mailbox.rx_full:
            raise fail(FfaError.BUSY, "RX buffer full")
        granules = state.granules()
        assert self.pool is not None
        if caller.stage2.tables_needed(pe, granules) > self.pool.free:
            raise fail(FfaError.NO_MEMORY, "no memory for translation tables")
        shared = state.kind is TransactionType.SHARE
        granted = data_access | ffa.INSTR_NX
        attributes = (state.attributes or ffa.ATTR_NORMAL_WB_INNER) | (ffa.ATTR_NS if shared
                                                                       else 0)
        response = ffa.memory_region(
            sender=state.sender, receiver=caller.endpoint_id, constituents=state.constituents,
            permissions=granted, attributes=attributes, flags=state.kind.flags,
            handle=state.handle, tag=state.tag)
        self._write_rx(pe, mailbox, response)
        for pa in granules:
            caller.stage2.map_page(pe, pa, pa, ns=shared, write=data_access == ffa.DATA_RW,
                                   execute=False)
        self._stage2_changed(caller)
        state.retrieved, state.granted = True, granted
        state.clear_after_relinquish = clear_after
        state.written |= data_access == ffa.DATA_RW
        if state.kind is TransactionType.DONATE:
            # Ownership passed to the borrower: the transaction is complete.
            del self.shares[state.handle]
            for pa in granules:
                self._busy_pages.pop(pa, None)
                self._donated.add(pa)
        return (ffa.FFA_MEM_RETRIEVE_RESP, len(response), len(response), 0, 0, 0, 0, 0)

    def _mem_relinquish(self, pe: ProcessingElement, caller: Partition | None,
                        args: Sequence[int]) -> tuple[int, ...]:
        """FFA_MEM_RELINQUISH: descriptor (handle, flags, endpoint list) in the caller's TX
        buffer; unmaps the memory from the borrower."""
        assert caller is not None
        mailbox = caller.mailbox
        if mailbox is None:
            raise fail(FfaError.INVALID_PARAMETERS, "no TX buffer mapped")
        head = RELINQUISH.unpack(self._read_tx(pe, mailbox, RELINQUISH.size))
        count = int(head["endpoint_count"])
        if count != 1:
            raise fail(FfaError.INVALID_PARAMETERS, "endpoint count")
        endpoint = int.from_bytes(self._read_tx(pe, mailbox, RELINQUISH.size + 2)[-2:],
                                  "little")
        if endpoint != caller.endpoint_id:
            raise fail(FfaError.INVALID_PARAMETERS, "endpoint is not the caller")
        flags = int(head["flags"])
        state = self.shares.get(int(head["handle"]))
        if state is None:
            raise fail(FfaError.INVALID_PARAMETERS, "unknown handle")
        if state.receiver != caller.endpoint_id or not state.retrieved:
            raise fail(FfaError.INVALID_PARAMETERS, "not retrieved by the caller")
        if flags & ~ffa.RELINQUISH_FLAG_ZERO:
            raise fail(FfaError.INVALID_PARAMETERS, "flags")
        if flags & ffa.RELINQUISH_FLAG_ZERO and state.kind is TransactionType.SHARE:
            raise fail(FfaError.INVALID_PARAMETERS, "zeroing shared memory")
        granules = state.granules()
        for pa in granules:
            caller.stage2.unmap_page(pe, pa)
        self._stage2_changed(caller)
        if flags & ffa.RELINQUISH_FLAG_ZERO or state.clear_after_relinquish:
            for pa in granules:
                pe.zero(pa, GRANULE_SIZE, Pas.SECURE)
        state.retrieved = False
        return ffa.success_regs()


__all__ = ["FfaCallError", "Mailbox", "Partition", "PartitionState", "ShareState", "Spmc"]
