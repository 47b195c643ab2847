"""A Normal-world FF-A driver: what an OS or hypervisor at NS-EL2 does to talk to the
Secure world (compare Linux's ``arm_ffa`` driver).

It works through a port that issues SMCs and Non-secure memory accesses (``p.host``): it
maps an RX/TX buffer pair in Normal-world memory, writes memory transaction descriptors
to its TX buffer, reads partition information from its RX buffer, and turns
``FFA_ERROR`` returns into :class:`FfaException`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from . import ffa
from .ffa import Constituent, FfaError, TransactionType


class Port(Protocol):
    def smc(self, fid: int, *args: int) -> tuple[int, ...]: ...

    def read(self, pa: int, size: int) -> bytes: ...

    def write(self, pa: int, data: bytes) -> None: ...


class FfaException(Exception):
    def __init__(self, fid: int, code: FfaError) -> None:
        super().__init__(f"{ffa.fid_name(fid)} failed: {code.name}")
        self.fid = fid
        self.code = code


SEND_FID = {
    TransactionType.SHARE: ffa.FFA_MEM_SHARE_64,
    TransactionType.LEND: ffa.FFA_MEM_LEND_64,
    TransactionType.DONATE: ffa.FFA_MEM_DONATE_64,
}


class FfaDriver:
    """FF-A calls from the Normal world with buffers at ``tx`` / ``rx`` (``pages`` each)."""

    def __init__(self, port: Port, tx: int, rx: int, pages: int = 1) -> None:
        self.port = port
        self.tx = tx
        self.rx = rx
        self.pages = pages
        self.endpoint_id = ffa.NWD_ENDPOINT_ID

    def call(self, fid: int, *args: int) -> tuple[int, ...]:
        """An FF-A call; raises :class:`FfaException` on FFA_ERROR."""
        regs = self.port.smc(fid, *args)
        code = ffa.error_of(regs)
        if code is not None:
            raise FfaException(fid, code)
        return regs

    # ------------------------------------------------------------------ setup
    def version(self, requested: int = ffa.FFA_VERSION_1_1) -> int:
        return self.port.smc(ffa.FFA_VERSION, requested)[0]

    def id_get(self) -> int:
        return self.call(ffa.FFA_ID_GET)[2] & 0xFFFF

    def features(self, fid: int) -> int:
        return self.call(ffa.FFA_FEATURES, fid)[2] & ffa.MASK32

    def rxtx_map(self) -> None:
        self.call(ffa.FFA_RXTX_MAP_64, self.tx, self.rx, self.pages)

    def rxtx_unmap(self) -> None:
        self.call(ffa.FFA_RXTX_UNMAP, 0)

    def partition_info(self, uuid: Sequence[int] = (0, 0, 0, 0)) -> list[dict[str, int | bytes]]:
        """FFA_PARTITION_INFO_GET: descriptors read from RX, then FFA_RX_RELEASE."""
        regs = self.call(ffa.FFA_PARTITION_INFO_GET, *uuid, 0)
        count, size = regs[2] & ffa.MASK32, regs[3] & ffa.MASK32
        blob = self.port.read(self.rx, count * size)
        self.call(ffa.FFA_RX_RELEASE)
        return [ffa.PARTITION_INFO.unpack(blob[i * size :]) for i in range(count)]

    # ------------------------------------------------------------------ messages
    def direct_req(self, receiver: int, *payload: int) -> tuple[int, ...]:
        """FFA_MSG_SEND_DIRECT_REQ_64 with x3.. = ``payload``; returns the response's
        x3..x7."""
        if len(payload) > 5:
            raise ValueError("a direct message carries at most five registers (x3..x7)")
        regs = self.call(ffa.FFA_MSG_SEND_DIRECT_REQ_64,
                         ffa.direct_msg_ids(self.endpoint_id, receiver), 0, *payload,
                         *[0] * (5 - len(payload)))
        if regs[0] != ffa.FFA_MSG_SEND_DIRECT_RESP_64:
            raise RuntimeError(f"unexpected response {regs[0]:#x}")
        return tuple(regs[3:8])

    # ------------------------------------------------------------------ memory
    def mem_send(self, kind: TransactionType, receiver: int,
                 constituents: Sequence[tuple[int, int]] | Sequence[Constituent], *,
                 permissions: int | None = None, flags: int = 0, tag: int = 0,
                 attributes: int = ffa.ATTR_NORMAL_WB_INNER) -> int:
        """FFA_MEM_SHARE / LEND / DONATE of ``constituents`` ((address, pages) pairs) to
        one partition; returns the handle."""
        if permissions is None:
            permissions = 0 if kind is TransactionType.DONATE else ffa.PERM_RW_NX
        desc = ffa.memory_region(sender=self.endpoint_id, receiver=receiver,
                                 constituents=constituents, permissions=permissions,
                                 attributes=attributes, flags=flags, tag=tag)
        self.port.write(self.tx, desc)
        regs = self.call(SEND_FID[kind], len(desc), len(desc), 0, 0)
        return ffa.handle_of(regs)

    def share(self, receiver: int, constituents: Sequence[tuple[int, int]], **kw: int) -> int:
        return self.mem_send(TransactionType.SHARE, receiver, constituents, **kw)

    def lend(self, receiver: int, constituents: Sequence[tuple[int, int]], **kw: int) -> int:
        return self.mem_send(TransactionType.LEND, receiver, constituents, **kw)

    def donate(self, receiver: int, constituents: Sequence[tuple[int, int]], **kw: int) -> int:
        return self.mem_send(TransactionType.DONATE, receiver, constituents, **kw)

    def reclaim(self, handle: int, flags: int = 0) -> None:
        self.call(ffa.FFA_MEM_RECLAIM, handle & ffa.MASK32, handle >> 32, flags)
