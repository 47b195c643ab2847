"""End-to-end RSI (rmm-abi §9 with the errata): small guests issue every RSI command and dump
their registers through RSI_HOST_CALL; the host drives them with raw RMI_REC_ENTER and checks
x0.. after each call, the exits each call causes, and what the RMM wrote into realm memory.

Register conventions checked throughout (errata E-17): an RSI call that returns to the realm
writes x0..x3 (x1..x3 that carry no result read 0), leaves x4 unless it carries a result
(MEASUREMENT_READ writes x1..x8) and never touches x9 and above.
"""

from __future__ import annotations

import hashlib
import struct

import pytest

from realm_rig import (
    EMPTY_IPA,
    EMUL_MMIO,
    ERROR_REC,
    GRANULE,
    GUEST,
    HOST_CALL,
    INJECT_SEA,
    MASK64,
    RAM_SIZE,
    RIPAS_CHANGE,
    RIPAS_REJECT,
    RSI_ERROR_INPUT,
    RSI_ERROR_STATE,
    RSI_ERROR_UNKNOWN,
    RSI_FEATURES,
    RSI_HOST_CALL,
    RSI_INCOMPLETE,
    RSI_IPA_STATE_GET,
    RSI_IPA_STATE_SET,
    RSI_MEASUREMENT_EXTEND,
    RSI_MEASUREMENT_READ,
    RSI_REALM_CONFIG,
    RSI_SUCCESS,
    RSI_TOKEN_CONTINUE,
    RSI_TOKEN_INIT,
    RSI_VERSION,
    S2SZ,
    SENTINEL,
    SUCCESS,
    SYNC,
    UNPROT,
    Guest,
    Rig,
    call,
    dump,
    load_imm,
    u64,
)

# Unassigned RAM inside the realm's RIPAS RAM range (the images are far smaller)
FREE = GUEST + 0x2_0000
EMULATED_S2_ABORT_L3 = 0x9000_0007  # EC 0x24 | DFSC 0x04 + 3; ISV = IL = 0 (E-15)
EMULATED_S2_ABORT_L2 = 0x9000_0006


@pytest.fixture
def rig() -> Rig:
    return Rig()


def untouched(ex_gprs: list[int], first: int, last: int) -> None:
    """x<first>..x<last> still hold the sentinels :func:`call` put there."""
    for n in range(first, last + 1):
        assert ex_gprs[n] == SENTINEL | n, f"x{n} = {ex_gprs[n]:#x}"


# ------------------------------------------------------------------ VERSION / FEATURES


def test_rsi_version_supported_and_unsupported(rig: Rig) -> None:
    g = rig.realm(
        call(RSI_VERSION, 0x1_0000, imm=1)
        + call(RSI_VERSION, 0x2_0000, imm=2)
        + call(RSI_VERSION, 0x0_0001, imm=3)
        + call(RSI_VERSION | 0x1_0000_0000, 0x1_0000, imm=4)  # only x0[31:0] selects (E-18)
    )
    ex = g.dump(imm=1)
    assert ex.gprs[:4] == [RSI_SUCCESS, 0x1_0000, 0x1_0000, 0]
    untouched(ex.gprs, 4, 20)
    for imm in (2, 3):
        ex = g.dump(imm=imm)
        # unsupported: ERROR_INPUT, x1/x2 still report the lowest/highest supported (1.0)
        assert ex.gprs[:4] == [RSI_ERROR_INPUT, 0x1_0000, 0x1_0000, 0]
        untouched(ex.gprs, 4, 20)
    assert g.dump(imm=4).gprs[:3] == [RSI_SUCCESS, 0x1_0000, 0x1_0000]


def test_rsi_features_reads_zero(rig: Rig) -> None:
    g = rig.realm(
        call(RSI_FEATURES, 0, imm=1)
        + call(RSI_FEATURES, 1, imm=2)
        + call(RSI_FEATURES, MASK64, imm=3)
    )
    for imm in (1, 2, 3):
        ex = g.dump(imm=imm)
        assert ex.gprs[:4] == [RSI_SUCCESS, 0, 0, 0]
        untouched(ex.gprs, 4, 20)


# ------------------------------------------------------------------ measurements


def _h(algo: str, data: bytes) -> bytes:
    return hashlib.new(algo, data).digest()


