"""EL3's platform attestation (standing in for the hardware root of trust / RSE).

* The CCA Platform Attestation Key (CPAK, P-384 by default) comes from a PEM file
  (``PlatformConfig.cpak_pem``) or is derived deterministically from ``PlatformConfig.seed``.
* Measured boot: EL3 measures the firmware images the platform loads — the monitor itself
  (BL31) and the RMM — into software-component claims. A firmware image here is the
  canonical byte stream of that component's sources, so any change of the model's firmware
  changes its measurement.
* The Realm Attestation Key (RAK, P-384) is derived from the same platform secret and handed
  to the RMM with RMM_ATTEST_GET_REALM_KEY; the platform token for the RMM's challenge (the
  hash of the RAK's COSE_Key) comes in pieces with RMM_ATTEST_GET_PLAT_TOKEN (rmm-abi §11.1,
  §12.2).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..attestation.claims import PROFILE_PLATFORM
from ..attestation.token import PlatformClaims, SwComponent, build_platform_token
from ..config import PlatformConfig

LIFECYCLE_SECURED = 0x3000
VERIFICATION_SERVICE = "https://veraison.example/.well-known/veraison/verification"
IMPLEMENTATION_ID = hashlib.sha256(b"ccasim executable CCA platform model").digest()
FIRMWARE_SIGNER = hashlib.sha256(b"ccasim firmware signing key").digest()
_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
    "581a0db248b0a77aecec196accc52973", 16)
_PACKAGE = Path(__file__).resolve().parents[1]


def derive_p384_key(seed: int, purpose: bytes) -> ec.EllipticCurvePrivateKey:
    """A P-384 private key derived from the platform seed (deterministic across runs)."""
    digest = hashlib.sha512(b"ccasim/" + purpose + b"/" + str(seed).encode()).digest()
    scalar = int.from_bytes(digest, "big") % (_P384_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP384R1())


def load_cpak(config: PlatformConfig) -> ec.EllipticCurvePrivateKey:
    if config.cpak_pem is None:
        return derive_p384_key(config.seed, b"cpak")
    text = config.cpak_pem
    data = text.encode() if "-----BEGIN" in text else Path(text).read_bytes()
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CPAK must be an elliptic-curve private key")
    return key


@cache
def firmware_image(component: str) -> bytes:
    """The canonical image of a firmware component: its source files, in path order."""
    roots = {"BL31": ["firmware"], "RMM": ["rmm"]}[component]
    parts = []
    for root in roots:
        for path in sorted((_PACKAGE / root).rglob("*.py")):
            rel = path.relative_to(_PACKAGE).as_posix().encode()
            parts.append(len(rel).to_bytes(4, "little") + rel + path.read_bytes())
    return b"".join(parts)


class PlatformAttestation:
    """The CPAK, the RAK, the measured-boot log and platform tokens."""

    def __init__(self, config: PlatformConfig, version: str) -> None:
        self.config = config
        self.cpak = load_cpak(config)
        self.rak = derive_p384_key(config.seed, b"rak")
        self.sw_components = [
            SwComponent(hashlib.sha256(firmware_image(name)).digest(), FIRMWARE_SIGNER,
                        component_type=name, version=version, hash_algo="sha-256")
            for name in ("BL31", "RMM")
        ]
        public = self.cpak.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        self.instance_id = b"\x01" + hashlib.sha256(public).digest()
        self.platform_config = hashlib.sha256(repr((
            config.dram_size, config.pa_bits, config.cpus, config.hash_algorithms,
            config.vmid_bits, config.num_bps, config.num_wps, config.pmu_counters,
            config.sve_vl)).encode()).digest()

    def cpak_public_pem(self) -> str:
        return self.cpak.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
        ).decode()

    def rak_private_bytes(self) -> bytes:
        """The RAK's private scalar, big-endian, 48 bytes (what EL3 hands the RMM)."""
        return self.rak.private_numbers().private_value.to_bytes(48, "big")

    def platform_token(self, challenge: bytes) -> bytes:
        claims = PlatformClaims(
            challenge=challenge,
            implementation_id=IMPLEMENTATION_ID,
            instance_id=self.instance_id,
            config=self.platform_config,
            lifecycle=LIFECYCLE_SECURED,
            sw_components=self.sw_components,
            hash_algo="sha-256",
            verification_service=VERIFICATION_SERVICE,
            profile=PROFILE_PLATFORM,
        )
        return build_platform_token(claims, self.cpak)
