"""Building blocks for realm guests: AArch64 assembly text for :func:`.asm.assemble`.

A guest image made by :func:`compose` looks like this (one section, position-independent:
every address is formed with ``adr``, so the image runs wherever it is assembled for)::

    _start            entry: SP, VBAR_EL1, then ``bl main`` (boot x0..x7 passed through)
    secondary_entry   PSCI CPU_ON entry (x0 = context id = CPU index), then ``secondary_main``
    main ...          the program
    library           UART, RSI, PSCI, token fetch, memset/memcpy, exception handler
    vectors           VBAR_EL1 table: 16 entries, 0x80 apart, 2 KiB aligned
    exc_record        the "last exception" record (abi.EXCEPTION_RECORD)
    data, bss         the program's data; bss areas are granule-aligned
    stacks            ``cpus`` stacks of ``stack_size`` bytes, __stack_top at the end

The guest runs at R-EL1 with the MMU off, so VA = IPA and every data access is
Device-nGnRnE: all library code uses naturally aligned accesses only.

Calling convention of the library routines (all leaves, none uses the stack): arguments in
x0.., results in x0..; they clobber at most x0-x15 and x30 is only used by ``ret``; x16 and
above are preserved. RSI/PSCI calls return results in x0-x3 and zero unused x1-x3
(errata E-17); MEASUREMENT_READ also writes x4-x8; x9 and above survive an RSI call, so
the routines keep their own state in x9-x15.
"""

from __future__ import annotations

from ccasim.guest import abi
from ccasim.guest.abi import ExceptionPolicy

MASK64 = (1 << 64) - 1
UART_DEFAULT_OFFSET = 0x1C09_0000  # the FVP PL011 (UART0), in the unprotected IPA half
VECTOR_TABLE_ALIGN = 0x800
VECTOR_ENTRY_SIZE = 0x80


def default_uart_ipa(s2sz: int) -> int:
    """The PL011 as the realm sees it: an unprotected IPA (top bit of the IPA space set)."""
    return (1 << (s2sz - 1)) + UART_DEFAULT_OFFSET


# ----------------------------------------------------------------------------- small snippets


def load_imm(reg: str, value: int) -> str:
    """``movz``/``movk`` lines that put ``value`` into ``reg`` (x or w), no literal pool."""
    width = 32 if reg.lower().startswith("w") else 64
    value &= (1 << width) - 1
    parts = [(shift, (value >> shift) & 0xFFFF) for shift in range(0, width, 16)]
    nonzero = [(s, p) for s, p in parts if p]
    if not nonzero:
        return f"    movz {reg}, #0\n"
    (s0, p0), rest = nonzero[0], nonzero[1:]
    lines = [f"    movz {reg}, #{p0:#x}, lsl #{s0}"]
    lines += [f"    movk {reg}, #{p:#x}, lsl #{s}" for s, p in rest]
    return "\n".join(lines) + "\n"


def smc_call(fid: int) -> str:
    """Inline SMCCC call: x0 = ``fid``, ``smc #0``; arguments must already be in x1.."""
    return load_imm("x0", fid) + "    smc #0\n"


def asciz(label: str, text: str) -> str:
    """A NUL-terminated string at ``label`` (followed by ``.balign 4`` for code after it)."""
    escaped = "".join(_escape_char(c) for c in text)
    return f'{label}:\n    .asciz "{escaped}"\n    .balign 4\n'


def _escape_char(c: str) -> str:
    if c == '"':
        return '\\"'
    if c == "\\":
        return "\\\\"
    if c == "\n":
        return "\\n"
    if c == "\r":
        return "\\r"
    if c == "\t":
        return "\\t"
    if not (c.isascii() and c.isprintable()):
        raise ValueError(f"{c!r}: only printable ASCII, \\n, \\r and \\t can be put in a string")
    return c


def data_bytes(label: str, data: bytes, align: int = 8) -> str:
    """``data`` at ``label``, aligned to ``align`` bytes."""
    lines = [f"    .balign {align}", f"{label}:"]
    for off in range(0, len(data), 16):
        chunk = data[off : off + 16]
        lines.append("    .byte " + ", ".join(f"{b:#04x}" for b in chunk))
    if not data:
        lines.append("    .skip 0")
    return "\n".join(lines) + "\n"


def zeros(label: str, size: int, align: int = 8) -> str:
    """``size`` zero bytes at ``label``, aligned to ``align`` bytes."""
    return f"    .balign {align}\n{label}:\n    .skip {size:#x}\n"


# ----------------------------------------------------------------------------- entry