def expected_rim(g: Guest, algo: str, hash_algo: int, rec_gprs: list[int]) -> bytes:
    """The RIM of a realm built by :meth:`Rig.realm`, from rmm-abi §10 with hashlib."""
    params = bytearray(4096)
    struct.pack_into("<Q", params, 0x00, 0)  # flags
    struct.pack_into("<I", params, 0x08, S2SZ)
    struct.pack_into("<I", params, 0x18, 1)  # num_bps (RealmBuilder default)
    struct.pack_into("<I", params, 0x20, 1)  # num_wps
    params[0x30] = hash_algo
    rim = _h(algo, bytes(params))

    def desc(kind: int) -> bytearray:
        d = bytearray(0x100)
        d[0] = kind
        struct.pack_into("<Q", d, 0x08, 0x100)
        d[0x10 : 0x10 + len(rim)] = rim
        return d

    for ipa in range(GUEST, GUEST + RAM_SIZE, GRANULE):  # RIPAS descriptors, one per L3 entry
        d = desc(2)
        struct.pack_into("<QQ", d, 0x50, ipa, ipa + GRANULE)
        rim = _h(algo, bytes(d))
    for ipa, page in g.image.granules():  # measured DATA
        d = desc(0)
        struct.pack_into("<QQ", d, 0x50, ipa, 1)
        content = _h(algo, page)
        d[0x60 : 0x60 + len(content)] = content
        rim = _h(algo, bytes(d))
    rec = bytearray(4096)  # the runnable REC
    struct.pack_into("<Q", rec, 0, 1)
    struct.pack_into("<Q", rec, 0x200, g.image.entry)
    struct.pack_into("<8Q", rec, 0x300, *(rec_gprs + [0] * (8 - len(rec_gprs))))
    d = desc(1)
    content = _h(algo, bytes(rec))
    d[0x50 : 0x50 + len(content)] = content
    return _h(algo, bytes(d))


def words_to_bytes(words: list[int]) -> bytes:
    return b"".join(w.to_bytes(8, "little") for w in words)


@pytest.mark.parametrize("algo, hash_algo", [("sha256", 0), ("sha512", 1)])
def test_measurement_read_rim_and_extend(rig: Rig, algo: str, hash_algo: int) -> None:
    value = bytes(range(0x40, 0x80))  # 64 bytes, loaded into x3..x10
    vw = list(struct.unpack("<8Q", value))
    body = (
        call(RSI_MEASUREMENT_READ, 0, imm=1)
        + call(RSI_MEASUREMENT_READ, 1, imm=2)
        + call(RSI_MEASUREMENT_EXTEND, 1, 32, *vw, imm=3)
        + call(RSI_MEASUREMENT_READ, 1, imm=4)
        + call(RSI_MEASUREMENT_EXTEND, 1, 0, *vw, imm=5)  # size 0 is allowed
        + call(RSI_MEASUREMENT_READ, 1, imm=6)
        + call(RSI_MEASUREMENT_EXTEND, 4, 64, *vw, imm=7)
        + call(RSI_MEASUREMENT_READ, 4, imm=8)
        + call(RSI_MEASUREMENT_READ, 0, imm=9)  # the RIM is unchanged by extends
    )
    rec_gprs = [0x11, 0x22, 0x33]
    g = rig.realm(body, hash_algo=hash_algo, rec_gprs=rec_gprs)
    n = hashlib.new(algo).digest_size
    rim = expected_rim(g, algo, hash_algo, rec_gprs)

    ex = g.dump(imm=1)
    assert ex.gprs[0] == RSI_SUCCESS
    assert words_to_bytes(ex.gprs[1:9]) == rim.ljust(64, b"\0")
    untouched(ex.gprs, 9, 20)
    ex = g.dump(imm=2)
    assert ex.gprs[:9] == [RSI_SUCCESS] + [0] * 8  # REMs start as zero
    ex = g.dump(imm=3)
    assert ex.gprs[:4] == [RSI_SUCCESS, 0, 0, 0]  # x3 (the first value word) is zeroed
    assert ex.gprs[4:11] == vw[1:8]  # x4.. are not results: preserved
    rem1 = _h(algo, bytes(n) + value[:32])
    ex = g.dump(imm=4)
    assert words_to_bytes(ex.gprs[1:9]) == rem1.ljust(64, b"\0")
    g.dump(imm=5)
    rem1 = _h(algo, rem1)
    assert words_to_bytes(g.dump(imm=6).gprs[1:9]) == rem1.ljust(64, b"\0")
    g.dump(imm=7)
    rem4 = _h(algo, bytes(n) + value)
    assert words_to_bytes(g.dump(imm=8).gprs[1:9]) == rem4.ljust(64, b"\0")
    assert words_to_bytes(g.dump(imm=9).gprs[1:9]) == rim.ljust(64, b"\0")


