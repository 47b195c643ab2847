"""Example realm guests, ready to load: each function returns an :class:`Image` assembled
for a :class:`GuestLayout` (images are cached, so calling one twice is cheap).

* :func:`hello` prints :data:`HELLO_TEXT`;
* :func:`measurement_extend`: RSI_MEASUREMENT_EXTEND(index, 32 bytes), MEASUREMENT_READ,
  prints ``REM[i] = <hex>``;
* :func:`attestation`: TOKEN_INIT + TOKEN_CONTINUE loop into a buffer, then RSI_HOST_CALL
  with gprs[0] = token IPA, gprs[1] = length, gprs[2] = status;
* :func:`two_vcpus`: CPU_ON(MPIDR 1); the secondary prints and CPU_OFFs; the primary
  polls AFFINITY_INFO;
* :func:`alu_loop` / :func:`load_store_loop`: benchmark loops, N = x0 at boot
  (0 selects the built-in N), x1 = result.

All of them end with PSCI SYSTEM_OFF.
The realm's console is the PL011 at ``layout.uart_ipa`` (an unprotected IPA).
"""

from __future__ import annotations

from dataclasses import dataclass

from ccasim.guest import abi
from ccasim.guest.abi import ExceptionPolicy
from ccasim.guest.asm import Image, assemble
from ccasim.guest.runtime import (
    asciz,
    compose,
    data_bytes,
    default_uart_ipa,
    load_imm,
    zeros,
)

HELLO_TEXT = "Hello from the realm\n"

#: The 32-byte value :func:`measurement_extend` adds to REM[1] by default.
DEFAULT_EXTEND_VALUE = bytes(range(0xA0, 0xC0))
#: The challenge :func:`attestation` passes to RSI_ATTESTATION_TOKEN_INIT by default.
DEFAULT_CHALLENGE = bytes((0x5A ^ i) for i in range(64))
#: RsiHostCall.imm used by :func:`attestation` ("TK").
TOKEN_HOST_CALL_IMM = 0x544B
DEFAULT_ITERATIONS = 1_000_000


@dataclass(frozen=True)
class GuestLayout:
    """Where a guest lives in the realm's IPA space.

    ``ram_base``/``ram_size``: protected RAM (granule-aligned, inside the PAR, i.e. below
    ``1 << (s2sz - 1)``); images are assembled at ``ram_base``. ``uart_ipa``: the PL011,
    an unprotected IPA (top IPA bit set); 0 selects :func:`default_uart_ipa` for ``s2sz``.
    """

    ram_base: int = 0x8000_0000
    ram_size: int = 0x20_0000
    s2sz: int = 40
    uart_ipa: int = 0

    def __post_init__(self) -> None:
        if not 32 <= self.s2sz <= 52:
            raise ValueError(f"s2sz {self.s2sz} is outside 32..52")
        if self.uart_ipa == 0:
            object.__setattr__(self, "uart_ipa", default_uart_ipa(self.s2sz))
        if self.ram_base % abi.GRANULE_SIZE or self.ram_size % abi.GRANULE_SIZE:
            raise ValueError("ram_base and ram_size must be granule-aligned")
        if self.ram_size <= 0 or self.ram_base + self.ram_size > self.unprotected_base:
            raise ValueError(
                f"RAM [{self.ram_base:#x}, {self.ram_base + self.ram_size:#x}) is not inside "
                f"the protected IPA range [0, {self.unprotected_base:#x})"
            )
        if not self.unprotected_base <= self.uart_ipa < 1 << self.s2sz:
            raise ValueError(f"UART IPA {self.uart_ipa:#x} is not an unprotected IPA")

    @property
    def unprotected_base(self) -> int:
        """First unprotected IPA: the top bit of the IPA space (``1 << (s2sz - 1)``)."""
        return 1 << (self.s2sz - 1)

    @property
    def ram_end(self) -> int:
        return self.ram_base + self.ram_size


def build(
    layout: GuestLayout,
    main: str,
    *,
    data: str = "",
    bss: str = "",
    cpus: int = 1,
    exception_policy: ExceptionPolicy = ExceptionPolicy.REPORT,
) -> Image:
    """Compose and assemble a program for ``layout``; checks that it fits in RAM."""
    image = assemble(
        compose(
            main,
            uart_ipa=layout.uart_ipa,
            data=data,
            bss=bss,
            cpus=cpus,
            exception_policy=exception_policy,
        ),
        layout.ram_base,
    )
    if image.end > layout.ram_end:
        raise ValueError(f"image of {image.size:#x} bytes does not fit in the guest RAM")
    if image.symbol("vectors") % 0x800:
        raise AssertionError("vector table is not 2 KiB aligned")
    return image


