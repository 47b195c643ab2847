"""Shared helpers for the Secure-world tests (imported as ``secure_helpers``).

The FF-A values are written down from the specification (DEN0077A v1.1 as TF-A's
``ffa_svc.h`` / ``el3_spmc_ffa_memory.h`` and Hafnium's ``vmapi/hf/ffa.h`` define them), not
imported from the code under test; the descriptor builders of :mod:`ccasim.secure.ffa` are
checked against hand-packed bytes in test_secure_ffa.py before the other tests rely on them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ccasim import Platform, PlatformConfig, SecurityState
from ccasim.arch.faults import ArchFault
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.secure.client import FfaDriver

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
GRANULE = 0x1000

# Function IDs (SMC32 0x8400_00xx, SMC64 0xC400_00xx)
FFA_ERROR = 0x8400_0060
FFA_SUCCESS_32 = 0x8400_0061
FFA_SUCCESS_64 = 0xC400_0061
FFA_VERSION = 0x8400_0063
FFA_FEATURES = 0x8400_0064
FFA_RX_RELEASE = 0x8400_0065
FFA_RXTX_MAP_32 = 0x8400_0066
FFA_RXTX_MAP_64 = 0xC400_0066
FFA_RXTX_UNMAP = 0x8400_0067
FFA_PARTITION_INFO_GET = 0x8400_0068
FFA_ID_GET = 0x8400_0069
FFA_MSG_WAIT = 0x8400_006B
FFA_MSG_SEND_DIRECT_REQ_32 = 0x8400_006F
FFA_MSG_SEND_DIRECT_REQ_64 = 0xC400_006F
FFA_MSG_SEND_DIRECT_RESP_64 = 0xC400_0070
FFA_MEM_DONATE_32 = 0x8400_0071
FFA_MEM_DONATE_64 = 0xC400_0071
FFA_MEM_LEND_32 = 0x8400_0072
FFA_MEM_LEND_64 = 0xC400_0072
FFA_MEM_SHARE_32 = 0x8400_0073
FFA_MEM_SHARE_64 = 0xC400_0073
FFA_MEM_RETRIEVE_REQ_32 = 0x8400_0074
FFA_MEM_RETRIEVE_REQ_64 = 0xC400_0074
FFA_MEM_RETRIEVE_RESP = 0x8400_0075
FFA_MEM_RELINQUISH = 0x8400_0076
FFA_MEM_RECLAIM = 0x8400_0077

# Error codes (w2 of FFA_ERROR, int32)
NOT_SUPPORTED = -1
INVALID_PARAMETERS = -2
NO_MEMORY = -3
BUSY = -4
INTERRUPTED = -5
DENIED = -6
RETRY = -7
ABORTED = -8

VERSION_1_1 = 0x0001_0001
KEYSTORE = 0x8001
ECHO = 0x8002

# RMI (rmm-abi §3) and GPI encodings (rme-hardware §2)
RMI_GRANULE_DELEGATE = 0xC400_0151
RMI_GRANULE_UNDELEGATE = 0xC400_0152
RMI_SUCCESS = 0
RMI_ERROR_INPUT = 1
SMC_UNKNOWN = MASK64
GPI_SECURE = 0b1000
GPI_NS = 0b1001
GPI_ROOT = 0b1010
GPI_REALM = 0b1011
GPI_PAS = {GPI_SECURE: Pas.SECURE, GPI_NS: Pas.NON_SECURE, GPI_ROOT: Pas.ROOT,
           GPI_REALM: Pas.REALM}

# Memory descriptors (FF-A v1.1)
PERM_RO, PERM_RW, PERM_NX, PERM_X = 0x1, 0x2, 0x4, 0x8
ATTR_NORMAL_WB_INNER = 0x2F
ATTR_NS = 0x40
TYPE_SHARE, TYPE_LEND, TYPE_DONATE = 1 << 3, 2 << 3, 3 << 3

EMITTABLE: dict[SecurityState, tuple[Pas, ...]] = {
    SecurityState.ROOT: (Pas.ROOT, Pas.REALM, Pas.SECURE, Pas.NON_SECURE),
    SecurityState.REALM: (Pas.REALM, Pas.NON_SECURE),
    SecurityState.SECURE: (Pas.SECURE, Pas.NON_SECURE),
    SecurityState.NON_SECURE: (Pas.NON_SECURE,),
}


def error_code(x: tuple[int, ...]) -> int | None:
    """The FF-A error of a return, or None if it is not FFA_ERROR."""
    if x[0] & MASK32 != FFA_ERROR:
        return None
    w2 = x[2] & MASK32
    return w2 - (1 << 32) if w2 >> 31 else w2


def s64(value: int) -> int:
    value &= MASK64
    return value - (1 << 64) if value >> 63 else value


def mtd(*, sender: int = 0, attributes: int = ATTR_NORMAL_WB_INNER, flags: int = 0,
        handle: int = 0, tag: int = 0, emad_size: int = 16, emad_count: int = 1,
        emad_offset: int = 48, reserved: int = 0) -> bytes:
    """A v1.1 memory transaction descriptor header (48 bytes), packed by hand."""
    return struct.pack("<HHIQQIIIIQ", sender, attributes, flags, handle, tag, emad_size,
                       emad_count, emad_offset, reserved, 0)


def emad(receiver: int, permissions: int, composite_offset: int, flags: int = 0) -> bytes:
    return struct.pack("<HBBIQ", receiver, permissions, flags, composite_offset, 0)


def composite(pages: list[tuple[int, int]], total: int | None = None) -> bytes:
    head = struct.pack("<IIQ", sum(n for _, n in pages) if total is None else total,
                       len(pages), 0)
    return head + b"".join(struct.pack("<QII", a, n, 0) for a, n in pages)


def descriptor(receiver: int, pages: list[tuple[int, int]], *,
               permissions: int = PERM_RW | PERM_NX, **kw: int) -> bytes:
    """mtd + one emad + composite + constituents: what a sender puts in its TX buffer."""
    return mtd(**kw) + emad(receiver, permissions, 64) + composite(pages)


@dataclass
class World:
    """A booted platform, a Normal-world FF-A driver with mapped buffers, and a pool of
    free Normal-world granules."""

    p: Platform
    d: FfaDriver
    pool_base: int
    next_free: int = 0

    def granule(self) -> int:
        g = self.pool_base + self.next_free * GRANULE
        self.next_free += 1
        return g

    def smc(self, fid: int, *args: int) -> tuple[int, ...]:
        return self.p.host.smc(fid, *args)

    def send_raw(self, fid: int, desc: bytes, *extra: int) -> tuple[int, ...]:
        """Write ``desc`` to the TX buffer and call ``fid`` with its length."""
        self.p.host.write(self.d.tx, desc)
        args = (len(desc), len(desc), *extra) if extra else (len(desc), len(desc), 0, 0)
        return self.smc(fid, *args)

    def gpi(self, pa: int) -> int:
        return int(self.p.el3.gpi(pa))

    def host_can_read(self, pa: int) -> bool:
        return can_access(self.p, SecurityState.NON_SECURE, pa, Pas.NON_SECURE)

    def echo(self, *payload: int) -> tuple[int, ...]:
        return self.d.direct_req(ECHO, *payload)

    def keystore(self, *payload: int) -> tuple[int, ...]:
        return self.d.direct_req(KEYSTORE, *payload)


def world(config: PlatformConfig | None = None) -> World:
    p = Platform(config or PlatformConfig(cpus=2))
    ns = p.region("ns_dram").base
    d = FfaDriver(p.host, ns + 0x10_0000, ns + 0x10_1000)
    d.rxtx_map()
    return World(p, d, ns + 0x20_0000)


def probe(p: Platform, state: SecurityState, cpu: int = 0):  # type: ignore[no-untyped-def]
    return p.el3 if state is SecurityState.ROOT else p.cpus[cpu].probe(state)


def can_access(p: Platform, state: SecurityState, pa: int, pas: Pas, *,
               write: bool = False) -> bool:
    """Whether software in ``state`` can read (or write back what is there) ``pa`` through
    ``pas``. A write stores the granule's current bytes (read by Root through the PAS its
    GPI names), so a successful write changes nothing."""
    port = probe(p, state)
    try:
        if write:
            current = p.el3.read(pa, 8, GPI_PAS.get(int(p.el3.gpi(pa)), Pas.ROOT))
            port.write(pa, current, pas)
        else:
            port.read(pa, 8, pas)
    except ArchFault:
        return False
    return True
