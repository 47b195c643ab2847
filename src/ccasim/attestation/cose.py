"""COSE_Sign1 and EC2 COSE_Key for CCA attestation tokens, over definite-length CBOR.

Only what CCA tokens use (``spec/attestation.md`` §1, RFC 9052/9053):

* **COSE_Sign1** (tag 18): ``[protected: bstr .cbor {1: alg}, unprotected: {}, payload: bstr,
  signature: bstr]``, signed over ``Sig_structure = ["Signature1", protected, h'', payload]``.
* **ECDSA** ES256 (-7, P-256/SHA-256), ES384 (-35, P-384/SHA-384) and ES512 (-36,
  P-521/SHA-512), with the signature as raw ``r || s`` (each padded to the curve's coordinate
  size), through ``cryptography``.
* **COSE_Key** EC2, always encoded with four entries in the order TF-RMM's ``t_cose_key_encode``
  uses: ``{1: 2 (kty EC2), -1: crv, -2: x, -3: y}``.

CBOR is encoded and decoded with ``cbor2``. ``cbor2`` accepts indefinite-length items, trailing
bytes and duplicate map keys, so every decode here first runs :func:`check_well_formed`, which
rejects them (veraison's decoder forbids indefinite lengths; a token is one data item).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = [
    "ALGORITHMS",
    "COSE_SIGN1_TAG",
    "CRV_P256",
    "CRV_P384",
    "CRV_P521",
    "ES256",
    "ES384",
    "ES512",
    "HEADER_ALG",
    "KTY_EC2",
    "CborError",
    "CoseError",
    "EcAlgorithm",
    "Sign1",
    "SignatureError",
    "algorithm",
    "algorithm_for_key",
    "cbor_decode",
    "cbor_encode",
    "check_well_formed",
    "decode_cose_key",
    "ec_point_bytes",
    "encode_cose_key",
    "load_public_key",
    "parse_sign1",
    "private_key_from_scalar",
    "public_key_from_point",
    "sig_structure",
    "sign1",
]

COSE_SIGN1_TAG = 18
HEADER_ALG = 1
HEADER_CRIT = 2

ES256 = -7
ES384 = -35
ES512 = -36

KTY_EC2 = 2
CRV_P256 = 1
CRV_P384 = 2
CRV_P521 = 3

KEY_KTY = 1
KEY_CRV = -1
KEY_X = -2
KEY_Y = -3

_MAX_DEPTH = 32


class CborError(ValueError):
    """The bytes are not one well-formed, definite-length CBOR data item."""


class CoseError(ValueError):
    """A COSE structure or key is malformed or unsupported."""


class SignatureError(CoseError):
    """A COSE_Sign1 signature does not verify with the given key."""


@dataclass(frozen=True)
class EcAlgorithm:
    """A COSE ECDSA algorithm together with the curve it is used with."""

    alg: int
    name: str
    cose_crv: int
    curve_name: str  # cryptography's curve name, e.g. "secp384r1"
    jwk_crv: str  # "P-384"
    coord_size: int  # bytes per coordinate and per signature half
    hash_name: str  # IANA name of the signature's hash

    def curve(self) -> ec.EllipticCurve:
        return _CURVES[self.curve_name]()

    def hash(self) -> hashes.HashAlgorithm:
        return _HASHES[self.hash_name]()

    @property
    def signature_size(self) -> int:
        return 2 * self.coord_size

    @property
    def point_size(self) -> int:
        """Size of the SEC1 uncompressed point ``04 || x || y``."""
        return 1 + 2 * self.coord_size


_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1,
    "secp521r1": ec.SECP521R1,
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha-256": hashes.SHA256,
    "sha-384": hashes.SHA384,
    "sha-512": hashes.SHA512,
}

ALGORITHMS: dict[int, EcAlgorithm] = {
    ES256: EcAlgorithm(ES256, "ES256", CRV_P256, "secp256r1", "P-256", 32, "sha-256"),
    ES384: EcAlgorithm(ES384, "ES384", CRV_P384, "secp384r1", "P-384", 48, "sha-384"),
    ES512: EcAlgorithm(ES512, "ES512", CRV_P521, "secp521r1", "P-521", 66, "sha-512"),
}
_BY_CURVE = {a.curve_name: a for a in ALGORITHMS.values()}
_BY_COSE_CRV = {a.cose_crv: a for a in ALGORITHMS.values()}
_BY_JWK_CRV = {a.jwk_crv: a for a in ALGORITHMS.values()}
_BY_POINT_SIZE = {a.point_size: a for a in ALGORITHMS.values()}
_ECDSA = {a.alg: ec.ECDSA(a.hash()) for a in ALGORITHMS.values()}
_ECDSA_DETERMINISTIC = {
    a.alg: ec.ECDSA(a.hash(), deterministic_signing=True) for a in ALGORITHMS.values()
}


def algorithm(alg: int) -> EcAlgorithm:
    """The :class:`EcAlgorithm` for a COSE algorithm id (-7, -35, -36)."""
    try:
        return ALGORITHMS[alg]
    except (KeyError, TypeError):
        raise CoseError(
            f"unsupported COSE algorithm {alg!r} (need ES256, ES384 or ES512)"
        ) from None


def algorithm_for_key(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> EcAlgorithm:
    """The ECDSA algorithm that goes with a key's curve (P-256→ES256, P-384→ES384, P-521→ES512)."""
    try:
        return _BY_CURVE[key.curve.name]
    except KeyError:
        raise CoseError(f"unsupported curve {key.curve.name}") from None


