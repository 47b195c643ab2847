"""The RMM dispatcher at EL3 (TF-A ``rmmd``): RMM boot, RMI forwarding, RMM->EL3 calls.

* Cold boot: EL3 writes the boot manifest into the RMM-EL3 shared buffer (last 4 KB of the
  RMM carve-out, Realm PAS), enters the RMM at R-EL2 with x0 = CPU id, x1 = interface
  version, x2 = number of CPUs, x3 = shared buffer PA, and waits for RMM_BOOT_COMPLETE.
  Warm boot enters with x0 = CPU id only (rmm-abi §12.1).
* RMI (host -> RMM): from the Non-secure world only; x0..x7 are forwarded verbatim to the
  RMM at R-EL2. The RMM answers with RMM_RMI_REQ_COMPLETE, whose x1..x5 become the host's
  x0..x4; the host's x5.. are preserved (rmm-abi §2.1). If the RMM failed to boot, RMI
  returns SMC_UNKNOWN.
* RMM -> EL3 (0xC400018F, 0xC40001B0..0xC40001CF): from the Realm world only.
  RMM_GTSI_DELEGATE / UNDELEGATE move one granule NS <-> Realm (rmm-abi §12.4).
"""

from __future__ import annotations

from typing import Protocol

from ..arch.gpt import Gpi
from ..arch.memory import GRANULE_SIZE
from ..arch.pe import ProcessingElement
from ..arch.security import PhysicalAddressSpace as Pas
from ..arch.security import SecurityState, scr_for
from . import boot_manifest, smccc
from .attestation import PlatformAttestation
from .el3 import SCR_BASE, SPSR_EL2H, FirmwareError, Monitor, Results
from .errors import ERmm, ERmmBoot, gpt_errno_to_rmm

RMM_EL3_IFC_VERSION = (0 << 16) | 3  # interface 0.3 (TF-RMM rmm-spec-v1.0-rel0)
SCR_REALM = SCR_BASE | scr_for(SecurityState.REALM)
SCR_NON_SECURE = SCR_BASE | scr_for(SecurityState.NON_SECURE)
# Enum members bound once: member access through the class is slow on Python 3.11.
_NS, _REALM = SecurityState.NON_SECURE, SecurityState.REALM
_GPI_NS, _GPI_REALM = Gpi.NON_SECURE, Gpi.REALM


class RealmManagementMonitor(Protocol):
    """What EL3 needs from the RMM image: its three entry points at R-EL2."""

    def cold_boot(self, pe: ProcessingElement) -> None: ...

    def warm_boot(self, pe: ProcessingElement) -> None: ...

    def handle_rmi(self, pe: ProcessingElement) -> None: ...


