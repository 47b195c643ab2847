"""Building CCA attestation tokens: realm token, platform token and the CCA token wrapper.

Who calls what (``spec/rmm-abi.md`` §11, §12.2; ``spec/attestation.md`` §1):

* **EL3** holds the CPAK. When the RMM asks for the platform token (RMM_GET_PLAT_TOKEN) with a
  challenge, EL3 calls :func:`build_platform_token` with ``PlatformClaims(challenge=...)``.
* **The RMM** holds the RAK (P-384). At boot it computes ``rak_claim = rak_claim_bytes(RAK
  public key)`` once and asks EL3 for a platform token with
  ``binding_challenge(rak_claim)`` (SHA-256 of the COSE_Key bytes) as challenge, and caches it.
  For RSI_ATTESTATION_TOKEN_INIT/CONTINUE it builds the realm token with
  :func:`build_realm_token` and wraps both with :func:`wrap_cca_token`.

Example::

    rak = ec.generate_private_key(ec.SECP384R1())
    rak_claim = rak_claim_bytes(rak.public_key())
    platform = build_platform_token(PlatformClaims(challenge=binding_challenge(rak_claim), ...),
                                    cpak)
    realm = build_realm_token(RealmClaims(challenge=..., personalization_value=..., rim=...,
                                          rems=(...,) * 4), rak, rak_claim=rak_claim)
    token = wrap_cca_token(platform, realm, fmt="cmw")

All builders validate sizes and types against the claim rules (``spec/attestation.md`` §2/§3)
and raise ``ValueError`` for claims a verifier would reject.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec

from . import claims as c
from .cose import ec_point_bytes, encode_cose_key, sign1

__all__ = [
    "PlatformClaims",
    "RealmClaims",
    "SwComponent",
    "TokenFormat",
    "binding_challenge",
    "build_platform_token",
    "build_realm_token",
    "rak_claim_bytes",
    "wrap_cca_token",
]

TokenFormat = Literal["cmw", "legacy"]


def _need_bytes(name: str, value: object, sizes: Sequence[int] | None = None) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise ValueError(f"{name} must be bytes, got {type(value).__name__}")
    if sizes is not None and len(value) not in sizes:
        want = " or ".join(str(s) for s in sizes)
        raise ValueError(f"{name} must be {want} bytes, got {len(value)}")
    return bytes(value)


def _need_text(name: str, value: object, allowed: Sequence[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    if allowed is not None and value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


@dataclass(frozen=True)
class SwComponent:
    """One entry of ``cca-platform-sw-components`` (claim 2399)."""

    measurement: bytes
    """Measurement value (key 2), 32/48/64 bytes."""
    signer_id: bytes
    """Signer id (key 5), 32/48/64 bytes: hash of the signing key."""
    component_type: str | None = None
    """Component type (key 1), e.g. ``"BL"``, ``"RMM"``."""
    version: str | None = None
    """Version (key 4)."""
    hash_algo: str | None = None
    """Hash algorithm of the measurement (key 6), e.g. ``"sha-256"``."""

    def to_map(self) -> dict[int, Any]:
        out: dict[int, Any] = {}
        if self.component_type is not None:
            out[c.SW_COMPONENT_TYPE] = _need_text("component_type", self.component_type)
        out[c.SW_MEASUREMENT_VALUE] = _need_bytes(
            "sw component measurement", self.measurement, c.MEASUREMENT_SIZES
        )
        if self.version is not None:
            out[c.SW_VERSION] = _need_text("version", self.version)
        out[c.SW_SIGNER_ID] = _need_bytes("sw component signer_id", self.signer_id,
                                          c.MEASUREMENT_SIZES)
        if self.hash_algo is not None:
            out[c.SW_HASH_ALGO_ID] = _need_text("hash_algo", self.hash_algo)
        return out


@dataclass(frozen=True)
class PlatformClaims:
    """Claims of the CCA platform token (``spec/attestation.md`` §3)."""

    challenge: bytes
    """Claim 10: the hash of the RAK claim (see :func:`binding_challenge`), 32/48/64 bytes."""
    implementation_id: bytes
    """Claim 2396, 32 bytes."""
    instance_id: bytes
    """Claim 256: UEID, 33 bytes, first byte 0x01."""
    config: bytes
    """Claim 2401: platform configuration, non-empty."""
    lifecycle: int
    """Claim 2395, e.g. ``Lifecycle.SECURED`` (0x3000) or 0x3003."""
    sw_components: Sequence[SwComponent]
    """Claim 2399, at least one entry."""
    hash_algo: str = "sha-256"
    """Claim 2402: hash algorithm of the measurements."""
    verification_service: str | None = None
    """Claim 2400 (optional): URL of the verification service."""
    profile: str = c.PROFILE_PLATFORM
    """Claim 265: ``tag:arm.com,2023:cca_platform#1.0.0`` or the legacy CCA-SSD profile."""

    def to_map(self) -> dict[int, Any]:
        """The claims map in spec order (265, 10, 2396, 256, 2401, 2395, 2399, 2400, 2402)."""
        instance_id = _need_bytes("instance_id", self.instance_id, (c.PLATFORM_INSTANCE_ID_SIZE,))
        if instance_id[0] != c.UEID_TYPE_RAND:
            raise ValueError("instance_id must start with 0x01 (random UEID)")
        config = _need_bytes("config", self.config)
        if not config:
            raise ValueError("config must not be empty")
        if c.decode_lifecycle(self.lifecycle) is None:
            raise ValueError(f"lifecycle {self.lifecycle!r} is outside the defined ranges")
        if not self.sw_components:
            raise ValueError("at least one sw component is required")
        out: dict[int, Any] = {
            c.PLATFORM_PROFILE: _need_text("profile", self.profile, c.PLATFORM_PROFILES),
            c.PLATFORM_CHALLENGE: _need_bytes("challenge", self.challenge,
                                              c.PLATFORM_CHALLENGE_SIZES),
            c.PLATFORM_IMPLEMENTATION_ID: _need_bytes(
                "implementation_id", self.implementation_id, (c.PLATFORM_IMPLEMENTATION_ID_SIZE,)
            ),
            c.PLATFORM_INSTANCE_ID: instance_id,
            c.PLATFORM_CONFIG: config,
            c.PLATFORM_LIFECYCLE: int(self.lifecycle),
            c.PLATFORM_SW_COMPONENTS: [sw.to_map() for sw in self.sw_components],
        }
        if self.verification_service is not None:
            out[c.PLATFORM_VERIFICATION_SERVICE] = _need_text(
                "verification_service", self.verification_service
            )
        out[c.PLATFORM_HASH_ALGO_ID] = _need_text("hash_algo", self.hash_algo,
                                                  c.PLATFORM_HASH_ALGORITHMS)
        return out


