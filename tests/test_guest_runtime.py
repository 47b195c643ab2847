"""The guest runtime and example programs, run on bare Unicorn with a fake RMM.

The fake RMM answers RSI and PSCI the way rmm-abi.md §9 (with errata E-17..E-23) says,
including the register rules (x0-x3 always written, unused x1-x3 zeroed), so the guest
code is checked against what the real RMM does to its registers.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccasim.guest import abi, programs
from ccasim.guest.abi import ExceptionPolicy, RsiStatus
from ccasim.guest.asm import Image, assemble
from ccasim.guest.bare import BareCpu, BareMachine
from ccasim.guest.programs import GuestLayout
from ccasim.guest.runtime import compose, data_bytes, load_imm, zeros

LAYOUT = GuestLayout()
M64 = (1 << 64) - 1
INJECT_FID = 0xC400_01AF  # last RSI FNUM: the fake RMM injects an exception instead


def u64(v: int) -> int:
    return v & M64


@dataclass
class FakeRmm:
    """Plays the RMM for a BareMachine: RSI, realm PSCI, one REC per vCPU."""

    machine: BareMachine
    token: bytes = b""
    signing_steps: int = 0  # CONTINUE calls that return INCOMPLETE with x1 = 0 first
    chunk: int | None = None  # copy at most this much per CONTINUE (None: what is asked)
    status_override: dict[int, int] = field(default_factory=dict)  # FID -> x0 to return
    inject: tuple[int, str] = (0, "sync")  # (ESR, kind) for INJECT_FID
    calls: list[tuple[int, int, list[int]]] = field(default_factory=list)  # (cpu, fid, x0..x10)
    rem: dict[int, bytes] = field(default_factory=lambda: {i: bytes(32) for i in range(1, 5)})
    host_calls: list[dict[str, int | bytes]] = field(default_factory=list)
    system_off: bool = False
    token_pos: int | None = None
    _signing_left: int = 0

    def __post_init__(self) -> None:
        self.machine.smc_handler = self.smc

    def of(self, fid: int) -> list[list[int]]:
        return [x for _, f, x in self.calls if f == fid]

    def _ret(self, cpu: BareCpu, *values: int, rsi: bool = True) -> None:
        regs = list(values) + [0] * (4 - len(values)) if rsi else list(values)
        for i, v in enumerate(regs):
            cpu.set_x(i, u64(v))

    def smc(self, cpu: BareCpu) -> None:
        fid = cpu.x(0) & 0xFFFF_FFFF
        x = cpu.xs(11)
        self.calls.append((cpu.index, fid, x))
        if fid in self.status_override:
            self._ret(cpu, self.status_override[fid])
            if fid in (abi.PSCI_CPU_ON, abi.PSCI_AFFINITY_INFO):
                cpu.stop()
            return
        if fid == INJECT_FID:  # an exception instead of an answer: "the SMC was undefined"
            esr, kind = self.inject
            cpu.inject_exception(
                esr, far=0xFA4, elr=cpu.pc - 4 if kind == "sync" else None, kind=kind
            )
            return
        handler = {
            abi.RSI_VERSION: self.version,
            abi.RSI_FEATURES: lambda c, x: self._ret(c, 0, 0),
            abi.RSI_MEASUREMENT_EXTEND: self.extend,
            abi.RSI_MEASUREMENT_READ: self.read,
            abi.RSI_ATTESTATION_TOKEN_INIT: self.token_init,
            abi.RSI_ATTESTATION_TOKEN_CONTINUE: self.token_continue,
            abi.RSI_HOST_CALL: self.host_call,
            abi.PSCI_CPU_ON: self.cpu_on,
            abi.PSCI_CPU_OFF: self.cpu_off,
            abi.PSCI_AFFINITY_INFO: self.affinity_info,
            abi.PSCI_SYSTEM_OFF: self.off,
            abi.PSCI_SYSTEM_RESET: self.off,
        }.get(fid)
        if handler is None:
            self._ret(cpu, -1)
        else:
            handler(cpu, x)

    # ----------------------------------------------------------------- RSI
    def version(self, cpu: BareCpu, x: list[int]) -> None:
        self._ret(cpu, 0, abi.RSI_ABI_VERSION_1_0, abi.RSI_ABI_VERSION_1_0)

    def extend(self, cpu: BareCpu, x: list[int]) -> None:
        index, size = x[1], x[2]
        if not 1 <= index <= 4 or size > 64:
            self._ret(cpu, RsiStatus.ERROR_INPUT)
            return
        value = struct.pack("<8Q", *x[3:11])[:size]
        self.rem[index] = hashlib.sha256(self.rem[index] + value).digest()
        self._ret(cpu, 0)

    def read(self, cpu: BareCpu, x: list[int]) -> None:
        index = x[1]
        if index > 4:
            self._ret(cpu, RsiStatus.ERROR_INPUT)
            return
        value = (self.rem.get(index) or bytes(32)).ljust(64, b"\0")
        words = struct.unpack("<8Q", value)
        for i, w in enumerate(words, start=1):
            cpu.set_x(i, w)
        cpu.set_x(0, 0)

    def token_init(self, cpu: BareCpu, x: list[int]) -> None:
        self.token_pos = 0
        self._signing_left = self.signing_steps
        self._ret(cpu, 0, 0x1000)

    def token_continue(self, cpu: BareCpu, x: list[int]) -> None:
        ipa, offset, size = x[1], x[2], x[3]
        if ipa % 0x1000 or offset >= 0x1000 or offset + size > 0x1000:
            self._ret(cpu, RsiStatus.ERROR_INPUT)
            return
        if self.token_pos is None:
            self._ret(cpu, RsiStatus.ERROR_STATE)
            return
        if self._signing_left:
            self._signing_left -= 1
            self._ret(cpu, RsiStatus.INCOMPLETE, 0)
            return
        if size == 0:
            self._ret(cpu, RsiStatus.INCOMPLETE, 0)
            return
        n = min(size, len(self.token) - self.token_pos)
        if self.chunk is not None:
            n = min(n, self.chunk)
        self.machine.write(ipa + offset, self.token[self.token_pos : self.token_pos + n])
        self.token_pos += n
        if self.token_pos == len(self.token):
            self.token_pos = None
            self._ret(cpu, RsiStatus.SUCCESS, n)
        else:
            self._ret(cpu, RsiStatus.INCOMPLETE, n)

    def host_call(self, cpu: BareCpu, x: list[int]) -> None:
        addr = x[1]
        if addr % abi.RSI_HOST_CALL_ALIGN:
            self._ret(cpu, RsiStatus.ERROR_INPUT)
            return
        layout = abi.RSI_HOST_CALL_LAYOUT
        self.host_calls.append(layout.unpack(self.machine.read(addr, layout.size)))
        cpu.set_x(0, 0)  # completion writes x0 only (E-17)
        cpu.stop()

    # ----------------------------------------------------------------- PSCI
    def cpu_on(self, cpu: BareCpu, x: list[int]) -> None:
        target = abi.mpidr_to_rec_index(x[1])
        if target >= len(self.machine.vcpus):
            self._ret(cpu, abi.PsciStatus.INVALID_PARAMS)
            return
        if target == cpu.index or self.machine.vcpus[target].powered_on:
            self._ret(cpu, abi.PsciStatus.ALREADY_ON)
            return
        self.machine.vcpus[target].start(x[2], args=(x[3],))
        self._ret(cpu, abi.PsciStatus.SUCCESS)  # as completed by RMI_PSCI_COMPLETE
        cpu.stop()

    def cpu_off(self, cpu: BareCpu, x: list[int]) -> None:
        cpu.powered_on = False
        self._ret(cpu, 0)
        cpu.stop()

    def affinity_info(self, cpu: BareCpu, x: list[int]) -> None:
        target = abi.mpidr_to_rec_index(x[1])
        if x[2] != 0 or target >= len(self.machine.vcpus):
            self._ret(cpu, abi.PsciStatus.INVALID_PARAMS)
            return
        on = self.machine.vcpus[target].powered_on
        self._ret(cpu, abi.AffinityState.ON if on else abi.AffinityState.OFF)
        cpu.stop()

    def off(self, cpu: BareCpu, x: list[int]) -> None:
        self.system_off = True
        for c in self.machine.vcpus:
            c.powered_on = False
        cpu.stop()  # registers unchanged


def boot(
    image: Image, *, cpus: int = 1, args: tuple[int, ...] = (), **fake: object
) -> tuple[BareMachine, FakeRmm, BareCpu]:
    m = BareMachine(LAYOUT.ram_base, LAYOUT.ram_size, LAYOUT.uart_ipa, cpus=cpus)
    rmm = FakeRmm(m, **fake)  # type: ignore[arg-type]
    cpu = m.boot(image, args=args)
    return m, rmm, cpu


def run_realm(m: BareMachine, rmm: FakeRmm, *, rounds: int = 100) -> None:
    """Round-robin over powered-on vCPUs, each until its next exit, until SYSTEM_OFF."""
    for _ in range(rounds):
        if rmm.system_off:
            return
        runnable = [c for c in m.vcpus if c.powered_on]  # a vCPU started now runs next round
        assert runnable, "no vCPU is on"
        for cpu in runnable:
            if cpu.powered_on:
                stop = cpu.run(timeout=5)
                assert stop.reason == "stopped", stop
    raise AssertionError("realm did not power off")


def run_program(image: Image, **kw: object) -> tuple[BareMachine, FakeRmm, BareCpu]:
    m, rmm, cpu = boot(image, **kw)  # type: ignore[arg-type]
    run_realm(m, rmm)
    return m, rmm, cpu


def fids(rmm: FakeRmm) -> list[int]:
    return [f for _, f, _ in rmm.calls]


# ============================================================================ programs


def test_hello() -> None:
    m, rmm, cpu = run_program(programs.hello(LAYOUT))
    assert m.console == b"Hello from the realm\n"
    assert fids(rmm) == [abi.PSCI_SYSTEM_OFF]
    # every UART access is a 32-bit write of UARTDR at the unprotected IPA
    assert {(off, size) for _, off, size, _ in m.mmio_writes} == {(0, 4)}
    assert LAYOUT.uart_ipa == (1 << 39) + 0x1C09_0000
    # entry set up SP and VBAR
    img = programs.hello(LAYOUT)
    assert cpu.sysreg("VBAR_EL1") == img.symbol("vectors")
    assert cpu.sysreg("SP") == img.symbol("__stack_top")


def test_image_layout() -> None:
    img = programs.attestation(LAYOUT)
    s = img.symbols
    assert img.base == LAYOUT.ram_base and img.entry == s["_start"] == LAYOUT.ram_base
    assert s["vectors"] % 0x800 == 0
    assert [s[f"rt_vector_{i * 0x80:03x}"] - s["vectors"] for i in range(16)] == [
        i * 0x80 for i in range(16)
    ]
    assert s["token_buffer"] % 0x1000 == 0 and s["host_call_args"] % 0x100 == 0
    assert s["__stack_top"] == img.end and s["__stack_top"] % 16 == 0
    assert img.end <= LAYOUT.ram_end


def test_measurement_extend() -> None:
    value = bytes(range(0x40, 0x60))
    m, rmm, _ = run_program(programs.measurement_extend(LAYOUT, value))
    (ext,) = rmm.of(abi.RSI_MEASUREMENT_EXTEND)
    assert ext[1:3] == [1, 32]
    assert ext[3:11] == [*struct.unpack("<4Q", value), 0, 0, 0, 0]
    (rd,) = rmm.of(abi.RSI_MEASUREMENT_READ)
    assert rd[1] == 1
    rem = hashlib.sha256(bytes(32) + value).digest()
    assert m.console == b"REM[1] = " + rem.hex().encode() + b"00" * 32 + b"\n"
    img = programs.measurement_extend(LAYOUT, value)
    assert m.read(img.symbol("measurement"), 64) == rem.ljust(64, b"\0")
    assert fids(rmm)[-1] == abi.PSCI_SYSTEM_OFF


def test_measurement_extend_error_is_reported() -> None:
    img = programs.measurement_extend(LAYOUT, index=3)
    m, rmm, cpu = run_program(img, status_override={abi.RSI_MEASUREMENT_EXTEND: 1})
    assert m.console == b"RSI error 0x0000000000000001\n"
    assert fids(rmm) == [abi.RSI_MEASUREMENT_EXTEND, abi.PSCI_SYSTEM_OFF]
    assert rmm.of(abi.RSI_MEASUREMENT_EXTEND)[0][1] == 3
    assert cpu.x(1) == 1


def _token(n: int) -> bytes:
    return bytes((i * 7 + 3) & 0xFF for i in range(n))


@pytest.mark.parametrize(
    ("length", "signing", "chunk", "expected"),
    [
        # (buffer offset, size) asked for by each TOKEN_CONTINUE
        (2124, 0, None, [(0, 0, 0x1000)]),
        (2124, 3, None, [(0, 0, 0x1000)] * 4),
        (0x1000, 0, None, [(0, 0, 0x1000)]),
        (6000, 1, None, [(0, 0, 0x1000), (0, 0, 0x1000), (0x1000, 0, 0x1000)]),
        (0x2000, 0, None, [(0, 0, 0x1000), (0x1000, 0, 0x1000)]),
        (
            5000,
            0,
            1000,  # the fake RMM copies at most 1000 bytes per call: offsets inside a granule
            [
                (0, 0, 0x1000),
                (0, 1000, 0x1000 - 1000),
                (0, 2000, 0x1000 - 2000),
                (0, 3000, 0x1000 - 3000),
                (0, 4000, 96),
                (0x1000, 0, 0x1000),
            ],
        ),
    ],
)
def test_attestation_protocol(
    length: int, signing: int, chunk: int | None, expected: list[tuple[int, int, int]]
) -> None:
    challenge = bytes(range(64))
    img = programs.attestation(LAYOUT, challenge)
    buf = img.symbol("token_buffer")
    token = _token(length)
    m, rmm, _cpu = run_program(img, token=token, signing_steps=signing, chunk=chunk)
    (init,) = rmm.of(abi.RSI_ATTESTATION_TOKEN_INIT)
    assert init[1:9] == list(struct.unpack("<8Q", challenge))
    cont = [(x[1] - buf, x[2], x[3]) for x in rmm.of(abi.RSI_ATTESTATION_TOKEN_CONTINUE)]
    assert cont == expected
    assert m.read(buf, length) == token
    (hc,) = rmm.host_calls
    assert hc["imm"] == programs.TOKEN_HOST_CALL_IMM
    assert (hc["gprs0"], hc["gprs1"], hc["gprs2"]) == (buf, length, 0)
    assert all(hc[f"gprs{i}"] == 0 for i in range(3, 31))
    (call,) = rmm.of(abi.RSI_HOST_CALL)
    assert call[1] == img.symbol("host_call_args")
    assert m.console == f"token 0x{0:016x} 0x{length:016x}\n".encode()
    assert fids(rmm)[-2:] == [abi.RSI_HOST_CALL, abi.PSCI_SYSTEM_OFF]


def test_attestation_token_larger_than_the_buffer() -> None:
    img = programs.attestation(LAYOUT, token_pages=1)
    _m, rmm, _ = run_program(img, token=_token(5000))
    assert len(rmm.of(abi.RSI_ATTESTATION_TOKEN_CONTINUE)) == 1
    (hc,) = rmm.host_calls
    assert (hc["gprs1"], hc["gprs2"]) == (0x1000, RsiStatus.INCOMPLETE)


@pytest.mark.parametrize(
    ("override", "continues"),
    [
        ({abi.RSI_ATTESTATION_TOKEN_INIT: RsiStatus.ERROR_UNKNOWN}, 0),
        ({abi.RSI_ATTESTATION_TOKEN_CONTINUE: RsiStatus.ERROR_STATE}, 1),
    ],
)
def test_attestation_errors_reach_the_host(override: dict[int, int], continues: int) -> None:
    _m, rmm, _ = run_program(
        programs.attestation(LAYOUT), token=_token(100), status_override=override
    )
    assert len(rmm.of(abi.RSI_ATTESTATION_TOKEN_CONTINUE)) == continues
    (hc,) = rmm.host_calls
    assert (hc["gprs1"], hc["gprs2"]) == (0, next(iter(override.values())))


def test_two_vcpus() -> None:
    img = programs.two_vcpus(LAYOUT)
    m, rmm, cpu0 = boot(img, cpus=2)
    run_realm(m, rmm)
    (on,) = rmm.of(abi.PSCI_CPU_ON)
    assert on[1:4] == [1, img.symbol("secondary_entry"), 1]
    assert [c for c, f, _ in rmm.calls if f == abi.PSCI_CPU_OFF] == [1]
    polls = rmm.of(abi.PSCI_AFFINITY_INFO)
    assert len(polls) >= 2 and all(x[1:3] == [1, 0] for x in polls)
    assert m.console == b"vCPU 0: CPU_ON\nHello from vCPU 1\nvCPU 0: vCPU 1 is off\n"
    assert fids(rmm)[-1] == abi.PSCI_SYSTEM_OFF
    assert cpu0.x(1) == 1  # secondary_done, written by vCPU 1
    cpu1 = m.vcpus[1]
    assert cpu1.sysreg("SP") == img.symbol("__stack_top") - 0x1000
    assert cpu1.sysreg("VBAR_EL1") == img.symbol("vectors")


def test_two_vcpus_cpu_on_failure() -> None:
    img = programs.two_vcpus(LAYOUT, secondary_mpidr=0x10)  # REC 0: ALREADY_ON
    m, rmm, cpu = run_program(img, cpus=2)
    assert rmm.of(abi.PSCI_CPU_ON)[0][1] == 0x10
    assert m.console.endswith(b"RSI error 0xfffffffffffffffc\n")
    assert cpu.x(1) == u64(abi.PsciStatus.ALREADY_ON)


def test_secondary_entry_rejects_a_bad_index() -> None:
    img = programs.two_vcpus(LAYOUT)
    m, rmm, _ = boot(img, cpus=2)
    cpu1 = m.vcpus[1]
    cpu1.start(img.symbol("secondary_entry"), args=(5,))
    assert cpu1.run(timeout=5).reason == "stopped"
    assert fids(rmm) == [abi.PSCI_CPU_OFF] and m.console == b""


def test_alu_loop() -> None:
    n = 1000
    _, rmm, cpu = run_program(programs.alu_loop(LAYOUT), args=(n,))
    acc = xor = 0
    for i in range(n, 0, -1):
        acc += i
        xor ^= acc
    assert (cpu.x(1), cpu.x(2), cpu.x(3)) == (n * (n + 1) // 2, 0, xor)
    assert fids(rmm) == [abi.PSCI_SYSTEM_OFF]


def test_load_store_loop_default_iterations() -> None:
    img = programs.load_store_loop(LAYOUT, iterations=777)
    m, _rmm, cpu = run_program(img)  # x0 = 0 at boot: the built-in count
    assert cpu.x(1) == 777 == m.read_u64(img.symbol("ls_counter"))
    _, _, cpu = run_program(img, args=(12345,))
    assert cpu.x(1) == 12345


def test_layout_validation() -> None:
    assert GuestLayout(s2sz=48).uart_ipa == (1 << 47) + 0x1C09_0000
    assert GuestLayout(uart_ipa=(1 << 39) + 0x1000).uart_ipa == (1 << 39) + 0x1000
    with pytest.raises(ValueError, match="granule"):
        GuestLayout(ram_base=0x8000_0100)
    with pytest.raises(ValueError, match="protected IPA range"):
        GuestLayout(ram_base=1 << 39)
    with pytest.raises(ValueError, match="unprotected"):
        GuestLayout(uart_ipa=0x1C09_0000)
    with pytest.raises(ValueError, match="does not fit"):
        programs.attestation(GuestLayout(ram_size=0x2000))


# ============================================================================ runtime pieces


def _program(main: str, data: str = "", policy: ExceptionPolicy = ExceptionPolicy.SKIP) -> Image:
    return assemble(
        compose(main, uart_ipa=LAYOUT.uart_ipa, data=data, exception_policy=policy),
        LAYOUT.ram_base,
    )


def _record(m: BareMachine, img: Image) -> dict[str, int | bytes]:
    return abi.EXCEPTION_RECORD.unpack(m.read(img.symbol("exc_record"), 0x40))


FAULT_MAIN = f"""\
main:
    mov x19, #0
{load_imm("x20", 0x4000_0000)}fault_here:
    ldr x21, [x20]
    mov x19, #1