def entry(*, main: str = "main", stack_top: str = "__stack_top", vectors: str = "vectors") -> str:
    """``_start``: select SP_EL1, point SP at ``stack_top`` and VBAR_EL1 at ``vectors``, then
    ``bl main`` with the boot registers x0-x7 untouched (the host sets them through
    RmiRecParams.gprs). If main returns, x0 goes to x1 and the realm is powered off."""
    return f"""\
_start:
    msr SPSel, #1
    adr x9, {stack_top}
    mov sp, x9
    adr x9, {vectors}
    msr VBAR_EL1, x9
    isb
    bl {main}
rt_main_returned:
    mov x1, x0
    b psci_system_off
"""


def secondary_entry(
    *,
    main: str = "secondary_main",
    cpus: int = 2,
    stack_size: int = 0x1000,
    stack_top: str = "__stack_top",
    vectors: str = "vectors",
) -> str:
    """``secondary_entry``: where PSCI CPU_ON starts another vCPU. The CPU_ON context id
    (x0 on entry) is the CPU index 1..cpus-1 and picks the stack
    ``stack_top - index * stack_size`` (MPIDR is not used: the host chooses it). Calls
    ``main(x0 = index)``; when it returns the vCPU issues PSCI CPU_OFF. An index out of
    range turns the vCPU off at once."""
    if cpus < 1 or stack_size % 16 or stack_size <= 0:
        raise ValueError("need cpus >= 1 and a positive, 16-byte multiple stack_size")
    return f"""\
secondary_entry:
    cmp x0, #{cpus}
    b.hs rt_cpu_off
    cbz x0, rt_cpu_off
    msr SPSel, #1
    adr x9, {stack_top}
{load_imm("x10", stack_size)}    mul x10, x10, x0
    sub x9, x9, x10
    mov sp, x9
    adr x9, {vectors}
    msr VBAR_EL1, x9
    isb
    bl {main}
rt_cpu_off:
    bl psci_cpu_off
rt_park:
    wfi
    b rt_park
"""


# ----------------------------------------------------------------------------- UART


def uart_driver(uart_ipa: int) -> str:
    """PL011 output through UARTDR (offset 0) at ``uart_ipa`` (an unprotected IPA).

    ``uart_putc(w0)``, ``uart_puts(x0 = NUL-terminated string)``,
    ``uart_put_hex(x0)`` (16 hex digits, no prefix),
    ``uart_put_hex_bytes(x0 = address, x1 = length)`` (two hex digits per byte, in memory
    order). The model's PL011 never reports a full FIFO, so UARTFR is not polled."""
    base = load_imm("x9", uart_ipa)
    return f"""\
uart_putc:
{base}    str w0, [x9]
    ret

uart_puts:
{base}.Luart_puts_loop:
    ldrb w10, [x0], #1
    cbz w10, .Luart_puts_done
    str w10, [x9]
    b .Luart_puts_loop
.Luart_puts_done:
    ret

uart_put_hex:
{base}    mov x10, #60
.Luart_put_hex_loop:
    lsr x11, x0, x10
    and x11, x11, #0xf
    cmp x11, #10
    add x12, x11, #0x30
    add x13, x11, #0x57
    csel x11, x12, x13, lo
    str w11, [x9]
    subs x10, x10, #4
    b.pl .Luart_put_hex_loop
    ret

uart_put_hex_bytes:
{base}    cbz x1, .Luart_put_hex_bytes_done
.Luart_put_hex_bytes_loop:
    ldrb w10, [x0], #1
    lsr w11, w10, #4
    cmp w11, #10
    add w12, w11, #0x30
    add w13, w11, #0x57
    csel w11, w12, w13, lo
    str w11, [x9]
    and w11, w10, #0xf
    cmp w11, #10
    add w12, w11, #0x30
    add w13, w11, #0x57
    csel w11, w12, w13, lo
    str w11, [x9]
    subs x1, x1, #1
    b.ne .Luart_put_hex_bytes_loop
.Luart_put_hex_bytes_done:
    ret
"""


# ----------------------------------------------------------------------------- RSI / PSCI