@dataclass(frozen=True)
class RealmClaims:
    """Claims of the realm token (``spec/attestation.md`` §2; DEN0137 A7.2.3.2).

    The RAK public key claim (44237) is not a field: :func:`build_realm_token` derives it from
    the signing key, so it always matches the signature.
    """

    challenge: bytes
    """Claim 10: the 64-byte challenge from RSI_ATTESTATION_TOKEN_INIT (X1-X8)."""
    personalization_value: bytes
    """Claim 44235: RPV, 64 bytes (RmiRealmParams.rpv)."""
    rim: bytes
    """Claim 44238: realm initial measurement, hash-length (32/48/64) bytes."""
    rems: Sequence[bytes]
    """Claim 44239: the four realm extensible measurements, 32/48/64 bytes each."""
    hash_algo: str = "sha-256"
    """Claim 44236: realm hash algorithm (RHA), ``"sha-256"``/``"sha-512"`` (``"sha-384"``)."""
    rak_hash_algo: str = "sha-256"
    """Claim 44240: hash used for the platform binding; TF-RMM always uses ``"sha-256"``."""
    profile: str | None = c.PROFILE_REALM_1_0
    """Claim 265: realm#1.0.0 (default), realm#2.0.0, or None for the legacy form (no profile,
    RAK as a raw SEC1 point)."""
    instance_id: bytes | None = None
    """Claim 256 (realm#2.0.0): 33 bytes, 0x01 first."""
    mec_policy: int | None = None
    """Claim 44243 (realm#2.0.0): 0 shared, 1 private."""
    extra: dict[int, Any] = field(default_factory=dict)
    """Further claims appended as-is (e.g. 44244 LFA policy), for experiments."""

    @property
    def legacy(self) -> bool:
        """True for the no-profile form, whose RAK claim is a raw EC point."""
        return self.profile is None

    def to_map(self, rak_claim: bytes) -> dict[int, Any]:
        """The claims map in TF-RMM order (10, [256], 44235, 44237, 44236, 44240, [44243], 265,
        44238, 44239); ``rak_claim`` is the value of claim 44237."""
        if len(self.rems) != c.REM_COUNT:
            raise ValueError(f"rems must have {c.REM_COUNT} entries, got {len(self.rems)}")
        if self.profile is not None and self.profile not in c.REALM_PROFILES:
            raise ValueError(f"unknown realm profile {self.profile!r}")
        v2 = self.profile == c.PROFILE_REALM_2_0
        if v2 and (self.instance_id is None or self.mec_policy is None):
            raise ValueError("realm#2.0.0 needs instance_id and mec_policy")
        out: dict[int, Any] = {
            c.REALM_CHALLENGE: _need_bytes("challenge", self.challenge, (c.REALM_CHALLENGE_SIZE,)),
        }
        if self.instance_id is not None:
            iid = _need_bytes("instance_id", self.instance_id, (c.REALM_INSTANCE_ID_SIZE,))
            if iid[0] != c.UEID_TYPE_RAND:
                raise ValueError("instance_id must start with 0x01 (random UEID)")
            out[c.REALM_INSTANCE_ID] = iid
        out[c.REALM_PERSONALIZATION_VALUE] = _need_bytes(
            "personalization_value", self.personalization_value,
            (c.REALM_PERSONALIZATION_VALUE_SIZE,),
        )
        out[c.REALM_PUBLIC_KEY] = _need_bytes("rak_claim", rak_claim)
        out[c.REALM_HASH_ALGO_ID] = _need_text("hash_algo", self.hash_algo,
                                               c.REALM_HASH_ALGORITHMS)
        out[c.REALM_PUBLIC_KEY_HASH_ALGO_ID] = _need_text(
            "rak_hash_algo", self.rak_hash_algo, c.BINDING_HASH_ALGORITHMS
        )
        if self.mec_policy is not None:
            if self.mec_policy not in (c.MEC_POLICY_SHARED, c.MEC_POLICY_PRIVATE):
                raise ValueError("mec_policy must be 0 (shared) or 1 (private)")
            out[c.REALM_MEC_POLICY] = int(self.mec_policy)
        if self.profile is not None:
            out[c.REALM_PROFILE] = self.profile
        out[c.REALM_INITIAL_MEASUREMENT] = _need_bytes("rim", self.rim, c.MEASUREMENT_SIZES)
        out[c.REALM_EXTENSIBLE_MEASUREMENTS] = [
            _need_bytes(f"rems[{i}]", rem, c.MEASUREMENT_SIZES) for i, rem in enumerate(self.rems)
        ]
        for key, value in self.extra.items():
            if key in out:
                raise ValueError(f"extra claim {key} duplicates a standard claim")
            out[key] = value
        return out