# ----------------------------------------------------------------------------- programs


def hello(layout: GuestLayout) -> Image:
    """Print :data:`HELLO_TEXT` on the UART, then PSCI SYSTEM_OFF."""
    main = f"""\
main:
    adr x0, msg_hello
    bl uart_puts
    mov x1, #0
    b psci_system_off
{asciz("msg_hello", HELLO_TEXT)}"""
    return build(layout, main)


def measurement_extend(
    layout: GuestLayout, value: bytes = DEFAULT_EXTEND_VALUE, *, index: int = 1
) -> Image:
    """RSI_MEASUREMENT_EXTEND(index, len(value), value in x3..x10), then
    RSI_MEASUREMENT_READ(index) into ``measurement`` (64 bytes), print
    ``REM[<index>] = <128 hex digits>`` and power off. On an RSI error it prints
    ``RSI error 0x<status>`` and powers off with x1 = status."""
    if len(value) > abi.RSI_MEASUREMENT_BYTES:
        raise ValueError("a measurement extend takes at most 64 bytes")
    if not 1 <= index <= 4:
        raise ValueError("REM index is 1..4")
    main = f"""\
main:
    mov x0, #{index}
    mov x1, #{len(value)}
    adr x2, extend_value
    bl measurement_extend
    cbnz x0, rsi_failed
    mov x0, #{index}
    adr x1, measurement
    bl measurement_read
    cbnz x0, rsi_failed
    adr x0, msg_rem
    bl uart_puts
    adr x0, measurement
    mov x1, #{abi.RSI_MEASUREMENT_BYTES}
    bl uart_put_hex_bytes
    mov w0, #0x0a
    bl uart_putc
    mov x1, #0
    b psci_system_off
{_rsi_failed()}
{asciz("msg_rem", f"REM[{index}] = ")}"""
    data = data_bytes("extend_value", value.ljust(abi.RSI_MEASUREMENT_BYTES, b"\0")) + zeros(
        "measurement", abi.RSI_MEASUREMENT_BYTES
    )
    return build(layout, main, data=data)


def attestation(
    layout: GuestLayout, challenge: bytes = DEFAULT_CHALLENGE, *, token_pages: int = 2
) -> Image:
    """Fetch a CCA attestation token and hand it to the host.

    RSI_ATTESTATION_TOKEN_INIT(challenge), TOKEN_CONTINUE until done into
    ``token_buffer`` (``token_pages`` granules), then RSI_HOST_CALL with the RsiHostCall
    struct ``host_call_args`` (256-aligned): imm = :data:`TOKEN_HOST_CALL_IMM`,
    gprs[0] = token IPA, gprs[1] = token length, gprs[2] = RSI status. Prints
    ``token 0x<status> 0x<length>`` and powers off."""
    if len(challenge) != 64:
        raise ValueError("the challenge is 64 bytes")
    if token_pages < 1:
        raise ValueError("token_pages must be at least 1")
    hc = abi.RSI_HOST_CALL_LAYOUT
    main = f"""\
main:
    adr x0, challenge
    adr x1, token_buffer
{load_imm("x2", token_pages * abi.GRANULE_SIZE)}    bl attestation_token
    mov x19, x0
    mov x20, x1
    adr x21, host_call_args
    mov x0, x21
    mov w1, #0
    mov x2, #{hc.size:#x}
    bl memset
{load_imm("w9", TOKEN_HOST_CALL_IMM)}    str w9, [x21, #{hc.offset("imm"):#x}]
    adr x9, token_buffer
    str x9, [x21, #{hc.offset("gprs0"):#x}]
    str x20, [x21, #{hc.offset("gprs1"):#x}]
    str x19, [x21, #{hc.offset("gprs2"):#x}]
    mov x0, x21
    bl host_call
    adr x0, msg_token
    bl uart_puts
    mov x0, x19
    bl uart_put_hex
    mov w0, #0x20
    bl uart_putc
    adr x0, msg_hex
    bl uart_puts
    mov x0, x20
    bl uart_put_hex
    mov w0, #0x0a
    bl uart_putc
    mov x1, x19
    b psci_system_off
{asciz("msg_token", "token 0x")}\
{asciz("msg_hex", "0x")}"""
    data = data_bytes("challenge", challenge) + zeros(
        "host_call_args", hc.size, align=abi.RSI_HOST_CALL_ALIGN
    )
    bss = zeros("token_buffer", token_pages * abi.GRANULE_SIZE, align=abi.GRANULE_SIZE)
    return build(layout, main, data=data, bss=bss)