#: label -> FID of the raw call wrappers; each is ``x0 = FID; smc #0; ret`` with the
#: arguments already in x1.. (rmm-abi §9).
RSI_CALLS: dict[str, int] = {
    "rsi_version": abi.RSI_VERSION,
    "rsi_features": abi.RSI_FEATURES,
    "rsi_measurement_read": abi.RSI_MEASUREMENT_READ,
    "rsi_measurement_extend": abi.RSI_MEASUREMENT_EXTEND,
    "rsi_attestation_token_init": abi.RSI_ATTESTATION_TOKEN_INIT,
    "rsi_attestation_token_continue": abi.RSI_ATTESTATION_TOKEN_CONTINUE,
    "rsi_realm_config": abi.RSI_REALM_CONFIG,
    "rsi_ipa_state_set": abi.RSI_IPA_STATE_SET,
    "rsi_ipa_state_get": abi.RSI_IPA_STATE_GET,
    "rsi_host_call": abi.RSI_HOST_CALL,
}

PSCI_CALLS: dict[str, int] = {
    "psci_version": abi.PSCI_VERSION,
    "psci_cpu_on": abi.PSCI_CPU_ON,  # x1 target MPIDR, x2 entry, x3 context id
    "psci_cpu_off": abi.PSCI_CPU_OFF,
    "psci_affinity_info": abi.PSCI_AFFINITY_INFO,  # x1 target MPIDR, x2 lowest level (0)
    "psci_features": abi.PSCI_FEATURES,  # x1 FID
    "smccc_version": abi.SMCCC_VERSION,
}


def rsi_library() -> str:
    """Raw wrappers (:data:`RSI_CALLS`) plus helpers that take memory operands:

    * ``measurement_read(x0 = index, x1 = 64-byte destination)`` -> x0 status; on
      success the 64 bytes of x1..x8 are stored at the destination;
    * ``measurement_extend(x0 = index, x1 = size, x2 = 64-byte value)`` -> x0 status
      (x3..x10 are loaded from the value);
    * ``host_call(x0 = RsiHostCall IPA)`` -> x0 status."""
    parts = [f"{label}:\n{smc_call(fid)}    ret\n" for label, fid in RSI_CALLS.items()]
    parts.append(f"""\
measurement_read:
    mov x11, x1
    mov x1, x0
{smc_call(abi.RSI_MEASUREMENT_READ)}    cbnz x0, .Lmeasurement_read_done
    stp x1, x2, [x11]
    stp x3, x4, [x11, #16]
    stp x5, x6, [x11, #32]
    stp x7, x8, [x11, #48]
.Lmeasurement_read_done:
    ret

measurement_extend:
    mov x11, x2
    mov x2, x1
    mov x1, x0
    ldp x3, x4, [x11]
    ldp x5, x6, [x11, #16]
    ldp x7, x8, [x11, #32]
    ldp x9, x10, [x11, #48]
{smc_call(abi.RSI_MEASUREMENT_EXTEND)}    ret

host_call:
    mov x1, x0
{smc_call(abi.RSI_HOST_CALL)}    ret
""")
    return "\n".join(parts)


def psci_library() -> str:
    """Raw wrappers (:data:`PSCI_CALLS`) plus ``psci_system_off`` / ``psci_system_reset``,
    which never return (a vCPU that gets past them waits for interrupts forever)."""
    parts = [f"{label}:\n{smc_call(fid)}    ret\n" for label, fid in PSCI_CALLS.items()]
    parts.append(f"""\
psci_system_off:
{smc_call(abi.PSCI_SYSTEM_OFF)}.Lpsci_system_off_park:
    wfi
    b .Lpsci_system_off_park

psci_system_reset:
{smc_call(abi.PSCI_SYSTEM_RESET)}.Lpsci_system_reset_park:
    wfi
    b .Lpsci_system_reset_park
""")
    return "\n".join(parts)


