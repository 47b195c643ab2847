"""The RMM's side of attestation (rmm-abi §11): the RAK from EL3, the cached platform
token, and realm tokens wrapped into CCA tokens.

At cold boot the RMM asks EL3 for the Realm Attestation Key (RMM_ATTEST_GET_REALM_KEY),
encodes its public half as the COSE_Key claim, and asks for the platform token with the
binding challenge SHA-256(COSE_Key bytes) (RMM_ATTEST_GET_PLAT_TOKEN, in hunks through the
shared buffer, which is scrubbed afterwards). Realm tokens are signed with the RAK (ES384)
over the claims of rmm-abi §11.3, with the measurements snapshotted at TOKEN_INIT.
"""

from __future__ import annotations

from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ec

from ..arch.memory import GRANULE_SIZE
from ..arch.pe import ProcessingElement
from ..arch.security import PhysicalAddressSpace as Pas
from ..attestation.claims import PROFILE_REALM_1_0
from ..attestation.token import (
    RealmClaims,
    binding_challenge,
    build_realm_token,
    rak_claim_bytes,
    wrap_cca_token,
)
from ..firmware import smccc
from .measurement import MEASUREMENT_SLOTS, HashAlgorithm
from .objects import Realm

HASH_NAMES = {HashAlgorithm.SHA_256: "sha-256", HashAlgorithm.SHA_512: "sha-512"}
MAX_PLATFORM_TOKEN = 0x1000


class AttestationUnavailable(Exception):
    pass


class RealmAttestation:
    def __init__(self, token_format: Literal["cmw", "legacy"] = "cmw") -> None:
        self.token_format: Literal["cmw", "legacy"] = token_format
        self.rak: ec.EllipticCurvePrivateKey | None = None
        self.rak_claim = b""
        self.platform_token = b""

    def initialise(self, el3_call: object, pe: ProcessingElement, shared: int) -> None:
        """Fetch the RAK and the platform token from EL3 (cold boot)."""
        call = el3_call  # Rmm.el3_call(pe, fid, *args) -> x0
        assert callable(call)
        status = call(pe, smccc.RMM_ATTEST_GET_REALM_KEY, shared, GRANULE_SIZE, 0)
        if status != 0:
            raise AttestationUnavailable(f"RMM_ATTEST_GET_REALM_KEY: {smccc.to_signed(status)}")
        length = pe.x[1]
        scalar = int.from_bytes(pe.read(shared, length, Pas.REALM), "big")
        self.rak = ec.derive_private_key(scalar, ec.SECP384R1())
        self.rak_claim = rak_claim_bytes(self.rak.public_key())
        challenge = binding_challenge(self.rak_claim, "sha-256")
        pe.write(shared, challenge, Pas.REALM)
        token = b""
        first = True
        while True:
            status = call(pe, smccc.RMM_ATTEST_GET_PLAT_TOKEN, shared, GRANULE_SIZE,
                          len(challenge) if first else 0)
            if status != 0:
                raise AttestationUnavailable(f"RMM_ATTEST_GET_PLAT_TOKEN: {status:#x}")
            hunk, remaining = pe.x[1], pe.x[2]
            token += pe.read(shared, hunk, Pas.REALM)
            first = False
            if remaining == 0 or hunk == 0 or len(token) > MAX_PLATFORM_TOKEN:
                break
        pe.zero(shared, GRANULE_SIZE, Pas.REALM)  # the RAK passed through here
        if len(token) > MAX_PLATFORM_TOKEN:
            raise AttestationUnavailable("platform token larger than the RMM's buffer")
        self.platform_token = token

    def build(self, pe: ProcessingElement, realm: Realm, challenge: bytes,
              measurements: list[bytes]) -> bytes:
        """The CCA token for ``realm`` (measurements as snapshotted at TOKEN_INIT)."""
        if self.rak is None:
            raise AttestationUnavailable("no realm attestation key")
        size = realm.hash_algo.digest_size
        claims = RealmClaims(
            challenge=challenge,
            personalization_value=realm.rpv,
            rim=measurements[0][:size],
            rems=[m[:size] for m in measurements[1:MEASUREMENT_SLOTS]],
            hash_algo=HASH_NAMES[realm.hash_algo],
            rak_hash_algo="sha-256",
            profile=PROFILE_REALM_1_0,
        )
        realm_token = build_realm_token(claims, self.rak, rak_claim=self.rak_claim)
        return wrap_cca_token(self.platform_token, realm_token, self.token_format)