def two_vcpus(layout: GuestLayout, *, secondary_mpidr: int = 1) -> Image:
    """vCPU 0 starts vCPU 1 with PSCI CPU_ON(``secondary_mpidr``, ``secondary_entry``,
    context 1), then polls AFFINITY_INFO(``secondary_mpidr``, 0) until it reports OFF and
    powers off. vCPU 1 prints ``Hello from vCPU 1``, sets ``secondary_done`` and CPU_OFFs.
    Output: ``vCPU 0: CPU_ON`` … ``Hello from vCPU 1`` … ``vCPU 0: vCPU 1 is off``."""
    messages = (
        asciz("msg_cpu_on", "vCPU 0: CPU_ON\n")
        + asciz("msg_off", "vCPU 0: vCPU 1 is off\n")
        + asciz("msg_secondary", "Hello from vCPU ")
    )
    main = f"""\
main:
    adr x0, msg_cpu_on
    bl uart_puts
{load_imm("x1", secondary_mpidr)}    adr x2, secondary_entry
    mov x3, #1
    bl psci_cpu_on
    cbnz x0, rsi_failed
wait_secondary:
{load_imm("x1", secondary_mpidr)}    mov x2, #0
    bl psci_affinity_info
    cmp x0, #{int(abi.AffinityState.ON)}
    b.eq wait_secondary
    cmp x0, #{int(abi.AffinityState.OFF)}
    b.ne rsi_failed
    adr x0, msg_off
    bl uart_puts
    adr x9, secondary_done
    ldr x1, [x9]
    b psci_system_off

secondary_main:
    stp x19, x30, [sp, #-16]!
    mov x19, x0
    adr x0, msg_secondary
    bl uart_puts
    add w0, w19, #0x30
    bl uart_putc
    mov w0, #0x0a
    bl uart_putc
    adr x9, secondary_done
    str x19, [x9]
    dmb ish
    ldp x19, x30, [sp], #16
    ret
{_rsi_failed()}
{messages}"""
    data = zeros("secondary_done", 8)
    return build(layout, main, data=data, cpus=2)


def alu_loop(layout: GuestLayout, *, iterations: int = DEFAULT_ITERATIONS) -> Image:
    """``alu_loop_body``: add; eor; subs; b.ne — 4 instructions per iteration, N = x0 at
    boot (0: ``iterations``). Powers off with x1 = N(N+1)/2 mod 2^64 and x3 = the xor
    of the running sums."""
    main = f"""\
main:
    cbnz x0, .Lalu_go
{load_imm("x0", iterations)}.Lalu_go:
    mov x2, x0
    mov x1, #0
    mov x3, #0
alu_loop_body:
    add x1, x1, x2
    eor x3, x3, x1
    subs x2, x2, #1
    b.ne alu_loop_body
alu_loop_end:
    b psci_system_off
"""
    return build(layout, main)


def load_store_loop(layout: GuestLayout, *, iterations: int = DEFAULT_ITERATIONS) -> Image:
    """``ls_loop_body``: ldr; add; str; subs; b.ne — 5 instructions per iteration on the
    word ``ls_counter``, N = x0 at boot (0: ``iterations``). Powers off with x1 = N."""
    main = f"""\
main:
    cbnz x0, .Lls_go
{load_imm("x0", iterations)}.Lls_go:
    mov x2, x0
    adr x5, ls_counter
    str xzr, [x5]
ls_loop_body:
    ldr x4, [x5]
    add x4, x4, #1
    str x4, [x5]
    subs x2, x2, #1
    b.ne ls_loop_body
ls_loop_end:
    ldr x1, [x5]
    b psci_system_off
"""
    return build(layout, main, data=zeros("ls_counter", 8))


def _rsi_failed() -> str:
    """``rsi_failed``: print ``RSI error 0x<x0>`` and power off with x1 = x0."""
    return f"""\
rsi_failed:
    mov x19, x0
    adr x0, msg_rsi_failed
    bl uart_puts
    mov x0, x19
    bl uart_put_hex
    mov w0, #0x0a
    bl uart_putc
    mov x1, x19
    b psci_system_off
{asciz("msg_rsi_failed", "RSI error 0x")}"""