svc_here:
    svc #0x42
    add x19, x19, #1
    mov x0, #0
{load_imm("x0", INJECT_FID)}    smc #0
after_inject:
    add x19, x19, #1
    mov x1, x19
    b psci_system_off
"""


def test_vectors_record_and_skip() -> None:
    img = _program(FAULT_MAIN)
    m, _rmm, cpu = run_program(img, inject=((0x00 << 26) | (1 << 25), "sync"))
    assert cpu.x(1) == 3  # every faulting instruction was skipped, nothing else
    rec = _record(m, img)
    # last exception: the fake RMM's injected one (ELR = the SMC, skipped by the handler)
    assert rec["count"] == 3 and rec["depth"] == 0
    assert (rec["vector"], rec["esr"], rec["far"]) == (0x200, 1 << 25, 0xFA4)
    assert rec["elr"] == img.symbol("after_inject") - 4
    assert rec["spsr"] & 0x3FF == 0x3C5  # EL1h, DAIF masked
    assert m.console == b""


def test_vectors_record_a_data_abort() -> None:
    img = _program(FAULT_MAIN.replace("    svc #0x42\n", "    b psci_system_off\n"))
    m, _, _cpu = run_program(img)
    rec = _record(m, img)
    assert rec["count"] == 1
    assert rec["esr"] == (0x25 << 26) | (1 << 25) | 0x10  # SEA, data abort at EL1
    assert (rec["far"], rec["elr"], rec["vector"]) == (
        0x4000_0000,
        img.symbol("fault_here"),
        0x200,
    )


def test_vectors_svc_returns_after_the_svc() -> None:
    main = """\