class Rmmd:
    def __init__(self, monitor: Monitor, rmm: RealmManagementMonitor,
                 attestation: PlatformAttestation | None = None) -> None:
        self.monitor = monitor
        self.rmm = rmm
        self.attestation = attestation
        self._plat_token = b""
        self._plat_token_sent = 0
        region = monitor.memory_map["rmm"]
        self.shared_buffer = region.end - GRANULE_SIZE
        self.boot_status: dict[int, int] = {}
        self._boot_result: int | None = None
        self._in_rmi: dict[int, bool] = {}
        self._ready = False
        self._booting = False
        monitor.register("rmi", smccc.is_rmi, self.forward_rmi)
        monitor.register("rmm-el3", smccc.is_rmm_el3, self.rmm_el3_call)

    @property
    def rmm_ready(self) -> bool:
        """The RMM booted on every PE EL3 entered it on (set at the end of each boot)."""
        return self._ready

    # ------------------------------------------------------------------ boot
    def write_manifest(self, pe: ProcessingElement) -> None:
        dram = self.monitor.memory_map["ns_dram"]
        uart = self.monitor.memory_map["uart0"]
        image = boot_manifest.build(
            self.shared_buffer,
            banks=[(dram.base, dram.size)],
            consoles=[boot_manifest.Console(base=uart.base)],
        )
        pe.write(self.shared_buffer, image, Pas.REALM)

    def boot(self, pe: ProcessingElement, cold: bool) -> int:
        """Enter the RMM's boot entry on ``pe`` (at EL3) and return its boot status."""
        self._boot_result = None
        self._booting = True
        if cold:
            regs = [pe.index, RMM_EL3_IFC_VERSION, len(self.monitor.pes), self.shared_buffer]
            self.monitor.enter_lower(pe, SecurityState.REALM, 2, regs)
            self.rmm.cold_boot(pe)
        else:
            self.monitor.enter_lower(pe, SecurityState.REALM, 2, [pe.index])
            self.rmm.warm_boot(pe)
        if self._boot_result is None or pe.el != 3:
            raise FirmwareError("the RMM returned without RMM_BOOT_COMPLETE")
        self.boot_status[pe.index] = self._boot_result
        self._ready = all(v == 0 for v in self.boot_status.values())
        return self._boot_result

    # ------------------------------------------------------------------ RMI
    def forward_rmi(self, pe: ProcessingElement, caller: SecurityState, fid: int) -> Results:
        if caller is not _NS or not self._ready:
            return (smccc.SMC_UNKNOWN,)
        index = pe.index
        if self._in_rmi.get(index):
            raise FirmwareError("nested RMI call on one PE")
        monitor = self.monitor
        contexts = monitor.contexts[index]
        # Save the Normal world's registers, enter the RMM at R-EL2 with x0..x7 forwarded.
        ns = contexts[_NS]
        ns.x = pe.x
        ns.spsr = pe.sysregs["SPSR_EL3"]
        realm = contexts[_REALM]
        pe.x = pe.x[:8] + realm.x[8:]
        realm.spsr = pe.sysregs["SPSR_EL3"] = SPSR_EL2H
        pe.set_scr(SCR_REALM)
        if monitor.tracer is not None:
            monitor.tracer.instant("world switch -> REALM", "world", index, {})
        self._in_rmi[index] = True
        try:
            pe.eret()
            self.rmm.handle_rmi(pe)
        except BaseException:
            # A modelled-firmware bug: put the PE back in the Normal world before reporting.
            if self._in_rmi.get(index):
                self._in_rmi[index] = False
                pe.set_el(3)
                monitor.restore_world(pe, SecurityState.NON_SECURE)
                pe.eret()
            raise
        if self._in_rmi.get(index):
            self._in_rmi[index] = False
            raise FirmwareError("the RMM returned without RMM_RMI_REQ_COMPLETE")
        return None

    def _req_complete(self, pe: ProcessingElement) -> Results:
        index = pe.index
        if not self._in_rmi.get(index):
            return (smccc.SMC_UNKNOWN,)
        contexts = self.monitor.contexts[index]
        realm = contexts[_REALM]
        ns = contexts[_NS]
        x = pe.x
        realm.x = x
        realm.spsr = pe.sysregs["SPSR_EL3"]
        # The RMM's x1..x5 become the Normal world's x0..x4 (REL0: five result registers);
        # x5 and above keep the Normal world's values (SMCCC: no result, preserved).
        # (Register values are 64-bit: every writer of a register file masks.)
        pe.x = x[1:6] + ns.x[5:]
        pe.sysregs["SPSR_EL3"] = ns.spsr
        pe.set_scr(SCR_NON_SECURE)
        if self.monitor.tracer is not None:
            self.monitor.tracer.instant("world switch -> NON_SECURE", "world", index, {})
        self._in_rmi[index] = False
        pe.eret()
        return None

    # ------------------------------------------------------------------ RMM -> EL3
    def rmm_el3_call(self, pe: ProcessingElement, caller: SecurityState, fid: int) -> Results:
        if caller is not _REALM:
            return (smccc.SMC_UNKNOWN,)
        # the frequent calls first
        if fid == smccc.RMM_RMI_REQ_COMPLETE:
            return self._req_complete(pe)
        if fid == smccc.RMM_GTSI_DELEGATE:
            return (smccc.to_u64(self.gtsi(pe, caller, pe.x[1], _GPI_REALM)),)
        if fid == smccc.RMM_GTSI_UNDELEGATE:
            return (smccc.to_u64(self.gtsi(pe, caller, pe.x[1], _GPI_NS)),)
        if fid == smccc.RMM_BOOT_COMPLETE:
            if not self._booting:
                return (smccc.SMC_UNKNOWN,)
            self._booting = False
            self._boot_result = smccc.to_signed(pe.x[1])
            self.monitor.save_world(pe, SecurityState.REALM)
            return None  # stay at EL3: the boot flow resumes in :meth:`boot`
        if fid == smccc.RMM_ATTEST_GET_REALM_KEY:
            return self.get_realm_key(pe, pe.x[1], pe.x[2], pe.x[3])
        if fid == smccc.RMM_ATTEST_GET_PLAT_TOKEN:
            return self.get_plat_token(pe, pe.x[1], pe.x[2], pe.x[3])
        return (smccc.SMC_UNKNOWN,)

    # ------------------------------------------------------------------ attestation
    def _check_buffer(self, buf: int, size: int) -> int:
        """The RMM may only name the shared buffer (rmm-abi §12.2)."""
        if buf != self.shared_buffer or size == 0 or size > GRANULE_SIZE:
            return ERmm.INVAL
        return ERmm.OK

    def get_realm_key(self, pe: ProcessingElement, buf: int, size: int, curve: int) -> Results:
        """RMM_ATTEST_GET_REALM_KEY: the RAK (P-384 only: curve 0) into the shared buffer."""
        if self.attestation is None:
            return (smccc.to_u64(ERmm.UNK),)
        if curve != 0:
            return (smccc.to_u64(ERmm.INVAL), 0)
        key = self.attestation.rak_private_bytes()
        if self._check_buffer(buf, size) or size < len(key):
            return (smccc.to_u64(ERmm.INVAL), 0)
        pe.write(buf, key, Pas.REALM)
        return (ERmm.OK, len(key))

    def get_plat_token(self, pe: ProcessingElement, buf: int, size: int,
                       hash_size: int) -> Results:
        """RMM_ATTEST_GET_PLAT_TOKEN: the first call (x3 = challenge length, the challenge
        at the start of the buffer) builds the token; each call copies the next hunk.
        Returns x1 = hunk length, x2 = bytes remaining."""
        if self.attestation is None:
            return (smccc.to_u64(ERmm.UNK),)
        if self._check_buffer(buf, size):
            return (smccc.to_u64(ERmm.INVAL), 0, 0)
        if hash_size:
            if hash_size not in (32, 48, 64):
                return (smccc.to_u64(ERmm.INVAL), 0, 0)
            challenge = pe.read(buf, hash_size, Pas.REALM)
            self._plat_token = self.attestation.platform_token(challenge)
            self._plat_token_sent = 0
        elif not self._plat_token:
            return (smccc.to_u64(ERmm.INVAL), 0, 0)
        hunk = self._plat_token[self._plat_token_sent : self._plat_token_sent + size]
        pe.write(buf, hunk, Pas.REALM)
        self._plat_token_sent += len(hunk)
        return (ERmm.OK, len(hunk), len(self._plat_token) - self._plat_token_sent)

    def gtsi(self, pe: ProcessingElement, caller: SecurityState, pa: int, target: int) -> int:
        """One-granule GTSI transition; E_RMM_OK, BAD_ADDR or BAD_PAS."""
        rc = self.monitor.gpt.transition(pe, caller, pa, target)
        return 0 if rc == 0 else int(gpt_errno_to_rmm(rc))  # 0 is E_RMM_OK


__all__ = ["RMM_EL3_IFC_VERSION", "ERmm", "ERmmBoot", "Rmmd"]
