"""External CCA token samples (shared/data/attestation): every token gets the verdict that the
data's README, VERIFY_RESULTS.txt and minted/RESULTS.txt give, and every unsigned claim-set
vector is accepted or rejected as its name says.

Tokens come from veraison/ccatoken (Go), veraison/rust-ccatoken, the TF-M iat-verifier test
data at three commits, and an independent token generator (minted/). Keys are the CPAKs
named in those files.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest

from ccasim.attestation import claims as c
from ccasim.attestation import load_public_key, rak_claim_bytes, verify_token
from ccasim.attestation.cose import cbor_decode, parse_sign1
from ccasim.attestation.verify import check_platform_claims, check_realm_claims, split_cca_token

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "attestation"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared/data/attestation is absent")

VER = "veraison-ccatoken"
RUST = "rust-ccatoken"
TFM = "tf-m-iat-verifier"
HEAD_CPAK = f"{TFM}/head-08c16e9/cca_platform.pub.pem"

# (token, CPAK, expected status, claim of the failing finding for FAIL cases)
PASS = "affirming"
FAIL = "contraindicated"
CASES: list[tuple[str, str, str, str | None]] = [
    # README veraison-ccatoken table / VERIFY_RESULTS.txt
    (f"{VER}/testGoodCCAToken.cbor", f"{VER}/testIAK.pub.pem", PASS, None),
    (f"{VER}/testGoodCCAToken.cbor", f"{VER}/testAltIAK.pub.pem", FAIL, "cca-platform-signature"),
    (f"{VER}/testGoodLegacyCCAToken.cbor", f"{VER}/testIAK.pub.pem", PASS, None),
    (f"{VER}/testRMMLegacyEvidence.cbor", f"{VER}/testRMMCPAK.pub.pem", PASS, None),
    (f"{VER}/tfrmm_cca_token.cbor", f"{VER}/tfrmm_cca_platform.pub", PASS, None),
    (f"{VER}/testBadUnwrappedTokens.cbor", f"{VER}/testIAK.pub.pem", FAIL, "cca-token"),
    # README rust-ccatoken table
    (f"{RUST}/cca-token-01.cbor", f"{RUST}/ta-tfa.pub.pem", PASS, None),
    (f"{RUST}/cca-token-02.cbor", f"{RUST}/ta-02-ok.pub.pem", PASS, None),
    (f"{RUST}/cca-token-02.cbor", f"{RUST}/ta.pub.pem", FAIL, "cca-platform-signature"),
    (f"{RUST}/bug-33-repro.cbor", f"{RUST}/ta-tfa.pub.pem", FAIL, "cca-realm-binding"),
    (f"{RUST}/cca-token-draft-ffm-00.cbor", f"{RUST}/ta-tfa.pub.pem", PASS, None),
    # minted/RESULTS.txt, column ccaverify
    ("minted/t10.cbor", HEAD_CPAK, PASS, None),
    ("minted/t20.cbor", HEAD_CPAK, PASS, None),
    ("minted/tleg.cbor", HEAD_CPAK, PASS, None),
    ("minted/t10_399.cbor", HEAD_CPAK, PASS, None),
    ("minted/t10_sha512.cbor", HEAD_CPAK, PASS, None),
    ("minted/t10_badrealm.cbor", HEAD_CPAK, FAIL, "cca-realm-signature"),
    ("minted/t10_badplat.cbor", HEAD_CPAK, FAIL, "cca-platform-signature"),
    ("minted/t10_badbind.cbor", HEAD_CPAK, FAIL, "cca-realm-binding"),
    ("minted/t10_es256.cbor", f"{VER}/testIAK.pub.pem", PASS, None),
    ("minted/t20_badbind.cbor", HEAD_CPAK, FAIL, "cca-realm-binding"),
    ("minted/compiled_6e1d774.cbor", HEAD_CPAK, PASS, None),
]
# README tf-m-iat-verifier table: all tokens, CCA and platform-only, PASS with cca_platform.
for _commit in ("6e1d774", "e84d296", "head-08c16e9"):
    for _name in ("cca_example_token", "cca_example_token_legacy", "cca_token",
                  "cca_example_platform_token", "cca_example_platform_token_legacy",
                  "cca_platform_token"):
        CASES.append((f"{TFM}/{_commit}/{_name}.cbor", f"{TFM}/{_commit}/cca_platform.pub.pem",
                      PASS, None))

# Expected outer format per sample (VERIFY_RESULTS.txt: cmw-907 / legacy-399)
FORMATS = {
    f"{VER}/testGoodCCAToken.cbor": "cmw",
    f"{VER}/testGoodLegacyCCAToken.cbor": "legacy",
    f"{VER}/testRMMLegacyEvidence.cbor": "cmw",
    f"{VER}/tfrmm_cca_token.cbor": "legacy",
    f"{RUST}/cca-token-01.cbor": "legacy",
    f"{TFM}/6e1d774/cca_example_token.cbor": "legacy",
    f"{TFM}/6e1d774/cca_token.cbor": "cmw",
    f"{TFM}/head-08c16e9/cca_example_token.cbor": "cmw",
    f"{TFM}/head-08c16e9/cca_platform_token.cbor": "platform",
    "minted/t10.cbor": "cmw",
    "minted/t10_399.cbor": "legacy",
}


def _read(rel: str) -> bytes:
    return (DATA / rel).read_bytes()


@pytest.mark.parametrize(("token", "key", "expected", "failing"), CASES,
                         ids=[f"{t}@{Path(k).name}" for t, k, _, _ in CASES])
def test_sample_verdict(token: str, key: str, expected: str, failing: str | None) -> None:
    result = verify_token(_read(token), cpak=_read(key))
    assert result.status == expected, [f for f in result.findings if f.status != "affirming"]
    if failing is None:
        assert not result.problems()
    else:
        bad = {f.claim for f in result.findings if f.status == "contraindicated"}
        assert bad == {failing}
    if token in FORMATS:
        assert result.token_format == FORMATS[token]


def test_invalid_curve_point_jwk_fails_platform_signature() -> None:
    """rust-ccatoken ta-02-bad.json: the JWK is not a valid P-256 point → platform crypto
    validation fails; the matching good JWK verifies."""
    bad = json.loads(_read(f"{RUST}/ta-02-bad.json"))[0]["pkey"]
    good = json.loads(_read(f"{RUST}/ta-02-ok.json"))[0]["pkey"]
    token = _read(f"{RUST}/cca-token-02.cbor")
    result = verify_token(token, cpak=bad)
    assert result.status == FAIL
    finding = result.finding("cca-platform-signature")
    assert finding is not None and finding.status == FAIL and "unusable" in finding.detail
    assert verify_token(token, cpak=good).status == PASS


def test_unwrapped_907_is_a_decode_failure() -> None:
    result = verify_token(_read(f"{VER}/testBadUnwrappedTokens.cbor"),
                          cpak=_read(f"{VER}/testIAK.pub.pem"))
    assert result.token_format is None
    finding = result.finding("cca-token")
    assert finding is not None and "[263, bstr]" in finding.detail


def test_bug33_binding_detail() -> None:
    result = verify_token(_read(f"{RUST}/bug-33-repro.cbor"), cpak=_read(f"{RUST}/ta-tfa.pub.pem"))
    assert result.finding("cca-platform-signature").status == PASS  # type: ignore[union-attr]
    assert result.finding("cca-realm-signature").status == PASS  # type: ignore[union-attr]
    detail = result.finding("cca-realm-binding").detail  # type: ignore[union-attr]
    assert "07060504030201000f0e0d0c0b0a0908" in detail
    assert "b5973cb68baa9fc55558786b7ec67f69e40df5ba5aa921cd0c27f40587a011ea" in detail


def test_without_cpak_platform_signature_is_unverified() -> None:
    result = verify_token(_read("minted/t10.cbor"))
    assert result.status == "warning"
    finding = result.finding("cca-platform-signature")
    assert finding is not None and finding.status == "warning" and "unverified" in finding.detail


def test_cose_key_encoding_matches_tfm_and_veraison_bytes() -> None:
    """Our COSE_Key bytes equal what TF-RMM/TF-M and veraison put in claim 44237, and the
    spec's confirmed binding vector (SHA-256 = 0d22e08a…d711) follows."""
    rak = load_public_key(_read(f"{TFM}/6e1d774/cca_realm.pem"))
    claim = rak_claim_bytes(rak)
    assert len(claim) == 107 and claim.startswith(bytes.fromhex("a401022002215830"))
    assert hashlib.sha256(claim).hexdigest() == (
        "0d22e08a98469058486318283489bdb36f09dbefeb1864df433fa6e54ea2d711")
    _, _, realm = split_cca_token(_read(f"{TFM}/e84d296/cca_example_token.cbor"))
    assert cbor_decode(parse_sign1(realm).payload)[c.REALM_PUBLIC_KEY] == claim
    test_rak = load_public_key(_read(f"{VER}/testRAK.pub.pem"))
    assert rak_claim_bytes(test_rak) == _read(f"{VER}/testRAKPubCOSE.cbor")
    # legacy form: the raw point
    _, _, legacy_realm = split_cca_token(_read(f"{TFM}/6e1d774/cca_example_token_legacy.cbor"))
    assert cbor_decode(parse_sign1(legacy_realm).payload)[c.REALM_PUBLIC_KEY] == rak_claim_bytes(
        rak, legacy=True)