main:
    mov x19, #0
    svc #0x42
    add x19, x19, #1
    mov x1, x19
    b psci_system_off
"""
    img = _program(main)
    m, _, cpu = run_program(img)
    rec = _record(m, img)
    assert rec["esr"] == (0x15 << 26) | (1 << 25) | 0x42
    assert cpu.x(1) == 1  # the add after the SVC ran exactly once


def test_vectors_irq_returns_to_elr() -> None:
    main = f"""\
main:
    mov x19, #0
{load_imm("x0", INJECT_FID)}    smc #0
    add x19, x19, #1
    mov x1, x19
    b psci_system_off
"""
    img = _program(main)
    m, _, cpu = run_program(img, inject=(0, "irq"))
    rec = _record(m, img)
    assert rec["vector"] == 0x280
    assert cpu.x(1) == 1


def test_vectors_report_and_power_off() -> None:
    img = _program(FAULT_MAIN, policy=ExceptionPolicy.REPORT)
    m, rmm, cpu = run_program(img)
    esr = (0x25 << 26) | (1 << 25) | 0x10
    assert (
        m.console
        == (
            f"realm exception: vector 0x{0x200:016x} ESR 0x{esr:016x} "
            f"FAR 0x{0x4000_0000:016x} ELR 0x{img.symbol('fault_here'):016x}\n"
        ).encode()
    )
    assert fids(rmm) == [abi.PSCI_SYSTEM_OFF]
    assert cpu.x(1) == esr


def test_policy_can_change_at_run_time() -> None:
    main = f"""\
