"""The key store partition: secrets kept for the Normal world in memory it lends.

The Normal world lends a granule (the vault) and opens it with KS_OPEN; the partition's
AArch64 code derives the vault keys from the hardware unique key, then seals each secret
(SipHash-2-4 keystream, SipHash-2-4 tag) into the vault. While lent the vault is Secure
PAS: the Normal world and realms fault on it. KS_CLOSE relinquishes it; FFA_MEM_RECLAIM
scrubs it and hands it back.
"""

from __future__ import annotations

import struct

import pytest

from ccasim import SecurityState
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.secure import partitions as sp
from secure_helpers import (
    DENIED,
    FFA_MEM_RECLAIM,
    GPI_NS,
    GPI_SECURE,
    GRANULE,
    INVALID_PARAMETERS,
    KEYSTORE,
    MASK64,
    PERM_RW,
    World,
    can_access,
    error_code,
    s64,
    world,
)

SECRET = (0x0123_4567_89AB_CDEF, 0x0F1E_2D3C_4B5A_6978)
VAULT_HEADER = 0x40
RECORD = 0x20


@pytest.fixture
def w() -> World:
    return world()


def test_siphash_reference_against_the_published_vector() -> None:
    """SipHash-2-4 paper, appendix A: key 00..0f, message 00..0e -> a129ca6149be45e5."""
    assert sp.siphash24(bytes(range(16)), bytes(range(15))) == 0xA129CA6149BE45E5
    assert sp.siphash24(bytes(range(16)), b"") == 0x726FDB47DD0E0E31


def open_vault(w: World, pages: int = 1) -> tuple[int, int]:
    g = w.granule()
    for _ in range(pages - 1):
        w.granule()
    w.p.host.write(g, b"\xee" * GRANULE)  # whatever the Normal world left there
    h = w.d.lend(KEYSTORE, [(g, pages)])
    r = w.keystore(sp.KS_OPEN, h)
    assert r[0] == 0, s64(r[0])
    assert r[1] == (pages * GRANULE - VAULT_HEADER) // RECORD
    return g, h


def vault(w: World, g: int, size: int = GRANULE) -> bytes:
    """The vault as the Secure world sees it (a Secure-state read)."""
    return w.p.cpus[0].probe(SecurityState.SECURE).read(g, size, Pas.SECURE)


def test_put_get_seal_in_lent_memory(w: World) -> None:
    g, h = open_vault(w)
    huk = sp.hardware_unique_key(w.p.config.seed)
    k_enc, k_mac = sp.keystore_reference(huk, h)
    raw = vault(w, g)
    assert raw[:8] == b"KSVAULT1" and raw[0x10:0x20] == k_enc and raw[0x20:0x30] == k_mac
    assert raw[VAULT_HEADER:] == bytes(GRANULE - VAULT_HEADER)  # records cleared
    tag = w.keystore(sp.KS_PUT, 5, *SECRET)
    assert tag[0] == 0
    # the record is sealed: nonce, ciphertext, tag — computed here independently
    nonce, c0, c1, t = struct.unpack_from("<4Q", vault(w, g), VAULT_HEADER + 5 * RECORD)
    assert nonce == 1
    assert c0 == SECRET[0] ^ sp.siphash_words(k_enc, [1, 0])
    assert c1 == SECRET[1] ^ sp.siphash_words(k_enc, [1, 1])
    assert t == tag[1] == sp.siphash_words(k_mac, [5, 1, c0, c1])
    assert SECRET[0].to_bytes(8, "little") not in vault(w, g)
    assert w.keystore(sp.KS_GET, 5)[:3] == (0, *SECRET)
    # a second secret, a fresh nonce
    w.keystore(sp.KS_PUT, 6, 1, 2)
    assert struct.unpack_from("<Q", vault(w, g), VAULT_HEADER + 6 * RECORD)[0] == 2
    assert w.keystore(sp.KS_GET, 6)[:3] == (0, 1, 2)
    # a MAC under the vault key, without revealing it
    assert w.keystore(sp.KS_MAC, 7, 8, 9)[:2] == (0, sp.siphash_words(k_mac, [MASK64, 7, 8, 9]))


