"""Realm Initial Measurement vectors (rmm-abi §10, attestation.md §5).

V1 is the externally confirmed vector (cca-realm-measurements): it must be reproduced by a
realm created through the RMI. V2/V3 come from an independent model of the same rules
(shared/data/attestation/rim_vectors_selfcomputed.txt); reproducing them step by step
through the ABI checks each descriptor type (RIPAS, DATA measured/unmeasured, REC).
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from ccasim import Platform, PlatformConfig, SecurityState
from ccasim.host.rmi import RealmBuilder, RealmHandle, RmiClient
from ccasim.rmm import measurement
from ccasim.rmm.objects import Realm

VECTORS = Path(__file__).resolve().parents[2] / "shared" / "data" / "attestation"
V1_B64 = "iWDVaCY3CqpvybOgQdQkBolYK6QeKti7j5rfbSoM1ec="


def _vectors() -> dict[str, list[str]]:
    path = VECTORS / "rim_vectors_selfcomputed.txt"
    if not path.exists():
        pytest.skip("shared/data/attestation is not next to this checkout")
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        name, _, rest = line.partition(" ")
        if name in ("V2", "V3"):
            out.setdefault(name, []).append(rest.split()[-1])
    return out


def _rim(p: Platform, realm: RealmHandle) -> bytes:
    with p.cpus[0].probe(SecurityState.REALM)._running() as pe:
        return Realm.load(pe, realm.rd).rim


@pytest.fixture
def platform() -> Platform:
    # FVP-like debug resources: 6 breakpoints, 4 watchpoints (realm asks for count - 1).
    return Platform(PlatformConfig(cpus=1, num_bps=6, num_wps=4))


def test_v1_confirmed_vector_through_realm_create(platform: Platform) -> None:
    builder = RealmBuilder(RmiClient(platform))
    realm = builder.create(s2sz=48, num_bps=5, num_wps=3, hash_algo=0)
    assert _rim(platform, realm) == base64.b64decode(V1_B64)


def test_v1_rim_init_function_matches_the_definition() -> None:
    # RIM = SHA-256 of a zeroed 4096-byte RmiRealmParams holding only the measured fields.
    image = bytearray(4096)
    image[0x08] = 48
    image[0x18] = 5
    image[0x20] = 3
    expected = hashlib.sha256(bytes(image)).digest()
    got = measurement.rim_init(
        measurement.HashAlgorithm.SHA_256,
        {"flags": 0, "s2sz": 48, "sve_vl": 0, "num_bps": 5, "num_wps": 3,
         "pmu_num_ctrs": 0, "hash_algo": 0},
    )
    assert got == expected == base64.b64decode(V1_B64)


@pytest.mark.parametrize(("name", "algo"), [("V2", 0), ("V3", 1)])
def test_v2_v3_step_by_step(platform: Platform, name: str, algo: int) -> None:
    expected = _vectors()[name]
    c = RmiClient(platform)
    b = RealmBuilder(c)
    realm = b.create(s2sz=40, num_bps=5, num_wps=3, hash_algo=algo)
    assert _rim(platform, realm).hex() == expected[0]

    # INIT_RIPAS over [0x8000_0000, 0x8040_0000) as two 2 MiB entries: level-2 table only.
    b.ensure_table(realm, 0x8000_0000, 2)
    r = c.call("RTT_INIT_RIPAS", realm.rd, 0x8000_0000, 0x8040_0000)
    assert r.ok and r[1] == 0x8040_0000
    assert _rim(platform, realm).hex() == expected[1]

    b.add_data(realm, 0x8000_0000, b"FW CONTENT", measure=True)
    assert _rim(platform, realm).hex() == expected[2]
    b.add_data(realm, 0x8000_1000, b"anything: unmeasured content is not hashed", measure=False)
    assert _rim(platform, realm).hex() == expected[3]

    b.add_rec(realm, pc=0x8000_0000, gprs=[0x8020_0000], runnable=True)
    assert _rim(platform, realm).hex() == expected[4]
    # A REC that is not runnable is not measured.
    b.add_rec(realm, pc=0x8000_0000, runnable=False)
    assert _rim(platform, realm).hex() == expected[4]


def test_unmeasured_commands_leave_the_rim(platform: Platform) -> None:
    c = RmiClient(platform)
    b = RealmBuilder(c)
    realm = b.create(s2sz=40, num_bps=5, num_wps=3)
    before = _rim(platform, realm)
    b.ensure_table(realm, 0, 3)
    data = c.new_delegated()
    assert c.call("DATA_CREATE_UNKNOWN", realm.rd, data, 0x1000).ok
    assert c.call("RTT_READ_ENTRY", realm.rd, 0x1000, 3).ok
    assert _rim(platform, realm) == before