def rak_claim_bytes(public_key: ec.EllipticCurvePublicKey, *, legacy: bool = False) -> bytes:
    """The value of realm claim 44237 for a RAK public key: the COSE_Key bytes
    ``{1: 2, -1: crv, -2: x, -3: y}`` (107 bytes for P-384), or with ``legacy`` the raw SEC1
    point ``04||x||y`` (97 bytes) of the no-profile form."""
    return ec_point_bytes(public_key) if legacy else encode_cose_key(public_key)


def binding_challenge(rak_claim: bytes, alg: str = "sha-256") -> bytes:
    """The platform challenge that binds the platform token to a RAK: ``H(rak_claim)`` with the
    IANA-named hash (TF-RMM: SHA-256, 32 bytes)."""
    return c.hash_digest(alg, rak_claim)


def build_realm_token(
    claims: RealmClaims,
    rak_private_key: ec.EllipticCurvePrivateKey,
    *,
    rak_claim: bytes | None = None,
    deterministic: bool = False,
) -> bytes:
    """The realm token: a tagged COSE_Sign1 (ES384 with the P-384 RAK; ES256/ES512 for other
    curves) over the realm claims.

    ``rak_claim`` may pass the cached :func:`rak_claim_bytes` of the key's public half (the RMM
    computes it once at boot); otherwise it is derived here, in the form ``claims.profile``
    implies. ``deterministic`` selects RFC 6979 nonces (same inputs → same bytes).
    """
    if rak_claim is None:
        rak_claim = rak_claim_bytes(rak_private_key.public_key(), legacy=claims.legacy)
    payload = cbor2.dumps(claims.to_map(rak_claim))
    return sign1(payload, rak_private_key, deterministic=deterministic)


def build_platform_token(
    claims: PlatformClaims,
    cpak: ec.EllipticCurvePrivateKey,
    *,
    deterministic: bool = False,
) -> bytes:
    """The platform token: a tagged COSE_Sign1 signed with the CPAK (ES256/ES384/ES512 by its
    curve; the TF-M/RSE reference CPAK is P-384 → ES384)."""
    payload = cbor2.dumps(claims.to_map())
    return sign1(payload, cpak, deterministic=deterministic)


def wrap_cca_token(platform: bytes, realm: bytes, fmt: TokenFormat = "cmw") -> bytes:
    """The CCA token around a platform and a realm token (both tagged COSE_Sign1 bytes).

    ``"cmw"``: ``#6.907({44234: [263, platform], 44241: [263, realm]})`` (RMM >= 1.1, TF-RMM
    default); ``"legacy"``: ``#6.399({44234: platform, 44241: realm})`` (RMM 1.0 text).
    """
    if not isinstance(platform, bytes) or not isinstance(realm, bytes):
        raise ValueError("platform and realm tokens must be bytes")
    if fmt == "cmw":
        return cbor2.dumps(cbor2.CBORTag(c.TAG_CMW_COLLECTION, {
            c.CCA_PLATFORM_TOKEN: [c.COAP_EAT_CWT, platform],
            c.CCA_REALM_DELEGATED_TOKEN: [c.COAP_EAT_CWT, realm],
        }))
    if fmt == "legacy":
        return cbor2.dumps(cbor2.CBORTag(c.TAG_CCA_TOKEN_LEGACY, {
            c.CCA_PLATFORM_TOKEN: platform,
            c.CCA_REALM_DELEGATED_TOKEN: realm,
        }))
    raise ValueError(f"token format must be 'cmw' or 'legacy', got {fmt!r}")
