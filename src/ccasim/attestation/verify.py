"""A CCA attestation token verifier with appraisal against reference values.

:func:`verify_token` takes the token bytes, the CPAK public key (optional) and reference
values (optional) and returns an :class:`AttestationResult`. The result is shaped like an EAR
attestation result (draft-fv-rats-ear, AR4SI trustworthiness tiers): two submodules,
``CCA_SSD_PLATFORM`` and ``CCA_REALM`` (the names veraison uses), each with an ``ear.status``
and a trustworthiness vector, plus the per-claim :class:`Finding` list that explains them.

What is checked (``spec/attestation.md``):

1. **Structure** (§1): tag 907 with ``[263, bstr]`` entries or tag 399 with bare bstr entries
   (907 with bare entries is rejected), or a bare COSE_Sign1 platform token; definite-length
   CBOR only, no trailing bytes or duplicate keys; each token is a tagged COSE_Sign1 with an
   ES256/ES384/ES512 protected ``alg``.
2. **Claims** (§2, §3): mandatory claims present with the right types and sizes, for the
   realm#1.0.0, realm#2.0.0 and legacy no-profile realm forms and both platform profiles.
   Unknown claims are ignored (and listed).
3. **Signatures**: the realm token with the RAK from claim 44237 (COSE_Key, or the raw point in
   the legacy form), the platform token with the given CPAK. Without a CPAK the platform
   signature is reported as *unverified* (status ``warning``).
4. **Binding**: platform challenge == H(realm claim 44237 bytes), H named by claim 44240.
5. **Appraisal** (:class:`ReferenceValues`): RIM, REMs, realm hash algorithm, RPV, challenge,
   platform software components, lifecycle, implementation id and configuration.

Status rules: any failed check is ``contraindicated``; an unverified platform signature, a
platform lifecycle other than *secured* (when the reference values name no lifecycles) or an
undefined profile combination is ``warning``; otherwise ``affirming``.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from . import claims as c
from .cose import (
    CborError,
    CoseError,
    Sign1,
    cbor_decode,
    decode_cose_key,
    load_public_key,
    parse_sign1,
    public_key_from_point,
)

__all__ = [
    "SUBMOD_PLATFORM",
    "SUBMOD_REALM",
    "AttestationResult",
    "CpakInput",
    "Finding",
    "ReferenceValues",
    "ReferenceValuesError",
    "Status",
    "SwComponentReference",
    "TokenError",
    "Verdict",
    "check_platform_claims",
    "check_realm_claims",
    "split_cca_token",
    "verify_token",
]

Status: TypeAlias = Literal["affirming", "warning", "contraindicated", "none"]
Verdict: TypeAlias = Literal["affirming", "warning", "contraindicated"]
CpakInput: TypeAlias = (
    ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey | bytes | str | Mapping[str, Any]
)

SUBMOD_PLATFORM: Final = "CCA_SSD_PLATFORM"
SUBMOD_REALM: Final = "CCA_REALM"
SUBMOD_TOKEN: Final = "token"
"""Findings about the token as a whole count for every submodule."""

EAR_PROFILE: Final = "tag:github.com,2023:veraison/ear"

_RANK: Final[dict[str, int]] = {"none": 0, "affirming": 1, "warning": 2, "contraindicated": 3}

# AR4SI trustworthiness claims and the values used here (draft-ietf-rats-ar4si §2.3).
TV_INSTANCE: Final = "instance-identity"
TV_CONFIGURATION: Final = "configuration"
TV_EXECUTABLES: Final = "executables"
TV_HARDWARE: Final = "hardware"
AR_NO_CLAIM: Final = 0
AR_AFFIRMING: Final = 2  # trustworthy instance / approved config / approved runtime / genuine hw
AR_UNSAFE: Final = 32  # warning tier: known-unsafe configuration
AR_CONTRAINDICATED: Final = 96
AR_CRYPTO_FAILED: Final = 99


class TokenError(ValueError):
    """The CCA token's outer structure is invalid."""


class ReferenceValuesError(ValueError):
    """Reference values are malformed."""


_Bad = ReferenceValuesError


def _tier(value: int) -> int:
    if value >= 96:
        return 3
    if value >= 32:
        return 2
    if value >= 2:
        return 1
    return 0


@dataclass(frozen=True)
class Finding:
    """The outcome of one check: ``claim`` names the claim (or pseudo-claim such as
    ``cca-realm-signature``), ``status`` its EAR tier (``"none"`` = informational)."""

    claim: str
    status: Status
    detail: str
    submod: str = SUBMOD_TOKEN
    """``CCA_SSD_PLATFORM``, ``CCA_REALM`` or ``token`` (applies to both)."""
    trust: tuple[str, int] | None = None
    """The AR4SI trustworthiness claim and value this finding sets, if any."""


def _worst(statuses: Iterable[str]) -> Verdict:
    rank = max((_RANK[s] for s in statuses), default=1)
    return "contraindicated" if rank == 3 else "warning" if rank == 2 else "affirming"