#: RsiHostCall.imm values of :func:`demo`: ask the host for a challenge ("CH"), hand it
#: the token ("TK").
CHALLENGE_HOST_CALL_IMM = 0x4843
#: The value :func:`demo` extends REM[0] (RSI index 1) with: the hash of its "workload".
DEMO_WORKLOAD = b"ccasim demo workload v1"


_DEMO_HELLO = "Hello from inside the realm: the host can schedule me but not read me.\n"
_DEMO_EXTENDED = "Extended REM[0] with the hash of my workload.\n"
_DEMO_BYE = "Powering off.\n"
_DEMO_CHALLENGE = "Got a fresh challenge from the verifier (via the host); asking for a token.\n"


def demo(layout: GuestLayout, shared_ipa: int, *, token_pages: int = 2) -> Image:
    """The ``ccasim demo`` guest.

    Prints a greeting; extends REM[0] (RSI index 1) with SHA-256 of :data:`DEMO_WORKLOAD`
    (passed in as 32 bytes computed by the host-side builder); asks the host for a fresh
    64-byte challenge with RSI_HOST_CALL (imm :data:`CHALLENGE_HOST_CALL_IMM`: the host
    answers in gprs[0..7]); fetches the attestation token for it; copies the token to the
    shared (unprotected) page at ``shared_ipa`` and hands it to the host with RSI_HOST_CALL
    (imm :data:`TOKEN_HOST_CALL_IMM`, gprs[0] = shared IPA, gprs[1] = length,
    gprs[2] = status); then powers off."""
    import hashlib

    if not 1 << (layout.s2sz - 1) <= shared_ipa < 1 << layout.s2sz:
        raise ValueError("the shared page must be at an unprotected IPA")
    hc = abi.RSI_HOST_CALL_LAYOUT
    main = f"""\
main:
    adr x0, msg_hello
    bl uart_puts
    mov x0, #1
    mov x1, #32
    adr x2, workload_hash
    bl measurement_extend
    cbnz x0, rsi_failed
    adr x0, msg_extended
    bl uart_puts
    adr x21, host_call_args
    mov x0, x21
    mov w1, #0
    mov x2, #{hc.size:#x}
    bl memset
{load_imm("w9", CHALLENGE_HOST_CALL_IMM)}    str w9, [x21, #{hc.offset("imm"):#x}]
    mov x0, x21
    bl host_call
    adr x0, msg_challenge
    bl uart_puts
    add x0, x21, #{hc.offset("gprs0"):#x}
    adr x1, token_buffer
{load_imm("x2", token_pages * abi.GRANULE_SIZE)}    bl attestation_token
    mov x19, x0
    mov x20, x1
    cbnz x19, token_failed
{load_imm("x0", shared_ipa)}    adr x1, token_buffer
    mov x2, x20
    bl memcpy
token_failed:
    mov x0, x21
    mov w1, #0
    mov x2, #{hc.size:#x}
    bl memset
{load_imm("w9", TOKEN_HOST_CALL_IMM)}    str w9, [x21, #{hc.offset("imm"):#x}]
{load_imm("x9", shared_ipa)}    str x9, [x21, #{hc.offset("gprs0"):#x}]
    str x20, [x21, #{hc.offset("gprs1"):#x}]
    str x19, [x21, #{hc.offset("gprs2"):#x}]
    mov x0, x21
    bl host_call
    adr x0, msg_token
    bl uart_puts
    mov x0, x20
    bl uart_put_hex
    mov w0, #0x0a
    bl uart_putc
    adr x0, msg_bye
    bl uart_puts
    mov x1, x19
    b psci_system_off
{_rsi_failed()}
{asciz("msg_hello", _DEMO_HELLO)}\
{asciz("msg_extended", _DEMO_EXTENDED)}\
{asciz("msg_challenge", _DEMO_CHALLENGE)}\
{asciz("msg_token", "Attestation token handed to the host, bytes: 0x")}\
{asciz("msg_bye", _DEMO_BYE)}"""
    workload_hash = hashlib.sha256(DEMO_WORKLOAD).digest().ljust(64, b"\0")
    data = data_bytes("workload_hash", workload_hash) + zeros(
        "host_call_args", hc.size, align=abi.RSI_HOST_CALL_ALIGN
    )
    bss = zeros("token_buffer", token_pages * abi.GRANULE_SIZE, align=abi.GRANULE_SIZE)
    return build(layout, main, data=data, bss=bss)
