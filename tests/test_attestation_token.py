"""Token builders and the verifier on tokens we build: round trips for both formats and realm
hash algorithms, an independent check with plain cbor2 + cryptography, tampering, reference
value appraisal and the EAR-shaped result."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from ccasim.attestation import (
    AttestationResult,
    Lifecycle,
    PlatformClaims,
    RealmClaims,
    ReferenceValues,
    ReferenceValuesError,
    SwComponent,
    binding_challenge,
    build_platform_token,
    build_realm_token,
    rak_claim_bytes,
    verify_token,
    wrap_cca_token,
)
from ccasim.attestation import claims as c
from ccasim.attestation.cose import sign1
from ccasim.attestation.verify import split_cca_token

DIGEST = {"sha-256": 32, "sha-384": 48, "sha-512": 64}
CPAK = ec.derive_private_key(0xC0FFEE, ec.SECP384R1())
CPAK_P256 = ec.derive_private_key(0xBEEF, ec.SECP256R1())
RAK = ec.derive_private_key(0x5EED, ec.SECP384R1())
CHALLENGE = bytes(range(64))
RPV = b"personalization".ljust(64, b"\0")
SW = (
    SwComponent(hashlib.sha256(b"bl31").digest(), b"\x11" * 32, "BL31", "2.12", "sha-256"),
    SwComponent(hashlib.sha256(b"rmm").digest(), b"\x11" * 32, "RMM", "1.0", "sha-256"),
)


def _rim(algo: str) -> bytes:
    return hashlib.new(algo.replace("-", ""), b"rim").digest()


def _rems(algo: str) -> tuple[bytes, ...]:
    return tuple(hashlib.new(algo.replace("-", ""), bytes([i])).digest() for i in range(4))


def realm_claims(algo: str = "sha-256", **kw: Any) -> RealmClaims:
    base = RealmClaims(challenge=CHALLENGE, personalization_value=RPV, rim=_rim(algo),
                       rems=_rems(algo), hash_algo=algo)
    return replace(base, **kw)


def platform_claims(challenge: bytes, **kw: Any) -> PlatformClaims:
    base = PlatformClaims(challenge=challenge, implementation_id=b"\xaa" * 32,
                          instance_id=b"\x01" + b"\xbb" * 32, config=b"\xcf\xcf",
                          lifecycle=Lifecycle.SECURED | 3, sw_components=SW,
                          verification_service="https://verifier.example/")
    return replace(base, **kw)


def make_token(fmt: str = "cmw", algo: str = "sha-256", *, rak_hash: str = "sha-256",
               profile: str | None = c.PROFILE_REALM_1_0, cpak: ec.EllipticCurvePrivateKey = CPAK,
               realm_kw: dict[str, Any] | None = None,
               platform_kw: dict[str, Any] | None = None) -> bytes:
    legacy = profile is None
    claim = rak_claim_bytes(RAK.public_key(), legacy=legacy)
    pkw = {"profile": c.PROFILE_PLATFORM_LEGACY} if legacy else {}
    pkw.update(platform_kw or {})
    platform = build_platform_token(platform_claims(binding_challenge(claim, rak_hash), **pkw),
                                    cpak)
    rc = realm_claims(algo, rak_hash_algo=rak_hash, profile=profile, **(realm_kw or {}))
    realm = build_realm_token(rc, RAK, rak_claim=claim)
    return wrap_cca_token(platform, realm, fmt)  # type: ignore[arg-type]


def full_reference(algo: str = "sha-256") -> dict[str, Any]:
    return {
        "realm": {"challenge": CHALLENGE.hex(), "rim": _rim(algo).hex(),
                  "rems": [r.hex() for r in _rems(algo)], "hash_algo": algo, "rpv": RPV.hex()},
        "platform": {"sw_components": [sw.measurement.hex() for sw in SW],
                     "lifecycles": ["secured"], "implementation_id": "aa" * 32,
                     "config": "cfcf"},
    }


def cpak_pem(key: ec.EllipticCurvePrivateKey = CPAK) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def assert_affirming(result: AttestationResult) -> None:
    assert result.status == "affirming", result.problems()


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("fmt", ["cmw", "legacy"])
@pytest.mark.parametrize("algo", ["sha-256", "sha-512"])
def test_round_trip(fmt: str, algo: str) -> None:
    token = make_token(fmt, algo)
    result = verify_token(token, cpak=cpak_pem(), reference=full_reference(algo))
    assert_affirming(result)
    assert result.token_format == fmt
    appraised = {f.claim for f in result.findings if f.status == "affirming"}
    assert {"cca-realm-initial-measurement", "cca-realm-extensible-measurements",
            "cca-realm-challenge", "cca-realm-personalization-value", "cca-realm-hash-algo-id",
            "cca-platform-sw-components", "cca-platform-lifecycle", "cca-realm-binding",
            "cca-realm-signature", "cca-platform-signature"} <= appraised
    assert result.realm_claims is not None
    assert result.realm_claims[c.REALM_INITIAL_MEASUREMENT] == _rim(algo)


def test_round_trip_sha384_realm() -> None:
    assert_affirming(verify_token(make_token(algo="sha-384"), cpak=CPAK,
                                  reference=full_reference("sha-384")))


@pytest.mark.parametrize("profile", [None, c.PROFILE_REALM_2_0])
def test_round_trip_profiles(profile: str | None) -> None:
    kw = {"instance_id": b"\x01" + b"\x42" * 32, "mec_policy": 1} if profile else {}
    token = make_token(profile=profile, realm_kw=kw)
    result = verify_token(token, cpak=CPAK)
    assert_affirming(result)
    assert result.realm_claims is not None
    rak = result.realm_claims[c.REALM_PUBLIC_KEY]
    assert len(rak) == (97 if profile is None else 107)


def test_round_trip_es256_platform_and_sha512_binding() -> None:
    token = make_token(cpak=CPAK_P256, rak_hash="sha-512")
    result = verify_token(token, cpak=cpak_pem(CPAK_P256))
    assert_affirming(result)
    assert result.platform_claims is not None and len(result.platform_claims[10]) == 64
    # the P-384 CPAK does not verify an ES256 signature
    assert verify_token(token, cpak=CPAK).status == "contraindicated"


def test_realm_claim_order_is_tfrmm_order() -> None:
    _, _, realm = split_cca_token(make_token())
    payload = cbor2.loads(cbor2.loads(realm).value[2])
    assert list(payload) == [10, 44235, 44237, 44236, 44240, 265, 44238, 44239]
    _, _, realm2 = split_cca_token(make_token(profile=c.PROFILE_REALM_2_0, realm_kw={
        "instance_id": b"\x01" * 33, "mec_policy": 0}))
    payload2 = cbor2.loads(cbor2.loads(realm2).value[2])
    assert list(payload2) == [10, 256, 44235, 44237, 44236, 44240, 44243, 265, 44238, 44239]


def test_wrapper_layouts() -> None:
    cmw = cbor2.loads(make_token("cmw"))
    assert cmw.tag == 907
    assert [entry[0] for entry in cmw.value.values()] == [263, 263]
    legacy = cbor2.loads(make_token("legacy"))
    assert legacy.tag == 399
    assert all(isinstance(v, bytes) for v in legacy.value.values())
    with pytest.raises(ValueError):
        wrap_cca_token(b"", b"", "json")  # type: ignore[arg-type]


def test_deterministic_tokens() -> None:
    claim = rak_claim_bytes(RAK.public_key())
    a = build_realm_token(realm_claims(), RAK, rak_claim=claim, deterministic=True)
    b = build_realm_token(realm_claims(), RAK, deterministic=True)
    assert a == b
    p = platform_claims(binding_challenge(claim))
    assert build_platform_token(p, CPAK, deterministic=True) == build_platform_token(
        p, CPAK, deterministic=True)


# ---------------------------------------------------------------------------------------------
# Independent check: plain cbor2 + cryptography, not ccasim's verifier


def _independent_verify(sign1_bytes: bytes, key: ec.EllipticCurvePublicKey) -> dict[Any, Any]:
    obj = cbor2.loads(sign1_bytes)
    assert isinstance(obj, cbor2.CBORTag) and obj.tag == 18
    protected, unprotected, payload, signature = obj.value
    alg = cbor2.loads(protected)[1]
    hash_alg, size = {-7: (hashes.SHA256(), 32), -35: (hashes.SHA384(), 48),
                      -36: (hashes.SHA512(), 66)}[alg]
    assert dict(unprotected) == {} and len(signature) == 2 * size
    tbs = cbor2.dumps(["Signature1", protected, b"", payload])
    der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                               int.from_bytes(signature[size:], "big"))
    key.verify(der, tbs, ec.ECDSA(hash_alg))  # raises InvalidSignature
    claims = cbor2.loads(payload)
    assert isinstance(claims, dict)
    return claims


@pytest.mark.parametrize("fmt", ["cmw", "legacy"])
@pytest.mark.parametrize("profile", [c.PROFILE_REALM_1_0, None])
def test_independent_decode_and_signature_check(fmt: str, profile: str | None) -> None:
    top = cbor2.loads(make_token(fmt, profile=profile))
    entries = {k: (v[1] if fmt == "cmw" else v) for k, v in top.value.items()}
    if fmt == "cmw":
        assert all(v[0] == 263 for v in top.value.values())
    platform = _independent_verify(entries[44234], CPAK.public_key())
    rak_bytes = cbor2.loads(entries[44241]).value[2]
    rak_bytes = cbor2.loads(rak_bytes)[44237]
    if profile is None:
        rak = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), rak_bytes)
    else:
        cose_key = cbor2.loads(rak_bytes)
        assert (cose_key[1], cose_key[-1]) == (2, 2)
        rak = ec.EllipticCurvePublicNumbers(int.from_bytes(cose_key[-2], "big"),
                                            int.from_bytes(cose_key[-3], "big"),
                                            ec.SECP384R1()).public_key()
    realm = _independent_verify(entries[44241], rak)
    assert platform[10] == hashlib.sha256(rak_bytes).digest()
    assert realm[10] == CHALLENGE and realm[44238] == _rim("sha-256")
    assert realm.get(265) == profile and platform[265] in c.PLATFORM_PROFILES


# ---------------------------------------------------------------------------------------------
# Tampering


@functools.cache
def _signed_token() -> tuple[bytes, tuple[range, ...]]:
    """A token and the byte ranges of its signed parts (protected header, payload and signature
    of both COSE_Sign1s) within the token."""
    token = make_token()
    _, platform, realm = split_cca_token(token)
    ranges = []
    for part in (platform, realm):
        base = token.index(part)
        protected, _, payload, signature = cbor2.loads(part).value
        for field in (protected, payload, signature):
            start = base + part.index(field)
            ranges.append(range(start, start + len(field)))
    return token, tuple(ranges)


def _flip(token: bytes, pos: int, mask: int) -> bytes:
    out = bytearray(token)
    out[pos] ^= mask
    return bytes(out)


def test_untampered_token_verifies() -> None:
    token, ranges = _signed_token()
    assert_affirming(verify_token(token, cpak=CPAK))
    assert sum(len(r) for r in ranges) > 0.9 * len(token)


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(1, 255))
def test_flipping_a_signed_byte_is_rejected(data: st.DataObject, mask: int) -> None:
    token, ranges = _signed_token()
    positions = [p for r in ranges for p in r]
    pos = data.draw(st.sampled_from(positions))
    result = verify_token(_flip(token, pos, mask), cpak=CPAK)
    assert result.status == "contraindicated"


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(1, 255))
def test_flipping_any_byte_is_never_affirming(data: st.DataObject, mask: int) -> None:
    token, _ = _signed_token()
    pos = data.draw(st.integers(0, len(token) - 1))
    assert verify_token(_flip(token, pos, mask), cpak=CPAK).status == "contraindicated"


def test_truncated_and_extended_tokens_rejected() -> None:
    token, _ = _signed_token()
    for bad in (token[:-1], token + b"\x00", token[:10]):
        assert verify_token(bad, cpak=CPAK).status == "contraindicated"


# ---------------------------------------------------------------------------------------------
# Structure errors built by hand


def _parts() -> tuple[bytes, bytes]:
    _, platform, realm = split_cca_token(make_token())
    return platform, realm


@pytest.mark.parametrize(("build", "match"), [
    (lambda p, r: cbor2.CBORTag(907, {44234: p, 44241: r}), "not \\[263, bstr\\]"),
    (lambda p, r: cbor2.CBORTag(907, {44234: [264, p], 44241: [263, r]}), "not \\[263, bstr\\]"),
    (lambda p, r: cbor2.CBORTag(399, {44234: [263, p], 44241: [263, r]}), "not a bstr"),
    (lambda p, r: cbor2.CBORTag(401, {44234: p, 44241: r}), "unknown top-level tag"),
    (lambda p, r: {44234: p, 44241: r}, "not tagged"),
    (lambda p, r: cbor2.CBORTag(907, {44234: [263, p]}), "44241 missing"),
    (lambda p, r: cbor2.CBORTag(907, [p, r]), "not a map"),
])
def test_bad_collections(build: Any, match: str) -> None:
    import re
    result = verify_token(cbor2.dumps(build(*_parts())), cpak=CPAK)
    assert result.status == "contraindicated"
    finding = result.finding("cca-token")
    assert finding is not None and re.search(match, finding.detail), finding


def test_indefinite_length_outer_map_rejected() -> None:
    platform, realm = _parts()
    body = b"".join(cbor2.dumps(k) + cbor2.dumps([263, v]) for k, v in ((44234, platform),
                                                                           (44241, realm)))
    indefinite = bytes.fromhex("d9038b") + b"\xbf" + body + b"\xff"
    assert cbor2.loads(indefinite).tag == 907  # cbor2 alone would accept it
    result = verify_token(indefinite, cpak=CPAK)
    assert result.status == "contraindicated"
    assert "indefinite" in result.finding("cca-token").detail  # type: ignore[union-attr]


def test_indefinite_length_inside_signed_payload_rejected() -> None:
    """Even a correctly signed payload that uses an indefinite-length array is rejected."""
    claim = rak_claim_bytes(RAK.public_key())
    payload_map = realm_claims().to_map(claim)
    rems = payload_map.pop(c.REALM_EXTENSIBLE_MEASUREMENTS)
    payload = bytearray(cbor2.dumps(payload_map))
    payload[0] += 1  # one more map entry
    payload += cbor2.dumps(c.REALM_EXTENSIBLE_MEASUREMENTS) + b"\x9f" + b"".join(
        cbor2.dumps(r) for r in rems) + b"\xff"
    realm = sign1(bytes(payload), RAK)
    platform, _ = _parts()
    result = verify_token(wrap_cca_token(platform, realm), cpak=CPAK)
    assert result.status == "contraindicated"
    assert "indefinite" in result.finding("cca-realm-token").detail  # type: ignore[union-attr]


def test_untagged_cose_sign1_rejected() -> None:
    platform, realm = _parts()
    untagged = cbor2.dumps(cbor2.loads(realm).value)
    result = verify_token(wrap_cca_token(platform, untagged), cpak=CPAK)
    assert result.status == "contraindicated"
    assert "tag 18" in result.finding("cca-realm-token").detail  # type: ignore[union-attr]


def test_duplicate_claim_rejected() -> None:
    claim = rak_claim_bytes(RAK.public_key())
    payload = bytearray(cbor2.dumps(realm_claims().to_map(claim)))
    payload[0] += 1
    payload += cbor2.dumps(10) + cbor2.dumps(bytes(64))  # a second challenge
    platform, _ = _parts()
    result = verify_token(wrap_cca_token(platform, sign1(bytes(payload), RAK)), cpak=CPAK)
    assert result.status == "contraindicated"
    assert "duplicate" in result.finding("cca-realm-token").detail  # type: ignore[union-attr]


@pytest.mark.parametrize(("drop", "claim"), [
    (c.REALM_CHALLENGE, "cca-realm-challenge"),
    (c.REALM_PERSONALIZATION_VALUE, "cca-realm-personalization-value"),
    (c.REALM_INITIAL_MEASUREMENT, "cca-realm-initial-measurement"),
    (c.REALM_EXTENSIBLE_MEASUREMENTS, "cca-realm-extensible-measurements"),
    (c.REALM_HASH_ALGO_ID, "cca-realm-hash-algo-id"),
    (c.REALM_PUBLIC_KEY_HASH_ALGO_ID, "cca-realm-public-key-hash-algo-id"),
])
def test_missing_mandatory_realm_claim(drop: int, claim: str) -> None:
    claim_bytes = rak_claim_bytes(RAK.public_key())
    payload_map = realm_claims().to_map(claim_bytes)
    del payload_map[drop]
    platform, _ = _parts()
    token = wrap_cca_token(platform, sign1(cbor2.dumps(payload_map), RAK))
    result = verify_token(token, cpak=CPAK)
    assert result.status == "contraindicated"
    assert claim in {f.claim for f in result.problems()}


def test_unknown_claims_are_ignored() -> None:
    token = make_token(realm_kw={"extra": {99999: "x"}})
    result = verify_token(token, cpak=CPAK)
    assert_affirming(result)
    assert any(f.claim == "unknown-claims" and "99999" in f.detail for f in result.findings)


def test_profile_mismatch_is_a_warning() -> None:
    token = make_token(platform_kw={"profile": c.PROFILE_PLATFORM_LEGACY})
    result = verify_token(token, cpak=CPAK)
    assert result.status == "warning"
    assert result.finding("cca-profiles").status == "warning"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# Appraisal


@pytest.mark.parametrize(("section", "key", "value", "claim"), [
    ("realm", "rim", "00" * 32, "cca-realm-initial-measurement"),
    ("realm", "rim", ["00" * 32, "11" * 32], "cca-realm-initial-measurement"),
    ("realm", "rems", ["", "", "", "00" * 32], "cca-realm-extensible-measurements"),
    ("realm", "challenge", "ff" * 64, "cca-realm-challenge"),
    ("realm", "rpv", "00" * 64, "cca-realm-personalization-value"),
    ("realm", "hash_algo", "sha-512", "cca-realm-hash-algo-id"),
    ("platform", "sw_components", ["00" * 32], "cca-platform-sw-components"),
    ("platform", "lifecycles", ["non-cca-platform-debug", 0x3000], "cca-platform-lifecycle"),
    ("platform", "implementation_id", "ab" * 32, "cca-platform-implementation-id"),
    ("platform", "config", "cfcfcf", "cca-platform-config"),
])
def test_reference_mismatch_contraindicated(section: str, key: str, value: Any,
                                            claim: str) -> None:
    ref = full_reference()
    ref[section][key] = value
    result = verify_token(make_token(), cpak=CPAK, reference=ref)
    assert result.status == "contraindicated"
    assert {f.claim for f in result.problems()} == {claim}
    submod = "CCA_REALM" if section == "realm" else "CCA_SSD_PLATFORM"
    other = "CCA_SSD_PLATFORM" if section == "realm" else "CCA_REALM"
    assert result.submod_status(submod) == "contraindicated"
    assert result.submod_status(other) == "affirming"


@pytest.mark.parametrize(("key", "value"), [
    ("rim", ["00" * 32, _rim("sha-256").hex()]),  # any of several RIMs
    ("rems", ["", "", "", ""]),  # "" = any value
    ("challenge", CHALLENGE[:32].hex()),  # zero-padded to 64 bytes
])
def test_reference_alternatives_and_wildcards(key: str, value: Any) -> None:
    ref = full_reference()
    ref["realm"][key] = value
    token = make_token(realm_kw={"challenge": CHALLENGE[:32].ljust(64, b"\0")}
                       if key == "challenge" else {})
    assert_affirming(verify_token(token, cpak=CPAK, reference=ref))


def test_sw_component_reference_with_fields() -> None:
    ref = full_reference()
    ref["platform"]["sw_components"] = [
        {"measurement": SW[0].measurement.hex(), "component_type": "BL31", "version": "2.12"},
        {"measurement": SW[1].measurement.hex(), "signer_id": "11" * 32},
    ]
    assert_affirming(verify_token(make_token(), cpak=CPAK, reference=ref))
    ref["platform"]["sw_components"][0]["component_type"] = "BL2"
    result = verify_token(make_token(), cpak=CPAK, reference=ref)
    assert result.status == "contraindicated"
    assert "BL31" in result.finding("cca-platform-sw-components").detail  # type: ignore[union-attr]


@pytest.mark.parametrize(("lifecycle", "allowed", "status"), [
    (0x3003, None, "affirming"),
    (0x4000, None, "warning"),
    (0x4000, ["non-cca-platform-debug"], "affirming"),
    (0x5001, [0x5001], "affirming"),
    (0x5001, ["0x5001"], "affirming"),
    (0x5002, [0x5001, "secured"], "contraindicated"),
])
def test_lifecycle(lifecycle: int, allowed: list[Any] | None, status: str) -> None:
    ref: dict[str, Any] = {"platform": {"lifecycles": allowed}} if allowed else {}
    token = make_token(platform_kw={"lifecycle": lifecycle})
    result = verify_token(token, cpak=CPAK, reference=ref or None)
    assert result.status == status
    assert result.finding("cca-platform-lifecycle").status == status  # type: ignore[union-attr]


def test_reference_files(tmp_path: Path) -> None:
    ref = full_reference()
    json_path = tmp_path / "ref.json"
    json_path.write_text(json.dumps(ref))
    toml_path = tmp_path / "ref.toml"
    toml_path.write_text(
        "[realm]\n"
        f'rim = "{ref["realm"]["rim"]}"\n'
        f'rems = [{", ".join(repr(r).replace(chr(39), chr(34)) for r in ref["realm"]["rems"])}]\n'
        'hash_algo = "sha-256"\n'
        f'challenge = "{CHALLENGE.hex()}"\n'
        "[platform]\n"
        'lifecycles = ["secured"]\n'
        f'sw_components = ["{SW[0].measurement.hex()}", {{ measurement = '
        f'"{SW[1].measurement.hex()}", component_type = "RMM" }}]\n'
    )
    for path in (json_path, toml_path):
        refs = ReferenceValues.load(path)
        assert refs.rim == (_rim("sha-256"),)
        assert_affirming(verify_token(make_token(), cpak=CPAK, reference=refs))


@pytest.mark.parametrize("bad", [
    {"realm": {"rim": "zz"}},
    {"realm": {"rems": ["00"]}},
    {"realm": {"unknown": 1}},
    {"platform": {"lifecycles": ["nonsense"]}},
    {"platform": {"sw_components": [{"type": "BL"}]}},
    {"platform": {"sw_components": [{"measurement": "00", "colour": "red"}]}},
    {"realm": {"hash_algo": "md5"}},
    {"realm": {"challenge": "00" * 65}},
    {"other": {}},
    {"realm": []},
])
def test_bad_reference_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ReferenceValuesError):
        ReferenceValues.from_mapping(bad)


# ---------------------------------------------------------------------------------------------
# Builders reject claims a verifier would reject


@pytest.mark.parametrize("kw", [
    {"challenge": b"\0" * 32},
    {"personalization_value": b"\0" * 63},
    {"rim": b"\0" * 20},
    {"rems": (b"\0" * 32,) * 3},
    {"rems": (b"\0" * 32,) * 3 + (b"\0",)},
    {"hash_algo": "md5"},
    {"rak_hash_algo": "sha-1"},
    {"profile": "tag:arm.com,2099:realm#9"},
    {"profile": c.PROFILE_REALM_2_0},
    {"instance_id": b"\x02" * 33},
    {"mec_policy": 2},
    {"extra": {10: b""}},
])
def test_realm_builder_validation(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_realm_token(realm_claims(**kw), RAK)


@pytest.mark.parametrize("kw", [
    {"challenge": b"\0" * 31},
    {"implementation_id": b"\0" * 33},
    {"instance_id": b"\0" * 33},
    {"config": b""},
    {"lifecycle": 0x7000},
    {"sw_components": ()},
    {"sw_components": (SwComponent(b"\0" * 31, b"\0" * 32),)},
    {"hash_algo": "sha3"},
    {"profile": "http://arm.com/PSA-SSD/1.0.0"},
    {"verification_service": ""},
])
def test_platform_builder_validation(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_platform_token(platform_claims(**({"challenge": b"\0" * 32} | kw)), CPAK)


# ---------------------------------------------------------------------------------------------
# Result shape


def test_ear_shape() -> None:
    result = verify_token(make_token(), cpak=CPAK, reference=full_reference())
    ear = json.loads(result.to_json())
    assert ear["eat_profile"] == "tag:github.com,2023:veraison/ear"
    assert isinstance(ear["iat"], int)
    assert set(ear["submods"]) == {"CCA_SSD_PLATFORM", "CCA_REALM"}
    platform, realm = ear["submods"]["CCA_SSD_PLATFORM"], ear["submods"]["CCA_REALM"]
    assert platform["ear.status"] == realm["ear.status"] == "affirming"
    assert platform["ear.trustworthiness-vector"] == {
        "instance-identity": 2, "hardware": 2, "configuration": 2, "executables": 2}
    assert realm["ear.trustworthiness-vector"] == {
        "instance-identity": 2, "executables": 2, "configuration": 2}
    evidence = realm["ear.veraison.annotated-evidence"]
    assert evidence["cca-realm-initial-measurement"] == _rim("sha-256").hex()
    assert evidence["cca-realm-profile"] == c.PROFILE_REALM_1_0
    sw = platform["ear.veraison.annotated-evidence"]["cca-platform-sw-components"]
    assert sw[0]["component-type"] == "BL31"
    assert ear["ccasim.status"] == "affirming"
    assert all({"claim", "status", "detail", "submod"} <= set(f) for f in ear["ccasim.findings"])


def test_ear_contraindicated_vector() -> None:
    ref = full_reference()
    ref["realm"]["rim"] = "00" * 32
    ear = verify_token(make_token(), cpak=CPAK, reference=ref).to_dict()
    realm = ear["submods"]["CCA_REALM"]
    assert realm["ear.status"] == "contraindicated"
    assert realm["ear.trustworthiness-vector"]["executables"] == 96


def test_rich_rendering() -> None:
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(verify_token(make_token(), cpak=CPAK))
    text = console.export_text()
    assert "AFFIRMING" in text and "cca-realm-binding" in text and "CCA_REALM" in text
