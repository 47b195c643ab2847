"""Claim keys, names, profiles and identifiers of the Arm CCA attestation token.

Digest: ``spec/attestation.md`` §1-§4 (draft-ffm-rats-cca-token encoding, as TF-RMM,
veraison/ccatoken and the TF-M iat-verifier implement it); RMM spec DEN0137 A7.2.3.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum
from typing import Final

# ---------------------------------------------------------------------------------------------
# Top level (§1)

TAG_CMW_COLLECTION: Final = 907
"""CMW collection tag: ``#6.907({44234: [263, bstr], 44241: [263, bstr]})``."""
TAG_CCA_TOKEN_LEGACY: Final = 399
"""Older EAT collection tag: ``#6.399({44234: bstr, 44241: bstr})``."""
COAP_EAT_CWT: Final = 263
"""CoAP content format of an EAT carried as a CWT: the type indicator of a CMW entry."""
CCA_PLATFORM_TOKEN: Final = 44234  # 0xACCA
CCA_REALM_DELEGATED_TOKEN: Final = 44241  # 0xACD1

TOKEN_FORMATS: Final = ("cmw", "legacy")
"""``"cmw"`` = tag 907 with ``[263, bstr]`` entries; ``"legacy"`` = tag 399 with bare bstr."""

# ---------------------------------------------------------------------------------------------
# Profiles

PROFILE_REALM_1_0: Final = "tag:arm.com,2023:realm#1.0.0"
PROFILE_REALM_2_0: Final = "tag:arm.com,2024:realm#2.0.0"
PROFILE_PLATFORM: Final = "tag:arm.com,2023:cca_platform#1.0.0"
PROFILE_PLATFORM_LEGACY: Final = "http://arm.com/CCA-SSD/1.0.0"

REALM_PROFILES: Final = (PROFILE_REALM_1_0, PROFILE_REALM_2_0)
PLATFORM_PROFILES: Final = (PROFILE_PLATFORM, PROFILE_PLATFORM_LEGACY)

# ---------------------------------------------------------------------------------------------
# Realm claims (§2; DEN0137 A7.2.3.2)

REALM_CHALLENGE: Final = 10
REALM_INSTANCE_ID: Final = 256
REALM_PROFILE: Final = 265
REALM_PERSONALIZATION_VALUE: Final = 44235
REALM_HASH_ALGO_ID: Final = 44236
REALM_PUBLIC_KEY: Final = 44237
REALM_INITIAL_MEASUREMENT: Final = 44238
REALM_EXTENSIBLE_MEASUREMENTS: Final = 44239
REALM_PUBLIC_KEY_HASH_ALGO_ID: Final = 44240
REALM_MEC_POLICY: Final = 44243
REALM_LFA_POLICY: Final = 44244
REALM_DEVICES_TOKEN_HASH: Final = 44257

REALM_CLAIM_NAMES: Final[dict[int, str]] = {
    REALM_CHALLENGE: "cca-realm-challenge",
    REALM_INSTANCE_ID: "cca-realm-instance-id",
    REALM_PROFILE: "cca-realm-profile",
    REALM_PERSONALIZATION_VALUE: "cca-realm-personalization-value",
    REALM_HASH_ALGO_ID: "cca-realm-hash-algo-id",
    REALM_PUBLIC_KEY: "cca-realm-public-key",
    REALM_INITIAL_MEASUREMENT: "cca-realm-initial-measurement",
    REALM_EXTENSIBLE_MEASUREMENTS: "cca-realm-extensible-measurements",
    REALM_PUBLIC_KEY_HASH_ALGO_ID: "cca-realm-public-key-hash-algo-id",
    REALM_MEC_POLICY: "cca-realm-mec-policy",
    REALM_LFA_POLICY: "cca-realm-lfa-policy",
    REALM_DEVICES_TOKEN_HASH: "cca-realm-devices-token-hash",
}

REALM_CLAIM_ORDER: Final = (
    REALM_CHALLENGE,
    REALM_INSTANCE_ID,
    REALM_PERSONALIZATION_VALUE,
    REALM_PUBLIC_KEY,
    REALM_HASH_ALGO_ID,
    REALM_PUBLIC_KEY_HASH_ALGO_ID,
    REALM_MEC_POLICY,
    REALM_PROFILE,
    REALM_INITIAL_MEASUREMENT,
    REALM_EXTENSIBLE_MEASUREMENTS,
)
"""The order in which TF-RMM writes realm claims (256 and 44243 only for RMM >= 1.1/2.0)."""

REALM_CHALLENGE_SIZE: Final = 64
REALM_PERSONALIZATION_VALUE_SIZE: Final = 64
REALM_INSTANCE_ID_SIZE: Final = 33
REM_COUNT: Final = 4
MEASUREMENT_SIZES: Final = (32, 48, 64)

MEC_POLICY_SHARED: Final = 0
MEC_POLICY_PRIVATE: Final = 1
MEC_POLICY_TEXT: Final = {"shared": MEC_POLICY_SHARED, "private": MEC_POLICY_PRIVATE}
"""RMM 1.1-alp12/13 wrote the MEC policy as text; RMM 2.0 as an int."""

# ---------------------------------------------------------------------------------------------
# Platform claims (§3)

PLATFORM_CHALLENGE: Final = 10
PLATFORM_INSTANCE_ID: Final = 256
PLATFORM_PROFILE: Final = 265
PLATFORM_LIFECYCLE: Final = 2395
PLATFORM_IMPLEMENTATION_ID: Final = 2396
PLATFORM_SW_COMPONENTS: Final = 2399
PLATFORM_VERIFICATION_SERVICE: Final = 2400
PLATFORM_CONFIG: Final = 2401
PLATFORM_HASH_ALGO_ID: Final = 2402

