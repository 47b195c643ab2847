"""A thin host-side RMI client: one method per RMI 1.0 command, plus the host's own
allocator of Non-secure DRAM granules and builders for the parameter structures.

Everything goes through ``WorldPort.smc`` and Non-secure memory writes, exactly as a
hypervisor would issue SMC instructions; nothing here reaches into the RMM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..arch.memory import GRANULE_SIZE
from ..platform import Platform, WorldPort
from ..rmm.rmi.realm import REALM_PARAMS
from ..rmm.rmi.rec import REC_PARAMS
from ..rmm.s2tt import level_size, num_root_tables

FID = {
    "VERSION": 0xC400_0150,
    "GRANULE_DELEGATE": 0xC400_0151,
    "GRANULE_UNDELEGATE": 0xC400_0152,
    "DATA_CREATE": 0xC400_0153,
    "DATA_CREATE_UNKNOWN": 0xC400_0154,
    "DATA_DESTROY": 0xC400_0155,
    "REALM_ACTIVATE": 0xC400_0157,
    "REALM_CREATE": 0xC400_0158,
    "REALM_DESTROY": 0xC400_0159,
    "REC_CREATE": 0xC400_015A,
    "REC_DESTROY": 0xC400_015B,
    "REC_ENTER": 0xC400_015C,
    "RTT_CREATE": 0xC400_015D,
    "RTT_DESTROY": 0xC400_015E,
    "RTT_MAP_UNPROTECTED": 0xC400_015F,
    "RTT_READ_ENTRY": 0xC400_0161,
    "RTT_UNMAP_UNPROTECTED": 0xC400_0162,
    "PSCI_COMPLETE": 0xC400_0164,
    "FEATURES": 0xC400_0165,
    "RTT_FOLD": 0xC400_0166,
    "REC_AUX_COUNT": 0xC400_0167,
    "RTT_INIT_RIPAS": 0xC400_0168,
    "RTT_SET_RIPAS": 0xC400_0169,
}


@dataclass(frozen=True)
class RmiResult:
    """x0..x7 of an RMI call, with x0 split into status and index."""

    regs: tuple[int, ...]

    @property
    def status(self) -> int:
        return self.regs[0] & 0xFF

    @property
    def index(self) -> int:
        return (self.regs[0] >> 8) & 0xFF

    @property
    def ok(self) -> bool:
        return self.regs[0] == 0

    def __getitem__(self, i: int) -> int:
        return self.regs[i]


class GranuleAllocator:
    """The host's pool of Non-secure DRAM granules (a simple bump allocator with a free
    list); it remembers nothing about what the RMM does with them."""

    def __init__(self, base: int, size: int) -> None:
        self.base = base
        self.end = base + size
        self._next = base
        self._free: list[int] = []

    def alloc(self, count: int = 1) -> int:
        """``count`` physically contiguous granules (single granules reuse freed ones)."""
        if count == 1 and self._free:
            return self._free.pop()
        addr = self._next
        if addr + count * GRANULE_SIZE > self.end:
            raise MemoryError("host granule pool exhausted")
        self._next += count * GRANULE_SIZE
        return addr

    def alloc_aligned(self, count: int, align: int) -> int:
        self._next = -(-self._next // align) * align
        return self.alloc(count)

    def free(self, addr: int) -> None:
        self._free.append(addr)


class RmiClient:
    """RMI calls from the Normal world (``p.host`` or ``p.cpus[i].host``)."""

    def __init__(
        self, platform: Platform, port: WorldPort | None = None, pool_offset: int = 0x0100_0000
    ) -> None:
        self.platform = platform
        self.port = port or platform.host
        dram = platform.region("ns_dram")
        self.pool = GranuleAllocator(dram.base + pool_offset, dram.size - pool_offset)

    def call(self, name: str, *args: int) -> RmiResult:
        return RmiResult(self.port.smc(FID[name], *args))

    # ------------------------------------------------------------------ granules
    def delegate(self, addr: int) -> RmiResult:
        return self.call("GRANULE_DELEGATE", addr)

    def undelegate(self, addr: int) -> RmiResult:
        return self.call("GRANULE_UNDELEGATE", addr)

    def new_delegated(self, count: int = 1) -> int:
        """Allocate ``count`` contiguous granules and delegate them; returns the first."""
        base = self.pool.alloc(count)
        for i in range(count):
            r = self.delegate(base + i * GRANULE_SIZE)
            if not r.ok:
                raise RuntimeError(f"GRANULE_DELEGATE {base + i * GRANULE_SIZE:#x}: {r[0]:#x}")
        return base

    def write_page(self, data: bytes) -> int:
        """A fresh NS granule holding ``data`` (padded to 4 KB)."""
        addr = self.pool.alloc()
        self.port.write(addr, data.ljust(GRANULE_SIZE, b"\0"))
        return addr


def realm_params(
    *,
    rtt_base: int,
    s2sz: int = 40,
    rtt_level_start: int | None = None,
    vmid: int = 1,
    hash_algo: int = 0,
    flags: int = 0,
    num_bps: int = 1,
    num_wps: int = 1,
    sve_vl: int = 0,
    pmu_num_ctrs: int = 0,
    rpv: bytes = b"",
    rtt_num_start: int | None = None,
) -> bytes:
    """An RmiRealmParams image. The start level defaults to the deepest valid one."""
    if rtt_level_start is None:
        rtt_level_start = default_start_level(s2sz)
    if rtt_num_start is None:
        rtt_num_start = num_root_tables(s2sz, rtt_level_start)
    return REALM_PARAMS.pack(
        {
            "flags": flags,
            "s2sz": s2sz,
            "sve_vl": sve_vl,
            "num_bps": num_bps,
            "num_wps": num_wps,
            "pmu_num_ctrs": pmu_num_ctrs,
            "hash_algo": hash_algo,
            "rpv": rpv,
            "vmid": vmid,
            "rtt_base": rtt_base,
            "rtt_level_start": rtt_level_start,
            "rtt_num_start": rtt_num_start,
        }
    )


def default_start_level(s2sz: int) -> int:
    """The start level KVM would use: the highest level whose concatenated start tables
    cover s2sz with at most 16 tables."""
    for sl in (3, 2, 1, 0):
        levels = 3 - sl
        if 9 * levels + 13 <= s2sz <= 9 * levels + 21 + (4 if sl > 0 else 0):
            return sl
    raise ValueError(f"no start level for s2sz={s2sz}")


def rec_params(
    *,
    pc: int = 0,
    gprs: Sequence[int] = (),
    mpidr: int = 0,
    runnable: bool = True,
    aux: Sequence[int] = (),
) -> bytes:
    """An RmiRecParams image."""
    regs = list(gprs) + [0] * (8 - len(gprs))
    return REC_PARAMS.pack(
        {
            "flags": int(runnable),
            "mpidr": mpidr,
            "pc": pc,
            "gprs": b"".join(r.to_bytes(8, "little") for r in regs),
            "num_aux": len(aux),
            "aux": b"".join(a.to_bytes(8, "little") for a in aux),
        }
    )


@dataclass
class RealmHandle:
    """What the host remembers about a realm it built."""

    rd: int
    rtt_base: int
    num_start: int
    s2sz: int
    start_level: int
    rtts: dict[tuple[int, int], int]  # (level, ipa) -> RTT granule
    recs: list[int]
    aux: dict[int, list[int]]
    data: dict[int, int]  # ipa -> granule


class RealmBuilder:
    """Builds realms through the RMI the way a VMM does."""

    def __init__(self, client: RmiClient) -> None:
        self.c = client

    def create(
        self,
        *,
        s2sz: int = 40,
        vmid: int = 1,
        hash_algo: int = 0,
        rtt_level_start: int | None = None,
        **extra: int | bytes,
    ) -> RealmHandle:
        sl = default_start_level(s2sz) if rtt_level_start is None else rtt_level_start
        n = num_root_tables(s2sz, sl)
        rd = self.c.new_delegated()
        rtt_base = self.c.pool.alloc_aligned(n, n * GRANULE_SIZE)
        for i in range(n):
            r = self.c.delegate(rtt_base + i * GRANULE_SIZE)
            assert r.ok, hex(r[0])
        params = self.c.write_page(
            realm_params(
                rtt_base=rtt_base,
                s2sz=s2sz,
                vmid=vmid,
                hash_algo=hash_algo,
                rtt_level_start=sl,
                **extra,  # type: ignore[arg-type]
            )
        )
        r = self.c.call("REALM_CREATE", rd, params)
        self.c.pool.free(params)
        if not r.ok:
            for g in [rd, *(rtt_base + i * GRANULE_SIZE for i in range(n))]:
                self.c.undelegate(g)
            raise RuntimeError(f"REALM_CREATE: {r[0]:#x}")
        return RealmHandle(rd, rtt_base, n, s2sz, sl, {}, [], {}, {})

    def ensure_table(self, realm: RealmHandle, ipa: int, level: int) -> None:
        """Create RTTs down to ``level`` (the table *at* level) covering ``ipa``."""
        for lvl in range(realm.start_level + 1, level + 1):
            base = ipa & ~(level_size(lvl - 1) - 1)
            if (lvl, base) in realm.rtts:
                continue
            rtt = self.c.new_delegated()
            r = self.c.call("RTT_CREATE", realm.rd, rtt, base, lvl)
            if r.status == 4 and r.index == lvl - 1:  # already a table
                self.c.undelegate(rtt)
                continue
            if not r.ok:
                self.c.undelegate(rtt)
                raise RuntimeError(f"RTT_CREATE level {lvl} @ {base:#x}: {r[0]:#x}")
            realm.rtts[(lvl, base)] = rtt

    def init_ripas(self, realm: RealmHandle, base: int, top: int) -> None:
        addr = base
        while addr < top:
            r = self.c.call("RTT_INIT_RIPAS", realm.rd, addr, top)
            if r.status == 4:  # walk stopped above the entry size: add a level
                self.ensure_table(realm, addr, r.index + 1)
                continue
            if not r.ok:
                raise RuntimeError(f"RTT_INIT_RIPAS {addr:#x}: {r[0]:#x}")
            addr = r[1]

    def add_data(self, realm: RealmHandle, ipa: int, content: bytes, measure: bool = True) -> int:
        self.ensure_table(realm, ipa, 3)
        src = self.c.write_page(content)
        data = self.c.new_delegated()
        r = self.c.call("DATA_CREATE", realm.rd, data, ipa, src, int(measure))
        self.c.pool.free(src)
        if not r.ok:
            self.c.undelegate(data)
            raise RuntimeError(f"DATA_CREATE {ipa:#x}: {r[0]:#x}")
        realm.data[ipa] = data
        return data

    def add_rec(
        self, realm: RealmHandle, *, pc: int = 0, gprs: Sequence[int] = (), runnable: bool = True
    ) -> int:
        aux = [self.c.new_delegated() for _ in range(16)]
        rec = self.c.new_delegated()
        params = self.c.write_page(
            rec_params(
                pc=pc, gprs=gprs, runnable=runnable, aux=aux, mpidr=_mpidr_of(len(realm.recs))
            )
        )
        r = self.c.call("REC_CREATE", realm.rd, rec, params)
        self.c.pool.free(params)
        if not r.ok:
            for g in [rec, *aux]:
                self.c.undelegate(g)
            raise RuntimeError(f"REC_CREATE: {r[0]:#x}")
        realm.recs.append(rec)
        realm.aux[rec] = aux
        return rec

    def activate(self, realm: RealmHandle) -> None:
        r = self.c.call("REALM_ACTIVATE", realm.rd)
        if not r.ok:
            raise RuntimeError(f"REALM_ACTIVATE: {r[0]:#x}")

    def destroy(self, realm: RealmHandle) -> None:
        """Tear down everything the handle records and undelegate every granule the realm
        used; works on a partly built realm too. Raises after trying everything if some
        step failed (the message lists them)."""
        c = self.c
        failures: list[str] = []

        def step(what: str, r: RmiResult) -> bool:
            if not r.ok:
                failures.append(f"{what}: {r[0]:#x}")
            return r.ok

        for rec in list(realm.recs):
            if step(f"REC_DESTROY {rec:#x}", c.call("REC_DESTROY", rec)):
                for g in [rec, *realm.aux.get(rec, [])]:
                    step(f"GRANULE_UNDELEGATE {g:#x}", c.undelegate(g))
                realm.recs.remove(rec)
        for ipa, data in sorted(realm.data.items()):
            if step(f"DATA_DESTROY {ipa:#x}", c.call("DATA_DESTROY", realm.rd, ipa)):
                step(f"GRANULE_UNDELEGATE {data:#x}", c.undelegate(data))
                del realm.data[ipa]
        for (level, ipa), rtt in sorted(realm.rtts.items(), reverse=True):
            if step(f"RTT_DESTROY {level}@{ipa:#x}", c.call("RTT_DESTROY", realm.rd, ipa, level)):
                step(f"GRANULE_UNDELEGATE {rtt:#x}", c.undelegate(rtt))
                del realm.rtts[(level, ipa)]
        if step("REALM_DESTROY", c.call("REALM_DESTROY", realm.rd)):
            step(f"GRANULE_UNDELEGATE {realm.rd:#x}", c.undelegate(realm.rd))
            for i in range(realm.num_start):
                g = realm.rtt_base + i * GRANULE_SIZE
                step(f"GRANULE_UNDELEGATE {g:#x}", c.undelegate(g))
        if failures:
            raise RuntimeError("realm teardown incomplete: " + "; ".join(failures))


def _mpidr_of(index: int) -> int:
    """RmiRecMpidr for REC ``index`` (inverse of the RMM's index rule)."""
    return (
        (index & 0xF)
        | ((index >> 4) & 0xFF) << 8
        | ((index >> 12) & 0xFF) << 16
        | ((index >> 20) & 0xFF) << 24
    )
