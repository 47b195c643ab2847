"""FF-A memory management end to end: FFA_MEM_SHARE / LEND / DONATE from the Normal
world, FFA_MEM_RETRIEVE_REQ / RELINQUISH from a partition's AArch64 code, FFA_MEM_RECLAIM;
the GPT changes they make through the monitor; and every error returning its FF-A code
while changing nothing (GPT, SPMC state, memory contents, partition mappings)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ccasim import SecurityState
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.secure import partitions as sp
from secure_helpers import (
    ATTR_NORMAL_WB_INNER,
    ATTR_NS,
    DENIED,
    ECHO,
    FFA_MEM_DONATE_64,
    FFA_MEM_LEND_32,
    FFA_MEM_LEND_64,
    FFA_MEM_RECLAIM,
    FFA_MEM_SHARE_64,
    FFA_SUCCESS_32,
    GPI_NS,
    GPI_REALM,
    GPI_SECURE,
    GRANULE,
    INVALID_PARAMETERS,
    KEYSTORE,
    MASK64,
    NOT_SUPPORTED,
    PERM_NX,
    PERM_RO,
    PERM_RW,
    PERM_X,
    RMI_ERROR_INPUT,
    RMI_GRANULE_DELEGATE,
    RMI_GRANULE_UNDELEGATE,
    RMI_SUCCESS,
    TYPE_DONATE,
    TYPE_LEND,
    TYPE_SHARE,
    World,
    can_access,
    composite,
    descriptor,
    emad,
    error_code,
    mtd,
    s64,
    world,
)

PATTERN = bytes(range(256)) * 16


@pytest.fixture
def w() -> World:
    return world()


def fill(w: World, g: int, data: bytes = PATTERN) -> None:
    w.p.host.write(g, data)


def snapshot(w: World, granules: list[int]) -> tuple[object, ...]:
    """Everything a failed call must leave alone."""
    spmc = w.p.spmc
    echo = spmc.partitions[ECHO]
    pe = w.p.pes[0]
    with w.p.cpus[0].probe(SecurityState.SECURE)._running():
        maps = [echo.stage2.lookup(pe, g) for g in granules]
    contents = [w.p.el3.read(g, 64, {GPI_NS: Pas.NON_SECURE, GPI_SECURE: Pas.SECURE,
                                     GPI_REALM: Pas.REALM}[w.gpi(g)]) for g in granules]
    shares = {h: (s.kind, s.retrieved, s.constituents) for h, s in spmc.shares.items()}
    return ([w.gpi(g) for g in granules], shares, dict(spmc._busy_pages), set(spmc._donated),
            contents, maps, spmc.nwd_mailbox)


def retrieve(w: World, handle: int, kind: int = 0, perms: int = PERM_RW | PERM_NX,
             tag: int = 0) -> tuple[int, ...]:
    """The echo partition retrieves ``handle``: (status, address, pages, total, attrs)."""
    return w.echo(sp.ECHO_RETRIEVE, handle, kind, perms, tag)


# ------------------------------------------------------------------------------ lend


def test_lend_moves_granules_to_secure_and_reclaim_scrubs_them(w: World) -> None:
    g1, g2 = w.granule(), w.granule()
    fill(w, g1)
    fill(w, g2, b"\x5a" * GRANULE)
    h = w.d.lend(ECHO, [(g1, 2)], flags=TYPE_LEND)
    assert h >> 63 == 0  # allocated by the SPMC
    assert (w.gpi(g1), w.gpi(g2)) == (GPI_SECURE, GPI_SECURE)
    assert not w.host_can_read(g1) and not w.host_can_read(g2 + 0xFF8)
    r = retrieve(w, h, TYPE_LEND)
    assert r == (0, g1, 2, 2, ATTR_NORMAL_WB_INNER)  # Secure memory: NS bit clear
    # the partition sees what the Normal world left there and can write it
    assert w.echo(sp.ECHO_READ, g1 + 8)[1] == int.from_bytes(PATTERN[8:16], "little")
    assert w.echo(sp.ECHO_READ, g2)[1] == 0x5A5A5A5A5A5A5A5A
    assert w.echo(sp.ECHO_WRITE, g2 + 0x10, 0x5EC2E7)[1] == 0x5EC2E7
    # reclaim while the borrower still holds it
    before = snapshot(w, [g1, g2])
    assert error_code(w.smc(FFA_MEM_RECLAIM, h & 0xFFFF_FFFF, h >> 32, 0)) == DENIED
    assert snapshot(w, [g1, g2]) == before
    assert w.echo(sp.ECHO_READ, g2 + 0x10)[1] == 0x5EC2E7  # still mapped, still Secure
    assert w.echo(sp.ECHO_RELINQUISH, h)[0] == 0
    assert w.echo(sp.ECHO_READ, g1)[0] == sp.STATUS_FAULT & MASK64  # unmapped at once
    w.d.reclaim(h)
    assert (w.gpi(g1), w.gpi(g2)) == (GPI_NS, GPI_NS)
    assert w.p.host.read(g1, GRANULE) == bytes(GRANULE)  # scrubbed: the borrower could write
    assert w.p.host.read(g2, GRANULE) == bytes(GRANULE)
    assert error_code(w.smc(FFA_MEM_RECLAIM, h & 0xFFFF_FFFF, h >> 32, 0)) == \
        INVALID_PARAMETERS  # the handle is gone


def test_reclaim_of_unretrieved_or_read_only_memory_keeps_the_owners_data(w: World) -> None:
    g = w.granule()
    fill(w, g)
    h = w.d.lend(ECHO, [(g, 1)])
    w.d.reclaim(h)
    assert w.gpi(g) == GPI_NS and w.p.host.read(g, GRANULE) == PATTERN
    h = w.d.lend(ECHO, [(g, 1)], permissions=PERM_RO | PERM_NX)
    assert retrieve(w, h, perms=PERM_NX)[0] == 0  # data access not specified: as lent (RO)
    assert w.echo(sp.ECHO_WRITE, g, 1)[0] == sp.STATUS_FAULT & MASK64  # read-only mapping
    assert w.echo(sp.ECHO_RELINQUISH, h)[0] == 0
    w.d.reclaim(h)
    assert w.p.host.read(g, GRANULE) == PATTERN
    h = w.d.lend(ECHO, [(g, 1)])
    w.d.reclaim(h, flags=1)  # the owner asks for zeroing
    assert w.p.host.read(g, GRANULE) == bytes(GRANULE)


def test_lend_with_the_zero_flag_clears_before_the_borrower_sees_it(w: World) -> None:
    g = w.granule()
    fill(w, g)
    h = w.d.lend(ECHO, [(g, 1)], flags=1)
    assert retrieve(w, h)[0] == 0
    assert w.echo(sp.ECHO_READ, g + 0x100)[1] == 0


def test_lend_32_bit_call_and_multiple_constituents(w: World) -> None:
    gs = [w.granule() for _ in range(5)]
    desc = descriptor(ECHO, [(gs[3], 2), (gs[0], 1)])
    x = w.send_raw(FFA_MEM_LEND_32, desc)
    assert x[0] == FFA_SUCCESS_32
    assert [w.gpi(g) for g in gs] == [GPI_SECURE, GPI_NS, GPI_NS, GPI_SECURE, GPI_SECURE]
    h = x[2] | (x[3] << 32)
    r = retrieve(w, h)
    assert r[:4] == (0, gs[3], 2, 3)
    assert w.echo(sp.ECHO_WRITE, gs[0], 7)[0] == 0 and w.echo(sp.ECHO_READ, gs[4])[0] == 0
    w.echo(sp.ECHO_RELINQUISH, h)
    w.d.reclaim(h)
    assert [w.gpi(g) for g in gs] == [GPI_NS] * 5


# ------------------------------------------------------------------------------ share


def test_share_leaves_granules_non_secure(w: World) -> None:
    g = w.granule()
    fill(w, g)
    h = w.d.share(ECHO, [(g, 1)])
    assert w.gpi(g) == GPI_NS and w.host_can_read(g)
    r = retrieve(w, h, TYPE_SHARE)
    assert r == (0, g, 1, 1, ATTR_NORMAL_WB_INNER | ATTR_NS)
    assert w.echo(sp.ECHO_WRITE, g, 0xFEED)[0] == 0
    assert w.p.host.read(g, 8) == (0xFEED).to_bytes(8, "little")  # both see it
    w.p.host.write(g + 8, b"from NS!")
    assert w.echo(sp.ECHO_READ, g + 8)[1] == int.from_bytes(b"from NS!", "little")
    assert w.echo(sp.ECHO_RELINQUISH, h)[0] == 0
    w.d.reclaim(h)
    assert w.p.host.read(g, 16) == (0xFEED).to_bytes(8, "little") + b"from NS!"  # no scrub


# ------------------------------------------------------------------------------ donate


def test_donate_gives_the_memory_away_for_good(w: World) -> None:
    g = w.granule()
    fill(w, g)
    h = w.d.donate(ECHO, [(g, 1)])
    assert w.gpi(g) == GPI_SECURE
    assert retrieve(w, h, TYPE_DONATE)[0] == 0
    assert w.echo(sp.ECHO_READ, g)[1] == int.from_bytes(PATTERN[:8], "little")
    before = snapshot(w, [g])
    assert error_code(w.smc(FFA_MEM_RECLAIM, h, 0, 0)) == INVALID_PARAMETERS
    assert error_code(w.send_raw(FFA_MEM_LEND_64, descriptor(ECHO, [(g, 1)]))) == DENIED
    assert snapshot(w, [g]) == before
    assert w.gpi(g) == GPI_SECURE and not w.host_can_read(g)


def test_donation_not_yet_retrieved_can_be_reclaimed(w: World) -> None:
    g = w.granule()
    h = w.d.donate(ECHO, [(g, 1)])
    w.d.reclaim(h)
    assert w.gpi(g) == GPI_NS


# ------------------------------------------------------------------------------ RMI vs FF-A


def test_lent_granules_cannot_be_delegated_and_realm_granules_cannot_be_lent(w: World) -> None:
    g, r = w.granule(), w.granule()
    h = w.d.lend(ECHO, [(g, 1)])
    assert w.smc(RMI_GRANULE_DELEGATE, g)[0] == RMI_ERROR_INPUT
    last = w.p.rmm.last_error
    assert last is not None and last.label == "gran_gpt"  # the monitor refused: BAD_PAS
    assert w.gpi(g) == GPI_SECURE
    assert w.smc(RMI_GRANULE_DELEGATE, r)[0] == RMI_SUCCESS
    for fid, perms in ((FFA_MEM_LEND_64, PERM_RW | PERM_NX), (FFA_MEM_SHARE_64, PERM_RW),
                       (FFA_MEM_DONATE_64, 0)):
        before = snapshot(w, [g, r])
        assert error_code(w.send_raw(fid, descriptor(ECHO, [(r, 1)], permissions=perms))) \
            == DENIED
        assert snapshot(w, [g, r]) == before
    w.d.reclaim(h)
    assert w.smc(RMI_GRANULE_DELEGATE, g)[0] == RMI_SUCCESS  # Non-secure again: delegable
    assert w.smc(RMI_GRANULE_UNDELEGATE, r)[0] == RMI_SUCCESS
    assert w.d.lend(ECHO, [(r, 1)]) > 0


def test_a_multi_constituent_lend_over_a_realm_granule_changes_nothing(w: World) -> None:
    a, b, c = w.granule(), w.granule(), w.granule()
    assert w.smc(RMI_GRANULE_DELEGATE, c)[0] == RMI_SUCCESS
    before = snapshot(w, [a, b, c])
    assert error_code(w.send_raw(FFA_MEM_LEND_64, descriptor(ECHO, [(a, 2), (c, 1)]))) == \
        DENIED
    assert snapshot(w, [a, b, c]) == before
    assert [w.gpi(x) for x in (a, b, c)] == [GPI_NS, GPI_NS, GPI_REALM]


# ------------------------------------------------------------------------------ send errors


Case = Callable[[World, int], tuple[int, ...]]


def _raw(fid: int, desc_of: Callable[[int], bytes], *extra: int) -> Case:
    return lambda w, g: w.send_raw(fid, desc_of(g), *extra)


SEND_ERRORS: dict[str, tuple[Case, int]] = {
    "address not zero": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1)]),
                              0x8010_0000, 0), INVALID_PARAMETERS),
    "page count not zero": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1)]), 0, 1),
                            INVALID_PARAMETERS),
    "fragmented": (lambda w, g: (w.p.host.write(w.d.tx, descriptor(ECHO, [(g, 1)])),
                                 w.smc(FFA_MEM_LEND_64, 96, 80, 0, 0))[1], NOT_SUPPORTED),
    "fragment longer than total": (lambda w, g: (w.p.host.write(w.d.tx, descriptor(
        ECHO, [(g, 1)])), w.smc(FFA_MEM_LEND_64, 96, 112, 0, 0))[1], INVALID_PARAMETERS),
    "longer than TX": (lambda w, g: w.smc(FFA_MEM_LEND_64, 0x2000, 0x2000, 0, 0),
                       INVALID_PARAMETERS),
    "shorter than a header": (lambda w, g: w.smc(FFA_MEM_LEND_64, 40, 40, 0, 0),
                              INVALID_PARAMETERS),
    "secure sender": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1)],
                                                                 sender=0x8002)),
                      INVALID_PARAMETERS),
    "handle given": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1)], handle=5)),
                     INVALID_PARAMETERS),
    "reserved field": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1)],
                                                                  reserved=1)),
                       INVALID_PARAMETERS),
    "emad size": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1)], emad_size=32)),
                  INVALID_PARAMETERS),
    "no borrower": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1)],
                                                               emad_count=0)),
                    INVALID_PARAMETERS),
    "two borrowers": (_raw(FFA_MEM_LEND_64, lambda g: mtd(emad_count=2) + emad(
        ECHO, 6, 80) + emad(KEYSTORE, 6, 80) + composite([(g, 1)])), NOT_SUPPORTED),
    "emad offset unaligned": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(
        ECHO, [(g, 1)], emad_offset=52)), INVALID_PARAMETERS),
    "unknown borrower": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(0x8009, [(g, 1)])),
                         INVALID_PARAMETERS),
    "Normal-world borrower": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(1, [(g, 1)])),
                              INVALID_PARAMETERS),
    "type flags of a share in a lend": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(
        ECHO, [(g, 1)], flags=TYPE_SHARE)), INVALID_PARAMETERS),
    "reserved flags": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1)],
                                                                  flags=1 << 12)),
                       INVALID_PARAMETERS),
    "zeroing shared memory": (_raw(FFA_MEM_SHARE_64, lambda g: descriptor(ECHO, [(g, 1)],
                                                                          flags=1)),
                              INVALID_PARAMETERS),
    "device memory": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1)],
                                                                 attributes=0x10)),
                      INVALID_PARAMETERS),
    "NS attribute from the sender": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(
        ECHO, [(g, 1)], attributes=ATTR_NORMAL_WB_INNER | ATTR_NS)), INVALID_PARAMETERS),
    "no data access": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1)],
                                                                  permissions=PERM_NX)),
                       INVALID_PARAMETERS),
    "executable": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1)],
                                                              permissions=PERM_RW | PERM_X)),
                   DENIED),
    "donate with permissions": (_raw(FFA_MEM_DONATE_64, lambda g: descriptor(
        ECHO, [(g, 1)], permissions=PERM_RW)), INVALID_PARAMETERS),
    "composite offset outside": (_raw(FFA_MEM_LEND_64, lambda g: mtd() + emad(
        ECHO, 6, 4096) + composite([(g, 1)])), INVALID_PARAMETERS),
    "no constituents": (_raw(FFA_MEM_LEND_64, lambda g: mtd() + emad(ECHO, 6, 64)
                             + composite([])), INVALID_PARAMETERS),
    "unaligned constituent": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g + 8, 1)])),
                              INVALID_PARAMETERS),
    "empty constituent": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 0)])),
                          INVALID_PARAMETERS),
    "total page count": (_raw(FFA_MEM_LEND_64, lambda g: mtd() + emad(ECHO, 6, 64)
                              + composite([(g, 1)], total=2)), INVALID_PARAMETERS),
    "same range twice": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(ECHO, [(g, 1), (g, 1)])),
                         INVALID_PARAMETERS),
    "overlapping ranges": (_raw(FFA_MEM_SHARE_64, lambda g: descriptor(
        ECHO, [(g, 3), (g + 2 * GRANULE, 2)], permissions=PERM_RW)), INVALID_PARAMETERS),
    "wrapping range": (_raw(FFA_MEM_LEND_64, lambda g: descriptor(
        ECHO, [((1 << 64) - GRANULE, 2)])), INVALID_PARAMETERS),
    "Secure memory": (lambda w, g: w.send_raw(FFA_MEM_LEND_64, descriptor(
        ECHO, [(w.p.region("secure_dram").base, 1)])), DENIED),
    "Realm carve-out": (lambda w, g: w.send_raw(FFA_MEM_SHARE_64, descriptor(
        ECHO, [(w.p.region("rmm").base, 1)], permissions=PERM_RW)), DENIED),
    "Root memory": (lambda w, g: w.send_raw(FFA_MEM_LEND_64, descriptor(
        ECHO, [(w.p.region("root").base, 1)])), DENIED),
    "beyond DRAM": (lambda w, g: w.send_raw(FFA_MEM_LEND_64, descriptor(
        ECHO, [(w.p.region("ns_dram").end - GRANULE, 2)])), DENIED),
}


# The check each case must fail (the SPMC's label for it): proves it fails for its reason.
SEND_ERROR_CHECK = {
    'address not zero': 'descriptor not in the TX buffer',
    'page count not zero': 'descriptor not in the TX buffer',
    'fragmented': 'fragmented descriptor',
    'fragment longer than total': 'descriptor length',
    'longer than TX': 'descriptor length',
    'shorter than a header': 'descriptor length',
    'secure sender': 'sender is not a Normal-world ID',
    'handle given': 'handle must be zero',
    'reserved field': 'reserved fields',
    'emad size': 'endpoint descriptor size',
    'no borrower': 'no borrower',
    'two borrowers': 'more than one borrower',
    'emad offset unaligned': 'endpoint descriptor offset',
    'unknown borrower': 'borrower is not a partition',
    'Normal-world borrower': 'borrower is not a partition',
    'type flags of a share in a lend': 'transaction type does not match the call',
    'reserved flags': 'flags',
    'zeroing shared memory': 'zeroing shared memory',
    'device memory': 'memory region attributes',
    'NS attribute from the sender': 'memory region attributes',
    'no data access': 'data access permission',
    'executable': 'executable access',
    'donate with permissions': 'donate: permissions not specified',
    'composite offset outside': 'composite descriptor offset',
    'no constituents': 'constituent count',
    'unaligned constituent': 'constituent address or size',
    'empty constituent': 'constituent address or size',
    'total page count': 'total page count',
    'same range twice': 'overlapping constituents',
    'overlapping ranges': 'overlapping constituents',
    'wrapping range': 'constituent wraps',
    'Secure memory': 'not Normal-world DRAM',
    'Realm carve-out': 'not Normal-world DRAM',
    'Root memory': 'not Normal-world DRAM',
    'beyond DRAM': 'not Normal-world DRAM',
}


@pytest.mark.parametrize("name", list(SEND_ERRORS))
def test_send_errors_change_nothing(w: World, name: str) -> None:
    case, code = SEND_ERRORS[name]
    g = w.granule()
    fill(w, g)
    pool = [g, g + GRANULE, g + 2 * GRANULE]
    before = snapshot(w, pool)
    assert error_code(case(w, g)) == code, w.p.spmc.last_error
    last = w.p.spmc.last_error
    assert last is not None and last.error.label == SEND_ERROR_CHECK[name]
    assert snapshot(w, pool) == before
    assert w.p.host.read(g, GRANULE) == PATTERN


def test_send_without_tx_buffer(w: World) -> None:
    g = w.granule()
    w.d.rxtx_unmap()
    assert error_code(w.send_raw(FFA_MEM_LEND_64, descriptor(ECHO, [(g, 1)]))) == \
        INVALID_PARAMETERS
    assert w.gpi(g) == GPI_NS


@pytest.mark.parametrize("first, second", [
    (FFA_MEM_LEND_64, FFA_MEM_LEND_64), (FFA_MEM_LEND_64, FFA_MEM_SHARE_64),
    (FFA_MEM_SHARE_64, FFA_MEM_SHARE_64), (FFA_MEM_SHARE_64, FFA_MEM_DONATE_64),
    (FFA_MEM_DONATE_64, FFA_MEM_LEND_64),
])
def test_memory_already_in_a_transaction_is_denied(w: World, first: int, second: int) -> None:
    g = w.granule()
    perms = {FFA_MEM_DONATE_64: 0, FFA_MEM_SHARE_64: PERM_RW}.get(first, PERM_RW | PERM_NX)
    assert w.send_raw(first, descriptor(ECHO, [(g, 2)], permissions=perms))[0] == \
        FFA_SUCCESS_32
    before = snapshot(w, [g, g + GRANULE, g + 2 * GRANULE])
    perms = {FFA_MEM_DONATE_64: 0, FFA_MEM_SHARE_64: PERM_RW}.get(second, PERM_RW | PERM_NX)
    # overlapping by one granule, to the other partition
    x = w.send_raw(second, descriptor(KEYSTORE, [(g + GRANULE, 2)], permissions=perms))
    assert error_code(x) == DENIED
    assert snapshot(w, [g, g + GRANULE, g + 2 * GRANULE]) == before


# ------------------------------------------------------------------------------ reclaim errors


def test_reclaim_errors_change_nothing(w: World) -> None:
    g, s = w.granule(), w.granule()
    h = w.d.lend(ECHO, [(g, 1)])
    hs = w.d.share(ECHO, [(s, 1)])
    before = snapshot(w, [g, s])
    for args, code in [
        ((h + 1000, 0, 0), INVALID_PARAMETERS),  # no such handle
        ((h, 1, 0), INVALID_PARAMETERS),  # handle high word wrong
        ((h, 0, 4), INVALID_PARAMETERS),  # reserved flag
        ((hs, 0, 1), INVALID_PARAMETERS),  # zeroing shared memory
    ]:
        assert error_code(w.smc(FFA_MEM_RECLAIM, *args)) == code, args
    assert retrieve(w, h)[0] == 0
    mid = snapshot(w, [g, s])
    assert error_code(w.smc(FFA_MEM_RECLAIM, h, 0, 0)) == DENIED  # still retrieved
    assert snapshot(w, [g, s]) == mid
    assert w.echo(sp.ECHO_RELINQUISH, h)[0] == 0
    assert snapshot(w, [g, s]) == before
    w.d.reclaim(h)
    w.d.reclaim(hs)
    assert error_code(w.smc(FFA_MEM_RECLAIM, h, 0, 0)) == INVALID_PARAMETERS  # reclaimed


# ------------------------------------------------------------------------------ borrower side


def test_retrieve_and_relinquish_errors(w: World) -> None:
    g, k, s = w.granule(), w.granule(), w.granule()
    h = w.d.lend(ECHO, [(g, 1)], permissions=PERM_RO | PERM_NX)
    hk = w.d.lend(KEYSTORE, [(k, 1)])
    hs = w.d.share(ECHO, [(s, 1)], permissions=PERM_RW)
    before = snapshot(w, [g, k, s])
    for handle, kind, perms, code in [
        (h + 1000, 0, PERM_RO, INVALID_PARAMETERS),  # unknown handle
        (h, TYPE_SHARE, PERM_RO, INVALID_PARAMETERS),  # wrong transaction type
        (hk, 0, PERM_RW, INVALID_PARAMETERS),  # lent to the other partition
        (h, 0, PERM_RW | PERM_NX, DENIED),  # write access to read-only memory
        (h, 0, PERM_RO | PERM_X, DENIED),  # executable
        (h, 0, 0x3, INVALID_PARAMETERS),  # reserved data access value
        (h, 1 << 12, PERM_RO, INVALID_PARAMETERS),  # reserved flags
    ]:
        r = retrieve(w, handle, kind, perms)
        assert s64(r[0]) == code, (handle, kind, perms)
    assert s64(w.echo(sp.ECHO_RELINQUISH, h)[0]) == INVALID_PARAMETERS  # not retrieved
    assert s64(w.echo(sp.ECHO_RELINQUISH, 99999)[0]) == INVALID_PARAMETERS
    assert s64(w.echo(sp.ECHO_RELINQUISH, hk)[0]) == INVALID_PARAMETERS
    assert snapshot(w, [g, k, s]) == before
    assert retrieve(w, h, perms=PERM_RO)[:3] == (0, g, 1)
    assert s64(retrieve(w, h, perms=PERM_RO)[0]) == DENIED  # twice
    assert retrieve(w, hs, TYPE_SHARE, PERM_RO)[0] == 0  # less than was offered is fine
    assert w.echo(sp.ECHO_WRITE, s, 1)[0] == sp.STATUS_FAULT & MASK64
    assert w.echo(sp.ECHO_RELINQUISH, h)[0] == 0
    assert s64(w.echo(sp.ECHO_RELINQUISH, h)[0]) == INVALID_PARAMETERS  # twice


def test_retrieve_response_descriptor_in_the_partitions_rx_buffer(w: World) -> None:
    """The SPMC wrote a v1.1 retrieve response to the partition's RX buffer (Secure
    memory); the partition released it afterwards."""
    from ccasim.secure import ffa

    g = w.granule()
    h = w.d.lend(ECHO, [(g, 1)], tag=0x77)
    assert s64(retrieve(w, h, tag=0x76)[0]) == INVALID_PARAMETERS  # the tag must match
    assert retrieve(w, h, tag=0x77)[0] == 0
    echo = w.p.spmc.partitions[ECHO]
    assert echo.mailbox is not None and not echo.mailbox.rx_full
    raw = w.p.el3.read(echo.mailbox.rx, 96, Pas.SECURE)
    resp = ffa.parse_region(raw)
    assert (resp.sender, resp.receiver, resp.handle, resp.tag) == (0, ECHO, h, 0x77)
    assert resp.flags == TYPE_LEND and resp.permissions == PERM_RW | PERM_NX
    assert resp.constituents == (ffa.Constituent(g, 1),)
    assert not can_access(w.p, SecurityState.NON_SECURE, echo.mailbox.rx, Pas.NON_SECURE)


def test_zero_after_relinquish_requested_by_the_borrower(w: World) -> None:
    g, s = w.granule(), w.granule()
    fill(w, g)
    h = w.d.lend(ECHO, [(g, 1)])
    hs = w.d.share(ECHO, [(s, 1)], permissions=PERM_RW)
    zero_after = 1 << 2
    assert s64(retrieve(w, hs, zero_after)[0]) == INVALID_PARAMETERS  # not for shared memory
    assert retrieve(w, h, zero_after)[0] == 0
    assert w.echo(sp.ECHO_READ, g)[1] == int.from_bytes(PATTERN[:8], "little")
    assert w.echo(sp.ECHO_RELINQUISH, h)[0] == 0
    # cleared at relinquish, before the owner reclaims (Secure-PAS stores)
    assert w.p.el3.read(g, GRANULE, Pas.SECURE) == bytes(GRANULE)
    w.d.reclaim(h)
    assert w.p.host.read(g, GRANULE) == bytes(GRANULE)