def test_measurement_index_and_size_errors(rig: Rig) -> None:
    body = (
        call(RSI_MEASUREMENT_READ, 5, imm=1)
        + call(RSI_MEASUREMENT_READ, MASK64, imm=2)
        + call(RSI_MEASUREMENT_EXTEND, 0, 8, imm=3)  # the RIM cannot be extended
        + call(RSI_MEASUREMENT_EXTEND, 5, 8, imm=4)
        + call(RSI_MEASUREMENT_EXTEND, 1, 65, imm=5)
        + call(RSI_MEASUREMENT_EXTEND, 1, MASK64, imm=6)
        + call(RSI_MEASUREMENT_READ, 1, imm=7)
    )
    g = rig.realm(body)
    for imm in range(1, 7):
        ex = g.dump(imm=imm)
        assert ex.gprs[:4] == [RSI_ERROR_INPUT, 0, 0, 0], imm
    assert g.dump(imm=7).gprs[:9] == [RSI_SUCCESS] + [0] * 8  # nothing was extended


# ------------------------------------------------------------------ REALM_CONFIG


def test_realm_config_writes_ipa_width_hash_algo_rpv(rig: Rig) -> None:
    rpv = bytes(range(1, 65))
    body = call(RSI_REALM_CONFIG, "cfg", imm=1) + """\
    adr x9, cfg
    ldr x10, [x9]
    ldrb w11, [x9, #8]
    ldrb w12, [x9, #9]
    ldr x13, [x9, #0x10]
    ldr x14, [x9, #0x200]
    ldr x15, [x9, #0x238]
    ldr x16, [x9, #0x1f8]
    ldr x17, [x9, #0x240]
""" + dump(2)
    data = "    .balign 0x1000\ncfg:\n" + "    .quad 0xaaaaaaaaaaaaaaaa\n" * 512
    g = rig.realm(body, data=data, rpv=rpv, hash_algo=1)
    ex = g.dump(imm=1)
    assert ex.gprs[:4] == [RSI_SUCCESS, 0, 0, 0]
    untouched(ex.gprs, 4, 20)
    ex = g.dump(imm=2)
    assert ex.x(10) == S2SZ  # ipa_width
    assert ex.x(11) == 1  # hash_algo SHA-512
    assert ex.x(12) == 0xAA  # REL0 leaves the other bytes as they were
    assert ex.x(13) == 0xAAAA_AAAA_AAAA_AAAA
    assert ex.x(14) == int.from_bytes(rpv[:8], "little")
    assert ex.x(15) == int.from_bytes(rpv[56:], "little")
    assert ex.x(16) == ex.x(17) == 0xAAAA_AAAA_AAAA_AAAA
    assert g.realm_read(g.sym("cfg") + 0x200, 64) == rpv


def test_realm_config_address_errors(rig: Rig) -> None:
    body = (
        call(RSI_REALM_CONFIG, GUEST + 0x3008, imm=1)  # unaligned
        + call(RSI_REALM_CONFIG, UNPROT, imm=2)  # outside the PAR (unprotected)
        + call(RSI_REALM_CONFIG, 1 << S2SZ, imm=3)  # outside the IPA space
        + call(RSI_REALM_CONFIG, MASK64 & ~0xFFF, imm=4)
        + call(RSI_REALM_CONFIG, EMPTY_IPA, imm=5)  # RIPAS EMPTY
    )
    g = rig.realm(body)
    for imm in range(1, 6):
        ex = g.dump(imm=imm)
        assert ex.gprs[:4] == [RSI_ERROR_INPUT, 0, 0, 0], imm
        untouched(ex.gprs, 4, 20)


def test_realm_config_unassigned_ram_is_an_emulated_stage2_abort(rig: Rig) -> None:
    body = call(RSI_REALM_CONFIG, FREE, imm=1) + f"""\
{load_imm("x9", FREE)}    ldr x10, [x9]
""" + dump(2)
    g = rig.realm(body)
    ex = g.enter()
    assert ex.status == SUCCESS and ex.reason == SYNC
    assert (ex.esr, ex.far, ex.hpfar) == (EMULATED_S2_ABORT_L3, 0, FREE >> 8)
    assert ex.gprs == [0] * 31
    # INJECT_SEA and EMUL_MMIO are not legal after this exit (E-2, E-15)
    assert g.enter(flags=INJECT_SEA).status == ERROR_REC
    assert g.enter(flags=EMUL_MMIO).status == ERROR_REC
    # The PC was not advanced: re-entering without a mapping repeats the abort.
    ex = g.enter()
    assert (ex.reason, ex.esr, ex.hpfar) == (SYNC, EMULATED_S2_ABORT_L3, FREE >> 8)
    g.data_create_unknown(FREE)
    ex = g.dump(imm=1)  # the call was retried and now succeeds
    assert ex.gprs[:4] == [RSI_SUCCESS, 0, 0, 0]
    assert g.dump(imm=2).x(10) == S2SZ