def token_fetch() -> str:
    """``attestation_token(x0 = challenge, x1 = buffer, x2 = buffer size)`` -> x0 status,
    x1 token length.

    RSI_ATTESTATION_TOKEN_INIT with the 64-byte challenge (8-aligned, loaded into x1..x8),
    then RSI_ATTESTATION_TOKEN_CONTINUE(x1 = granule IPA, x2 = offset, x3 = size) while it
    returns RSI_INCOMPLETE, accumulating the bytes written (x1) and moving to the next
    granule of the buffer when one is full. The buffer is granule-aligned realm RAM.
    Returns SUCCESS, the first error status, or INCOMPLETE if the buffer filled up before
    the token was complete."""
    incomplete = int(abi.RsiStatus.INCOMPLETE)
    return f"""\
attestation_token:
    mov x12, x1
    add x13, x1, x2
    mov x14, #0
    mov x15, #0
    ldp x1, x2, [x0]
    ldp x3, x4, [x0, #16]
    ldp x5, x6, [x0, #32]
    ldp x7, x8, [x0, #48]
{smc_call(abi.RSI_ATTESTATION_TOKEN_INIT)}    cbnz x0, .Ltoken_done
.Ltoken_loop:
    sub x3, x13, x12
    sub x3, x3, x14
    cbz x3, .Ltoken_full
    mov x9, #{abi.GRANULE_SIZE:#x}
    sub x9, x9, x14
    cmp x3, x9
    csel x3, x3, x9, lo
    mov x1, x12
    mov x2, x14
{smc_call(abi.RSI_ATTESTATION_TOKEN_CONTINUE)}    cmp x0, #{incomplete}
    b.eq .Ltoken_got
    cbnz x0, .Ltoken_done
.Ltoken_got:
    add x15, x15, x1
    add x14, x14, x1
    cmp x14, #{abi.GRANULE_SIZE:#x}
    b.lo .Ltoken_next
    add x12, x12, #{abi.GRANULE_SIZE:#x}
    mov x14, #0
.Ltoken_next:
    cbnz x0, .Ltoken_loop
    b .Ltoken_done
.Ltoken_full:
    mov x0, #{incomplete}
.Ltoken_done:
    mov x1, x15
    ret
"""


def mem_library() -> str:
    """``memset(x0 = dst, w1 = byte, x2 = length)`` and
    ``memcpy(x0 = dst, x1 = src, x2 = length)``; byte loops (safe on Device memory);
    x0 is returned unchanged."""
    return """\
memset:
    mov x9, x0
    cbz x2, .Lmemset_done
.Lmemset_loop:
    strb w1, [x9], #1
    subs x2, x2, #1
    b.ne .Lmemset_loop
.Lmemset_done:
    ret

memcpy:
    mov x9, x0
    cbz x2, .Lmemcpy_done
.Lmemcpy_loop:
    ldrb w10, [x1], #1
    strb w10, [x9], #1
    subs x2, x2, #1
    b.ne .Lmemcpy_loop
.Lmemcpy_done:
    ret
"""


# ----------------------------------------------------------------------------- exceptions

_REC = abi.EXCEPTION_RECORD
_EC_SVC = (0x11, 0x15)  # SVC (AArch32, AArch64): ELR already points past the instruction


def exception_vectors(*, record: str = "exc_record") -> str:
    """``vectors`` (2 KiB aligned, 16 entries 0x80 apart) and the common handler.

    Every entry saves x0/x1 on the current stack and passes its offset to
    ``rt_exc_common``, which stores vector, ESR_EL1, FAR_EL1, ELR_EL1 and SPSR_EL1 in the
    record at ``record`` (layout :data:`abi.EXCEPTION_RECORD`) and increments its count.
    Then, by the record's ``policy`` (:class:`abi.ExceptionPolicy`):

    * SKIP: return with ``eret``; a synchronous exception other than SVC resumes after
      the faulting instruction (ELR_EL1 += 4); IRQ/FIQ/SError resume where they hit;
    * REPORT: print the record over the UART and power off (PSCI SYSTEM_OFF, x1 = ESR).

    An exception inside the handler itself (record ``depth`` > 1) powers off at once."""
    slots = []
    for i in range(16):
        off = i * VECTOR_ENTRY_SIZE
        slots.append(f"""\
    .balign {VECTOR_ENTRY_SIZE:#x}
rt_vector_{off:03x}:
    stp x0, x1, [sp, #-16]!
    mov x0, #{off:#x}
    b rt_exc_common
""")
    ec_checks = "".join(f"    cmp x2, #{ec:#x}\n    b.eq .Lexc_return\n" for ec in _EC_SVC)
    o = _REC.offset
    return f"""\
rt_exc_common:
    stp x2, x3, [sp, #-16]!
    adr x1, {record}
    ldr x2, [x1, #{o("depth"):#x}]
    add x2, x2, #1
    str x2, [x1, #{o("depth"):#x}]
    cmp x2, #1
    b.ne rt_exc_fatal
    str x0, [x1, #{o("vector"):#x}]
    mrs x2, ESR_EL1
    str x2, [x1, #{o("esr"):#x}]
    mrs x2, FAR_EL1
    str x2, [x1, #{o("far"):#x}]
    mrs x2, ELR_EL1
    str x2, [x1, #{o("elr"):#x}]
    mrs x2, SPSR_EL1
    str x2, [x1, #{o("spsr"):#x}]
    ldr x2, [x1, #{o("count"):#x}]
    add x2, x2, #1
    str x2, [x1, #{o("count"):#x}]
    ldr x2, [x1, #{o("policy"):#x}]
    cmp x2, #{int(ExceptionPolicy.SKIP)}
    b.ne rt_exc_report
    tst x0, #0x180
    b.ne .Lexc_return
    mrs x2, ESR_EL1
    lsr x2, x2, #26
{ec_checks}    mrs x2, ELR_EL1
    add x2, x2, #4
    msr ELR_EL1, x2
.Lexc_return:
    adr x1, {record}
    ldr x2, [x1, #{o("depth"):#x}]
    sub x2, x2, #1
    str x2, [x1, #{o("depth"):#x}]
    ldp x2, x3, [sp], #16
    ldp x0, x1, [sp], #16
    eret

rt_exc_report:
    adr x0, rt_msg_exception
    bl uart_puts
    adr x19, {record}
    ldr x0, [x19, #{o("vector"):#x}]
    bl uart_put_hex
    adr x0, rt_msg_esr
    bl uart_puts
    ldr x0, [x19, #{o("esr"):#x}]
    bl uart_put_hex
    adr x0, rt_msg_far
    bl uart_puts
    ldr x0, [x19, #{o("far"):#x}]
    bl uart_put_hex
    adr x0, rt_msg_elr
    bl uart_puts
    ldr x0, [x19, #{o("elr"):#x}]
    bl uart_put_hex
    mov w0, #0x0a
    bl uart_putc
rt_exc_fatal:
    mrs x1, ESR_EL1
    b psci_system_off

{asciz("rt_msg_exception", "realm exception: vector 0x")}\
{asciz("rt_msg_esr", " ESR 0x")}\
{asciz("rt_msg_far", " FAR 0x")}\
{asciz("rt_msg_elr", " ELR 0x")}
    .balign {VECTOR_TABLE_ALIGN:#x}
vectors:
{"".join(slots)}"""


