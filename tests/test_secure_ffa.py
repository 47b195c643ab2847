"""FF-A from the Normal world: function IDs, discovery, RX/TX buffers, direct messages
(DEN0077A v1.1), through the SPMD at EL3 and the SPMC at S-EL2."""

from __future__ import annotations

import struct

import pytest

from ccasim import SecurityState
from ccasim.firmware import spmd
from ccasim.secure import ffa
from ccasim.secure import partitions as sp
from ccasim.secure.spmc import PartitionState
from secure_helpers import (
    ABORTED,
    BUSY,
    DENIED,
    ECHO,
    FFA_ERROR,
    FFA_FEATURES,
    FFA_ID_GET,
    FFA_MEM_DONATE_32,
    FFA_MEM_DONATE_64,
    FFA_MEM_LEND_32,
    FFA_MEM_LEND_64,
    FFA_MEM_RECLAIM,
    FFA_MEM_RELINQUISH,
    FFA_MEM_RETRIEVE_REQ_32,
    FFA_MEM_RETRIEVE_REQ_64,
    FFA_MEM_RETRIEVE_RESP,
    FFA_MEM_SHARE_32,
    FFA_MEM_SHARE_64,
    FFA_MSG_SEND_DIRECT_REQ_32,
    FFA_MSG_SEND_DIRECT_REQ_64,
    FFA_MSG_SEND_DIRECT_RESP_64,
    FFA_MSG_WAIT,
    FFA_PARTITION_INFO_GET,
    FFA_RX_RELEASE,
    FFA_RXTX_MAP_32,
    FFA_RXTX_MAP_64,
    FFA_RXTX_UNMAP,
    FFA_SUCCESS_32,
    FFA_SUCCESS_64,
    FFA_VERSION,
    GPI_NS,
    INVALID_PARAMETERS,
    KEYSTORE,
    MASK64,
    NOT_SUPPORTED,
    RMI_GRANULE_DELEGATE,
    SMC_UNKNOWN,
    TYPE_LEND,
    VERSION_1_1,
    World,
    descriptor,
    error_code,
    world,
)

SPEC_FIDS = {
    "FFA_ERROR": 0x84000060, "FFA_SUCCESS_32": 0x84000061, "FFA_SUCCESS_64": 0xC4000061,
    "FFA_VERSION": 0x84000063, "FFA_FEATURES": 0x84000064, "FFA_RX_RELEASE": 0x84000065,
    "FFA_RXTX_MAP_32": 0x84000066, "FFA_RXTX_MAP_64": 0xC4000066,
    "FFA_RXTX_UNMAP": 0x84000067, "FFA_PARTITION_INFO_GET": 0x84000068,
    "FFA_ID_GET": 0x84000069, "FFA_MSG_WAIT": 0x8400006B,
    "FFA_MSG_SEND_DIRECT_REQ_64": 0xC400006F, "FFA_MSG_SEND_DIRECT_RESP_64": 0xC4000070,
    "FFA_MEM_DONATE_64": 0xC4000071, "FFA_MEM_LEND_64": 0xC4000072,
    "FFA_MEM_SHARE_64": 0xC4000073, "FFA_MEM_RETRIEVE_REQ_64": 0xC4000074,
    "FFA_MEM_RETRIEVE_RESP": 0x84000075, "FFA_MEM_RELINQUISH": 0x84000076,
    "FFA_MEM_RECLAIM": 0x84000077,
}
SPEC_ERRORS = {"NOT_SUPPORTED": -1, "INVALID_PARAMETERS": -2, "NO_MEMORY": -3, "BUSY": -4,
               "INTERRUPTED": -5, "DENIED": -6, "RETRY": -7, "ABORTED": -8}


@pytest.fixture
def w() -> World:
    return world()


# ------------------------------------------------------------------------------ the ABI


def test_function_ids_and_error_codes_are_the_specs() -> None:
    for name, value in SPEC_FIDS.items():
        assert getattr(ffa, name) == value, name
    for name, value in SPEC_ERRORS.items():
        assert ffa.FfaError[name] == value, name
    # the SPMD's own copies agree with the table
    for name in ("FFA_ERROR", "FFA_SUCCESS_32", "FFA_SUCCESS_64", "FFA_VERSION", "FFA_ID_GET",
                 "FFA_MSG_WAIT", "FFA_MSG_SEND_DIRECT_RESP_64"):
        assert getattr(spmd, name) == SPEC_FIDS[name], name
    for fid in SPEC_FIDS.values():
        assert ffa.is_ffa(fid) and spmd.is_ffa(fid)
    for fid in (0x8400_0000, 0x8400_005F, 0xC400_0150, 0xC400_0160, 0x8500_0060, 0x0400_0060):
        assert not ffa.is_ffa(fid) and not spmd.is_ffa(fid)
    assert ffa.is_ffa(0x8400_00FF) and ffa.is_ffa(0xC400_00FF)