def test_realm_config_in_an_unassigned_l2_block(rig: Rig) -> None:
    block = GUEST + 0x40_0000  # a 2 MiB RAM block with no L3 table under it
    g = rig.realm(call(RSI_REALM_CONFIG, block + 0x5000, imm=1), activate=False)
    rig.b.init_ripas(g.handle, block, block + 0x20_0000)
    rig.b.activate(g.handle)
    ex = g.enter()
    assert (ex.reason, ex.esr, ex.far, ex.hpfar) == (
        SYNC, EMULATED_S2_ABORT_L2, 0, (block + 0x5000) >> 8)


# ------------------------------------------------------------------ attestation

TOKEN_LEN = 7000
CHALLENGE = bytes((0xC3 ^ (7 * i)) & 0xFF for i in range(64))


def stub_token(challenge: bytes) -> bytes:
    return bytes((i * 7 + challenge[i % 64]) & 0xFF for i in range(TOKEN_LEN))


def token_init(imm: int) -> str:
    return f"""\
    adr x9, challenge
    ldp x1, x2, [x9]
    ldp x3, x4, [x9, #16]
    ldp x5, x6, [x9, #32]
    ldp x7, x8, [x9, #48]
{load_imm("x0", RSI_TOKEN_INIT)}    smc #0
{dump(imm)}"""


TOKEN_DATA = (
    "    .balign 8\nchallenge:\n"
    + "".join(f"    .byte {', '.join(hex(b) for b in CHALLENGE[i:i + 16])}\n"
              for i in range(0, 64, 16))
    + "    .balign 0x1000\ntok0:\n    .skip 0x1000\ntok1:\n    .skip 0x1000\n"
    + "tok2:\n    .skip 0x1000\ntok3:\n    .skip 0x1000\n"
)


def test_attestation_token_protocol(rig: Rig) -> None:
    seen: list[bytes] = []

    def builder(pe: object, realm: object, challenge: bytes, *rest: object) -> bytes:
        seen.append(challenge)
        return stub_token(challenge)

    rig.p.rmm.token_builder = builder
    body = (
        call(RSI_TOKEN_CONTINUE, "tok0", 0, 0x1000, imm=1)  # no INIT yet
        + token_init(2)
        + call(RSI_TOKEN_CONTINUE, "tok0", 0, 0, imm=3)  # size 0
        + call(RSI_TOKEN_CONTINUE, GUEST + 0x7008, 0, 0x100, imm=4)  # unaligned
        + call(RSI_TOKEN_CONTINUE, "tok0", 0x1000, 0, imm=5)  # offset >= 4096
        + call(RSI_TOKEN_CONTINUE, "tok0", 0x800, 0x801, imm=6)  # offset + size > 4096
        + call(RSI_TOKEN_CONTINUE, "tok0", 1, MASK64, imm=7)  # offset + size overflows
        + call(RSI_TOKEN_CONTINUE, UNPROT, 0, 0x100, imm=8)  # not in the PAR
        + call(RSI_TOKEN_CONTINUE, EMPTY_IPA, 0, 0x100, imm=9)  # RIPAS EMPTY
        + call(RSI_TOKEN_CONTINUE, "tok0", 0x800, 0x800, imm=10)
        + call(RSI_TOKEN_CONTINUE, "tok1", 0, 0x1000, imm=11)
        + call(RSI_TOKEN_CONTINUE, "tok2", 0, 0x1000, imm=12)
        + call(RSI_TOKEN_CONTINUE, "tok3", 0, 0x1000, imm=13)  # done: ERROR_STATE until INIT
    )
    g = rig.realm(body, data=TOKEN_DATA)
    ex = g.dump(imm=1)
    assert ex.gprs[:4] == [RSI_ERROR_STATE, 0, 0, 0]
    ex = g.dump(imm=2)
    assert ex.gprs[0] == RSI_SUCCESS
    bound = ex.gprs[1]
    assert bound >= 4096 and bound % 4096 == 0  # an upper bound in whole granules
    assert ex.gprs[2:4] == [0, 0]
    ex = g.dump(imm=3)
    assert ex.gprs[:4] == [RSI_INCOMPLETE, 0, 0, 0]
    for imm in range(4, 10):
        ex = g.dump(imm=imm)
        assert ex.gprs[:4] == [RSI_ERROR_INPUT, 0, 0, 0], imm
    ex = g.dump(imm=10)
    assert ex.gprs[:4] == [RSI_INCOMPLETE, 0x800, 0, 0]
    untouched(ex.gprs, 4, 20)
    ex = g.dump(imm=11)
    assert ex.gprs[:4] == [RSI_INCOMPLETE, 0x1000, 0, 0]
    ex = g.dump(imm=12)
    assert ex.gprs[:4] == [RSI_SUCCESS, TOKEN_LEN - 0x1800, 0, 0]
    ex = g.dump(imm=13)
    assert ex.gprs[:4] == [RSI_ERROR_STATE, 0, 0, 0]

    token = stub_token(CHALLENGE)
    assert seen == [CHALLENGE]  # built once, from the INIT challenge
    assert g.realm_read(g.sym("tok0"), 0x800) == bytes(0x800)  # below the offset: untouched
    assert g.realm_read(g.sym("tok0") + 0x800, 0x800) == token[:0x800]
    assert g.realm_read(g.sym("tok1"), 0x1000) == token[0x800:0x1800]
    assert g.realm_read(g.sym("tok2"), 0x1000) == token[0x1800:].ljust(0x1000, b"\0")
    assert g.realm_read(g.sym("tok3"), 0x1000) == bytes(0x1000)