# ---------------------------------------------------------------------------------------------
# Unsigned claim sets

CLAIM_SETS: list[tuple[str, str, bool]] = [
    (f"{VER}/claims_platform/testEncodedCcaPlatformClaimsAll.cbor", "platform", True),
    (f"{VER}/claims_platform/testEncodedCcaPlatformClaimsMandatoryOnly.cbor", "platform", True),
    (f"{VER}/claims_platform/testEncodedCcaPlatformLegacyClaimsAll.cbor", "platform", True),
    (f"{VER}/claims_platform/testEncodedCcaPlatformLegacyClaimsMandatoryOnly.cbor", "platform",
     True),
    (f"{VER}/claims_platform/testEncodedCcaPlatformClaimsInvalidMultiNonce.cbor", "platform",
     False),
    (f"{VER}/claims_platform/testEncodedCcaPlatformClaimsMissingMandatoryNonce.cbor", "platform",
     False),
    (f"{VER}/claims_realm/testEncodedCcaRealmClaimsAll.cbor", "realm", True),
    (f"{VER}/claims_realm/testEncodedCcaRealmLegacyClaimsAll.cbor", "realm", True),
    (f"{VER}/claims_realm/testEncodedCcaClaimsMissingMandExtendedMeas.cbor", "realm", False),
    (f"{VER}/claims_realm/testEncodedCcaClaimsMissingMandHashAlgID.cbor", "realm", False),
    (f"{VER}/claims_realm/testEncodedCcaClaimsMissingMandInitialMeas.cbor", "realm", False),
    (f"{VER}/claims_realm/testEncodedCcaClaimsMissingMandPubKey.cbor", "realm", False),
    (f"{VER}/claims_realm/testEncodedCcaRealmClaimsMissingMandNonce.cbor", "realm", False),
    (f"{RUST}/platform-claims.cbor", "platform", True),
    (f"{RUST}/realm-claims.cbor", "realm", True),
    (f"{RUST}/realm-claims+spurious-numeric-key.cbor", "realm", True),
    (f"{RUST}/realm-claims+spurious-text-key.cbor", "realm", True),
    (f"{RUST}/realm-claims-missing-challenge.cbor", "realm", False),
]