def exception_record(
    policy: ExceptionPolicy = ExceptionPolicy.REPORT, *, label: str = "exc_record"
) -> str:
    """The writable record the vectors fill (:data:`abi.EXCEPTION_RECORD`), with its
    ``policy`` preset; place it in the data part of the image."""
    words = [0] * (_REC.size // 8)
    words[_REC.offset("policy") // 8] = int(policy)
    body = "\n".join(f"    .quad {w:#x}" for w in words)
    return f"    .balign 64\n{label}:\n{body}\n"


# ----------------------------------------------------------------------------- whole image


def library(uart_ipa: int) -> str:
    """All library routines (UART, RSI, PSCI, token fetch, memset/memcpy) and the exception
    vectors; the vectors need :func:`exception_record` in the data part."""
    return "\n".join(
        [
            uart_driver(uart_ipa),
            rsi_library(),
            psci_library(),
            token_fetch(),
            mem_library(),
            exception_vectors(),
        ]
    )


def compose(
    main: str,
    *,
    uart_ipa: int,
    data: str = "",
    bss: str = "",
    cpus: int = 1,
    stack_size: int = 0x1000,
    exception_policy: ExceptionPolicy = ExceptionPolicy.REPORT,
    secondary_main: str | None = None,
) -> str:
    """A complete guest source: entry, the program text ``main`` (which must define
    ``main``, and ``secondary_main`` when ``cpus > 1`` — the name given by
    ``secondary_main``), the library, the vectors, the exception record, ``data``,
    granule-aligned ``bss`` and the stacks. Assemble it at a granule-aligned IPA."""
    if cpus < 1:
        raise ValueError("cpus must be at least 1")
    if stack_size <= 0 or stack_size % 16:
        raise ValueError("stack_size must be a positive multiple of 16")
    parts = ["// ---- entry", entry()]
    if cpus > 1:
        parts.append(
            secondary_entry(
                main=secondary_main or "secondary_main", cpus=cpus, stack_size=stack_size
            )
        )
    parts += [
        "// ---- program",
        "    .balign 4",
        main,
        "// ---- runtime library",
        "    .balign 4",
        library(uart_ipa),
        "// ---- data",
        f"    .balign {abi.GRANULE_SIZE:#x}",
        "__data_start:",
        exception_record(exception_policy),
        data,
    ]
    if bss:
        parts += ["// ---- bss (granule-aligned areas)", f"    .balign {abi.GRANULE_SIZE:#x}", bss]
    parts += [
        "// ---- stacks",
        "    .balign 16",
        "__stack_bottom:",
        f"    .skip {cpus * stack_size:#x}",
        "__stack_top:",
        "__image_end:",
    ]
    return "\n".join(parts) + "\n"