def test_attestation_token_init_restarts_the_copy(rig: Rig) -> None:
    rig.p.rmm.token_builder = lambda pe, realm, challenge, *rest: stub_token(challenge)
    body = (
        token_init(1)
        + call(RSI_TOKEN_CONTINUE, "tok0", 0, 0x100, imm=2)
        + token_init(3)
        + call(RSI_TOKEN_CONTINUE, "tok1", 0, 0x100, imm=4)
    )
    g = rig.realm(body, data=TOKEN_DATA)
    for imm in (1, 2, 3):
        g.dump(imm=imm)
    assert g.dump(imm=4).gprs[:2] == [RSI_INCOMPLETE, 0x100]
    token = stub_token(CHALLENGE)
    assert g.realm_read(g.sym("tok0"), 0x100) == token[:0x100]
    assert g.realm_read(g.sym("tok1"), 0x100) == token[:0x100]


def test_attestation_without_a_token_builder_is_error_unknown(rig: Rig) -> None:
    rig.p.rmm.token_builder = None
    body = token_init(1) + call(RSI_TOKEN_CONTINUE, "tok0", 0, 0x1000, imm=2)
    g = rig.realm(body, data=TOKEN_DATA)
    assert g.dump(imm=1).gprs[0] == RSI_SUCCESS
    assert g.dump(imm=2).gprs[:4] == [RSI_ERROR_UNKNOWN, 0, 0, 0]


def test_attestation_buffer_in_unassigned_ram_exits_then_retries(rig: Rig) -> None:
    rig.p.rmm.token_builder = lambda pe, realm, challenge, *rest: stub_token(challenge)
    body = token_init(1) + call(RSI_TOKEN_CONTINUE, FREE, 0, 0x1000, imm=2)
    g = rig.realm(body, data=TOKEN_DATA)
    g.dump(imm=1)
    ex = g.enter()
    assert (ex.reason, ex.esr, ex.far, ex.hpfar) == (SYNC, EMULATED_S2_ABORT_L3, 0, FREE >> 8)
    g.data_create_unknown(FREE)
    assert g.dump(imm=2).gprs[:2] == [RSI_INCOMPLETE, 0x1000]
    assert g.realm_read(FREE, 0x1000) == stub_token(CHALLENGE)[:0x1000]


# ------------------------------------------------------------------ IPA_STATE_SET / GET

RAM, EMPTY = 1, 0
ACCEPT, REJECT = 0, 1