def test_descriptor_builders_match_hand_packed_bytes() -> None:
    built = ffa.memory_region(sender=0, receiver=ECHO, constituents=[(0x8020_0000, 2)],
                              permissions=ffa.PERM_RW_NX, flags=TYPE_LEND, tag=7)
    assert built == descriptor(ECHO, [(0x8020_0000, 2)], flags=TYPE_LEND, tag=7)
    assert len(built) == 48 + 16 + 16 + 16
    assert ffa.MTD.size == 48 and ffa.EMAD.size == 16
    assert ffa.COMPOSITE.size == 16 and ffa.CONSTITUENT.size == 16
    parsed = ffa.parse_region(built)
    assert parsed.constituents == (ffa.Constituent(0x8020_0000, 2),)
    assert (parsed.receiver, parsed.total_pages, parsed.tag) == (ECHO, 2, 7)
    rel = ffa.relinquish_descriptor(0x1234_5678_9ABC, [ECHO])
    assert rel == struct.pack("<QIIH", 0x1234_5678_9ABC, 0, 1, ECHO)


# ------------------------------------------------------------------------------ setup calls


def test_version_id_and_features(w: World) -> None:
    assert w.smc(FFA_VERSION, VERSION_1_1)[0] == VERSION_1_1
    assert w.smc(FFA_VERSION, 0x0001_0000)[0] == VERSION_1_1  # a v1.0 caller learns 1.1
    assert w.smc(FFA_VERSION, 1 << 31)[0] == NOT_SUPPORTED & MASK64
    x = w.smc(FFA_ID_GET)
    assert (x[0], x[2]) == (FFA_SUCCESS_32, 0)
    offered = [FFA_VERSION, FFA_FEATURES, FFA_ID_GET, FFA_RXTX_MAP_64, FFA_RXTX_MAP_32,
               FFA_RXTX_UNMAP, FFA_RX_RELEASE, FFA_PARTITION_INFO_GET,
               FFA_MSG_SEND_DIRECT_REQ_64, FFA_MEM_SHARE_64, FFA_MEM_LEND_64,
               FFA_MEM_DONATE_64, FFA_MEM_SHARE_32, FFA_MEM_LEND_32, FFA_MEM_DONATE_32,
               FFA_MEM_RECLAIM, FFA_ERROR, FFA_SUCCESS_32, FFA_SUCCESS_64]
    for fid in offered:
        x = w.smc(FFA_FEATURES, fid)
        assert x[0] == FFA_SUCCESS_32, hex(fid)
    assert w.smc(FFA_FEATURES, FFA_RXTX_MAP_64)[2] == 0  # 4 KiB minimum buffer
    # partition-side calls and unimplemented ones are not offered to the Normal world
    for fid in (FFA_MEM_RETRIEVE_REQ_64, FFA_MEM_RELINQUISH, FFA_MSG_WAIT,
                FFA_MSG_SEND_DIRECT_REQ_32, 0x8400_0086, 0x8400_00FF):
        assert error_code(w.smc(FFA_FEATURES, fid)) == NOT_SUPPORTED, hex(fid)
    assert error_code(w.smc(FFA_FEATURES, 0x1)) == NOT_SUPPORTED  # feature ID (NPI)


def test_every_offered_function_is_callable_and_others_are_not(w: World) -> None:
    """The SPMC's Normal-world dispatch table is what FFA_FEATURES reports."""
    table = set(w.p.spmc._nwd_calls)
    for fid in table:
        assert w.smc(FFA_FEATURES, fid)[0] == FFA_SUCCESS_32
    for fid in (FFA_MEM_RETRIEVE_REQ_32, FFA_MEM_RETRIEVE_REQ_64, FFA_MEM_RELINQUISH,
                FFA_MSG_WAIT, FFA_MSG_SEND_DIRECT_RESP_64, FFA_MEM_RETRIEVE_RESP,
                FFA_MSG_SEND_DIRECT_REQ_32, 0x8400_0086, 0xC400_00F0):
        assert fid not in table
        assert error_code(w.smc(fid, 1, 2, 3)) == NOT_SUPPORTED, hex(fid)


