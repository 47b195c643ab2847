"""Guest images on bare Unicorn — no realm, no stage 2, no RMM.

For testing the guest toolkit, debugging guest code before it goes into a realm, and as
the baseline a realm run is compared with. A :class:`BareMachine` has ``cpus`` vCPUs (one
Unicorn instance each) at EL1 with the MMU off (VA = IPA), sharing one RAM buffer, and a
PL011 at the UART IPA whose output collects in :attr:`BareMachine.console`. Every ``smc``
goes to a Python callback that plays the RMM (reads x0.., writes results, may
:meth:`BareCpu.stop` the vCPU); nothing else of the RMM is modelled.

Unicorn never performs architectural exception entry (guest-execution-unicorn.md §1), so
this module does it: :meth:`BareCpu.inject_exception` writes ESR/FAR/ELR/SPSR_EL1, sets
PSTATE to EL1h with DAIF masked and jumps to VBAR_EL1 + the vector offset. With
``deliver_faults`` (the default) an access to unmapped memory becomes a synchronous
external abort (EC 0x25 / 0x21, FSC 0x10, FAR = address), an undefined instruction EC 0x00,
SVC EC 0x15 and BRK EC 0x3C — taken by the guest's vectors.
"""

from __future__ import annotations

import ctypes
import mmap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unicorn import (
    UC_ARCH_ARM64,
    UC_HOOK_INTR,
    UC_HOOK_MEM_UNMAPPED,
    UC_MEM_FETCH_UNMAPPED,
    UC_MEM_WRITE_UNMAPPED,
    UC_MODE_ARM,
    UC_PROT_ALL,
)
from unicorn import arm64_const as a64
from unicorn.unicorn import Uc, UcError

from ccasim.arch.pl011 import Pl011
from ccasim.guest.asm import Image

SmcHandler = Callable[["BareCpu"], None]

# QEMU exception numbers seen by UC_HOOK_INTR (guest-execution-unicorn.md §1)
EXCP_UDEF = 1
EXCP_SWI = 2
EXCP_BKPT = 7
EXCP_SMC = 13

EC_UNKNOWN = 0x00
EC_SVC64 = 0x15
EC_IABT_CUR = 0x21
EC_DABT_CUR = 0x25
EC_BRK = 0x3C
ESR_IL = 1 << 25
ESR_WNR = 1 << 6
FSC_SEA = 0x10  # synchronous external abort

PSTATE_EL1H_MASKED = 0x3C5  # EL1h, DAIF set
_SPSR_EL1 = (3, 0, 4, 0, 0)  # op0, op1, CRn, CRm, op2

_X = [getattr(a64, f"UC_ARM64_REG_X{i}") for i in range(29)] + [
    a64.UC_ARM64_REG_X29,
    a64.UC_ARM64_REG_X30,
]


@dataclass
class Stop:
    """Why :meth:`BareCpu.run` returned: ``"stopped"`` (the SMC handler called
    :meth:`BareCpu.stop`), ``"fault"`` (an access Unicorn could not do and faults are
    not delivered, or another Unicorn error: see ``error``), ``"undefined"`` (an exception
    that is not delivered), ``"timeout"``, or ``"halted"`` (Unicorn ended the run by itself,
    e.g. on WFI)."""

    reason: str
    pc: int
    address: int | None = None
    error: str = ""


@dataclass
class _Fault:
    access: int
    address: int