def test_ipa_state_set_host_applies_the_change(rig: Rig) -> None:
    body = (
        call(RSI_IPA_STATE_SET, FREE, FREE + 0x3000, EMPTY, 0, imm=1)
        + call(RSI_IPA_STATE_GET, FREE, FREE + 0x4000, imm=2)
        + call(RSI_IPA_STATE_GET, FREE + 0x3000, FREE + 0x4000, imm=3)
    )
    g = rig.realm(body)
    ex = g.enter()
    assert ex.status == SUCCESS and ex.reason == RIPAS_CHANGE
    assert (ex.ripas_base, ex.ripas_top, ex.ripas_value) == (FREE, FREE + 0x3000, EMPTY)
    assert ex.gprs == [0] * 31 and ex.esr == 0
    r = g.rmi("RTT_SET_RIPAS", g.handle.rd, g.recs[0], FREE, FREE + 0x3000)
    assert r.ok and r[1] == FREE + 0x3000
    ex = g.dump(imm=1)
    # E-5: x0 SUCCESS, x1 progress, x2 response, x3 zeroed, x4 (flags) and up unchanged
    assert ex.gprs[:5] == [RSI_SUCCESS, FREE + 0x3000, ACCEPT, 0, 0]
    untouched(ex.gprs, 5, 20)
    assert g.dump(imm=2).gprs[:4] == [RSI_SUCCESS, FREE + 0x3000, EMPTY, 0]
    assert g.dump(imm=3).gprs[:4] == [RSI_SUCCESS, FREE + 0x4000, RAM, 0]


@pytest.mark.parametrize(
    "ripas, flags, expected_response",
    [
        (RAM, RIPAS_REJECT, REJECT),
        (RAM, 0, ACCEPT),
        (EMPTY, RIPAS_REJECT, ACCEPT),  # REJECT is honoured only for RAM
    ],
)
def test_ipa_state_set_host_enters_without_set_ripas(
    rig: Rig, ripas: int, flags: int, expected_response: int
) -> None:
    base = GUEST + 0x80_0000  # RIPAS EMPTY, unassigned
    g = rig.realm(call(RSI_IPA_STATE_SET, base, base + 0x2000, ripas, 1, imm=1))
    ex = g.enter()
    assert (ex.reason, ex.ripas_base, ex.ripas_top, ex.ripas_value) == (
        RIPAS_CHANGE, base, base + 0x2000, ripas)
    ex = g.dump(flags=flags, imm=1)
    assert ex.gprs[:5] == [RSI_SUCCESS, base, expected_response, 0, 1]


def test_ipa_state_set_partial_progress_and_reject(rig: Rig) -> None:
    """RTT_SET_RIPAS acts on one RTT: a range across two L3 tables makes partial progress,
    and the REJECT flag is then reported (target RAM, addr != top)."""
    base = GUEST + 0x20_0000 - 0x1000  # the last page of the first 2 MiB
    top = base + 0x3000
    g = rig.realm(call(RSI_IPA_STATE_SET, base, top, RAM, 0, imm=1),
                  tables=(GUEST + 0x20_0000,))
    ex = g.enter()
    assert ex.reason == RIPAS_CHANGE
    r = g.rmi("RTT_SET_RIPAS", g.handle.rd, g.recs[0], base, top)
    assert r.ok and r[1] == GUEST + 0x20_0000
    ex = g.dump(flags=RIPAS_REJECT, imm=1)
    assert ex.gprs[:4] == [RSI_SUCCESS, GUEST + 0x20_0000, REJECT, 0]


def test_ipa_state_set_full_progress_ignores_reject(rig: Rig) -> None:
    base = GUEST + 0x80_0000
    g = rig.realm(call(RSI_IPA_STATE_SET, base, base + 0x2000, RAM, 0, imm=1)
                  + call(RSI_IPA_STATE_GET, base, base + 0x2000, imm=2),
                  tables=(base,))
    assert g.enter().reason == RIPAS_CHANGE
    r = g.rmi("RTT_SET_RIPAS", g.handle.rd, g.recs[0], base, base + 0x2000)
    assert r.ok and r[1] == base + 0x2000
    assert g.dump(flags=RIPAS_REJECT, imm=1).gprs[:4] == [RSI_SUCCESS, base + 0x2000, ACCEPT, 0]
    assert g.dump(imm=2).gprs[:3] == [RSI_SUCCESS, base + 0x2000, RAM]