def test_ffa_from_the_realm_world_is_unknown_and_from_secure_without_a_call_refused(
        w: World) -> None:
    realm = w.p.cpus[1].probe(SecurityState.REALM)
    assert realm.smc(FFA_VERSION, VERSION_1_1)[0] == SMC_UNKNOWN
    assert realm.smc(FFA_MSG_SEND_DIRECT_REQ_64, ECHO)[0] == SMC_UNKNOWN
    secure = w.p.cpus[1].probe(SecurityState.SECURE)
    for fid in (FFA_SUCCESS_32, FFA_MSG_SEND_DIRECT_RESP_64, FFA_MSG_WAIT, FFA_VERSION):
        assert error_code(secure.smc(fid, 0)) == NOT_SUPPORTED
    # nothing leaked into the Normal world of that PE
    assert w.p.cpus[1].host.smc(FFA_ID_GET)[0] == FFA_SUCCESS_32


def test_partition_info_get(w: World) -> None:
    infos = w.d.partition_info()
    assert [(i["id"], i["exec_ctx_count"], i["properties"]) for i in infos] == [
        (KEYSTORE, 1, 0x101), (ECHO, 1, 0x101)]  # direct requests, AArch64
    assert infos[0]["uuid"] == struct.pack("<4I", *sp.KEYSTORE.uuid)
    only = w.d.partition_info(sp.ECHO_PARTITION.uuid)
    assert [i["id"] for i in only] == [ECHO]
    x = w.smc(FFA_PARTITION_INFO_GET, 0, 0, 0, 0, 1)  # count only: RX untouched
    assert (x[0], x[2]) == (FFA_SUCCESS_32, 2)
    assert error_code(w.smc(FFA_PARTITION_INFO_GET, 1, 2, 3, 4, 0)) == INVALID_PARAMETERS
    assert error_code(w.smc(FFA_PARTITION_INFO_GET, 0, 0, 0, 0, 2)) == INVALID_PARAMETERS


def test_rx_buffer_ownership(w: World) -> None:
    assert error_code(w.smc(FFA_RX_RELEASE)) == DENIED  # nothing to release
    x = w.smc(FFA_PARTITION_INFO_GET, 0, 0, 0, 0, 0)
    assert (x[0], x[2], x[3]) == (FFA_SUCCESS_32, 2, 24)
    # the RX buffer now belongs to the caller: a second message cannot be delivered
    assert error_code(w.smc(FFA_PARTITION_INFO_GET, 0, 0, 0, 0, 0)) == BUSY
    assert w.smc(FFA_RX_RELEASE)[0] == FFA_SUCCESS_32
    assert w.smc(FFA_PARTITION_INFO_GET, 0, 0, 0, 0, 0)[0] == FFA_SUCCESS_32


def test_rxtx_map_and_unmap(w: World) -> None:
    d = w.d
    assert error_code(w.smc(FFA_RXTX_MAP_64, d.tx, d.rx, 1)) == DENIED  # already mapped
    assert error_code(w.smc(FFA_RXTX_UNMAP, 0x0001_0000)) == INVALID_PARAMETERS
    assert w.smc(FFA_RXTX_UNMAP, 0)[0] == FFA_SUCCESS_32
    assert error_code(w.smc(FFA_RXTX_UNMAP, 0)) == INVALID_PARAMETERS  # nothing mapped
    assert error_code(w.smc(FFA_PARTITION_INFO_GET, 0, 0, 0, 0, 0)) == BUSY  # no RX
    g = w.granule()
    bad = {
        "zero pages": (d.tx, d.rx, 0),
        "page count bits": (d.tx, d.rx, 1 | (1 << 6)),
        "unaligned TX": (d.tx + 8, d.rx, 1),
        "unaligned RX": (d.tx, d.rx + 0x800, 1),
        "overlap": (d.tx, d.tx, 1),
        "overlap 2 pages": (d.tx, d.tx + 0x1000, 2),
    }
    for name, args in bad.items():
        assert error_code(w.smc(FFA_RXTX_MAP_64, *args)) == INVALID_PARAMETERS, name
    secure_dram = w.p.region("secure_dram").base
    assert error_code(w.smc(FFA_RXTX_MAP_64, secure_dram, d.rx, 1)) == DENIED
    assert w.smc(RMI_GRANULE_DELEGATE, g)[0] == 0
    assert error_code(w.smc(FFA_RXTX_MAP_64, g, d.rx, 1)) == DENIED  # a Realm granule
    assert w.p.spmc.nwd_mailbox is None
    assert w.smc(FFA_RXTX_MAP_32, d.tx, d.rx, 1)[0] == FFA_SUCCESS_32
    assert len(d.partition_info()) == 2


def test_buffers_cannot_be_lent(w: World) -> None:
    desc = descriptor(ECHO, [(w.d.rx, 1)])
    assert error_code(w.send_raw(FFA_MEM_LEND_64, desc)) == DENIED
    assert w.gpi(w.d.rx) == GPI_NS


# ------------------------------------------------------------------------------ messages