class BareCpu:
    """One vCPU of a :class:`BareMachine`: a Unicorn instance at EL1, MMU off."""

    def __init__(self, machine: BareMachine, index: int) -> None:
        self.machine = machine
        self.index = index
        uc: Any = Uc(UC_ARCH_ARM64, UC_MODE_ARM)  # type: ignore[no-untyped-call]
        self.uc: Any = uc
        self.powered_on = False
        self.smc_count = 0
        self._stop_requested = False
        self._fault: _Fault | None = None
        self._undefined = False
        uc.mem_map_ptr(machine.ram_base, machine.ram_size, UC_PROT_ALL, machine._ram_ptr)
        if machine.uart_ipa is not None:
            uc.mmio_map(machine.uart_ipa, 0x1000, self._uart_read, None, self._uart_write, None)
        uc.hook_add(UC_HOOK_INTR, self._on_intr)
        uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._on_unmapped)

    # ---------------------------------------------------------------- registers

    def x(self, n: int) -> int:
        return int(self.uc.reg_read(_X[n]))

    def set_x(self, n: int, value: int) -> None:
        self.uc.reg_write(_X[n], value & (1 << 64) - 1)

    def xs(self, count: int = 8) -> list[int]:
        """x0..x(count-1)."""
        return [self.x(i) for i in range(count)]

    @property
    def pc(self) -> int:
        return int(self.uc.reg_read(a64.UC_ARM64_REG_PC))

    @pc.setter
    def pc(self, value: int) -> None:
        self.uc.reg_write(a64.UC_ARM64_REG_PC, value)

    def sysreg(self, name: str) -> int:
        """ESR_EL1, FAR_EL1, ELR_EL1, VBAR_EL1, SPSR_EL1, SP_EL1 or PSTATE."""
        if name == "SPSR_EL1":
            return int(self.uc.cpr_read(*_SPSR_EL1))
        return int(self.uc.reg_read(getattr(a64, f"UC_ARM64_REG_{name}")))

    # ---------------------------------------------------------------- control

    def stop(self) -> None:
        """End the current :meth:`run` after this SMC (PC is already past it)."""
        self._stop_requested = True
        self.uc.emu_stop()

    def inject_exception(
        self, esr: int, *, far: int = 0, elr: int | None = None, kind: str = "sync"
    ) -> None:
        """Architectural exception entry to EL1: ESR_EL1, FAR_EL1, ELR_EL1 (default: the
        current PC), SPSR_EL1 = PSTATE, PSTATE = EL1h with DAIF masked, PC = VBAR_EL1 +
        the vector for ``kind`` (sync/irq/fiq/serror) from the current EL and SP."""
        uc = self.uc
        pstate = int(uc.reg_read(a64.UC_ARM64_REG_PSTATE))
        mode = pstate & 0xF
        group = {0b0100: 0x000, 0b0101: 0x200}.get(mode, 0x400)  # EL1t / EL1h / lower EL
        offset = group + {"sync": 0x000, "irq": 0x080, "fiq": 0x100, "serror": 0x180}[kind]
        uc.reg_write(a64.UC_ARM64_REG_ESR_EL1, esr)
        uc.reg_write(a64.UC_ARM64_REG_FAR_EL1, far)
        uc.reg_write(a64.UC_ARM64_REG_ELR_EL1, self.pc if elr is None else elr)
        uc.reg_write(a64.UC_ARM64_REG_PSTATE, PSTATE_EL1H_MASKED)
        # The CP_REG write also rebuilds QEMU's hflags after the PSTATE change.
        uc.cpr_write(*_SPSR_EL1, pstate)
        self.pc = int(uc.reg_read(a64.UC_ARM64_REG_VBAR_EL1)) + offset

    def start(self, entry: int, *, args: tuple[int, ...] = ()) -> None:
        """Reset-like start state: PC = ``entry``, x0.. = ``args``, powered on."""
        for i, value in enumerate(args):
            self.set_x(i, value)
        self.pc = entry
        self.powered_on = True

    def run(self, *, timeout: float | None = 10.0) -> Stop:
        """Run from the current PC until the SMC handler stops the vCPU, an undelivered
        fault, or ``timeout`` seconds (None: no limit — Unicorn runs about 40% faster
        without its timeout watchdog)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._stop_requested = False
            self._fault = None
            self._undefined = False
            left_us = 0 if deadline is None else max(1, int((deadline - time.monotonic()) * 1e6))
            try:
                self.uc.emu_start(self.pc, 0, timeout=left_us)
            except UcError as exc:
                fault = self._fault
                if fault is not None and self.machine.deliver_faults:
                    self._deliver_abort(fault)
                    continue
                return Stop(
                    "fault",
                    self.pc,
                    address=None if fault is None else fault.address,
                    error=str(exc),
                )
            if self._stop_requested:
                return Stop("stopped", self.pc)
            if self._undefined:
                return Stop("undefined", self.pc)
            if deadline is not None and time.monotonic() >= deadline:
                return Stop("timeout", self.pc)
            # emu_start returned for no recorded reason (e.g. Unicorn halted on WFI).
            return Stop("halted", self.pc)

    # ---------------------------------------------------------------- hooks

    def _on_intr(self, uc: Any, intno: int, user_data: object) -> None:
        deliver = self.machine.deliver_faults
        if intno == EXCP_SMC:
            self.smc_count += 1
            handler = self.machine.smc_handler
            if handler is None:
                self.stop()
            else:
                handler(self)
        elif intno == EXCP_SWI and deliver:
            imm = int.from_bytes(bytes(uc.mem_read(self.pc - 4, 4)), "little") >> 5 & 0xFFFF
            self.inject_exception((EC_SVC64 << 26) | ESR_IL | imm)
        elif intno == EXCP_BKPT and deliver:
            imm = int.from_bytes(bytes(uc.mem_read(self.pc, 4)), "little") >> 5 & 0xFFFF
            self.inject_exception((EC_BRK << 26) | ESR_IL | imm)
        elif intno == EXCP_UDEF and deliver:
            self.inject_exception((EC_UNKNOWN << 26) | ESR_IL)
        else:
            self._undefined = True
            uc.emu_stop()

    def _on_unmapped(
        self, uc: Any, access: int, address: int, size: int, value: int, user_data: object
    ) -> bool:
        self._fault = _Fault(access, address)
        return False

    def _deliver_abort(self, fault: _Fault) -> None:
        if fault.access == UC_MEM_FETCH_UNMAPPED:
            esr = (EC_IABT_CUR << 26) | ESR_IL | FSC_SEA
        else:
            wnr = ESR_WNR if fault.access == UC_MEM_WRITE_UNMAPPED else 0
            esr = (EC_DABT_CUR << 26) | ESR_IL | wnr | FSC_SEA
        self.inject_exception(esr, far=fault.address)

    def _uart_read(self, uc: Any, offset: int, size: int, user_data: object) -> int:
        return self.machine.uart.mmio_read(offset, size)

    def _uart_write(self, uc: Any, offset: int, size: int, value: int, user_data: object) -> None:
        self.machine.mmio_writes.append((self.index, offset, size, value))
        self.machine.uart.mmio_write(offset, size, value)


@dataclass
class BareMachine:
    """``cpus`` vCPUs sharing RAM ``[ram_base, ram_base + ram_size)`` and a PL011 at
    ``uart_ipa``; ``smc_handler(cpu)`` is called for every SMC (None: stop the vCPU)."""

    ram_base: int
    ram_size: int
    uart_ipa: int | None = None
    cpus: int = 1
    smc_handler: SmcHandler | None = None
    deliver_faults: bool = True
    uart: Pl011 = field(default_factory=Pl011)
    mmio_writes: list[tuple[int, int, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.ram_base % 0x1000 or self.ram_size % 0x1000 or self.ram_size <= 0:
            raise ValueError("RAM must be granule-aligned")
        self._ram = mmap.mmap(-1, self.ram_size)
        self._ram_c = (ctypes.c_char * self.ram_size).from_buffer(self._ram)
        self._ram_ptr = ctypes.addressof(self._ram_c)
        self.vcpus = [BareCpu(self, i) for i in range(self.cpus)]

    # ---------------------------------------------------------------- memory

    def _offset(self, address: int, size: int) -> int:
        off = address - self.ram_base
        if off < 0 or off + size > self.ram_size:
            raise ValueError(f"[{address:#x}, +{size:#x}) is outside the RAM")
        return off

    def read(self, address: int, size: int) -> bytes:
        off = self._offset(address, size)
        return self._ram[off : off + size]

    def read_u64(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little")

    def write(self, address: int, data: bytes) -> None:
        off = self._offset(address, len(data))
        self._ram[off : off + len(data)] = data
        for cpu in self.vcpus:  # drop stale translated code
            cpu.uc.ctl_remove_cache(address, address + len(data))

    def load(self, image: Image) -> None:
        """Copy ``image`` into RAM at its base."""
        self.write(image.base, image.data)

    @property
    def console(self) -> bytes:
        """Everything written to UARTDR so far."""
        return bytes(self.uart.output)

    def boot(self, image: Image, *, args: tuple[int, ...] = ()) -> BareCpu:
        """Load ``image`` and start vCPU 0 at its entry with x0.. = ``args``."""
        self.load(image)
        cpu = self.vcpus[0]
        cpu.start(image.entry, args=args)
        return cpu