def test_ipa_state_set_errors(rig: Rig) -> None:
    par = UNPROT
    cases = [
        (FREE, FREE + 0x1000, 2, 0),  # RIPAS value
        (FREE + 8, FREE + 0x1000, RAM, 0),  # base unaligned
        (FREE, FREE + 0x1008, RAM, 0),  # top unaligned
        (FREE, FREE, RAM, 0),  # empty range
        (FREE + 0x2000, FREE, RAM, 0),
        (par - 0x1000, par + 0x1000, RAM, 0),  # crosses the top of the PAR
        (par, par + 0x1000, EMPTY, 0),  # unprotected
        (MASK64 & ~0xFFF, 0, RAM, 0),
    ]
    body = "".join(call(RSI_IPA_STATE_SET, *c, imm=i + 1) for i, c in enumerate(cases))
    g = rig.realm(body)
    for i in range(len(cases)):
        ex = g.dump(imm=i + 1)  # no RIPAS_CHANGE exit
        assert ex.gprs[:4] == [RSI_ERROR_INPUT, 0, 0, 0], cases[i]


def test_ipa_state_get(rig: Rig) -> None:
    body = (
        call(RSI_IPA_STATE_GET, GUEST, GUEST + 0x3000, imm=1)
        + call(RSI_IPA_STATE_GET, GUEST + 0x1000, GUEST + RAM_SIZE + 0x5000, imm=2)
        + call(RSI_IPA_STATE_GET, EMPTY_IPA + 0x2000, EMPTY_IPA + 0x9000, imm=3)
        + call(RSI_IPA_STATE_GET, GUEST + 8, GUEST + 0x1000, imm=4)
        + call(RSI_IPA_STATE_GET, GUEST, GUEST + 0x1008, imm=5)
        + call(RSI_IPA_STATE_GET, GUEST, GUEST, imm=6)
        + call(RSI_IPA_STATE_GET, UNPROT - 0x1000, UNPROT + 0x1000, imm=7)
        + call(RSI_IPA_STATE_GET, UNPROT, UNPROT + 0x1000, imm=8)
    )
    g = rig.realm(body)
    assert g.dump(imm=1).gprs[:4] == [RSI_SUCCESS, GUEST + 0x3000, RAM, 0]
    # the scan stops where the RIPAS changes (the end of the RAM range)
    assert g.dump(imm=2).gprs[:4] == [RSI_SUCCESS, GUEST + RAM_SIZE, RAM, 0]
    assert g.dump(imm=3).gprs[:4] == [RSI_SUCCESS, EMPTY_IPA + 0x9000, EMPTY, 0]
    for imm in range(4, 9):
        assert g.dump(imm=imm).gprs[:4] == [RSI_ERROR_INPUT, 0, 0, 0], imm


def test_ipa_state_get_reports_destroyed(rig: Rig) -> None:
    body = f"""\
    adr x1, victim
    add x2, x1, #0x1000
{load_imm("x0", RSI_IPA_STATE_GET)}    smc #0
""" + dump(1)
    g = rig.realm(body, data="    .balign 0x1000\nvictim:\n    .skip 0x1000\n")
    victim = g.sym("victim")
    assert g.rmi("DATA_DESTROY", g.handle.rd, victim).ok
    assert g.dump(imm=1).gprs[:3] == [RSI_SUCCESS, victim + 0x1000, 2]  # DESTROYED


# ------------------------------------------------------------------ HOST_CALL


def host_call_struct(imm: int) -> str:
    """Fill hc2: imm, gprs[i] = 0x1000 + i."""
    lines = ["    adr x10, hc2", load_imm("w9", imm).rstrip("\n"), "    str w9, [x10]"]
    for i in range(31):
        lines.append(load_imm("x9", 0x1000 + i).rstrip("\n"))
        lines.append(f"    str x9, [x10, #{8 + 8 * i}]")
    return "\n".join(lines) + "\n"


def test_host_call_exit_and_completion(rig: Rig) -> None:
    body = host_call_struct(0x1234_5678) + f"""\
    adr x1, hc2
{load_imm("x0", RSI_HOST_CALL)}    smc #0
{dump(1)}
    adr x27, hc2
""" + "".join(f"    ldp x{i}, x{i + 1}, [x27, #{8 + 8 * i}]\n" for i in range(0, 26, 2)) + dump(2)
    g = rig.realm(body)
    ex = g.enter()
    assert ex.status == SUCCESS and ex.reason == HOST_CALL
    assert ex.imm == 0x1234_5678  # TF-RMM reads imm as 32 bits
    assert ex.gprs == [0x1000 + i for i in range(31)]
    ex = g.dump(gprs=[0x2000 + i for i in range(31)], imm=1)
    assert ex.x(0) == RSI_SUCCESS
    ex = g.dump(imm=2)
    assert ex.gprs[:26] == [0x2000 + i for i in range(26)]
    assert g.realm_read(g.sym("hc2") + 8, 31 * 8) == words_to_bytes([0x2000 + i for i in range(31)])