def _hex(value: bytes, limit: int = 32) -> str:
    text = value.hex()
    return text if len(value) <= limit else f"{text[:32]}…{text[-8:]} ({len(value)} B)"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, cbor2.CBORTag):
        return {"tag": value.tag, "value": _jsonable(value.value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def _named_claims(claims: Mapping[Any, Any], *, realm: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in claims.items():
        name = c.claim_name(key, realm=realm)
        if not realm and key == c.PLATFORM_SW_COMPONENTS and isinstance(value, list | tuple):
            value = [
                {c.SW_COMPONENT_NAMES.get(k, f"claim-{k}"): v for k, v in sw.items()}
                if isinstance(sw, Mapping) else sw
                for sw in value
            ]
        out[name] = _jsonable(value)
    return out


@dataclass
class AttestationResult:
    """Verdict of :func:`verify_token`: ``status`` is the worst tier over all findings."""

    status: Verdict
    findings: list[Finding]
    token_format: str | None = None
    """``"cmw"`` (tag 907), ``"legacy"`` (tag 399), ``"platform"`` (a bare platform token)."""
    platform_claims: Mapping[Any, Any] | None = None
    realm_claims: Mapping[Any, Any] | None = None
    iat: int = field(default_factory=lambda: int(time.time()))

    @property
    def affirming(self) -> bool:
        return self.status == "affirming"

    def problems(self) -> list[Finding]:
        """Findings in the warning or contraindicated tier."""
        return [f for f in self.findings if _RANK[f.status] >= 2]

    def finding(self, claim: str) -> Finding | None:
        """The first finding about ``claim``."""
        return next((f for f in self.findings if f.claim == claim), None)

    def submods(self) -> list[str]:
        if self.token_format == "platform":
            return [SUBMOD_PLATFORM]
        return [SUBMOD_PLATFORM, SUBMOD_REALM]

    def submod_status(self, submod: str) -> Verdict:
        return _worst(f.status for f in self.findings if f.submod in (submod, SUBMOD_TOKEN))

    def trust_vector(self, submod: str) -> dict[str, int]:
        vector: dict[str, int] = {}
        for f in self.findings:
            if f.trust is None or f.submod not in (submod, SUBMOD_TOKEN):
                continue
            key, value = f.trust
            old = vector.get(key)
            if old is None or (_tier(value), value) > (_tier(old), old):
                vector[key] = value
        return vector

    def to_dict(self) -> dict[str, Any]:
        """An EAR-shaped JSON object (``ccasim.*`` members are this verifier's extensions)."""
        submods: dict[str, Any] = {}
        for name in self.submods():
            claims = self.platform_claims if name == SUBMOD_PLATFORM else self.realm_claims
            entry: dict[str, Any] = {
                "ear.status": self.submod_status(name),
                "ear.trustworthiness-vector": self.trust_vector(name),
            }
            if claims is not None:
                entry["ear.veraison.annotated-evidence"] = _named_claims(
                    claims, realm=name == SUBMOD_REALM
                )
            submods[name] = entry
        return {
            "eat_profile": EAR_PROFILE,
            "iat": self.iat,
            "ear.verifier-id": {"developer": "ccasim", "build": "ccasim attestation verifier"},
            "submods": submods,
            "ccasim.status": self.status,
            "ccasim.token-format": self.token_format,
            "ccasim.findings": [
                {k: v for k, v in asdict(f).items() if v is not None} for f in self.findings
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __rich__(self) -> RenderableType:
        colour = {"affirming": "green", "warning": "yellow", "contraindicated": "red",
                  "none": "dim"}
        head = Text.assemble(
            ("CCA token ", "bold"),
            (f"[{self.token_format or 'undecodable'}]", "cyan"),
            ": ",
            (self.status.upper(), f"bold {colour[self.status]}"),
        )
        for name in self.submods():
            st = self.submod_status(name)
            vector = ", ".join(f"{k}={v}" for k, v in self.trust_vector(name).items())
            head.append(f"\n  {name}: ")
            head.append(st, colour[st])
            if vector:
                head.append(f"  ({vector})", "dim")
        table = Table(show_header=True, header_style="bold", expand=False)
        table.add_column("status", no_wrap=True)
        table.add_column("claim", no_wrap=True)
        table.add_column("detail", overflow="fold")
        for f in self.findings:
            table.add_row(Text(f.status, style=colour[f.status]), f.claim, f.detail)
        return Group(head, table)


# ---------------------------------------------------------------------------------------------
# Reference values


def _parse_hex(where: str, value: Any, *, allow_empty: bool = False) -> bytes:
    if not isinstance(value, str):
        raise _Bad(f"{where}: expected a hex string, got {type(value).__name__}")
    text = value.strip().replace(" ", "").replace(":", "")
    if text.lower().startswith("0x"):
        text = text[2:]
    try:
        out = bytes.fromhex(text)
    except ValueError:
        raise _Bad(f"{where}: not a hex string: {value!r}") from None
    if not out and not allow_empty:
        raise _Bad(f"{where}: empty value")
    return out


def _as_list(where: str, value: Any) -> list[Any]:
    if isinstance(value, str | Mapping):
        return [value]
    if not isinstance(value, list | tuple):
        raise _Bad(f"{where}: expected a list")
    return list(value)


@dataclass(frozen=True)
class SwComponentReference:
    """An allowed platform software component: the measurement, plus optional fields that must
    match too when given."""

    measurement: bytes
    component_type: str | None = None
    signer_id: bytes | None = None
    version: str | None = None

    def matches(self, sw: Mapping[Any, Any]) -> bool:
        if sw.get(c.SW_MEASUREMENT_VALUE) != self.measurement:
            return False
        if self.component_type is not None and sw.get(c.SW_COMPONENT_TYPE) != self.component_type:
            return False
        if self.signer_id is not None and sw.get(c.SW_SIGNER_ID) != self.signer_id:
            return False
        return self.version is None or sw.get(c.SW_VERSION) == self.version


_REALM_KEYS: Final = ("challenge", "rim", "rems", "hash_algo", "rpv")
_PLATFORM_KEYS: Final = ("sw_components", "lifecycles", "implementation_id", "config")


@dataclass(frozen=True)
class ReferenceValues:
    """Expected values to appraise a token against; every field is optional (None = not
    appraised).

    As a dict (JSON or TOML), hex strings for bytes::

        {"realm": {"challenge": "…",          # ≤ 64 bytes, zero-padded to 64 (so is rpv)
                   "rim": "…" | ["…", …],      # any of these
                   "rems": ["…", "…", "…", "…"],  # "" = any value at that index
                   "hash_algo": "sha-256",
                   "rpv": "…"},
         "platform": {"sw_components": ["<measurement>",
                                        {"measurement": "…", "component_type": "BL",
                                         "signer_id": "…", "version": "…"}, …],
                      "lifecycles": ["secured", 12291, "0x3003"],
                      "implementation_id": "…",
                      "config": "…"}}
    """

    challenge: bytes | None = None
    rim: tuple[bytes, ...] | None = None
    rems: tuple[bytes | None, ...] | None = None
    realm_hash_algo: str | None = None
    rpv: bytes | None = None
    platform_sw_components: tuple[SwComponentReference, ...] | None = None
    platform_lifecycles: tuple[str | int, ...] | None = None
    platform_implementation_id: bytes | None = None
    platform_config: bytes | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.__dataclass_fields__)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ReferenceValues:
        """Parse the dict form shown in the class docstring; raise :class:`ReferenceValuesError`."""
        if not isinstance(data, Mapping):
            raise _Bad("reference values must be a mapping")
        for key in data:
            if key not in ("realm", "platform"):
                raise _Bad(f"unknown reference section {key!r} (use realm, platform)")
        realm = data.get("realm", {})
        platform = data.get("platform", {})
        for section, body, allowed in (("realm", realm, _REALM_KEYS),
                                       ("platform", platform, _PLATFORM_KEYS)):
            if not isinstance(body, Mapping):
                raise _Bad(f"{section}: expected a table/object")
            for key in body:
                if key not in allowed:
                    raise _Bad(
                        f"unknown reference value {section}.{key} (known: {', '.join(allowed)})"
                    )
        kw: dict[str, Any] = {}
        if "challenge" in realm:
            challenge = _parse_hex("realm.challenge", realm["challenge"])
            if len(challenge) > c.REALM_CHALLENGE_SIZE:
                raise _Bad("realm.challenge: longer than 64 bytes")
            kw["challenge"] = challenge.ljust(c.REALM_CHALLENGE_SIZE, b"\0")
        if "rim" in realm:
            kw["rim"] = tuple(
                _parse_hex(f"realm.rim[{i}]", v)
                for i, v in enumerate(_as_list("realm.rim", realm["rim"]))
            )
        if "rems" in realm:
            rems = _as_list("realm.rems", realm["rems"])
            if len(rems) != c.REM_COUNT:
                raise _Bad(f"realm.rems: need {c.REM_COUNT} entries, got {len(rems)}")
            kw["rems"] = tuple(
                (_parse_hex(f"realm.rems[{i}]", v, allow_empty=True) or None)
                if v is not None else None
                for i, v in enumerate(rems)
            )
        if "hash_algo" in realm:
            algo = realm["hash_algo"]
            if algo not in c.REALM_HASH_ALGORITHMS:
                raise _Bad(f"realm.hash_algo: unknown hash algorithm {algo!r}")
            kw["realm_hash_algo"] = algo
        if "rpv" in realm:
            rpv = _parse_hex("realm.rpv", realm["rpv"])
            if len(rpv) > c.REALM_PERSONALIZATION_VALUE_SIZE:
                raise _Bad("realm.rpv: longer than 64 bytes")
            kw["rpv"] = rpv.ljust(c.REALM_PERSONALIZATION_VALUE_SIZE, b"\0")
        if "sw_components" in platform:
            refs = []
            for i, item in enumerate(_as_list("platform.sw_components",
                                              platform["sw_components"])):
                where = f"platform.sw_components[{i}]"
                if isinstance(item, str):
                    refs.append(SwComponentReference(_parse_hex(where, item)))
                    continue
                if not isinstance(item, Mapping) or "measurement" not in item:
                    raise _Bad(f"{where}: expected a hex string or a table with "
                                         "'measurement'")
                extra = set(item) - {"measurement", "component_type", "signer_id", "version"}
                if extra:
                    raise _Bad(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
                refs.append(SwComponentReference(
                    measurement=_parse_hex(f"{where}.measurement", item["measurement"]),
                    component_type=item.get("component_type"),
                    signer_id=(_parse_hex(f"{where}.signer_id", item["signer_id"])
                               if "signer_id" in item else None),
                    version=item.get("version"),
                ))
            kw["platform_sw_components"] = tuple(refs)
        if "lifecycles" in platform:
            allowed_lc: list[str | int] = []
            for i, item in enumerate(_as_list("platform.lifecycles", platform["lifecycles"])):
                if isinstance(item, bool) or not isinstance(item, str | int):
                    raise _Bad(f"platform.lifecycles[{i}]: expected a name or a number")
                if isinstance(item, str) and item not in c.LIFECYCLE_NAMES:
                    try:
                        item = int(item, 0)
                    except ValueError:
                        raise _Bad(
                            f"platform.lifecycles[{i}]: unknown lifecycle {item!r} (known: "
                            f"{', '.join(c.LIFECYCLE_NAMES)})"
                        ) from None
                allowed_lc.append(item)
            kw["platform_lifecycles"] = tuple(allowed_lc)
        if "implementation_id" in platform:
            kw["platform_implementation_id"] = _parse_hex("platform.implementation_id",
                                                          platform["implementation_id"])
        if "config" in platform:
            kw["platform_config"] = _parse_hex("platform.config", platform["config"])
        return cls(**kw)

    @classmethod
    def load(cls, path: str | Path) -> ReferenceValues:
        """Read reference values from a ``.json`` or ``.toml`` file (other suffixes: JSON, then
        TOML). Raises ``OSError`` if unreadable, :class:`ReferenceValuesError` if malformed."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        parsers: list[Callable[[str], Any]]
        if path.suffix.lower() == ".toml":
            parsers = [tomllib.loads]
        elif path.suffix.lower() == ".json":
            parsers = [json.loads]
        else:
            parsers = [json.loads, tomllib.loads]
        error: Exception | None = None
        for parse in parsers:
            try:
                data = parse(text)
            except (ValueError, tomllib.TOMLDecodeError) as err:
                error = err
                continue
            return cls.from_mapping(data)
        raise _Bad(f"{path}: not valid JSON/TOML: {error}")


# ---------------------------------------------------------------------------------------------
# Claim checks (structure, mandatory claims, sizes)


class _Out:
    def __init__(self, submod: str, realm: bool) -> None:
        self.submod = submod
        self.realm = realm
        self.items: list[Finding] = []

    def add(self, claim: str | int, status: Status, detail: str,
            trust: tuple[str, int] | None = None) -> None:
        name = claim if isinstance(claim, str) else c.claim_name(claim, realm=self.realm)
        self.items.append(Finding(name, status, detail, self.submod, trust))

    def bad(self, claim: str | int, detail: str) -> None:
        self.add(claim, "contraindicated", detail)

    def failed(self) -> bool:
        return any(f.status == "contraindicated" for f in self.items)


def _check_bytes(out: _Out, claims: Mapping[Any, Any], key: int, sizes: tuple[int, ...] | None,
                 *, mandatory: bool = True, what: str = "") -> bytes | None:
    if key not in claims:
        if mandatory:
            out.bad(key, f"missing mandatory claim {key}{what}")
        return None
    value = claims[key]
    if not isinstance(value, bytes):
        out.bad(key, f"must be a bstr, got {type(value).__name__}")
        return None
    if sizes is not None and len(value) not in sizes:
        want = "/".join(str(s) for s in sizes)
        out.bad(key, f"must be {want} bytes, got {len(value)}")
        return None
    return value


def _check_text(out: _Out, claims: Mapping[Any, Any], key: int,
                allowed: tuple[str, ...] | None, *, mandatory: bool = True) -> str | None:
    if key not in claims:
        if mandatory:
            out.bad(key, f"missing mandatory claim {key}")
        return None
    value = claims[key]
    if not isinstance(value, str) or not value:
        out.bad(key, "must be a non-empty tstr")
        return None
    if allowed is not None and value not in allowed:
        out.bad(key, f"unsupported value {value!r} (expected {', '.join(allowed)})")
        return None
    return value


def _unknown(out: _Out, claims: Mapping[Any, Any], known: Iterable[int]) -> None:
    extra = [k for k in claims if not (isinstance(k, int) and k in set(known))]
    if extra:
        out.add("unknown-claims", "none", "ignored: " + ", ".join(repr(k) for k in extra))


def check_realm_claims(claims: Any) -> list[Finding]:
    """Check a realm claims map (§2) for the realm#1.0.0, realm#2.0.0 and legacy (no profile)
    forms. Returns findings; a valid map gives no contraindicated finding."""
    out = _Out(SUBMOD_REALM, realm=True)
    if not isinstance(claims, Mapping):
        out.bad("cca-realm-claims", "realm token payload is not a map")
        return out.items
    profile = None
    if c.REALM_PROFILE in claims:
        profile = _check_text(out, claims, c.REALM_PROFILE, c.REALM_PROFILES)
        if profile is None:
            return out.items
    v2 = profile == c.PROFILE_REALM_2_0
    _check_bytes(out, claims, c.REALM_CHALLENGE, (c.REALM_CHALLENGE_SIZE,))
    _check_bytes(out, claims, c.REALM_PERSONALIZATION_VALUE, (c.REALM_PERSONALIZATION_VALUE_SIZE,))
    _check_bytes(out, claims, c.REALM_INITIAL_MEASUREMENT, c.MEASUREMENT_SIZES)
    if c.REALM_EXTENSIBLE_MEASUREMENTS not in claims:
        out.bad(c.REALM_EXTENSIBLE_MEASUREMENTS, "missing mandatory claim 44239")
    else:
        rems = claims[c.REALM_EXTENSIBLE_MEASUREMENTS]
        if not isinstance(rems, list | tuple) or len(rems) != c.REM_COUNT:
            out.bad(c.REALM_EXTENSIBLE_MEASUREMENTS, f"must be an array of {c.REM_COUNT} bstr")
        else:
            for i, rem in enumerate(rems):
                if not isinstance(rem, bytes) or len(rem) not in c.MEASUREMENT_SIZES:
                    out.bad(c.REALM_EXTENSIBLE_MEASUREMENTS,
                            f"REM[{i}] must be a 32/48/64-byte bstr")
    _check_text(out, claims, c.REALM_HASH_ALGO_ID, c.REALM_HASH_ALGORITHMS)
    _check_text(out, claims, c.REALM_PUBLIC_KEY_HASH_ALGO_ID, c.BINDING_HASH_ALGORITHMS)
    rak = _check_bytes(out, claims, c.REALM_PUBLIC_KEY, None)
    if rak is not None:
        if profile is not None:
            try:
                decode_cose_key(rak)
            except (CoseError, CborError) as err:
                out.bad(c.REALM_PUBLIC_KEY, f"not a valid COSE_Key (profile {profile}): {err}")
        elif len(rak) not in (65, 97, 133):
            out.bad(c.REALM_PUBLIC_KEY,
                    f"legacy (no profile) RAK must be a raw 65/97/133-byte point, got {len(rak)}")
    iid = _check_bytes(out, claims, c.REALM_INSTANCE_ID, (c.REALM_INSTANCE_ID_SIZE,),
                       mandatory=v2, what=" (realm#2.0.0)")
    if iid is not None and iid[0] != c.UEID_TYPE_RAND:
        out.bad(c.REALM_INSTANCE_ID, "UEID must start with 0x01")
    if c.REALM_MEC_POLICY in claims:
        mec = claims[c.REALM_MEC_POLICY]
        ok_int = isinstance(mec, int) and not isinstance(mec, bool) and mec in (0, 1)
        ok_text = not v2 and isinstance(mec, str) and mec in c.MEC_POLICY_TEXT
        if not (ok_int or ok_text):
            out.bad(c.REALM_MEC_POLICY, f"invalid MEC policy {mec!r} "
                    f"({'int 0/1' if v2 else 'int 0/1 or shared/private'})")
    elif v2:
        out.bad(c.REALM_MEC_POLICY, "missing mandatory claim 44243 (realm#2.0.0)")
    if c.REALM_LFA_POLICY in claims:
        lfa = claims[c.REALM_LFA_POLICY]
        if isinstance(lfa, bool) or lfa not in (0, 1):
            out.bad(c.REALM_LFA_POLICY, f"invalid LFA policy {lfa!r} (int 0/1)")
    _check_bytes(out, claims, c.REALM_DEVICES_TOKEN_HASH, c.MEASUREMENT_SIZES, mandatory=False)
    _unknown(out, claims, c.REALM_CLAIM_NAMES)
    if not out.failed():
        form = profile if profile is not None else "legacy (no profile, raw RAK)"
        out.add("cca-realm-claims", "affirming",
                f"mandatory claims present and well-formed: {form}")
    return out.items


def check_platform_claims(claims: Any) -> list[Finding]:
    """Check a platform claims map (§3) for both platform profiles."""
    out = _Out(SUBMOD_PLATFORM, realm=False)
    if not isinstance(claims, Mapping):
        out.bad("cca-platform-claims", "platform token payload is not a map")
        return out.items
    profile = _check_text(out, claims, c.PLATFORM_PROFILE, c.PLATFORM_PROFILES)
    _check_bytes(out, claims, c.PLATFORM_CHALLENGE, c.PLATFORM_CHALLENGE_SIZES)
    _check_bytes(out, claims, c.PLATFORM_IMPLEMENTATION_ID, (c.PLATFORM_IMPLEMENTATION_ID_SIZE,))
    iid = _check_bytes(out, claims, c.PLATFORM_INSTANCE_ID, (c.PLATFORM_INSTANCE_ID_SIZE,))
    if iid is not None and iid[0] != c.UEID_TYPE_RAND:
        out.bad(c.PLATFORM_INSTANCE_ID, "UEID must start with 0x01")
    config = _check_bytes(out, claims, c.PLATFORM_CONFIG, None)
    if config is not None and not config:
        out.bad(c.PLATFORM_CONFIG, "must not be empty")
    if c.PLATFORM_LIFECYCLE not in claims:
        out.bad(c.PLATFORM_LIFECYCLE, "missing mandatory claim 2395")
    else:
        lc = claims[c.PLATFORM_LIFECYCLE]
        if isinstance(lc, bool) or not isinstance(lc, int) or c.decode_lifecycle(lc) is None:
            out.bad(c.PLATFORM_LIFECYCLE, f"invalid lifecycle {lc!r} (0x0000-0x60ff)")
    if c.PLATFORM_SW_COMPONENTS not in claims:
        out.bad(c.PLATFORM_SW_COMPONENTS, "missing mandatory claim 2399")
    else:
        sws = claims[c.PLATFORM_SW_COMPONENTS]
        if not isinstance(sws, list | tuple) or not sws:
            out.bad(c.PLATFORM_SW_COMPONENTS, "must be a non-empty array")
        else:
            for i, sw in enumerate(sws):
                problem = _sw_component_problem(sw)
                if problem:
                    out.bad(c.PLATFORM_SW_COMPONENTS, f"component {i}: {problem}")
    _check_text(out, claims, c.PLATFORM_VERIFICATION_SERVICE, None, mandatory=False)
    _check_text(out, claims, c.PLATFORM_HASH_ALGO_ID, c.PLATFORM_HASH_ALGORITHMS)
    _unknown(out, claims, c.PLATFORM_CLAIM_NAMES)
    if not out.failed():
        out.add("cca-platform-claims", "affirming",
                f"mandatory claims present and well-formed: {profile}")
    return out.items


def _sw_component_problem(sw: Any) -> str | None:
    if not isinstance(sw, Mapping):
        return "not a map"
    for key in (c.SW_MEASUREMENT_VALUE, c.SW_SIGNER_ID):
        name = c.SW_COMPONENT_NAMES[key]
        if key not in sw:
            return f"missing {name} ({key})"
        value = sw[key]
        if not isinstance(value, bytes) or len(value) not in c.MEASUREMENT_SIZES:
            return f"{name} must be a 32/48/64-byte bstr"
    for key in (c.SW_COMPONENT_TYPE, c.SW_VERSION, c.SW_HASH_ALGO_ID):
        if key in sw and (not isinstance(sw[key], str) or not sw[key]):
            return f"{c.SW_COMPONENT_NAMES[key]} must be a non-empty tstr"
    return None


# ---------------------------------------------------------------------------------------------
# Token structure


def split_cca_token(token: bytes) -> tuple[str, bytes, bytes]:
    """Split a CCA token into ``(format, platform_token, realm_token)``; format is ``"cmw"``
    (tag 907, ``[263, bstr]`` entries) or ``"legacy"`` (tag 399, bstr entries). Raises
    :class:`TokenError` (or ``CborError``) for anything else."""
    return _split(cbor_decode(token))


def _split(top: Any) -> tuple[str, bytes, bytes]:
    if not isinstance(top, cbor2.CBORTag):
        raise TokenError("CCA token is not tagged (expected tag 907 or 399)")
    if top.tag == c.TAG_CMW_COLLECTION:
        fmt = "cmw"
    elif top.tag == c.TAG_CCA_TOKEN_LEGACY:
        fmt = "legacy"
    else:
        raise TokenError(f"unknown top-level tag {top.tag} (expected 907 or 399)")
    body = top.value
    if not isinstance(body, Mapping):
        raise TokenError(f"tag {top.tag} content is not a map")
    parts: list[bytes] = []
    for label in (c.CCA_PLATFORM_TOKEN, c.CCA_REALM_DELEGATED_TOKEN):
        if label not in body:
            raise TokenError(f"collection entry {label} missing")
        entry = body[label]
        if fmt == "cmw":
            if not (isinstance(entry, list | tuple) and len(entry) == 2
                    and entry[0] == c.COAP_EAT_CWT and isinstance(entry[1], bytes)):
                raise TokenError(f"collection entry {label} is not [263, bstr] (tag 907)")
            parts.append(entry[1])
        else:
            if not isinstance(entry, bytes):
                raise TokenError(f"collection entry {label} is not a bstr (tag 399)")
            parts.append(entry)
    return fmt, parts[0], parts[1]


# ---------------------------------------------------------------------------------------------
# Verification


def _parse_part(data: bytes | Any, out: _Out, what: str) -> tuple[Sign1, Mapping[Any, Any]] | None:
    try:
        sign1 = parse_sign1(data)
        payload = cbor_decode(sign1.payload)
    except (CoseError, CborError) as err:
        out.bad(f"cca-{what}-token", str(err))
        return None
    if not isinstance(payload, Mapping):
        out.bad(f"cca-{what}-token", "payload is not a claims map")
        return None
    return sign1, payload


def _rak_public_key(claims: Mapping[Any, Any]) -> ec.EllipticCurvePublicKey:
    rak = claims.get(c.REALM_PUBLIC_KEY)
    if not isinstance(rak, bytes):
        raise CoseError("no RAK claim (44237)")
    if c.REALM_PROFILE in claims:
        return decode_cose_key(rak)
    return public_key_from_point(rak)


def verify_token(
    token: bytes,
    cpak: CpakInput | None = None,
    reference: ReferenceValues | Mapping[str, Any] | None = None,
) -> AttestationResult:
    """Verify a CCA token (tag 907 or 399) or a bare platform token (tagged COSE_Sign1).

    ``cpak`` is the platform attestation public key (key object, PEM, DER, JWK); None leaves the
    platform signature unverified (``warning``). A CPAK that cannot be loaded is reported as a
    failed platform signature. ``reference`` (a :class:`ReferenceValues` or its dict form)
    adds the appraisal; a malformed dict raises :class:`ReferenceValuesError`.
    """
    refs = (ReferenceValues.from_mapping(reference) if isinstance(reference, Mapping)
            else reference)
    tok = _Out(SUBMOD_TOKEN, realm=False)
    pout = _Out(SUBMOD_PLATFORM, realm=False)
    rout = _Out(SUBMOD_REALM, realm=True)
    result = AttestationResult("contraindicated", [])

    def finish() -> AttestationResult:
        result.findings = tok.items + pout.items + rout.items
        result.status = _worst(f.status for f in result.findings)
        return result

    # 1. structure
    try:
        top = cbor_decode(token)
    except CborError as err:
        tok.bad("cca-token", str(err))
        return finish()
    realm_part: bytes | None = None
    if isinstance(top, cbor2.CBORTag) and top.tag == 18:
        result.token_format = "platform"
        platform_part: Any = top
        tok.add("cca-token", "affirming", "bare platform token (tagged COSE_Sign1)")
    else:
        try:
            fmt, platform_part, realm_part = _split(top)
        except TokenError as err:
            tok.bad("cca-token", str(err))
            return finish()
        result.token_format = fmt
        tok.add("cca-token", "affirming",
                "tag 907 CMW collection, [263, bstr] entries" if fmt == "cmw"
                else "tag 399 collection, bstr entries")
        extra = [k for k in top.value if k not in (c.CCA_PLATFORM_TOKEN,
                                                   c.CCA_REALM_DELEGATED_TOKEN)]
        if extra:
            tok.add("cca-token", "none", f"ignored collection entries {extra}")

    platform = _parse_part(platform_part, pout, "platform")
    realm = _parse_part(realm_part, rout, "realm") if realm_part is not None else None
    if platform is not None:
        result.platform_claims = platform[1]
        pout.items.extend(check_platform_claims(platform[1]))
    if realm is not None:
        result.realm_claims = realm[1]
        rout.items.extend(check_realm_claims(realm[1]))

    # 2. signatures
    if platform is not None:
        _verify_platform_signature(platform[0], cpak, pout)
    if realm is not None:
        try:
            rak = _rak_public_key(realm[1])
            realm[0].verify(rak)
        except (CoseError, CborError) as err:
            rout.add("cca-realm-signature", "contraindicated", str(err),
                     (TV_INSTANCE, AR_CRYPTO_FAILED))
        else:
            rout.add("cca-realm-signature", "affirming",
                     f"{realm[0].info.name} signature verified with the RAK of claim 44237")

    # 3. binding and profiles
    if platform is not None and realm is not None:
        _check_binding(platform[1], realm[1], rout)
        _check_profiles(platform[1], realm[1], rout)

    # 4. appraisal
    if refs is None or refs.is_empty():
        tok.add("reference-values", "none", "no reference values given: measurements not "
                "appraised")
        if platform is not None:
            _default_lifecycle(platform[1], pout)
    else:
        if platform is not None:
            _appraise_platform(platform[1], refs, pout)
        if realm is not None:
            _appraise_realm(realm[1], refs, rout)
    return finish()


def _verify_platform_signature(sign1: Sign1, cpak: CpakInput | None, out: _Out) -> None:
    claim = "cca-platform-signature"
    if cpak is None:
        out.add(claim, "warning", f"unverified: no CPAK given ({sign1.info.name} signature)",
                (TV_INSTANCE, AR_NO_CLAIM))
        return
    try:
        key = load_public_key(cpak)
    except CoseError as err:
        out.add(claim, "contraindicated", f"CPAK unusable: {err}", (TV_INSTANCE, AR_CRYPTO_FAILED))
        return
    try:
        sign1.verify(key)
    except CoseError as err:
        out.add(claim, "contraindicated", f"{err} with the given CPAK",
                (TV_INSTANCE, AR_CRYPTO_FAILED))
        return
    out.add(claim, "affirming", f"{sign1.info.name} signature verified with the CPAK",
            (TV_INSTANCE, AR_AFFIRMING))
    out.add("cca-platform-hardware", "affirming", "token signed by the given CPAK",
            (TV_HARDWARE, AR_AFFIRMING))


def _check_binding(platform: Mapping[Any, Any], realm: Mapping[Any, Any], out: _Out) -> None:
    claim = "cca-realm-binding"
    rak = realm.get(c.REALM_PUBLIC_KEY)
    alg = realm.get(c.REALM_PUBLIC_KEY_HASH_ALGO_ID)
    nonce = platform.get(c.PLATFORM_CHALLENGE)
    if not isinstance(rak, bytes) or not isinstance(nonce, bytes):
        out.add(claim, "contraindicated", "cannot check: RAK or platform challenge missing",
                (TV_INSTANCE, AR_CRYPTO_FAILED))
        return
    if not isinstance(alg, str) or alg not in c.BINDING_HASH_ALGORITHMS:
        out.add(claim, "contraindicated", f"cannot check: unsupported RAK hash algorithm {alg!r}",
                (TV_INSTANCE, AR_CRYPTO_FAILED))
        return
    expected = c.hash_digest(alg, rak)
    if nonce != expected:
        out.add(claim, "contraindicated",
                f"platform challenge {_hex(nonce)} != {alg}(RAK) {_hex(expected)}",
                (TV_INSTANCE, AR_CRYPTO_FAILED))
        return
    out.add(claim, "affirming", f"platform challenge = {alg}(RAK claim)",
            (TV_INSTANCE, AR_AFFIRMING))


def _check_profiles(platform: Mapping[Any, Any], realm: Mapping[Any, Any], out: _Out) -> None:
    pprof = platform.get(c.PLATFORM_PROFILE)
    rprof = realm.get(c.REALM_PROFILE)
    if pprof not in c.PLATFORM_PROFILES or (rprof is not None and rprof not in c.REALM_PROFILES):
        return  # already reported by the claim checks
    legacy_platform = pprof == c.PROFILE_PLATFORM_LEGACY
    if legacy_platform != (rprof is None):
        out.add("cca-profiles", "warning",
                f"platform profile {pprof} with realm profile {rprof or '(none)'}: the legacy "
                "platform profile goes with the no-profile realm form")


def _lifecycle_allowed(value: int, allowed: tuple[str | int, ...]) -> bool:
    state = c.decode_lifecycle(value)
    for item in allowed:
        if isinstance(item, int) and item == value:
            return True
        if isinstance(item, str) and state is not None and c.LIFECYCLE_NAMES[item] == state:
            return True
    return False


def _default_lifecycle(platform: Mapping[Any, Any], out: _Out) -> None:
    lc = platform.get(c.PLATFORM_LIFECYCLE)
    if not isinstance(lc, int) or isinstance(lc, bool) or c.decode_lifecycle(lc) is None:
        return
    if c.decode_lifecycle(lc) == c.Lifecycle.SECURED:
        out.add(c.PLATFORM_LIFECYCLE, "affirming", c.lifecycle_name(lc),
                (TV_CONFIGURATION, AR_AFFIRMING))
    else:
        out.add(c.PLATFORM_LIFECYCLE, "warning", f"{c.lifecycle_name(lc)}: not secured",
                (TV_CONFIGURATION, AR_UNSAFE))


def _appraise_platform(platform: Mapping[Any, Any], refs: ReferenceValues, out: _Out) -> None:
    lc = platform.get(c.PLATFORM_LIFECYCLE)
    if refs.platform_lifecycles is None:
        _default_lifecycle(platform, out)
    elif isinstance(lc, int) and not isinstance(lc, bool):
        if _lifecycle_allowed(lc, refs.platform_lifecycles):
            out.add(c.PLATFORM_LIFECYCLE, "affirming", f"{c.lifecycle_name(lc)}: allowed",
                    (TV_CONFIGURATION, AR_AFFIRMING))
        else:
            out.add(c.PLATFORM_LIFECYCLE, "contraindicated",
                    f"{c.lifecycle_name(lc)}: not among the allowed lifecycles "
                    f"{list(refs.platform_lifecycles)}", (TV_CONFIGURATION, AR_CONTRAINDICATED))
    if refs.platform_sw_components is not None:
        sws = platform.get(c.PLATFORM_SW_COMPONENTS)
        if isinstance(sws, list | tuple):
            bad = []
            for i, sw in enumerate(sws):
                if not isinstance(sw, Mapping):
                    continue
                if not any(ref.matches(sw) for ref in refs.platform_sw_components):
                    kind = sw.get(c.SW_COMPONENT_TYPE)
                    mv = sw.get(c.SW_MEASUREMENT_VALUE)
                    label = f"{i}" + (f" ({kind})" if isinstance(kind, str) else "")
                    bad.append(f"{label} {_hex(mv) if isinstance(mv, bytes) else mv!r}")
            if bad:
                out.add(c.PLATFORM_SW_COMPONENTS, "contraindicated",
                        "components not among the reference values: " + "; ".join(bad),
                        (TV_EXECUTABLES, AR_CONTRAINDICATED))
            else:
                out.add(c.PLATFORM_SW_COMPONENTS, "affirming",
                        f"all {len(sws)} component measurements match reference values",
                        (TV_EXECUTABLES, AR_AFFIRMING))
    for key, want in ((c.PLATFORM_IMPLEMENTATION_ID, refs.platform_implementation_id),
                      (c.PLATFORM_CONFIG, refs.platform_config)):
        if want is None:
            continue
        got = platform.get(key)
        if got == want:
            out.add(key, "affirming", "matches reference value", (TV_CONFIGURATION, AR_AFFIRMING))
        else:
            shown = _hex(got) if isinstance(got, bytes) else repr(got)
            out.add(key, "contraindicated", f"{shown} != reference {_hex(want)}",
                    (TV_CONFIGURATION, AR_CONTRAINDICATED))


def _appraise_realm(realm: Mapping[Any, Any], refs: ReferenceValues, out: _Out) -> None:
    if refs.challenge is not None:
        got = realm.get(c.REALM_CHALLENGE)
        if got == refs.challenge:
            out.add(c.REALM_CHALLENGE, "affirming", "matches the expected challenge")
        else:
            shown = _hex(got) if isinstance(got, bytes) else repr(got)
            out.add(c.REALM_CHALLENGE, "contraindicated",
                    f"{shown} != expected {_hex(refs.challenge)} (stale or replayed token)")
    if refs.rim is not None:
        got = realm.get(c.REALM_INITIAL_MEASUREMENT)
        if got in refs.rim:
            out.add(c.REALM_INITIAL_MEASUREMENT, "affirming", "matches reference value",
                    (TV_EXECUTABLES, AR_AFFIRMING))
        else:
            shown = _hex(got, 64) if isinstance(got, bytes) else repr(got)
            wants = " or ".join(_hex(r, 64) for r in refs.rim)
            out.add(c.REALM_INITIAL_MEASUREMENT, "contraindicated",
                    f"{shown} != reference {wants}", (TV_EXECUTABLES, AR_CONTRAINDICATED))
    if refs.rems is not None:
        got_rems = realm.get(c.REALM_EXTENSIBLE_MEASUREMENTS)
        if isinstance(got_rems, list | tuple) and len(got_rems) == len(refs.rems):
            bad = [f"REM[{i}] {_hex(g) if isinstance(g, bytes) else g!r} != {_hex(w)}"
                   for i, (g, w) in enumerate(zip(got_rems, refs.rems, strict=True))
                   if w is not None and g != w]
            if bad:
                out.add(c.REALM_EXTENSIBLE_MEASUREMENTS, "contraindicated", "; ".join(bad),
                        (TV_EXECUTABLES, AR_CONTRAINDICATED))
            else:
                n = sum(w is not None for w in refs.rems)
                out.add(c.REALM_EXTENSIBLE_MEASUREMENTS, "affirming",
                        f"{n} of {len(refs.rems)} REMs compared, all match",
                        (TV_EXECUTABLES, AR_AFFIRMING))
    if refs.realm_hash_algo is not None:
        got = realm.get(c.REALM_HASH_ALGO_ID)
        if got == refs.realm_hash_algo:
            out.add(c.REALM_HASH_ALGO_ID, "affirming", f"{got}", (TV_CONFIGURATION, AR_AFFIRMING))
        else:
            out.add(c.REALM_HASH_ALGO_ID, "contraindicated",
                    f"{got!r} != reference {refs.realm_hash_algo!r}",
                    (TV_CONFIGURATION, AR_CONTRAINDICATED))
    if refs.rpv is not None:
        got = realm.get(c.REALM_PERSONALIZATION_VALUE)
        if got == refs.rpv:
            out.add(c.REALM_PERSONALIZATION_VALUE, "affirming", "matches reference value",
                    (TV_CONFIGURATION, AR_AFFIRMING))
        else:
            shown = _hex(got) if isinstance(got, bytes) else repr(got)
            out.add(c.REALM_PERSONALIZATION_VALUE, "contraindicated",
                    f"{shown} != reference {_hex(refs.rpv)}",
                    (TV_CONFIGURATION, AR_CONTRAINDICATED))
