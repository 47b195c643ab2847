"""Realm measurements (rmm-abi §10): RIM initialisation and extension, REM extension.

Descriptors are 0x100 bytes, zero-filled, little-endian; the new RIM is H(descriptor). The
``rim`` and ``content`` fields are 64 bytes holding the hash in their first bytes.
"""

from __future__ import annotations

import enum
import hashlib

from ..layout import Field, Layout


class HashAlgorithm(enum.IntEnum):
    SHA_256 = 0
    SHA_512 = 1

    @property
    def hashlib_name(self) -> str:
        return "sha256" if self == HashAlgorithm.SHA_256 else "sha512"

    @property
    def digest_size(self) -> int:
        return 32 if self == HashAlgorithm.SHA_256 else 64


MEASUREMENT_SLOTS = 5  # RIM + REM0..3
SLOT_SIZE = 64

# RmiRealmParams fields that are measured, at their RmiRealmParams offsets (§10.2).
MEASURED_REALM_PARAMS = Layout(
    "MeasuredRealmParams",
    4096,
    [
        Field("flags", 0x000, 8),
        Field("s2sz", 0x008, 4),
        Field("sve_vl", 0x010, 4),
        Field("num_bps", 0x018, 4),
        Field("num_wps", 0x020, 4),
        Field("pmu_num_ctrs", 0x028, 4),
        Field("hash_algo", 0x030, 1),
    ],
)
MEASURED_REC_PARAMS = Layout(
    "MeasuredRecParams",
    4096,
    [Field("flags", 0x000, 8), Field("pc", 0x200, 8)]
    + [Field(f"gpr{i}", 0x300 + 8 * i, 8) for i in range(8)],
)
DATA_DESC = Layout(
    "RmmMeasurementDescriptorData",
    0x100,
    [
        Field("desc_type", 0x00, 8),
        Field("len", 0x08, 8),
        Field("rim", 0x10, 64, raw=True),
        Field("ipa", 0x50, 8),
        Field("flags", 0x58, 8),
        Field("content", 0x60, 64, raw=True),
    ],
)
REC_DESC = Layout(
    "RmmMeasurementDescriptorRec",
    0x100,
    [
        Field("desc_type", 0x00, 8),
        Field("len", 0x08, 8),
        Field("rim", 0x10, 64, raw=True),
        Field("content", 0x50, 64, raw=True),
    ],
)
RIPAS_DESC = Layout(
    "RmmMeasurementDescriptorRipas",
    0x100,
    [
        Field("desc_type", 0x00, 8),
        Field("len", 0x08, 8),
        Field("rim", 0x10, 64, raw=True),
        Field("base", 0x50, 8),
        Field("top", 0x58, 8),
    ],
)
DESC_TYPE_DATA = 0
DESC_TYPE_REC = 1
DESC_TYPE_RIPAS = 2


_CONSTRUCTORS = {0: hashlib.sha256, 1: hashlib.sha512}


def digest(algo: HashAlgorithm, data: bytes) -> bytes:
    return _CONSTRUCTORS[algo](data).digest()


def slot(value: bytes) -> bytes:
    """A 64-byte measurement slot holding ``value`` in its first bytes."""
    return value.ljust(SLOT_SIZE, b"\0")


def rim_init(algo: HashAlgorithm, params: dict[str, int]) -> bytes:
    """RIM = H(4096-byte RmiRealmParams image holding only the measured fields)."""
    image = MEASURED_REALM_PARAMS.pack({k: params[k] for k in MEASURED_REALM_PARAMS.fields})
    return digest(algo, image)


def extend_data(algo: HashAlgorithm, rim: bytes, ipa: int, flags: int, content: bytes) -> bytes:
    measured = digest(algo, content) if flags == 1 else b""
    desc = DATA_DESC.pack_values(DESC_TYPE_DATA, 0x100, rim, ipa, flags, measured)
    return digest(algo, desc)


def extend_rec(algo: HashAlgorithm, rim: bytes, flags: int, pc: int, gprs: list[int]) -> bytes:
    values = {"flags": flags, "pc": pc} | {f"gpr{i}": gprs[i] for i in range(8)}
    content = digest(algo, MEASURED_REC_PARAMS.pack(values))
    desc = REC_DESC.pack(
        {
            "desc_type": DESC_TYPE_REC,
            "len": 0x100,
            "rim": slot(rim),
            "content": slot(content),
        }
    )
    return digest(algo, desc)


def extend_ripas(algo: HashAlgorithm, rim: bytes, base: int, top: int) -> bytes:
    desc = RIPAS_DESC.pack(
        {
            "desc_type": DESC_TYPE_RIPAS,
            "len": 0x100,
            "rim": slot(rim),
            "base": base,
            "top": top,
        }
    )
    return digest(algo, desc)


def extend_rem(algo: HashAlgorithm, rem: bytes, value: bytes) -> bytes:
    """REM[i] := H(REM[i] ‖ value[0:size]) (§10.6)."""
    return digest(algo, rem + value)
