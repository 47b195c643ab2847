"""Secure partitions: AArch64 images that run at S-EL1 under the SPMC.

Both partitions share a small runtime (:func:`runtime`): at reset they select SP_EL1,
install their exception vectors, map their RX/TX buffers (FFA_RXTX_MAP), learn their
endpoint ID (FFA_ID_GET) and report initialisation complete with FFA_MSG_WAIT. From then
on every FFA_MSG_SEND_DIRECT_REQ_64 that the SPMC delivers arrives in x0..x7; the partition
calls ``sp_handle`` with the payload in x3..x7 and answers with
FFA_MSG_SEND_DIRECT_RESP_64 carrying x3..x7 back (x3 = status: 0 or a negative code).
Any synchronous exception (for instance a data abort the SPMC injects after a stage-2 or
granule protection fault) is answered with status :data:`STATUS_FAULT` and x4 = ESR_EL1,
x5 = FAR_EL1, x6 = ELR_EL1, so a fault never kills the partition.

Memory is obtained with FFA_MEM_RETRIEVE_REQ (``sp_retrieve``: the request goes in the TX
buffer, the response is read from the RX buffer, which is then released with
FFA_RX_RELEASE) and given back with FFA_MEM_RELINQUISH (``sp_relinquish``).

* :func:`echo_partition` (ID 0x8002): echo, a request counter, and memory commands (retrieve,
  relinquish, read, write, fill) that let the Normal world exercise lent/shared memory.
* :func:`keystore_partition` (ID 0x8001): a key store that keeps secrets for the Normal world
  in memory it lends (the *vault*). The vault holds keys derived from the platform's
  hardware unique key and sealed records: each 16-byte secret is encrypted with a SipHash-
  2-4 keystream and authenticated with a SipHash-2-4 tag (encrypt-then-MAC). While lent
  the vault is Secure PAS: the Normal world faults on it; after KS_CLOSE and
  FFA_MEM_RECLAIM the SPMC scrubs it. (SipHash is a keyed PRF; with 64-bit outputs this is
  an illustration of sealing, not production cryptography.)

Partitions run with the MMU off (VA = IPA = PA under the SPMC's identity stage 2), so data
accesses are Device-nGnRnE: the code uses naturally aligned accesses only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..guest.asm import Image, assemble
from ..guest.runtime import load_imm, smc_call
from . import ffa

STATUS_OK = 0
STATUS_FAULT = -256  # a synchronous exception was taken while handling the request
STATUS_UNKNOWN_COMMAND = -1

PAGE = 0x1000
STACK_SIZE = 0x2000

# Echo / counter partition commands (x3 of the request)
ECHO = 0
ECHO_COUNT = 1
ECHO_READ = 2  # x4 = address -> x4 = u64 at address
ECHO_WRITE = 3  # x4 = address, x5 = value -> x4 = value read back
ECHO_RETRIEVE = 4  # x4 = handle, x5 = transaction flags, x6 = permissions, x7 = tag
ECHO_RELINQUISH = 5  # x4 = handle
ECHO_FILL = 6  # x4 = address, x5 = length (multiple of 8), x6 = u64 pattern

# Key store commands and statuses
KS_OPEN = 1  # x4 = handle of the lent vault -> x4 = number of slots
KS_PUT = 2  # x4 = slot, x5, x6 = secret -> x4 = tag
KS_GET = 3  # x4 = slot -> x4, x5 = secret
KS_MAC = 4  # x4..x6 = message -> x4 = SipHash tag under the vault's MAC key
KS_CLOSE = 5  # relinquish the vault
KS_ERR_NOT_OPEN = -16
KS_ERR_ALREADY_OPEN = -17
KS_ERR_SLOT = -18
KS_ERR_EMPTY = -19
KS_ERR_TAMPERED = -20

# Vault layout (in the lent memory)
VAULT_MAGIC = int.from_bytes(b"KSVAULT1", "little")
VAULT_HEADER = 0x40  # magic, nonce counter, k_enc (16), k_mac (16), reserved
VAULT_RECORD = 0x20  # nonce, c0, c1, tag
VAULT_DOMAIN_MAC = (1 << 64) - 1  # slot word of KS_MAC messages: never a slot number

SIPHASH_CONSTANTS = (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261,
                     0x7465646279746573)


@dataclass(frozen=True)
class PartitionManifest:
    """What the SPMC knows about a partition before loading it (its manifest)."""

    name: str
    endpoint_id: int
    uuid: tuple[int, int, int, int]
    source: Callable[[], str]
    properties: int = ffa.PROP_DIRECT_REQ_RECV | ffa.PROP_AARCH64
    # symbol -> bytes written into the loaded image (secrets provisioned by the SPMC)
    provision: Callable[[int], dict[str, bytes]] = field(default=lambda seed: {})

    def image(self, base: int) -> Image:
        return assemble(self.source(), base)


# ---------------------------------------------------------------------------- runtime


def _smc(fid: int) -> str:
    return smc_call(fid)


def _cmp_x0(fid: int) -> str:
    return load_imm("x9", fid) + "    cmp x0, x9\n"


def runtime() -> str:
    """Entry, message loop, exception vectors and the FF-A memory helpers."""
    slots = "".join(f"""\
    .balign 0x80
