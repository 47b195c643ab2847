"""End-to-end attestation: a realm guest asks for a CCA token and hands it to the host.

The ``ccasim demo`` guest extends REM[0] with the hash of its workload, gets a fresh 64-byte
challenge from the host (RSI_HOST_CALL), fetches the token (RSI_ATTESTATION_TOKEN_INIT /
CONTINUE) and copies it to a shared (unprotected) window the host reads. The token is checked
twice: with ``ccasim.attestation.verify.verify_token`` against reference values computed
here (RIM from ``predict_rim``, REM[0] from hashlib), and independently of the project's
token code, with plain ``cbor2`` and ``cryptography`` (attestation.md §1-§3, §7).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import cbor2
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ccasim import Platform, PlatformConfig, SecurityState
from ccasim.attestation.rim import predict_rim
from ccasim.attestation.verify import verify_token
from ccasim.guest import abi, programs
from ccasim.guest.asm import Image
from ccasim.guest.programs import GuestLayout
from ccasim.guest.runtime import data_bytes, load_imm, zeros
from ccasim.host.vmm import HostCall, RealmSpec, RealmVm, Segment, Vmm
from ccasim.rmm.objects import Realm

LAYOUT = GuestLayout()
SHARED_IPA = LAYOUT.unprotected_base + 0x1000_0000
GRANULE = 0x1000
RPV = b"e2e attestation realm".ljust(64, b"\0")

# Constants written down from attestation.md rather than imported from the code under test.
TAG_CMW, TAG_LEGACY, TAG_COSE_SIGN1, CWT_TYPE = 907, 399, 18, 263
PLATFORM_TOKEN, REALM_TOKEN = 44234, 44241
ES384 = -35
R_CHALLENGE, R_PROFILE, R_RPV, R_HASH, R_RAK, R_RIM, R_REMS, R_RAK_HASH = (
    10, 265, 44235, 44236, 44237, 44238, 44239, 44240)
P_PROFILE, P_CHALLENGE, P_IMPL_ID, P_INSTANCE_ID, P_CONFIG, P_LIFECYCLE, P_SW, P_HASH = (
    265, 10, 2396, 256, 2401, 2395, 2399, 2402)
REALM_PROFILE = "tag:arm.com,2023:realm#1.0.0"
PLATFORM_PROFILE = "tag:arm.com,2023:cca_platform#1.0.0"
HASHES = {"sha256": ("sha-256", hashlib.sha256), "sha512": ("sha-512", hashlib.sha512)}

FORMATS_AND_ALGOS = [(fmt, algo) for fmt in ("cmw", "legacy") for algo in ("sha256", "sha512")]


@cache
def _platform(token_format: str = "cmw", seed: int = 0) -> Platform:
    return Platform(PlatformConfig(cpus=1, token_format=token_format, seed=seed))


def _challenge(tag: str) -> bytes:
    return hashlib.sha512(tag.encode()).digest()


def _rem(algo: str, *values: bytes) -> bytes:
    """REM after extending zero with each value in turn (rmm-abi §10.6: H(old ‖ value))."""
    h = HASHES[algo][1]
    rem = bytes(h().digest_size)
    for value in values:
        rem = h(rem + value).digest()
    return rem


@dataclass
class Run:
    platform: Platform
    spec: RealmSpec
    rim: bytes  # as the RMM holds it after the build
    console: bytes
    reason: str
    tokens: dict[int, bytes] = field(default_factory=dict)  # host call imm -> token
    calls: list[HostCall] = field(default_factory=list)
    measurements: list[bytes] = field(default_factory=list)  # RD slots after the run


def _run_realm(p: Platform, image: Image, algo: str, challenge: bytes,
               handovers: dict[int, int]) -> Run:
    """Build, run and destroy a realm running ``image``. ``handovers`` maps a host-call imm
    to the shared IPA its token was copied to (gprs[1] = length, gprs[2] = status)."""
    spec = RealmSpec(
        segments=(Segment(image.base, image.data),),
        entry=image.entry,
        ram=((LAYOUT.ram_base, LAYOUT.ram_size),),
        s2sz=LAYOUT.s2sz,
        hash_algorithm=algo,
        rpv=RPV,
        shared=((SHARED_IPA, 2 * GRANULE),),
    )
    run: dict[str, Any] = {}
    tokens: dict[int, bytes] = {}
    calls: list[HostCall] = []

    def host_call(call: HostCall) -> Sequence[int] | None:
        calls.append(call)
        if call.imm == programs.CHALLENGE_HOST_CALL_IMM:
            words = [int.from_bytes(challenge[i : i + 8], "little") for i in range(0, 64, 8)]
            return words + list(call.gprs[8:])
        if call.imm in handovers:
            ipa, length, status = call.gprs[:3]
            assert status == 0, f"token status {status:#x}"
            assert ipa == handovers[call.imm] and 0 < length <= GRANULE
            tokens[call.imm] = vmm.read_shared(run["vm"], ipa, length)
        return None

    vmm = Vmm(p, host_call=host_call)
    vm: RealmVm = vmm.create(spec)
    run["vm"] = vm
    try:
        with p.cpus[0].probe(SecurityState.REALM)._running() as pe:
            rim = Realm.load(pe, vm.handle.rd).rim
        result = vmm.run(vm, max_exits=20_000, timeout_s=20)
        with p.cpus[0].probe(SecurityState.REALM)._running() as pe:
            measurements = list(Realm.load(pe, vm.handle.rd).measurements)
    finally:
        vmm.destroy(vm)
    assert p.rmm.tracker.nonzero() == []
    return Run(p, spec, rim, result.console, result.reason, tokens, calls, measurements)


def run_demo_guest(token_format: str, algo: str, challenge: bytes, seed: int = 0) -> Run:
    p = _platform(token_format, seed)
    image = programs.demo(LAYOUT, SHARED_IPA)
    run = _run_realm(p, image, algo, challenge, {programs.TOKEN_HOST_CALL_IMM: SHARED_IPA})
    assert run.reason == "system_off", run.console
    assert programs.TOKEN_HOST_CALL_IMM in run.tokens, run.console
    return run


@cache
def demo_run(token_format: str, algo: str) -> Run:
    return run_demo_guest(token_format, algo, _challenge(f"{token_format}/{algo}"))


def _workload_rem(algo: str) -> bytes:
    # The demo guest extends RSI index 1 with the 32-byte SHA-256 of its workload.
    return _rem(algo, hashlib.sha256(programs.DEMO_WORKLOAD).digest())


def _reference(run: Run, challenge: bytes, rems: Sequence[bytes | str]) -> dict[str, Any]:
    return {
        "realm": {"challenge": challenge.hex(), "rim": predict_rim(run.spec).rim.hex(),
                  "rems": [r.hex() if isinstance(r, bytes) else r for r in rems],
                  "hash_algo": HASHES[run.spec.hash_algorithm][0], "rpv": RPV.hex()},
        "platform": {"lifecycles": ["secured"]},
    }


# ------------------------------------------------------------------------------ independent

@dataclass
class Sign1:
    protected: bytes
    unprotected: Any
    payload: bytes
    signature: bytes

    @property
    def claims(self) -> dict[Any, Any]:
        claims = cbor2.loads(self.payload)
        assert isinstance(claims, dict)
        return claims


def _sign1(data: bytes) -> Sign1:
    tagged = cbor2.loads(data)
    assert isinstance(tagged, cbor2.CBORTag) and tagged.tag == TAG_COSE_SIGN1
    protected, unprotected, payload, signature = tagged.value
    assert isinstance(protected, bytes) and isinstance(payload, bytes)
    assert isinstance(signature, bytes)
    return Sign1(protected, unprotected, payload, signature)


def split_token(token: bytes, token_format: str) -> tuple[Sign1, Sign1]:
    """(platform, realm) COSE_Sign1 of a CCA token, decoded with plain cbor2 (§1)."""
    top = cbor2.loads(token)
    assert isinstance(top, cbor2.CBORTag)
    assert set(top.value) == {PLATFORM_TOKEN, REALM_TOKEN}
    parts = []
    for key in (PLATFORM_TOKEN, REALM_TOKEN):
        entry = top.value[key]
        if token_format == "cmw":
            assert top.tag == TAG_CMW
            assert isinstance(entry, list | tuple) and len(entry) == 2
            assert entry[0] == CWT_TYPE and isinstance(entry[1], bytes)
            entry = entry[1]
        else:
            assert top.tag == TAG_LEGACY
            assert isinstance(entry, bytes)
        parts.append(_sign1(entry))
    return parts[0], parts[1]


def es384_verify(public: ec.EllipticCurvePublicKey, msg: Sign1) -> None:
    """Raise InvalidSignature unless ``msg`` carries a valid ES384 signature (raw r‖s) over
    Sig_structure ["Signature1", protected, h'', payload]."""
    assert cbor2.loads(msg.protected) == {1: ES384}
    assert len(msg.signature) == 96
    tbs = cbor2.dumps(["Signature1", msg.protected, b"", msg.payload])
    r = int.from_bytes(msg.signature[:48], "big")
    s = int.from_bytes(msg.signature[48:], "big")
    public.verify(encode_dss_signature(r, s), tbs, ec.ECDSA(hashes.SHA384()))


def rak_from_cose_key(data: bytes) -> ec.EllipticCurvePublicKey:
    assert data[:8] == bytes.fromhex("a401022002215830") and len(data) == 107
    key = cbor2.loads(data)
    assert key[1] == 2 and key[-1] == 2  # EC2, P-384
    x, y = key[-2], key[-3]
    assert len(x) == len(y) == 48
    return ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP384R1()).public_key()


def cpak(p: Platform) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_public_key(p.el3.cpak_public_pem().encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP384R1)
    return key


def check_independently(run: Run, token: bytes, token_format: str, challenge: bytes,
                        rems: Sequence[bytes]) -> None:
    algo = run.spec.hash_algorithm
    hash_name, h = HASHES[algo]
    platform, realm = split_token(token, token_format)
    # Signatures: realm token with the RAK from its own claim, platform token with the CPAK.
    rc, pc = realm.claims, platform.claims
    es384_verify(rak_from_cose_key(rc[R_RAK]), realm)
    es384_verify(cpak(run.platform), platform)
    for msg in (realm, platform):
        assert msg.unprotected == {}
    # Binding (§1): platform challenge = SHA-256(realm claim 44237 bytes).
    assert rc[R_RAK_HASH] == "sha-256"
    assert pc[P_CHALLENGE] == hashlib.sha256(rc[R_RAK]).digest()
    # Realm claims (§2).
    assert rc[R_CHALLENGE] == challenge and len(challenge) == 64
    assert rc[R_PROFILE] == REALM_PROFILE
    assert rc[R_RIM] == run.rim == predict_rim(run.spec).rim
    assert len(rc[R_RIM]) == h().digest_size
    assert list(rc[R_REMS]) == list(rems)
    assert all(len(rem) == h().digest_size for rem in rc[R_REMS])
    assert rc[R_RPV] == RPV
    assert rc[R_HASH] == hash_name
    # Platform claims (§3).
    assert pc[P_PROFILE] == PLATFORM_PROFILE
    assert pc[P_LIFECYCLE] == 0x3000
    assert len(pc[P_IMPL_ID]) == 32 and pc[P_CONFIG]
    iid = pc[P_INSTANCE_ID]
    assert len(iid) == 33 and iid[0] == 0x01
    assert pc[P_HASH] == "sha-256"
    sw = list(pc[P_SW])
    assert [c.get(1) for c in sw] == ["BL31", "RMM"]
    for component in sw:
        assert len(component[2]) == 32 and len(component[5]) == 32


# ------------------------------------------------------------------------------ tests

@pytest.mark.parametrize(("token_format", "algo"), FORMATS_AND_ALGOS)
def test_demo_token_is_affirming(token_format: str, algo: str) -> None:
    run = demo_run(token_format, algo)
    challenge = _challenge(f"{token_format}/{algo}")
    token = run.tokens[programs.TOKEN_HOST_CALL_IMM]
    assert run.rim == predict_rim(run.spec).rim
    rems: list[bytes | str] = [_workload_rem(algo), "", "", ""]
    result = verify_token(token, cpak=run.platform.el3.cpak_public_pem(),
                          reference=_reference(run, challenge, rems))
    assert result.status == "affirming", [f for f in result.problems()]
    assert result.token_format == token_format
    # All four REMs, exactly: the untouched ones are zero.
    zero = bytes(HASHES[algo][1]().digest_size)
    full = [_workload_rem(algo), zero, zero, zero]
    strict = verify_token(token, cpak=run.platform.el3.cpak_public_pem(),
                          reference=_reference(run, challenge, full))
    assert strict.status == "affirming"


@pytest.mark.parametrize(("token_format", "algo"), FORMATS_AND_ALGOS)
def test_demo_token_independently(token_format: str, algo: str) -> None:
    run = demo_run(token_format, algo)
    token = run.tokens[programs.TOKEN_HOST_CALL_IMM]
    zero = bytes(HASHES[algo][1]().digest_size)
    check_independently(run, token, token_format, _challenge(f"{token_format}/{algo}"),
                        [_workload_rem(algo), zero, zero, zero])


def test_independent_check_rejects_tampering() -> None:
    """The independent signature check is not vacuous."""
    run = demo_run("cmw", "sha256")
    platform, realm = split_token(run.tokens[programs.TOKEN_HOST_CALL_IMM], "cmw")
    rak = rak_from_cose_key(realm.claims[R_RAK])
    claims = realm.claims
    claims[R_RIM] = bytes(32)
    forged = Sign1(realm.protected, realm.unprotected, cbor2.dumps(claims), realm.signature)
    with pytest.raises(InvalidSignature):
        es384_verify(rak, forged)
    with pytest.raises(InvalidSignature):
        es384_verify(rak, platform)  # the RAK did not sign the platform token
    with pytest.raises(InvalidSignature):
        es384_verify(cpak(run.platform), realm)


def test_token_for_another_challenge_fails() -> None:
    first = demo_run("cmw", "sha256")
    challenge = _challenge("cmw/sha256")
    other = run_demo_guest("cmw", "sha256", _challenge("another verifier"))
    token = other.tokens[programs.TOKEN_HOST_CALL_IMM]
    rems: list[bytes | str] = [_workload_rem("sha256"), "", "", ""]
    result = verify_token(token, cpak=first.platform.el3.cpak_public_pem(),
                          reference=_reference(first, challenge, rems))
    assert result.status == "contraindicated"
    bad = {f.claim for f in result.problems()}
    assert any("challenge" in name for name in bad), bad
    # Same platform: the signatures and binding themselves are fine.
    assert verify_token(token, cpak=first.platform.el3.cpak_public_pem(),
                        reference=_reference(other, _challenge("another verifier"), rems)
                        ).status == "affirming"


def test_token_from_another_platform_fails_against_the_first_cpak() -> None:
    first = demo_run("cmw", "sha256")
    challenge = _challenge("cmw/sha256")
    other = run_demo_guest("cmw", "sha256", challenge, seed=1)
    assert other.platform.el3.cpak_public_pem() != first.platform.el3.cpak_public_pem()
    token = other.tokens[programs.TOKEN_HOST_CALL_IMM]
    rems: list[bytes | str] = [_workload_rem("sha256"), "", "", ""]
    result = verify_token(token, cpak=first.platform.el3.cpak_public_pem(),
                          reference=_reference(first, challenge, rems))
    assert result.status == "contraindicated"
    platform, realm = split_token(token, "cmw")
    with pytest.raises(InvalidSignature):
        es384_verify(cpak(first.platform), platform)
    es384_verify(cpak(other.platform), platform)
    # Its own CPAK accepts it (RIM and REMs are the same realm's).
    assert verify_token(token, cpak=other.platform.el3.cpak_public_pem(),
                        reference=_reference(first, challenge, rems)).status == "affirming"
    # Different platforms, different RAKs.
    first_realm = split_token(first.tokens[programs.TOKEN_HOST_CALL_IMM], "cmw")[1]
    assert realm.claims[R_RAK] != first_realm.claims[R_RAK]


# ------------------------------------------------------------------------------ snapshot

TOKEN_A_IMM, TOKEN_B_IMM, FAIL_IMM = 0x5441, 0x5442, 0xFA11
EARLY = hashlib.sha256(b"measured before TOKEN_INIT").digest()
LATE = hashlib.sha256(b"measured after TOKEN_INIT").digest()


def _handover(imm: int, shared_ipa: int, buffer: str, length_reg: str) -> str:
    """Copy ``length_reg`` bytes from ``buffer`` to ``shared_ipa`` and RSI_HOST_CALL(imm) with
    gprs[0] = shared IPA, gprs[1] = length, gprs[2] = 0. Clobbers x0-x15."""
    hc = abi.RSI_HOST_CALL_LAYOUT
    return f"""\
{load_imm("x0", shared_ipa)}    adr x1, {buffer}
    mov x2, {length_reg}
    bl memcpy
    adr x0, host_call_args
    mov w1, #0
    mov x2, #{hc.size:#x}
    bl memset
    adr x0, host_call_args
{load_imm("w9", imm)}    str w9, [x0, #{hc.offset("imm"):#x}]
{load_imm("x9", shared_ipa)}    str x9, [x0, #{hc.offset("gprs0"):#x}]
    str {length_reg}, [x0, #{hc.offset("gprs1"):#x}]
    bl host_call
"""


def snapshot_guest(challenge: bytes) -> Image:
    """REM[0] += EARLY; TOKEN_INIT; REM[1] += LATE; TOKEN_CONTINUE loop (token A);
    then a fresh token (B) with the same challenge. Both go to the host."""
    hc = abi.RSI_HOST_CALL_LAYOUT
    incomplete = int(abi.RsiStatus.INCOMPLETE)
    main = f"""\
main:
    mov x0, #1
    mov x1, #32
    adr x2, early_value
    bl measurement_extend
    cbnz x0, fail
    adr x9, challenge
    ldp x1, x2, [x9]
    ldp x3, x4, [x9, #16]
    ldp x5, x6, [x9, #32]
    ldp x7, x8, [x9, #48]
    bl rsi_attestation_token_init
    cbnz x0, fail
    mov x0, #2
    mov x1, #32
    adr x2, late_value
    bl measurement_extend
    cbnz x0, fail
    mov x19, #0
token_loop:
    adr x1, token_a
    mov x2, x19
    mov x3, #{GRANULE:#x}
    sub x3, x3, x19
    cbz x3, fail
    bl rsi_attestation_token_continue
    add x19, x19, x1
    cmp x0, #{incomplete}
    b.eq token_loop
    cbnz x0, fail
{_handover(TOKEN_A_IMM, SHARED_IPA, "token_a", "x19")}\
    adr x0, challenge
    adr x1, token_b
{load_imm("x2", GRANULE)}    bl attestation_token
    cbnz x0, fail
    mov x20, x1
{_handover(TOKEN_B_IMM, SHARED_IPA + GRANULE, "token_b", "x20")}\
    mov x1, #0
    b psci_system_off
fail:
    mov x19, x0
    adr x0, host_call_args
{load_imm("w9", FAIL_IMM)}    str w9, [x0, #{hc.offset("imm"):#x}]
    str x19, [x0, #{hc.offset("gprs0"):#x}]
    bl host_call
    mov x1, x19
    b psci_system_off
"""
    data = (data_bytes("challenge", challenge)
            + data_bytes("early_value", EARLY.ljust(64, b"\0"))
            + data_bytes("late_value", LATE.ljust(64, b"\0"))
            + zeros("host_call_args", hc.size, align=abi.RSI_HOST_CALL_ALIGN))
    bss = (zeros("token_a", GRANULE, align=GRANULE) + zeros("token_b", GRANULE, align=GRANULE))
    return programs.build(LAYOUT, main, data=data, bss=bss)


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_token_init_snapshots_the_measurements(algo: str) -> None:
    challenge = _challenge(f"snapshot/{algo}")
    p = _platform()
    run = _run_realm(p, snapshot_guest(challenge), algo, challenge,
                     {TOKEN_A_IMM: SHARED_IPA, TOKEN_B_IMM: SHARED_IPA + GRANULE})
    failed = [c.gprs[0] for c in run.calls if c.imm == FAIL_IMM]
    assert not failed, f"guest RSI failure {failed}"
    assert run.reason == "system_off"
    zero = bytes(HASHES[algo][1]().digest_size)
    early, late = _rem(algo, EARLY), _rem(algo, LATE)
    # The RMM did extend REM[1] (RSI index 2) after TOKEN_INIT ...
    assert run.measurements[2][: len(late)] == late
    # ... but token A, initialised before that, does not show it; token B does.
    check_independently(run, run.tokens[TOKEN_A_IMM], "cmw", challenge, [early, zero, zero, zero])
    check_independently(run, run.tokens[TOKEN_B_IMM], "cmw", challenge, [early, late, zero, zero])
    key = run.platform.el3.cpak_public_pem()
    assert verify_token(run.tokens[TOKEN_A_IMM], cpak=key, reference=_reference(
        run, challenge, [early, zero, zero, zero])).status == "affirming"
    assert verify_token(run.tokens[TOKEN_A_IMM], cpak=key, reference=_reference(
        run, challenge, [early, late, zero, zero])).status == "contraindicated"
    assert verify_token(run.tokens[TOKEN_B_IMM], cpak=key, reference=_reference(
        run, challenge, [early, late, "", ""])).status == "affirming"

