"""COSE_Sign1, COSE_Key and the definite-length CBOR rules (ccasim.attestation.cose)."""

from __future__ import annotations

import base64
import json
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from ccasim.attestation.cose import (
    ES256,
    ES384,
    ES512,
    CborError,
    CoseError,
    SignatureError,
    algorithm_for_key,
    cbor_decode,
    check_well_formed,
    decode_cose_key,
    ec_point_bytes,
    encode_cose_key,
    load_public_key,
    parse_sign1,
    private_key_from_scalar,
    public_key_from_point,
    sig_structure,
    sign1,
)

CURVES = {ES256: ec.SECP256R1(), ES384: ec.SECP384R1(), ES512: ec.SECP521R1()}
KEYS = {alg: ec.generate_private_key(curve) for alg, curve in CURVES.items()}


# ---------------------------------------------------------------------------------------------
# CBOR well-formedness


@pytest.mark.parametrize("hex_item", [
    "9f0102ff",          # indefinite array
    "bf0102ff",          # indefinite map
    "5f4101ff",          # indefinite bstr
    "7f6161ff",          # indefinite tstr
    "a1019f01ff",        # nested indefinite array
    "d2849f01ff",        # indefinite inside a tag
    "ff",                # lone break
])
def test_indefinite_lengths_rejected(hex_item: str) -> None:
    with pytest.raises(CborError):
        check_well_formed(bytes.fromhex(hex_item))


def test_cbor2_alone_accepts_what_we_reject() -> None:
    """Why the scanner exists: cbor2 decodes indefinite lengths and ignores trailing bytes."""
    assert list(cbor2.loads(bytes.fromhex("9f0102ff"))) == [1, 2]
    assert cbor2.loads(bytes.fromhex("0102")) == 1


@pytest.mark.parametrize(("hex_item", "why"), [
    ("0102", "trailing"),
    ("", "truncated"),
    ("5820", "truncated"),
    ("8301", "array of 3"),
    ("a201020103", "duplicate"),          # {1: 2, 1: 3}
    ("a20102180103", "duplicate"),        # {1: 2, 1 (non-preferred): 3}
    ("a2616101616102", "duplicate"),      # {"a": 1, "a": 2}
    ("1c", "reserved"),
    ("f800", "simple value"),
    ("19", "truncated"),
])
def test_malformed_cbor_rejected(hex_item: str, why: str) -> None:
    with pytest.raises(CborError):
        cbor_decode(bytes.fromhex(hex_item))


def test_deep_nesting_rejected() -> None:
    with pytest.raises(CborError, match="nesting"):
        check_well_formed(b"\x81" * 40 + b"\x00")


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.integers(-100, 100) | st.text(max_size=5), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(cbor_values)
def test_definite_encodings_are_accepted(value: Any) -> None:
    data = cbor2.dumps(value)
    check_well_formed(data)
    decoded = cbor_decode(data)
    assert cbor2.dumps(decoded) == data


# ---------------------------------------------------------------------------------------------
# COSE_Sign1


@pytest.mark.parametrize("alg", [ES256, ES384, ES512])
def test_sign1_round_trip(alg: int) -> None:
    key = KEYS[alg]
    token = sign1(b"\xa1\x0a\x41\x00", key)
    assert token[0] == 0xD2  # tag 18
    msg = parse_sign1(token)
    assert msg.alg == alg
    assert dict(msg.protected_header) == {1: alg}
    assert dict(msg.unprotected) == {}
    assert len(msg.signature) == algorithm_for_key(key).signature_size
    msg.verify(key.public_key())
    other = ec.generate_private_key(CURVES[alg])
    with pytest.raises(SignatureError):
        msg.verify(other.public_key())


def test_protected_header_is_exactly_alg() -> None:
    token = sign1(b"\xa0", KEYS[ES384])
    raw = cbor2.loads(token)
    assert raw.tag == 18
    assert raw.value[0] == bytes.fromhex("a1013822")  # {1: -35}
    assert dict(raw.value[1]) == {}
    assert cbor2.loads(sig_structure(raw.value[0], raw.value[2])) == [
        "Signature1", raw.value[0], b"", raw.value[2]]


def test_deterministic_signatures_repeat() -> None:
    key = KEYS[ES384]
    assert sign1(b"\xa0", key, deterministic=True) == sign1(b"\xa0", key, deterministic=True)
    assert sign1(b"\xa0", key) != sign1(b"\xa0", key)


def test_alg_must_match_key_curve() -> None:
    with pytest.raises(CoseError):
        sign1(b"\xa0", KEYS[ES256], alg=ES384)
    msg = parse_sign1(sign1(b"\xa0", KEYS[ES384]))
    with pytest.raises(SignatureError, match="P-384"):
        msg.verify(KEYS[ES256].public_key())


def _sign1_bytes(protected: Any, unprotected: Any, payload: Any, signature: Any,
                 tag: int | None = 18) -> bytes:
    arr = [protected, unprotected, payload, signature]
    return cbor2.dumps(cbor2.CBORTag(tag, arr) if tag is not None else arr)