sp_vector_{i:02d}:
    b sp_exception
""" for i in range(16))
    return f"""\
_start:
    msr SPSel, #1
    adr x9, __stack_top
    mov sp, x9
    adr x9, sp_vectors
    msr VBAR_EL1, x9
    isb
    adr x1, sp_tx
    adr x2, sp_rx
    mov x3, #1
{_smc(ffa.FFA_RXTX_MAP_64)}{_cmp_x0(ffa.FFA_SUCCESS_32)}    b.ne sp_init_failed
{_smc(ffa.FFA_ID_GET)}{_cmp_x0(ffa.FFA_SUCCESS_32)}    b.ne sp_init_failed
    adr x9, sp_own_id
    str x2, [x9]
    bl sp_init
    cbnz x0, sp_init_failed
sp_wait:
    mov x1, #0
    mov x2, #0
    mov x3, #0
    mov x4, #0
    mov x5, #0
    mov x6, #0
    mov x7, #0
{_smc(ffa.FFA_MSG_WAIT)}sp_dispatch:
{_cmp_x0(ffa.FFA_MSG_SEND_DIRECT_REQ_64)}    b.ne sp_wait
    mov x19, x1
    adr x9, __stack_top
    mov sp, x9
    bl sp_handle
sp_reply:
    ubfx x9, x19, #16, #16
    and x10, x19, #0xffff
    orr x1, x9, x10, lsl #16
    mov x2, #0
{_smc(ffa.FFA_MSG_SEND_DIRECT_RESP_64)}    b sp_dispatch

sp_init_failed:
    mov x1, #0
{load_imm("x2", ffa.FfaError.ABORTED & ffa.MASK32)}{_smc(ffa.FFA_ERROR)}    b sp_init_failed

sp_exception:
    adr x9, __stack_top
    mov sp, x9
    mrs x4, ESR_EL1
    mrs x5, FAR_EL1
    mrs x6, ELR_EL1
{load_imm("x3", STATUS_FAULT)}    mov x7, #0
    b sp_reply