# --------------------------------------------------------------------------------------------
# CBOR


def check_well_formed(data: bytes) -> None:
    """Raise :class:`CborError` unless ``data`` is exactly one well-formed CBOR item that uses
    definite lengths only and has no duplicate map keys.

    Rejected: indefinite-length strings/arrays/maps and the break code, reserved additional
    information values (28-30), two-byte simple values below 32, truncation, trailing bytes,
    duplicate keys (compared by value for integers and strings), nesting deeper than 32.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CborError(f"expected bytes, got {type(data).__name__}")
    buf = bytes(data)
    end = _scan(buf, 0, 0)
    if end != len(buf):
        raise CborError(f"{len(buf) - end} trailing byte(s) after the CBOR item at offset {end}")


def _head(buf: bytes, pos: int) -> tuple[int, int, int, int]:
    """Decode an initial byte and its argument: (major type, additional info, argument, next)."""
    n = len(buf)
    if pos >= n:
        raise CborError(f"truncated CBOR at offset {pos}")
    ib = buf[pos]
    mt, ai = ib >> 5, ib & 0x1F
    pos += 1
    if ai < 24:
        return mt, ai, ai, pos
    if ai <= 27:
        size = 1 << (ai - 24)
        if pos + size > n:
            raise CborError(f"truncated CBOR argument at offset {pos}")
        return mt, ai, int.from_bytes(buf[pos:pos + size], "big"), pos + size
    if ai == 31:
        if mt in (2, 3, 4, 5):
            raise CborError(f"indefinite-length item at offset {pos - 1} (definite lengths only)")
        if mt == 7:
            raise CborError(f"unexpected break code at offset {pos - 1}")
        raise CborError(f"invalid additional information 31 for major type {mt} at {pos - 1}")
    raise CborError(f"reserved additional information {ai} at offset {pos - 1}")


def _scan(buf: bytes, pos: int, depth: int) -> int:
    if depth > _MAX_DEPTH:
        raise CborError(f"CBOR nesting deeper than {_MAX_DEPTH}")
    mt, ai, arg, pos = _head(buf, pos)
    if mt in (0, 1):
        return pos
    if mt in (2, 3):
        end = pos + arg
        if end > len(buf):
            raise CborError(f"truncated string at offset {pos}")
        return end
    if mt == 4:
        if arg > len(buf) - pos:
            raise CborError(f"array of {arg} items cannot fit at offset {pos}")
        for _ in range(arg):
            pos = _scan(buf, pos, depth + 1)
        return pos
    if mt == 5:
        if 2 * arg > len(buf) - pos:
            raise CborError(f"map of {arg} pairs cannot fit at offset {pos}")
        seen: set[object] = set()
        for _ in range(arg):
            key_start = pos
            key_mt, _key_ai, key_arg, key_body = _head(buf, pos)
            pos = _scan(buf, pos, depth + 1)
            ident: object
            if key_mt in (0, 1):
                ident = (key_mt, key_arg)
            elif key_mt in (2, 3):
                ident = (key_mt, buf[key_body:pos])
            else:
                ident = buf[key_start:pos]
            if ident in seen:
                raise CborError(f"duplicate map key at offset {key_start}")
            seen.add(ident)
            pos = _scan(buf, pos, depth + 1)
        return pos
    if mt == 6:
        return _scan(buf, pos, depth + 1)
    # major type 7: simple values and floats
    if ai == 24 and arg < 32:
        raise CborError(f"two-byte simple value {arg} < 32 at offset {pos - 2}")
    return pos


def cbor_decode(data: bytes) -> Any:
    """Decode one definite-length CBOR item (see :func:`check_well_formed`)."""
    check_well_formed(data)
    try:
        return cbor2.loads(bytes(data))
    except Exception as err:  # cbor2 raises CBORDecodeError subclasses (and ValueError)
        raise CborError(f"CBOR decoding failed: {err}") from None


def cbor_encode(obj: Any) -> bytes:
    """Encode with definite lengths, keeping map insertion order (no canonical sorting)."""
    return cbor2.dumps(obj, canonical=False)


# --------------------------------------------------------------------------------------------
# COSE_Sign1

# Protected headers are constant per algorithm: exactly {1: alg}, as TF-RMM writes them.
_PROTECTED = {alg: cbor_encode({HEADER_ALG: alg}) for alg in ALGORITHMS}


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """``Sig_structure = ["Signature1", body_protected, external_aad, payload]`` (RFC 9052 §4.4)."""
    return cbor_encode(["Signature1", protected, external_aad, payload])


def _raw_signature(der: bytes, size: int) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def sign1(
    payload: bytes,
    key: ec.EllipticCurvePrivateKey,
    alg: int | None = None,
    *,
    deterministic: bool = False,
) -> bytes:
    """Build a tagged COSE_Sign1 (tag 18) over ``payload`` (already-encoded claims).

    The protected header is exactly ``{1: alg}``, the unprotected header an empty map. ``alg``
    defaults to the algorithm of the key's curve and must match it. With ``deterministic`` the
    ECDSA nonce follows RFC 6979, so the same inputs give the same bytes.
    """
    info = algorithm_for_key(key) if alg is None else algorithm(alg)
    if key.curve.name != info.curve_name:
        raise CoseError(f"{info.name} needs a {info.jwk_crv} key, got {key.curve.name}")
    protected = _PROTECTED[info.alg]
    table = _ECDSA_DETERMINISTIC if deterministic else _ECDSA
    der = key.sign(sig_structure(protected, payload), table[info.alg])
    signature = _raw_signature(der, info.coord_size)
    return cbor_encode(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))


@dataclass(frozen=True)
class Sign1:
    """A parsed COSE_Sign1: the raw protected header and payload bytes exactly as signed."""

    protected: bytes
    protected_header: Mapping[Any, Any]
    unprotected: Mapping[Any, Any]
    payload: bytes
    signature: bytes
    alg: int
    info: EcAlgorithm = field(repr=False)

    def to_be_signed(self) -> bytes:
        return sig_structure(self.protected, self.payload)

    def verify(self, key: ec.EllipticCurvePublicKey) -> None:
        """Check the signature with ``key``; raise :class:`SignatureError` if it does not verify
        (wrong curve for the algorithm, wrong length, or a bad signature)."""
        if key.curve.name != self.info.curve_name:
            raise SignatureError(
                f"{self.info.name} signature but the key is on {key.curve.name} "
                f"(needs {self.info.jwk_crv})"
            )
        size = self.info.coord_size
        if len(self.signature) != 2 * size:
            raise SignatureError(
                f"{self.info.name} signature must be {2 * size} bytes, got {len(self.signature)}"
            )
        r = int.from_bytes(self.signature[:size], "big")
        s = int.from_bytes(self.signature[size:], "big")
        try:
            key.verify(encode_dss_signature(r, s), self.to_be_signed(), _ECDSA[self.alg])
        except InvalidSignature:
            raise SignatureError(f"{self.info.name} signature does not verify") from None


def parse_sign1(data: bytes | Any, *, require_tag: bool = True) -> Sign1:
    """Parse a tagged COSE_Sign1 from bytes (or from an already-decoded ``CBORTag``).

    Checks: tag 18, a 4-element array, bstr protected header that decodes to a map with an
    ES256/ES384/ES512 ``alg`` and no ``crit`` parameter, a map as unprotected header (which must
    not repeat ``alg``), a bstr payload and a bstr signature.
    """
    obj = cbor_decode(bytes(data)) if isinstance(data, bytes | bytearray | memoryview) else data
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != COSE_SIGN1_TAG:
            raise CoseError(f"expected COSE_Sign1 tag 18, found tag {obj.tag}")
        obj = obj.value
    elif require_tag:
        raise CoseError("COSE_Sign1 is not tagged (tag 18 missing)")
    if not isinstance(obj, list | tuple) or len(obj) != 4:
        raise CoseError("COSE_Sign1 must be an array of 4 elements")
    protected, unprotected, payload, signature = obj
    if not isinstance(protected, bytes):
        raise CoseError("COSE_Sign1 protected header is not a bstr")
    header = cbor_decode(protected) if protected else {}
    if not isinstance(header, Mapping):
        raise CoseError("COSE_Sign1 protected header is not a map")
    if HEADER_CRIT in header:
        raise CoseError("COSE_Sign1 protected header has critical parameters (unsupported)")
    if not isinstance(unprotected, Mapping):
        raise CoseError("COSE_Sign1 unprotected header is not a map")
    if HEADER_ALG in unprotected:
        raise CoseError("COSE_Sign1 alg must be in the protected header only")
    if HEADER_ALG not in header:
        raise CoseError("COSE_Sign1 protected header has no alg (label 1)")
    info = algorithm(header[HEADER_ALG])
    if not isinstance(payload, bytes):
        raise CoseError("COSE_Sign1 payload is not a bstr (detached payloads are not supported)")
    if not isinstance(signature, bytes):
        raise CoseError("COSE_Sign1 signature is not a bstr")
    return Sign1(protected, header, unprotected, payload, signature, info.alg, info)


# --------------------------------------------------------------------------------------------
# Keys


def ec_point_bytes(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """The SEC1 uncompressed point ``04 || x || y`` (97 bytes for P-384)."""
    return public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def public_key_from_point(point: bytes) -> ec.EllipticCurvePublicKey:
    """Load a SEC1 uncompressed point; the curve follows from its length (65/97/133 bytes)."""
    info = _BY_POINT_SIZE.get(len(point))
    if info is None or point[:1] != b"\x04":
        raise CoseError(
            f"not an uncompressed EC point ({len(point)} bytes; need 04||x||y of 65, 97 or 133)"
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(info.curve(), point)
    except ValueError as err:
        raise CoseError(f"invalid {info.jwk_crv} point: {err}") from None


def encode_cose_key(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """COSE_Key bytes ``{1: 2, -1: crv, -2: x, -3: y}`` (107 bytes for P-384), in that order."""
    info = algorithm_for_key(public_key)
    point = ec_point_bytes(public_key)
    size = info.coord_size
    x, y = point[1:1 + size], point[1 + size:]
    return cbor_encode({KEY_KTY: KTY_EC2, KEY_CRV: info.cose_crv, KEY_X: x, KEY_Y: y})


def decode_cose_key(data: bytes) -> ec.EllipticCurvePublicKey:
    """Load an EC2 COSE_Key (kty 2, crv 1/2/3, x and y as full-size bstr; no compressed y)."""
    key = cbor_decode(data)
    if not isinstance(key, Mapping):
        raise CoseError("COSE_Key is not a map")
    if key.get(KEY_KTY) != KTY_EC2:
        raise CoseError(f"COSE_Key kty must be 2 (EC2), got {key.get(KEY_KTY)!r}")
    crv = key.get(KEY_CRV)
    info = _BY_COSE_CRV.get(crv) if isinstance(crv, int) else None
    if info is None:
        raise CoseError(f"COSE_Key crv {crv!r} unsupported (need 1 P-256, 2 P-384, 3 P-521)")
    x, y = key.get(KEY_X), key.get(KEY_Y)
    for label, value in (("x", x), ("y", y)):
        if not isinstance(value, bytes) or len(value) != info.coord_size:
            raise CoseError(f"COSE_Key {label} must be a {info.coord_size}-byte bstr")
    assert isinstance(x, bytes) and isinstance(y, bytes)
    if -4 in key:
        raise CoseError("COSE_Key must not carry a private key (label -4)")
    return public_key_from_point(b"\x04" + x + y)


def private_key_from_scalar(
    scalar: bytes | int, curve: str = "P-384"
) -> ec.EllipticCurvePrivateKey:
    """A private key from its raw scalar (as EL3 hands the RAK to the RMM: a P-384 scalar)."""
    info = _BY_JWK_CRV.get(curve)
    if info is None:
        raise CoseError(f"unsupported curve {curve!r}")
    value = int.from_bytes(scalar, "big") if isinstance(scalar, bytes) else scalar
    try:
        return ec.derive_private_key(value, info.curve())
    except ValueError as err:
        raise CoseError(f"invalid {curve} private scalar: {err}") from None


def _b64url(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise CoseError(f"JWK {what} is not a string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as err:
        raise CoseError(f"JWK {what} is not base64url: {err}") from None


def _jwk_public_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    if jwk.get("kty") != "EC":
        raise CoseError(f"JWK kty must be 'EC', got {jwk.get('kty')!r}")
    info = _BY_JWK_CRV.get(str(jwk.get("crv")))
    if info is None:
        raise CoseError(f"JWK crv {jwk.get('crv')!r} unsupported")
    x, y = _b64url(jwk.get("x"), "x"), _b64url(jwk.get("y"), "y")
    if len(x) != info.coord_size or len(y) != info.coord_size:
        raise CoseError(f"JWK x/y must be {info.coord_size} bytes for {info.jwk_crv}")
    return public_key_from_point(b"\x04" + x + y)


def load_public_key(
    data: bytes | str | Mapping[str, Any] | ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey,
) -> ec.EllipticCurvePublicKey:
    """Load an EC public key from a key object, PEM (public or private key; a private key gives
    its public half), DER SubjectPublicKeyInfo, a JWK (mapping or JSON text), or a COSE_Key.

    Raises :class:`CoseError` when the data is not an EC key on P-256/P-384/P-521 or the point is
    not on the curve.
    """
    if isinstance(data, ec.EllipticCurvePublicKey):
        key: Any = data
    elif isinstance(data, ec.EllipticCurvePrivateKey):
        key = data.public_key()
    elif isinstance(data, Mapping):
        key = _jwk_public_key(data)
    else:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        stripped = raw.strip()
        if stripped.startswith(b"-----BEGIN"):
            try:
                if b"PRIVATE KEY" in stripped.split(b"\n", 1)[0]:
                    key = serialization.load_pem_private_key(stripped, password=None).public_key()
                else:
                    key = serialization.load_pem_public_key(stripped)
            except (ValueError, TypeError) as err:
                raise CoseError(f"cannot load PEM key: {err}") from None
        elif stripped.startswith(b"{"):
            try:
                jwk = json.loads(stripped)
            except ValueError as err:
                raise CoseError(f"not a JWK: {err}") from None
            if not isinstance(jwk, dict):
                raise CoseError("JWK is not a JSON object")
            key = _jwk_public_key(jwk)
        else:
            try:
                key = serialization.load_der_public_key(raw)
            except (ValueError, TypeError):
                try:
                    key = decode_cose_key(raw)
                except (CoseError, CborError):
                    raise CoseError("not a PEM, DER, JWK or COSE_Key EC public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CoseError(f"not an EC public key ({type(key).__name__})")
    algorithm_for_key(key)
    return key
