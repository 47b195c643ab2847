"""The Realm Management Monitor at R-EL2 (standing in for TF-RMM).

Entered by EL3 only: at cold boot, at warm boot, and for each RMI call forwarded from the
host. It leaves by the SMCs the RMM-EL3 interface defines (RMM_BOOT_COMPLETE,
RMM_RMI_REQ_COMPLETE); those are its last action on every entry.
"""

from __future__ import annotations

from ..arch.pe import ProcessingElement
from ..firmware import smccc
from ..firmware.errors import ERmmBoot
from .boot import BootError, BootInfo, read_manifest, validate_boot_args
from .rmi import dispatch


class Rmm:
    def __init__(self) -> None:
        self.boot_info: BootInfo | None = None
        self.booted_cpus: set[int] = set()

    # ------------------------------------------------------------------ EL3 -> RMM
    def cold_boot(self, pe: ProcessingElement) -> None:
        cpu_id, version, num_cpus, shared = pe.x[0], pe.x[1], pe.x[2], pe.x[3]
        status = ERmmBoot.SUCCESS
        try:
            validate_boot_args(cpu_id, version, num_cpus, shared)
            info = read_manifest(pe, shared)
            self.boot_info = BootInfo(num_cpus, version, info.dram_banks, info.console_base)
            self.booted_cpus.add(cpu_id)
        except BootError as err:
            status = err.status
        self._el3_call(pe, smccc.RMM_BOOT_COMPLETE, smccc.to_u64(status))

    def warm_boot(self, pe: ProcessingElement) -> None:
        cpu_id = pe.x[0]
        status = ERmmBoot.SUCCESS
        if self.boot_info is None:
            status = ERmmBoot.UNKNOWN
        elif cpu_id >= self.boot_info.num_cpus:
            status = ERmmBoot.CPU_ID_OUT_OF_RANGE
        else:
            self.booted_cpus.add(cpu_id)
        self._el3_call(pe, smccc.RMM_BOOT_COMPLETE, smccc.to_u64(status))

    def handle_rmi(self, pe: ProcessingElement) -> None:
        results = dispatch(self, pe, pe.x[0], pe.x[1:8])
        self._el3_call(pe, smccc.RMM_RMI_REQ_COMPLETE, *results, *([0] * (8 - len(results))))

    # ------------------------------------------------------------------ RMM -> EL3
    def el3_call(self, pe: ProcessingElement, fid: int, *args: int) -> int:
        """An SMC to EL3 that returns to the RMM (GTSI, attestation); returns x0."""
        self._el3_call(pe, fid, *args)
        return pe.x[0]

    @staticmethod
    def _el3_call(pe: ProcessingElement, fid: int, *args: int) -> None:
        pe.x[0] = fid
        for i, value in enumerate(args, start=1):
            pe.x[i] = value & smccc.MASK64
        pe.smc()