PLATFORM_CLAIM_NAMES: Final[dict[int, str]] = {
    PLATFORM_PROFILE: "cca-platform-profile",
    PLATFORM_CHALLENGE: "cca-platform-challenge",
    PLATFORM_IMPLEMENTATION_ID: "cca-platform-implementation-id",
    PLATFORM_INSTANCE_ID: "cca-platform-instance-id",
    PLATFORM_CONFIG: "cca-platform-config",
    PLATFORM_LIFECYCLE: "cca-platform-lifecycle",
    PLATFORM_SW_COMPONENTS: "cca-platform-sw-components",
    PLATFORM_VERIFICATION_SERVICE: "cca-platform-verification-service",
    PLATFORM_HASH_ALGO_ID: "cca-platform-hash-algo-id",
}

PLATFORM_CLAIM_ORDER: Final = tuple(PLATFORM_CLAIM_NAMES)

PLATFORM_IMPLEMENTATION_ID_SIZE: Final = 32
PLATFORM_INSTANCE_ID_SIZE: Final = 33
UEID_TYPE_RAND: Final = 0x01
"""First byte of a random-type UEID (instance ids are 0x01 followed by 32 bytes)."""
PLATFORM_CHALLENGE_SIZES: Final = (32, 48, 64)

# Software component map (an entry of claim 2399)
SW_COMPONENT_TYPE: Final = 1
SW_MEASUREMENT_VALUE: Final = 2
SW_VERSION: Final = 4
SW_SIGNER_ID: Final = 5
SW_HASH_ALGO_ID: Final = 6

SW_COMPONENT_NAMES: Final[dict[int, str]] = {
    SW_COMPONENT_TYPE: "component-type",
    SW_MEASUREMENT_VALUE: "measurement-value",
    SW_VERSION: "version",
    SW_SIGNER_ID: "signer-id",
    SW_HASH_ALGO_ID: "hash-algo-id",
}


def claim_name(key: object, *, realm: bool) -> str:
    """Human name of a realm (``realm=True``) or platform claim key; unknown keys as ``claim-K``."""
    table = REALM_CLAIM_NAMES if realm else PLATFORM_CLAIM_NAMES
    if isinstance(key, int) and key in table:
        return table[key]
    return f"claim-{key}"


# ---------------------------------------------------------------------------------------------
# Hash algorithms (§4): IANA "Named Information" names


_HASHLIB: Final[dict[str, str]] = {
    "sha-224": "sha224",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
}

HASH_DIGEST_SIZES: Final[dict[str, int]] = {
    "sha-224": 28,
    "sha-256": 32,
    "sha-384": 48,
    "sha-512": 64,
}

REALM_HASH_ALGORITHMS: Final = ("sha-256", "sha-384", "sha-512")
"""Realm hash algorithms (RHA, claim 44236): SHA-256/512 in RMM 1.0, SHA-384 added in 2.0."""
BINDING_HASH_ALGORITHMS: Final = ("sha-224", "sha-256", "sha-384", "sha-512")
"""Hashes a verifier accepts for the RAK binding (claim 44240); TF-RMM always uses sha-256."""
PLATFORM_HASH_ALGORITHMS: Final = (
    "md2", "md5", "sha-1", "sha-224", "sha-256", "sha-384", "sha-512", "shake128", "shake256",
)
"""Names veraison accepts for the platform hash algorithm (claim 2402)."""

RMI_HASH_ALGORITHMS: Final[dict[int, str]] = {0: "sha-256", 1: "sha-512", 2: "sha-384"}
"""``RmiHashAlgorithm`` encoding (0 = SHA-256, 1 = SHA-512; 2 = SHA-384 from RMM 2.0)."""


def hash_digest(name: str, data: bytes) -> bytes:
    """Digest of ``data`` with the IANA-named hash (``"sha-256"`` ...)."""
    try:
        return hashlib.new(_HASHLIB[name], data).digest()
    except KeyError:
        raise ValueError(f"unsupported hash algorithm {name!r}") from None


def hash_name_for_rmi(code: int) -> str:
    """IANA hash name for an ``RmiHashAlgorithm`` value."""
    try:
        return RMI_HASH_ALGORITHMS[code]
    except KeyError:
        raise ValueError(f"unknown RmiHashAlgorithm {code}") from None


# ---------------------------------------------------------------------------------------------
# Platform lifecycle (claim 2395): state in bits 15:8


class Lifecycle(IntEnum):
    """CCA platform security lifecycle states; a claim value is ``state | (low byte)``."""

    UNKNOWN = 0x0000
    ASSEMBLY_AND_TEST = 0x1000
    ROT_PROVISIONING = 0x2000
    SECURED = 0x3000
    NON_CCA_PLATFORM_DEBUG = 0x4000
    RECOVERABLE_CCA_PLATFORM_DEBUG = 0x5000
    DECOMMISSIONED = 0x6000

    @property
    def label(self) -> str:
        """IANA-style name, e.g. ``"secured"`` or ``"non-cca-platform-debug"``."""
        return self.name.lower().replace("_", "-")


LIFECYCLE_NAMES: Final[dict[str, Lifecycle]] = {state.label: state for state in Lifecycle}


def decode_lifecycle(value: int) -> Lifecycle | None:
    """The lifecycle state of a claim value (``0x3003`` → ``SECURED``), or None if the value is
    outside every defined range (0x0000-0x60ff)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF:
        return None
    try:
        return Lifecycle(value & 0xFF00)
    except ValueError:
        return None


def lifecycle_name(value: int) -> str:
    """``"secured (0x3003)"`` for a claim value; ``"invalid (0x7f35)"`` outside the ranges."""
    state = decode_lifecycle(value)
    return f"{state.label if state is not None else 'invalid'} ({value:#06x})"
