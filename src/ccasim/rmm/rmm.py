"""The Realm Management Monitor at R-EL2 (standing in for TF-RMM).

Entered by EL3 only: at cold boot, at warm boot, and for each RMI call forwarded from the
host. It leaves by the SMCs the RMM-EL3 interface defines (RMM_BOOT_COMPLETE,
RMM_RMI_REQ_COMPLETE); those are its last action on every entry.

State it owns: the granule tracker (in its own carve-out), the set of VMIDs in use, and the
objects (RDs, RECs, RTTs) that live in delegated granules.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from ..arch.pe import ProcessingElement
from ..firmware import smccc
from ..firmware.errors import ERmmBoot
from ..trace import Tracer
from .attestation import AttestationUnavailable, RealmAttestation
from .boot import BootError, BootInfo, read_manifest, validate_boot_args
from .errors import RmiError
from .features import RmmFeatures
from .granules import GranuleTracker
from .objects import Realm, Rec
from .rmi import dispatch

StructValues = dict[str, int | bytes]

if TYPE_CHECKING:
    from .run import RecRunner as RecRunnerType


class Rmm:
    def __init__(
        self,
        features: RmmFeatures,
        private_memory: mmap.mmap,
        tracker_offset: int,
        token_format: Literal["cmw", "legacy"] = "cmw",
    ) -> None:
        self.features = features
        self._private = private_memory
        self._tracker_offset = tracker_offset
        self.boot_info: BootInfo | None = None
        self.booted_cpus: set[int] = set()
        self.tracker: GranuleTracker = None  # type: ignore[assignment]  # set at cold boot
        self.vmids: set[int] = set()
        self.last_error: RmiError | None = None
        self.runner: RecRunnerType | None = None
        # Builds the attestation token for RSI_ATTESTATION_TOKEN_CONTINUE (the attestation
        # layer installs one): (pe, realm, challenge) -> CCA token bytes.
        self.token_builder: Callable[
            [ProcessingElement, Realm, bytes, list[bytes]], bytes
        ] | None = None
        self.attestation = RealmAttestation(token_format)
        self.attestation_error: str | None = None
        self.last_rsi_error: Exception | None = None
        self.tracer: Tracer | None = None
        self.stage2_listeners: list[Callable[[int, int, int], None]] = []
        # Called at every REC exit (the run returned, still inside RMI_REC_ENTER, the REC
        # still counted as running) with (pe, realm, rec): the invariant checker's hook.
        self.rec_exit_listeners: list[Callable[[ProcessingElement, Realm, Rec], None]] = []

    # ------------------------------------------------------------------ EL3 -> RMM
    def cold_boot(self, pe: ProcessingElement) -> None:
        cpu_id, version, num_cpus, shared = pe.x[0], pe.x[1], pe.x[2], pe.x[3]
        status = ERmmBoot.SUCCESS
        try:
            validate_boot_args(cpu_id, version, num_cpus, shared)
            info = read_manifest(pe, shared)
            needed = self._tracker_offset + 2 * sum(size >> 12 for _, size in info.dram_banks)
            if needed > len(self._private):
                raise BootError(ERmmBoot.MANIFEST_DATA_ERROR, "too much DRAM to track")
            self.boot_info = BootInfo(num_cpus, version, info.dram_banks, info.console_base)
            self.tracker = GranuleTracker(self._private, self._tracker_offset, info.dram_banks)
            self.booted_cpus.add(cpu_id)
            try:
                self.attestation.initialise(self.el3_call, pe, shared)
                self.token_builder = self.attestation.build
            except AttestationUnavailable as err:  # the RMM runs; tokens cannot be made
                self.attestation_error = str(err)
        except BootError as err:
            status = err.status
        self.el3_call(pe, smccc.RMM_BOOT_COMPLETE, smccc.to_u64(status))

    def warm_boot(self, pe: ProcessingElement) -> None:
        cpu_id = pe.x[0]
        status = ERmmBoot.SUCCESS
        if self.boot_info is None:
            status = ERmmBoot.UNKNOWN
        elif cpu_id >= self.boot_info.num_cpus:
            status = ERmmBoot.CPU_ID_OUT_OF_RANGE
        else:
            self.booted_cpus.add(cpu_id)
        self.el3_call(pe, smccc.RMM_BOOT_COMPLETE, smccc.to_u64(status))

    def handle_rmi(self, pe: ProcessingElement) -> None:
        x = pe.x
        results = dispatch(self, pe, x[0], x[1:8])
        # RMM_RMI_REQ_COMPLETE: x1..x5 = the command's x0..x4, x6..x8 = 0 (rmm-abi §2.1)
        x = pe.x
        x[0] = smccc.RMM_RMI_REQ_COMPLETE
        for i, value in enumerate(results, start=1):
            x[i] = value & smccc.MASK64
        x[6] = x[7] = x[8] = 0
        pe.smc()

    # ------------------------------------------------------------------ REC execution
    def run_rec(self, pe: ProcessingElement, realm: Realm, rec: Rec,
                enter: StructValues) -> StructValues:
        """Run ``rec`` until an exit for the host; returns the RmiRecExit values."""
        if self.runner is None:
            from .run import RecRunner

            self.runner = RecRunner(self)
        values = self.runner.run(pe, realm, rec, enter)
        for listener in self.rec_exit_listeners:
            listener(pe, realm, rec)
        return values

    def stage2_changed(self, vmid: int, ipa: int, size: int) -> None:
        """The RMM's TLBI for stage 2 (TLBI IPAS2E1IS / VMALLS12E1IS): notify every cache
        of realm translations (the execution engine) that [ipa, ipa+size) of ``vmid``
        changed."""
        for listener in self.stage2_listeners:
            listener(vmid, ipa, size)

    # ------------------------------------------------------------------ RMM -> EL3
    def el3_call(self, pe: ProcessingElement, fid: int, *args: int) -> int:
        """An SMC to EL3 (boot completion, GTSI, attestation); returns x0 after it."""
        x = pe.x
        x[0] = fid
        for i, value in enumerate(args, start=1):
            x[i] = value & smccc.MASK64
        pe.smc()
        return pe.x[0]