def test_direct_request_reaches_the_partition_and_back(w: World) -> None:
    x = w.smc(FFA_MSG_SEND_DIRECT_REQ_64, (0 << 16) | ECHO, 0, sp.ECHO, 11, 22, 33, 44)
    assert x == (FFA_MSG_SEND_DIRECT_RESP_64, (ECHO << 16) | 0, 0, 0, 11, 22, 33, 44)
    assert [w.echo(sp.ECHO_COUNT)[1] for _ in range(3)] == [1, 2, 3]
    assert w.echo(77)[0] == sp.STATUS_UNKNOWN_COMMAND & MASK64
    pe = w.p.pes[0]
    assert (pe.el, pe.security_state) == (2, SecurityState.NON_SECURE)
    # the partition ran at S-EL1 on this PE's execution engine
    assert 0 in w.p.spmc._engines


def test_direct_requests_from_any_cpu(w: World) -> None:
    for cpu in (1, 0, 1):
        x = w.p.cpus[cpu].host.smc(FFA_MSG_SEND_DIRECT_REQ_64, ECHO, 0, sp.ECHO_COUNT)
        assert x[0] == FFA_MSG_SEND_DIRECT_RESP_64
    assert w.echo(sp.ECHO_COUNT)[1] == 4


def test_direct_request_errors_change_nothing(w: World) -> None:
    before = w.echo(sp.ECHO_COUNT)[1]
    cases = [
        ((0x8001 << 16) | ECHO, 0, INVALID_PARAMETERS),  # a Secure sender ID
        (0x0009, 0, INVALID_PARAMETERS),  # no such partition
        (0x8000, 0, INVALID_PARAMETERS),  # the SPMC's own ID
        (ECHO, 1 << 31, INVALID_PARAMETERS),  # framework message
        (ECHO, 1, INVALID_PARAMETERS),  # flags MBZ
    ]
    for ids, flags, code in cases:
        x = w.smc(FFA_MSG_SEND_DIRECT_REQ_64, ids, flags, sp.ECHO_COUNT)
        assert error_code(x) == code, (hex(ids), flags)
    assert error_code(w.smc(FFA_MSG_SEND_DIRECT_REQ_32, ECHO, 0, sp.ECHO_COUNT)) == \
        NOT_SUPPORTED
    assert w.echo(sp.ECHO_COUNT)[1] == before + 1


def test_an_aborted_partition_answers_aborted(w: World) -> None:
    w.echo(sp.ECHO)
    w.p.spmc.partitions[ECHO].state = PartitionState.ABORTED
    assert error_code(w.smc(FFA_MSG_SEND_DIRECT_REQ_64, ECHO, 0, sp.ECHO)) == ABORTED
    assert w.keystore(sp.KS_GET, 0)[0] == sp.KS_ERR_NOT_OPEN & MASK64  # the other runs


def test_partition_faults_come_back_as_a_response(w: World) -> None:
    """A partition load from an IPA its stage 2 does not map: the SPMC injects a
    synchronous external abort, the partition's vector answers with the syndrome."""
    g = w.granule()
    r = w.echo(sp.ECHO_READ, g + 0x18)
    assert r[0] == sp.STATUS_FAULT & MASK64
    esr, far = r[1], r[2]
    assert esr >> 26 == 0x25 and esr & 0x3F == 0x10  # data abort, same EL, SEA
    assert far == g + 0x18
    assert w.echo(sp.ECHO_COUNT)[0] == 0  # still alive
    assert w.p.spmc.partitions[ECHO].state is PartitionState.WAITING


def test_boot_in_the_smallest_secure_dram_and_a_failed_spmc_boot(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ccasim import Platform, PlatformConfig
    from ccasim.secure import spmc

    small = PlatformConfig(cpus=1, secure_dram_size=2 << 20)
    w = world(small)
    assert w.p.spmd.boot_status == 0 and w.echo(sp.ECHO_COUNT)[:2] == (0, 1)
    # partitions that do not fit: the SPMC reports FFA_ERROR(NO_MEMORY) at boot; the
    # platform still boots, and FF-A is not offered
    monkeypatch.setattr(spmc, "PARTITION_WINDOW", 2 << 20)
    p = Platform(small)
    assert p.spmd.boot_status == -3
    assert p.host.smc(FFA_VERSION, VERSION_1_1)[0] == NOT_SUPPORTED & MASK64
    assert error_code(p.host.smc(FFA_MSG_SEND_DIRECT_REQ_64, ECHO, 0)) == NOT_SUPPORTED
    assert p.host.smc(RMI_GRANULE_DELEGATE, p.region("ns_dram").base)[0] == 0  # RMM fine
    assert p.el3.gpi(p.region("ns_dram").base + 0x1000) == GPI_NS