main:
    adr x9, exc_record
    mov x10, #{int(ExceptionPolicy.SKIP)}
    str x10, [x9, #{abi.EXCEPTION_RECORD.offset("policy")}]
{load_imm("x20", 0x4000_0000)}    ldr x21, [x20]
    mov x1, #7
    b psci_system_off
"""
    m, _, cpu = run_program(_program(main, policy=ExceptionPolicy.REPORT))
    assert cpu.x(1) == 7 and m.console == b""


def test_uart_routines() -> None:
    main = f"""\
main:
{load_imm("x0", 0x0123_4567_89AB_CDEF)}    bl uart_put_hex
    mov w0, #0x7c
    bl uart_putc
    adr x0, some_bytes
    mov x1, #5
    bl uart_put_hex_bytes
    mov x1, #0
    bl uart_put_hex_bytes
    adr x0, some_bytes
    mov x1, #0
    bl uart_puts
    b psci_system_off
"""
    data = data_bytes("some_bytes", b"\x00\x9f\xa0\xff\x10\x00")
    m, _, _cpu = run_program(_program(main, data))
    assert m.console == b"0123456789abcdef|009fa0ff10"


def test_memset_memcpy() -> None:
    main = """\
main:
    adr x0, dst
    mov w1, #0xab
    mov x2, #13
    bl memset
    add x0, x0, #16
    adr x1, src
    mov x2, #7
    bl memcpy
    mov x2, #0
    bl memcpy
    b psci_system_off
"""
    data = zeros("dst", 32) + data_bytes("src", b"ABCDEFGH")
    img = _program(main, data)
    m, _, _ = run_program(img)
    assert m.read(img.symbol("dst"), 32) == b"\xab" * 13 + bytes(3) + b"ABCDEFG" + bytes(9)


def test_rsi_wrappers_use_the_right_fids() -> None:
    from ccasim.guest.runtime import PSCI_CALLS, RSI_CALLS

    calls = {**RSI_CALLS, **PSCI_CALLS}
    main = (
        "main:\n"
        + "".join(f"    mov x1, #{i}\n    bl {label}\n" for i, label in enumerate(calls))
        + "    b psci_system_off\n"
    )
    _, rmm, cpu = boot(_program(main))
    while not rmm.system_off:  # CPU_OFF and AFFINITY_INFO stop the vCPU: resume it
        assert cpu.run(timeout=5).reason == "stopped"
    got = [(f, x[1]) for _, f, x in rmm.calls]
    # the last call (smccc_version) returned -1 and zeroed x1 (E-17)
    assert got == [(fid, i) for i, fid in enumerate(calls.values())] + [(abi.PSCI_SYSTEM_OFF, 0)]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, M64), st.integers(0, 0xFFFF_FFFF))
def test_load_imm(value: int, word: int) -> None:
    src = "_start:\n" + load_imm("x5", value) + load_imm("w6", word) + "    smc #0\n"
    img = assemble(src, LAYOUT.ram_base)
    m = BareMachine(LAYOUT.ram_base, 0x1000, smc_handler=lambda c: c.stop())
    cpu = m.boot(img)
    cpu.set_x(6, M64)
    assert cpu.run(timeout=5).reason == "stopped"
    assert (cpu.x(5), cpu.x(6)) == (value, word)
    assert len(img.data) <= 4 * 7  # at most 4 + 2 movz/movk and the smc: no literal pool