def _accepted(claims: Any, kind: str) -> bool:
    findings = check_platform_claims(claims) if kind == "platform" else check_realm_claims(claims)
    return not any(f.status == "contraindicated" for f in findings)


@pytest.mark.parametrize(("path", "kind", "valid"), CLAIM_SETS,
                         ids=[Path(p).name for p, _, _ in CLAIM_SETS])
def test_claim_set_vectors(path: str, kind: str, valid: bool) -> None:
    assert _accepted(cbor_decode(_read(path)), kind) is valid


def test_spurious_keys_are_listed_not_rejected() -> None:
    findings = check_realm_claims(cbor_decode(_read(f"{RUST}/realm-claims+spurious-text-key.cbor")))
    unknown = [f for f in findings if f.claim == "unknown-claims"]
    assert unknown and unknown[0].status == "none" and "unknown-key" in unknown[0].detail


# veraison's JSON claim vectors use claim names and base64 bytes
_JSON_ALIASES = {"cca-platform-service-indicator": c.PLATFORM_VERIFICATION_SERVICE}
_TEXT_CLAIMS = {c.REALM_PROFILE, c.REALM_HASH_ALGO_ID, c.REALM_PUBLIC_KEY_HASH_ALGO_ID,
                c.PLATFORM_VERIFICATION_SERVICE, c.PLATFORM_HASH_ALGO_ID}
_SW_KEYS = {v: k for k, v in c.SW_COMPONENT_NAMES.items()}


def _from_json(data: dict[str, Any], kind: str) -> dict[Any, Any]:
    names = c.REALM_CLAIM_NAMES if kind == "realm" else c.PLATFORM_CLAIM_NAMES
    keys = {v: k for k, v in names.items()} | _JSON_ALIASES

    def b64(text: str) -> bytes:
        return base64.b64decode(text, validate=True)

    out: dict[Any, Any] = {}
    for name, value in data.items():
        key = keys.get(name)
        if key is None:  # e.g. psa-* claims: unknown here, kept as-is (and ignored)
            out[name] = value
        elif key in _TEXT_CLAIMS or isinstance(value, int):
            out[key] = value
        elif key == c.PLATFORM_SW_COMPONENTS:
            out[key] = [{_SW_KEYS[k]: (v if _SW_KEYS[k] in (1, 4, 6) else b64(v))
                         for k, v in sw.items()} for sw in value]
        elif isinstance(value, list):
            out[key] = [b64(v) for v in value]
        else:
            out[key] = b64(value)
    return out


def _json_vectors() -> list[tuple[str, str, bool]]:
    out = []
    for kind in ("platform", "realm"):
        folder = DATA / VER / f"claims_{kind}"
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("test-*.json")):
            out.append((path.name, kind, "valid" in path.name and "invalid" not in path.name))
    return out


@pytest.mark.parametrize(("name", "kind", "valid"), _json_vectors() or [("none", "realm", True)])
def test_claim_set_json_vectors(name: str, kind: str, valid: bool) -> None:
    path = DATA / VER / f"claims_{kind}" / name
    if not path.exists():
        pytest.skip("no JSON vectors")
    try:
        claims = _from_json(json.loads(path.read_text()), kind)
    except ValueError:  # e.g. the invalid base64 of test-sw-components-invalid-combo.json
        assert not valid
        return
    # the vectors are unsigned claim sets: encode and decode them like a payload
    assert _accepted(cbor_decode(cbor2.dumps(claims)), kind) is valid
