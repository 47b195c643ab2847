"""Arm CCA attestation: CBOR/COSE tokens, claim rules, token builders and a verifier.

* :mod:`.cose` — COSE_Sign1 (tag 18) and EC2 COSE_Key over definite-length CBOR, ECDSA
  ES256/ES384/ES512 with raw ``r||s`` signatures.
* :mod:`.claims` — claim keys and names, profiles, hash-algorithm names, lifecycle states.
* :mod:`.token` — builders used by EL3 (:func:`build_platform_token`, with the CPAK) and by the
  RMM (:func:`build_realm_token` with the RAK, :func:`wrap_cca_token`).
* :mod:`.verify` — :func:`verify_token`: structure, claims, signatures, binding and appraisal
  against :class:`ReferenceValues`, giving an EAR-shaped :class:`AttestationResult`.

Digest: ``spec/attestation.md``; samples: ``data/attestation/``.
"""

from .claims import Lifecycle
from .cose import CborError, CoseError, SignatureError, load_public_key
from .token import (
    PlatformClaims,
    RealmClaims,
    SwComponent,
    TokenFormat,
    binding_challenge,
    build_platform_token,
    build_realm_token,
    rak_claim_bytes,
    wrap_cca_token,
)
from .verify import (
    AttestationResult,
    Finding,
    ReferenceValues,
    ReferenceValuesError,
    TokenError,
    split_cca_token,
    verify_token,
)

__all__ = [
    "AttestationResult",
    "CborError",
    "CoseError",
    "Finding",
    "Lifecycle",
    "PlatformClaims",
    "RealmClaims",
    "ReferenceValues",
    "ReferenceValuesError",
    "SignatureError",
    "SwComponent",
    "TokenError",
    "TokenFormat",
    "binding_challenge",
    "build_platform_token",
    "build_realm_token",
    "load_public_key",
    "rak_claim_bytes",
    "split_cca_token",
    "verify_token",
    "wrap_cca_token",
]