// sp_retrieve(x0 = handle, x1 = transaction flags, x2 = permissions, x3 = tag)
//   -> x0 = 0 or FF-A error, x1 = address and x2 = pages of the first constituent,
//      x3 = total pages, x4 = memory region attributes of the response
sp_retrieve:
    mov x12, x0
    mov x13, x1
    mov x14, x2
    adr x9, sp_tx
    stp xzr, xzr, [x9]
    stp xzr, xzr, [x9, #16]
    str x3, [x9, #{ffa.MTD.offset("tag")}]
    stp xzr, xzr, [x9, #32]
    stp xzr, xzr, [x9, #48]
    str w13, [x9, #{ffa.MTD.offset("flags")}]
    str x12, [x9, #{ffa.MTD.offset("handle")}]
    mov w10, #{ffa.EMAD.size}
    str w10, [x9, #{ffa.MTD.offset("emad_size")}]
    mov w10, #1
    str w10, [x9, #{ffa.MTD.offset("emad_count")}]
    mov w10, #{ffa.MTD.size}
    str w10, [x9, #{ffa.MTD.offset("emad_offset")}]
    adr x10, sp_own_id
    ldr x10, [x10]
    and x10, x10, #0xffff
    orr x10, x10, x14, lsl #16
    str w10, [x9, #{ffa.MTD.size}]
    mov x1, #{ffa.MTD.size + ffa.EMAD.size}
    mov x2, x1
    mov x3, #0
    mov x4, #0
{_smc(ffa.FFA_MEM_RETRIEVE_REQ_64)}{_cmp_x0(ffa.FFA_MEM_RETRIEVE_RESP)}    b.ne .Lretrieve_error
    adr x9, sp_rx
    ldr w10, [x9, #{ffa.MTD.offset("emad_offset")}]
    add x10, x9, x10
    ldr w10, [x10, #{ffa.EMAD.offset("composite_offset")}]
    add x10, x9, x10
    ldr w11, [x10, #{ffa.COMPOSITE.offset("total_page_count")}]
    ldr x12, [x10, #{ffa.COMPOSITE.size + ffa.CONSTITUENT.offset("address")}]
    ldr w13, [x10, #{ffa.COMPOSITE.size + ffa.CONSTITUENT.offset("page_count")}]
    ldrh w14, [x9, #{ffa.MTD.offset("attributes")}]
{_smc(ffa.FFA_RX_RELEASE)}    mov x0, #0
    mov x1, x12
    mov x2, x13
    mov x3, x11
    mov x4, x14
    ret
.Lretrieve_error:
    sxtw x0, w2
    mov x1, #0
    mov x2, #0
    mov x3, #0
    mov x4, #0
    ret

// sp_relinquish(x0 = handle) -> x0 = 0 or FF-A error
sp_relinquish:
    adr x9, sp_tx
    str x0, [x9, #{ffa.RELINQUISH.offset("handle")}]
    str wzr, [x9, #{ffa.RELINQUISH.offset("flags")}]
    mov w10, #1
    str w10, [x9, #{ffa.RELINQUISH.offset("endpoint_count")}]
    adr x10, sp_own_id
    ldr x10, [x10]
    and x10, x10, #0xffff
    str w10, [x9, #{ffa.RELINQUISH.size}]
{_smc(ffa.FFA_MEM_RELINQUISH)}{_cmp_x0(ffa.FFA_SUCCESS_32)}    b.ne .Lrelinquish_error
    mov x0, #0
    ret
.Lrelinquish_error:
    sxtw x0, w2
    ret

    .balign 0x800
sp_vectors:
{slots}"""


def image_source(program: str, data: str = "") -> str:
    """A whole partition image: runtime, program (defines ``sp_init`` and ``sp_handle``),
    then data, RX/TX buffers and the stack (granule-aligned, mapped RW and XN)."""
    return "\n".join([
        runtime(),
        "    .balign 4",
        program,
        f"    .balign {PAGE:#x}",
        "__data_start:",
        "sp_own_id:",
        "    .quad 0",
        data,
        f"    .balign {PAGE:#x}",
        "sp_tx:",
        f"    .skip {PAGE:#x}",
        "sp_rx:",
        f"    .skip {PAGE:#x}",
        "__stack_bottom:",
        f"    .skip {STACK_SIZE:#x}",
        "__stack_top:",
        "__image_end:",
    ]) + "\n"


# ---------------------------------------------------------------------------- SipHash


def _sipround() -> str:
    # v0 = x9, v1 = x10, v2 = x11, v3 = x12; rotl(n) = ror(64 - n)
    return """\
    add x9, x9, x10
    ror x10, x10, #51
    eor x10, x10, x9
    ror x9, x9, #32
    add x11, x11, x12
    ror x12, x12, #48
    eor x12, x12, x11
    add x9, x9, x12
    ror x12, x12, #43
    eor x12, x12, x9
    add x11, x11, x10
    ror x10, x10, #47
    eor x10, x10, x11
    ror x11, x11, #32
"""


def siphash_routine() -> str:
    """``siphash24(x0 = k0, x1 = k1, x2 = words, x3 = count)`` -> x0: SipHash-2-4 of
    ``count`` little-endian 64-bit words (a message of 8 * count bytes). Clobbers
    x2, x3, x9-x15."""
    c = SIPHASH_CONSTANTS
    return f"""\
siphash24:
{load_imm("x9", c[0])}    eor x9, x9, x0
{load_imm("x10", c[1])}    eor x10, x10, x1
{load_imm("x11", c[2])}    eor x11, x11, x0
{load_imm("x12", c[3])}    eor x12, x12, x1
    lsl x15, x3, #59
    cbz x3, .Lsip_final
.Lsip_loop:
    ldr x13, [x2], #8
    eor x12, x12, x13
{_sipround()}{_sipround()}    eor x9, x9, x13
    subs x3, x3, #1
    b.ne .Lsip_loop
.Lsip_final:
    eor x12, x12, x15
{_sipround()}{_sipround()}    eor x9, x9, x15
    eor x11, x11, #0xff
{_sipround()}{_sipround()}{_sipround()}{_sipround()}    eor x0, x9, x10
    eor x0, x0, x11
    eor x0, x0, x12
    ret
"""


def siphash24(key: bytes, message: bytes) -> int:
    """Reference SipHash-2-4 (Aumasson & Bernstein): the 64-bit tag as an integer."""
    mask = (1 << 64) - 1

    def rotl(v: int, n: int) -> int:
        return ((v << n) | (v >> (64 - n))) & mask

    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:16], "little")
    v = [k0 ^ SIPHASH_CONSTANTS[0], k1 ^ SIPHASH_CONSTANTS[1], k0 ^ SIPHASH_CONSTANTS[2],
         k1 ^ SIPHASH_CONSTANTS[3]]

    def rounds(n: int) -> None:
        for _ in range(n):
            v[0] = (v[0] + v[1]) & mask
            v[1] = rotl(v[1], 13) ^ v[0]
            v[0] = rotl(v[0], 32)
            v[2] = (v[2] + v[3]) & mask
            v[3] = rotl(v[3], 16) ^ v[2]
            v[0] = (v[0] + v[3]) & mask
            v[3] = rotl(v[3], 21) ^ v[0]
            v[2] = (v[2] + v[1]) & mask
            v[1] = rotl(v[1], 17) ^ v[2]
            v[2] = rotl(v[2], 32)

    tail = len(message) % 8
    for off in range(0, len(message) - tail, 8):
        m = int.from_bytes(message[off : off + 8], "little")
        v[3] ^= m
        rounds(2)
        v[0] ^= m
    b = ((len(message) & 0xFF) << 56) | int.from_bytes(message[len(message) - tail :], "little")
    v[3] ^= b
    rounds(2)
    v[0] ^= b
    v[2] ^= 0xFF
    rounds(4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def siphash_words(key: bytes, words: list[int]) -> int:
    return siphash24(key, b"".join((w & ((1 << 64) - 1)).to_bytes(8, "little") for w in words))


# ---------------------------------------------------------------------------- echo


def echo_program() -> str:
    return f"""\
sp_init:
    mov x0, #0
    ret

sp_handle:
    stp x29, x30, [sp, #-16]!
    cmp x3, #{ECHO}
    b.eq .Lecho
    cmp x3, #{ECHO_COUNT}
    b.eq .Lcount
    cmp x3, #{ECHO_READ}
    b.eq .Lread
    cmp x3, #{ECHO_WRITE}
    b.eq .Lwrite
    cmp x3, #{ECHO_RETRIEVE}
    b.eq .Lretrieve
    cmp x3, #{ECHO_RELINQUISH}
    b.eq .Lrelinquish
    cmp x3, #{ECHO_FILL}
    b.eq .Lfill
{load_imm("x3", STATUS_UNKNOWN_COMMAND)}    b .Ldone
.Lecho:
    mov x3, #0
    b .Ldone
.Lcount:
    adr x9, echo_counter
    ldr x4, [x9]
    add x4, x4, #1
    str x4, [x9]
    mov x3, #0
    b .Ldone
.Lread:
    ldr x4, [x4]
    mov x3, #0
    b .Ldone
.Lwrite:
    str x5, [x4]
    ldr x4, [x4]
    mov x3, #0
    b .Ldone
.Lfill:
    cbz x5, .Lfill_done
.Lfill_loop:
    str x6, [x4], #8
    subs x5, x5, #8
    b.hi .Lfill_loop
.Lfill_done:
    mov x3, #0
    mov x4, #0
    b .Ldone
.Lretrieve:
    mov x0, x4
    mov x1, x5
    mov x2, x6
    mov x3, x7
    bl sp_retrieve
    mov x7, x4
    mov x6, x3
    mov x5, x2
    mov x4, x1
    mov x3, x0
    b .Ldone
.Lrelinquish:
    mov x0, x4
    bl sp_relinquish
    mov x3, x0
    b .Ldone
.Ldone:
    ldp x29, x30, [sp], #16
    ret
"""


def echo_source() -> str:
    return image_source(echo_program(), "echo_counter:\n    .quad 0\n")


# ---------------------------------------------------------------------------- key store


def keystore_program() -> str:
    return f"""\
sp_init:
    mov x0, #0
    ret

// ks_prf(x0 = key address, x4..x7 = up to 4 message words, x8 = count) -> x0
ks_prf:
    stp x29, x30, [sp, #-16]!
    adr x2, ks_msg
    stp x4, x5, [x2]
    stp x6, x7, [x2, #16]
    ldp x9, x1, [x0]
    mov x0, x9
    mov x3, x8
    bl siphash24
    ldp x29, x30, [sp], #16
    ret

sp_handle:
    stp x29, x30, [sp, #-16]!
    stp x20, x21, [sp, #-16]!
    stp x22, x23, [sp, #-16]!
    stp x24, x25, [sp, #-16]!
    cmp x3, #{KS_OPEN}
    b.eq .Lks_open
    adr x9, ks_vault
    ldr x21, [x9]
    cbz x21, .Lks_not_open
    cmp x3, #{KS_PUT}
    b.eq .Lks_put
    cmp x3, #{KS_GET}
    b.eq .Lks_get
    cmp x3, #{KS_MAC}
    b.eq .Lks_mac
    cmp x3, #{KS_CLOSE}
    b.eq .Lks_close
{load_imm("x3", STATUS_UNKNOWN_COMMAND)}    b .Lks_done
.Lks_not_open:
{load_imm("x3", KS_ERR_NOT_OPEN)}    b .Lks_done

// ---- KS_OPEN(x4 = handle): retrieve the lent vault and set it up
.Lks_open:
    adr x9, ks_vault
    ldr x10, [x9]
    cbz x10, .Lks_open_go
{load_imm("x3", KS_ERR_ALREADY_OPEN)}    b .Lks_done
.Lks_open_go:
    mov x22, x4
    mov x0, x4
{load_imm("x1", ffa.TransactionType.LEND.flags)}{load_imm("x2", ffa.PERM_RW_NX)}    mov x3, #0
    bl sp_retrieve
    cbnz x0, .Lks_open_failed
    mov x21, x1
    lsl x23, x2, #12
    sub x23, x23, #{VAULT_HEADER}
    lsr x23, x23, #5
    // header: magic, nonce counter, keys derived from the HUK and the handle
{load_imm("x9", VAULT_MAGIC)}    str x9, [x21]
    str xzr, [x21, #8]
    mov x24, #1
.Lks_derive:
    adr x0, ks_huk
    mov x4, x22
    mov x5, x24
    mov x8, #2
    bl ks_prf
    add x9, x21, #8
    str x0, [x9, x24, lsl #3]
    add x24, x24, #1
    cmp x24, #4
    b.ls .Lks_derive
    // zero every record
    add x9, x21, #{VAULT_HEADER}
    mov x10, x23
.Lks_zero:
    stp xzr, xzr, [x9], #16
    stp xzr, xzr, [x9], #16
    subs x10, x10, #1
    b.hi .Lks_zero
    adr x9, ks_vault
    str x21, [x9]
    str x22, [x9, #8]
    str x23, [x9, #16]
    mov x3, #0
    mov x4, x23
    mov x5, #0
    mov x6, #0
    mov x7, #0
    b .Lks_done
.Lks_open_failed:
    mov x3, x0
    b .Lks_done

// ---- record address of slot x4 in x20 (x3 = error on a bad slot)
.Lks_slot:
    adr x9, ks_vault
    ldr x10, [x9, #16]
    cmp x4, x10
    b.hs .Lks_bad_slot
    add x20, x21, #{VAULT_HEADER}
    add x20, x20, x4, lsl #5
    ret
.Lks_bad_slot:
{load_imm("x3", KS_ERR_SLOT)}    mov x20, #0
    mov x4, #0
    mov x5, #0
    mov x6, #0
    mov x7, #0
    ret

// ---- KS_PUT(x4 = slot, x5, x6 = secret)
.Lks_put:
    bl .Lks_slot
    cbz x20, .Lks_done
    mov x22, x5
    mov x23, x6
    mov x25, x4
    ldr x24, [x21, #8]
    add x24, x24, #1
    str x24, [x21, #8]
    add x0, x21, #0x10
    mov x4, x24
    mov x5, #0
    mov x8, #2
    bl ks_prf
    eor x22, x22, x0
    add x0, x21, #0x10
    mov x4, x24
    mov x5, #1
    mov x8, #2
    bl ks_prf
    eor x23, x23, x0
    add x0, x21, #0x20
    mov x4, x25
    mov x5, x24
    mov x6, x22
    mov x7, x23
    mov x8, #4
    bl ks_prf
    stp x24, x22, [x20]
    stp x23, x0, [x20, #16]
    mov x3, #0
    mov x4, x0
    mov x5, #0
    mov x6, #0
    mov x7, #0
    b .Lks_done

// ---- KS_GET(x4 = slot)
.Lks_get:
    bl .Lks_slot
    cbz x20, .Lks_done
    mov x25, x4
    ldp x24, x22, [x20]
    cbnz x24, .Lks_get_check
{load_imm("x3", KS_ERR_EMPTY)}    b .Lks_done
.Lks_get_check:
    add x0, x21, #0x20
    mov x4, x25
    mov x5, x24
    mov x6, x22
    ldr x7, [x20, #16]
    mov x23, x7
    mov x8, #4
    bl ks_prf
    ldr x9, [x20, #24]
    cmp x0, x9
    b.eq .Lks_get_open
{load_imm("x3", KS_ERR_TAMPERED)}    mov x4, #0
    mov x5, #0
    b .Lks_done
.Lks_get_open:
    add x0, x21, #0x10
    mov x4, x24
    mov x5, #0
    mov x8, #2
    bl ks_prf
    eor x22, x22, x0
    add x0, x21, #0x10
    mov x4, x24
    mov x5, #1
    mov x8, #2
    bl ks_prf
    eor x5, x23, x0
    mov x4, x22
    mov x3, #0
    mov x6, #0
    mov x7, #0
    b .Lks_done

// ---- KS_MAC(x4..x6 = message)
.Lks_mac:
    mov x7, x6
    mov x6, x5
    mov x5, x4
{load_imm("x4", VAULT_DOMAIN_MAC)}    add x0, x21, #0x20
    mov x8, #4
    bl ks_prf
    mov x4, x0
    mov x3, #0
    mov x5, #0
    mov x6, #0
    mov x7, #0
    b .Lks_done

// ---- KS_CLOSE: give the vault back (the SPMC scrubs it when the owner reclaims it)
.Lks_close:
    adr x9, ks_vault
    ldr x0, [x9, #8]
    bl sp_relinquish
    mov x3, x0
    cbnz x0, .Lks_done
    adr x9, ks_vault
    str xzr, [x9]
    str xzr, [x9, #8]
    str xzr, [x9, #16]
    mov x4, #0

.Lks_done:
    cbz x3, .Lks_return
    mov x4, #0
    mov x5, #0
    mov x6, #0
    mov x7, #0
.Lks_return:
    ldp x24, x25, [sp], #16
    ldp x22, x23, [sp], #16
    ldp x20, x21, [sp], #16
    ldp x29, x30, [sp], #16
    ret

{siphash_routine()}"""


def keystore_source() -> str:
    data = """\
    .balign 16
ks_huk:
    .quad 0, 0
ks_vault:
    .quad 0, 0, 0
    .balign 16
ks_msg:
    .quad 0, 0, 0, 0
"""
    return image_source(keystore_program(), data)


def hardware_unique_key(seed: int) -> bytes:
    """The platform's hardware unique key (a stand-in derived from the config seed)."""
    return hashlib.sha256(b"ccasim hardware unique key" + seed.to_bytes(8, "little")).digest()[
        :16
    ]


KEYSTORE = PartitionManifest(
    name="keystore",
    endpoint_id=0x8001,
    uuid=(0x6B53_6563, 0x4B65_7953, 0x746F_7265, 0x0000_0001),
    source=keystore_source,
    provision=lambda seed: {"ks_huk": hardware_unique_key(seed)},
)

ECHO_PARTITION = PartitionManifest(
    name="echo",
    endpoint_id=0x8002,
    uuid=(0x4563_686F, 0x436F_756E, 0x7465_7253, 0x0000_0002),
    source=echo_source,
)

DEFAULT_PARTITIONS = (KEYSTORE, ECHO_PARTITION)


def keystore_reference(huk: bytes, handle: int) -> tuple[bytes, bytes]:
    """(k_enc, k_mac) as KS_OPEN derives them: SipHash(HUK, [handle, i]) for i = 1..4."""
    words = [siphash_words(huk, [handle, i]) for i in range(1, 5)]
    enc = words[0].to_bytes(8, "little") + words[1].to_bytes(8, "little")
    mac = words[2].to_bytes(8, "little") + words[3].to_bytes(8, "little")
    return enc, mac