@pytest.mark.parametrize(("parts", "match"), [
    (dict(tag=None), "tag 18"),
    (dict(tag=17), "tag 17"),
    (dict(protected=cbor2.dumps({1: -35, 2: [1]})), "critical"),
    (dict(protected=cbor2.dumps({1: -8})), "unsupported COSE algorithm"),
    (dict(protected=cbor2.dumps({3: 0})), "no alg"),
    (dict(protected=cbor2.dumps([1])), "not a map"),
    (dict(unprotected={1: -35}), "protected header only"),
    (dict(unprotected=[]), "unprotected header"),
    (dict(payload=None), "payload"),
    (dict(signature="x"), "signature"),
])
def test_malformed_sign1(parts: dict[str, Any], match: str) -> None:
    base: dict[str, Any] = dict(protected=cbor2.dumps({1: -35}), unprotected={}, payload=b"\xa0",
                                signature=b"\0" * 96, tag=18)
    base.update(parts)
    with pytest.raises(CoseError, match=match):
        parse_sign1(_sign1_bytes(**base))


def test_short_signature_rejected() -> None:
    key = KEYS[ES384]
    raw = cbor2.loads(sign1(b"\xa0", key))
    bad = _sign1_bytes(raw.value[0], {}, raw.value[2], raw.value[3][:-1])
    with pytest.raises(SignatureError, match="96 bytes"):
        parse_sign1(bad).verify(key.public_key())


# ---------------------------------------------------------------------------------------------
# Keys


@pytest.mark.parametrize(("alg", "crv", "size"), [(ES256, 1, 32), (ES384, 2, 48), (ES512, 3, 66)])
def test_cose_key_layout(alg: int, crv: int, size: int) -> None:
    public = KEYS[alg].public_key()
    data = encode_cose_key(public)
    key = cbor2.loads(data)
    assert list(key) == [1, -1, -2, -3]
    assert key[1] == 2 and key[-1] == crv and len(key[-2]) == size and len(key[-3]) == size
    assert ec_point_bytes(decode_cose_key(data)) == ec_point_bytes(public)
    if alg == ES384:
        assert len(data) == 107 and data.startswith(bytes.fromhex("a401022002215830"))


@pytest.mark.parametrize(("key", "match"), [
    ({1: 1, -1: 2, -2: b"\0" * 48, -3: b"\0" * 48}, "kty"),
    ({1: 2, -1: 7, -2: b"\0" * 48, -3: b"\0" * 48}, "crv"),
    ({1: 2, -1: 2, -2: b"\0" * 47, -3: b"\0" * 48}, "x must be"),
    ({1: 2, -1: 2, -2: b"\0" * 48, -3: True}, "y must be"),
    ({1: 2, -1: 2, -2: b"\0" * 48, -3: b"\0" * 48}, "invalid P-384 point"),
    ([1, 2], "not a map"),
])
def test_bad_cose_keys(key: Any, match: str) -> None:
    with pytest.raises(CoseError, match=match):
        decode_cose_key(cbor2.dumps(key))


def test_cose_key_with_private_part_rejected() -> None:
    data = cbor2.loads(encode_cose_key(KEYS[ES384].public_key()))
    data[-4] = b"\1" * 48
    with pytest.raises(CoseError, match="private"):
        decode_cose_key(cbor2.dumps(data))


def test_points() -> None:
    for key in KEYS.values():
        point = ec_point_bytes(key.public_key())
        assert ec_point_bytes(public_key_from_point(point)) == point
    with pytest.raises(CoseError):
        public_key_from_point(b"\x04" + b"\0" * 96)
    with pytest.raises(CoseError):
        public_key_from_point(b"\x05" * 97)


def test_load_public_key_forms() -> None:
    private = KEYS[ES384]
    public = private.public_key()
    want = ec_point_bytes(public)
    pem_pub = public.public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    pem_priv = private.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.TraditionalOpenSSL,
                                     serialization.NoEncryption())
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    numbers = public.public_numbers()

    def b64u(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(48, "big")).rstrip(b"=").decode()

    jwk = {"kty": "EC", "crv": "P-384", "x": b64u(numbers.x), "y": b64u(numbers.y)}
    for form in (public, private, pem_pub, pem_pub.decode(), pem_priv, der, jwk,
                 json.dumps(jwk), encode_cose_key(public)):
        assert ec_point_bytes(load_public_key(form)) == want
    for bad in (b"garbage", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                {"kty": "RSA"}, {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}, "{[}"):
        with pytest.raises(CoseError):
            load_public_key(bad)


def test_private_key_from_scalar() -> None:
    key = KEYS[ES384]
    scalar = key.private_numbers().private_value.to_bytes(48, "big")
    again = private_key_from_scalar(scalar)
    assert ec_point_bytes(again.public_key()) == ec_point_bytes(key.public_key())
    with pytest.raises(CoseError):
        private_key_from_scalar(b"\0" * 48)