def test_the_vault_is_out_of_reach_of_the_normal_and_realm_worlds(w: World) -> None:
    g, _h = open_vault(w)
    w.keystore(sp.KS_PUT, 0, *SECRET)
    assert w.gpi(g) == GPI_SECURE
    for state, pas in ((SecurityState.NON_SECURE, Pas.NON_SECURE),
                       (SecurityState.REALM, Pas.REALM), (SecurityState.REALM, Pas.NON_SECURE),
                       (SecurityState.SECURE, Pas.NON_SECURE)):
        assert not can_access(w.p, state, g, pas), (state, pas)
        assert not can_access(w.p, state, g + VAULT_HEADER, pas, write=True), (state, pas)
    assert can_access(w.p, SecurityState.SECURE, g, Pas.SECURE)


def test_tampering_is_detected(w: World) -> None:
    g, _h = open_vault(w)
    w.keystore(sp.KS_PUT, 2, *SECRET)
    secure = w.p.cpus[0].probe(SecurityState.SECURE)
    rec = g + VAULT_HEADER + 2 * RECORD
    c0 = secure.read_u64(rec + 8, Pas.SECURE)
    secure.write(rec + 8, (c0 ^ 1).to_bytes(8, "little"), Pas.SECURE)
    r = w.keystore(sp.KS_GET, 2)
    assert s64(r[0]) == sp.KS_ERR_TAMPERED and r[1:] == (0, 0, 0, 0)  # nothing leaks
    secure.write(rec + 8, c0.to_bytes(8, "little"), Pas.SECURE)
    assert w.keystore(sp.KS_GET, 2)[:3] == (0, *SECRET)


def test_close_and_reclaim_scrub_the_vault(w: World) -> None:
    g, h = open_vault(w, pages=2)
    w.keystore(sp.KS_PUT, 0, *SECRET)
    w.keystore(sp.KS_PUT, 200, *SECRET)  # in the second page
    assert error_code(w.smc(FFA_MEM_RECLAIM, h, 0, 0)) == DENIED  # the key store holds it
    assert w.keystore(sp.KS_CLOSE)[0] == 0
    assert s64(w.keystore(sp.KS_GET, 0)[0]) == sp.KS_ERR_NOT_OPEN
    w.d.reclaim(h)
    assert (w.gpi(g), w.gpi(g + GRANULE)) == (GPI_NS, GPI_NS)
    assert w.p.host.read(g, 2 * GRANULE) == bytes(2 * GRANULE)  # keys and records gone
    # a new vault: new keys (the handle differs), the old records are not there
    _g2, _h2 = open_vault(w)
    assert s64(w.keystore(sp.KS_GET, 0)[0]) == sp.KS_ERR_EMPTY


def test_key_store_errors(w: World) -> None:
    assert s64(w.keystore(sp.KS_PUT, 0, 1, 2)[0]) == sp.KS_ERR_NOT_OPEN
    s = w.granule()
    hs = w.d.share(KEYSTORE, [(s, 1)], permissions=PERM_RW)
    # a shared page is no vault: the key store retrieves only lent memory
    assert s64(w.keystore(sp.KS_OPEN, hs)[0]) == INVALID_PARAMETERS
    assert s64(w.keystore(sp.KS_OPEN, 12345)[0]) == INVALID_PARAMETERS
    _g, h = open_vault(w)
    assert s64(w.keystore(sp.KS_OPEN, h)[0]) == sp.KS_ERR_ALREADY_OPEN
    assert s64(w.keystore(99)[0]) == sp.STATUS_UNKNOWN_COMMAND
    slots = (GRANULE - VAULT_HEADER) // RECORD
    assert s64(w.keystore(sp.KS_PUT, slots, 1, 2)[0]) == sp.KS_ERR_SLOT
    assert s64(w.keystore(sp.KS_GET, slots - 1)[0]) == sp.KS_ERR_EMPTY
    assert w.keystore(sp.KS_PUT, slots - 1, 1, 2)[0] == 0
    w.d.reclaim(hs)


def test_secrets_sealed_on_one_platform_differ_on_another_hardware_key() -> None:
    from ccasim import PlatformConfig

    tags = []
    for seed in (0, 1):
        w = world(PlatformConfig(cpus=1, seed=seed))
        _g, _h = open_vault(w)
        tags.append(w.keystore(sp.KS_PUT, 0, *SECRET)[1])
    assert tags[0] != tags[1]
    assert sp.hardware_unique_key(0) != sp.hardware_unique_key(1)