def test_host_call_errors(rig: Rig) -> None:
    body = (
        call(RSI_HOST_CALL, GUEST + 0x1108, imm=1)  # not 256-aligned
        + call(RSI_HOST_CALL, GUEST + 0x1080, imm=2)
        + call(RSI_HOST_CALL, UNPROT + 0x100, imm=3)  # not in the PAR
        + call(RSI_HOST_CALL, 1 << S2SZ, imm=4)
        + call(RSI_HOST_CALL, EMPTY_IPA + 0x100, imm=5)  # RIPAS EMPTY
    )
    g = rig.realm(body)
    for imm in range(1, 6):
        ex = g.dump(imm=imm)
        assert ex.gprs[:4] == [RSI_ERROR_INPUT, 0, 0, 0], imm


def test_host_call_struct_in_unassigned_ram(rig: Rig) -> None:
    ipa = FREE + 0x100
    body = f"""\
{load_imm("x1", ipa)}{load_imm("x0", RSI_HOST_CALL)}    smc #0
""" + dump(1)
    g = rig.realm(body)
    ex = g.enter()
    # E-7 (d): hpfar = IPA >> 8, so IPA[11:8] lands in HPFAR[3:0]
    assert (ex.reason, ex.esr, ex.far, ex.hpfar) == (SYNC, EMULATED_S2_ABORT_L3, 0, ipa >> 8)
    g.data_create_unknown(FREE)
    ex = g.enter()  # retried: now the host call exits (a zero struct)
    assert (ex.reason, ex.imm, ex.gprs) == (HOST_CALL, 0, [0] * 31)
    assert g.dump(gprs=[7] * 31, imm=1).x(0) == RSI_SUCCESS
    assert g.realm_read(ipa + 8, 8 * 31) == words_to_bytes([7] * 31)


def test_host_call_page_destroyed_before_completion(rig: Rig) -> None:
    """E-7: the host call stays pending and every REC_ENTER returns the emulated stage-2
    abort without running the realm (no GIC/timer fields)."""
    body = """\
    adr x1, hcpage
""" + load_imm("x0", RSI_HOST_CALL) + "    smc #0\n" + dump(1)
    g = rig.realm(body, data="    .balign 0x1000\nhcpage:\n    .skip 0x1000\n")
    page = g.sym("hcpage")
    assert g.enter().reason == HOST_CALL
    assert g.rmi("DATA_DESTROY", g.handle.rd, page).ok
    for _ in range(2):
        ex = g.enter(gprs=[1, 2, 3], lrs=[(1 << 62) | 40])
        assert ex.status == SUCCESS
        assert (ex.reason, ex.esr, ex.far, ex.hpfar) == (SYNC, EMULATED_S2_ABORT_L3, 0,
                                                         page >> 8)
        assert ex.raw[0x200:0x800] == bytes(0x600)  # nothing else in the exit record


def test_rsi_garbage_arguments_never_break_rec_enter(rig: Rig) -> None:
    """Every RSI FID (and the unallocated ones in the range) with hostile arguments: the
    realm always gets a status back, REC_ENTER always succeeds."""
    nasty = [0, MASK64, 1 << 63, UNPROT, UNPROT + 0x1000, EMPTY_IPA, 0xFFF, 1 << S2SZ,
             0x1234_5678_9ABC_DEF0]
    calls = []
    for fnum in range(0x190, 0x1B0):
        for k in range(3):
            args = [nasty[(fnum + 3 * k + j) % len(nasty)] for j in range(4)]
            calls.append((0xC400_0000 | fnum, args))
    body = "".join(call(fid, *args, imm=i + 1, fill=False) for i, (fid, args) in
                   enumerate(calls))
    g = rig.realm(body)
    for i, (fid, args) in enumerate(calls):
        ex = g.run()
        while ex.reason == RIPAS_CHANGE:  # a range that happens to be valid
            ex = g.run()
        assert ex.status == SUCCESS and ex.reason == HOST_CALL, (hex(fid), args, ex)
        assert ex.imm == i + 1
        x0 = ex.x(0)
        if 0x190 <= fid & 0xFFFF <= 0x199:
            assert x0 in (RSI_SUCCESS, RSI_ERROR_INPUT, RSI_ERROR_STATE, RSI_INCOMPLETE,
                          RSI_ERROR_UNKNOWN), (hex(fid), args, hex(x0))
        else:
            assert x0 == u64(-1), hex(fid)
