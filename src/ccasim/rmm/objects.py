"""The RMM's objects in their granules: the Realm Descriptor and the REC.

These layouts are the RMM's private choice (the spec defines the host-visible parameter
structures, not the RMM's internal objects); they are declared once here. The host never
sees them: RD and REC granules are in the Realm PAS and a Non-secure read faults.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar

from ..arch.pe import ProcessingElement
from ..arch.security import PhysicalAddressSpace as Pas
from ..layout import Field, Layout
from .measurement import MEASUREMENT_SLOTS, SLOT_SIZE, HashAlgorithm
from .s2tt import RttGeometry


class RealmState(enum.IntEnum):
    NEW = 0
    ACTIVE = 1
    SYSTEM_OFF = 2


NUM_REC_AUX = 16
_REALM_STATES = tuple(RealmState)
_HASH_ALGOS = tuple(HashAlgorithm)

RD_LAYOUT = Layout(
    "RealmDescriptor",
    0x340,
    [
        Field("state", 0x000, 8),
        Field("rec_count", 0x008, 8),
        Field("num_rec_aux", 0x010, 8),
        Field("hash_algo", 0x018, 8),
        Field("s2sz", 0x020, 8),
        Field("rtt_base", 0x028, 8),
        Field("rtt_level_start", 0x030, 8),
        Field("rtt_num_start", 0x038, 8),
        Field("vmid", 0x040, 8),
        Field("flags", 0x048, 8),
        Field("sve_vl", 0x050, 8),
        Field("num_bps", 0x058, 8),
        Field("num_wps", 0x060, 8),
        Field("pmu_num_ctrs", 0x068, 8),
        Field("rpv", 0x100, 64, raw=True),
        Field("measurements", 0x200, MEASUREMENT_SLOTS * SLOT_SIZE, raw=True),
    ],
)


# The RD image as one struct: 14 words, the RPV and the five measurement slots.
_RD_STRUCT = struct.Struct("<14Q144x64s192x" + "64s" * MEASUREMENT_SLOTS)
assert _RD_STRUCT.size == RD_LAYOUT.size
_RD_SIZE = RD_LAYOUT.size
_RIM_OFFSET = RD_LAYOUT.offset("measurements")  # measurement slot 0
_REALM_PAS = Pas.REALM  # bound once: enum member access is slow on Python 3.11


@dataclass(slots=True)
class Realm:
    """A Realm Descriptor loaded from (and stored back into) its RD granule."""

    pa: int
    state: RealmState
    rec_count: int
    num_rec_aux: int
    hash_algo: HashAlgorithm
    s2sz: int
    rtt_base: int
    rtt_level_start: int
    rtt_num_start: int
    vmid: int
    flags: int
    sve_vl: int
    num_bps: int
    num_wps: int
    pmu_num_ctrs: int
    rpv: bytes
    measurements: list[bytes] = field(default_factory=list)

    @property
    def geometry(self) -> RttGeometry:
        return RttGeometry(self.s2sz, self.rtt_level_start, self.rtt_num_start, self.rtt_base)

    @property
    def rim(self) -> bytes:
        return self.measurements[0][: self.hash_algo.digest_size]

    @rim.setter
    def rim(self, value: bytes) -> None:
        self.measurements[0] = value.ljust(SLOT_SIZE, b"\0")

    @classmethod
    def load(cls, pe: ProcessingElement, pa: int) -> Realm:
        (state, rec_count, num_rec_aux, algo, s2sz, rtt_base, sl, num_start, vmid, flags,
         sve_vl, num_bps, num_wps, pmu, rpv, *meas) = _RD_STRUCT.unpack(
            pe.read(pa, _RD_SIZE, _REALM_PAS))
        return cls(
            pa, _REALM_STATES[state], rec_count, num_rec_aux, _HASH_ALGOS[algo], s2sz,
            rtt_base, sl - (1 << 64) if sl >> 63 else sl, num_start, vmid, flags, sve_vl,
            num_bps, num_wps, pmu, rpv, meas,
        )

    def store(self, pe: ProcessingElement) -> None:
        image = RD_LAYOUT.pack(
            {
                "state": self.state,
                "rec_count": self.rec_count,
                "num_rec_aux": self.num_rec_aux,
                "hash_algo": self.hash_algo,
                "s2sz": self.s2sz,
                "rtt_base": self.rtt_base,
                "rtt_level_start": self.rtt_level_start,
                "rtt_num_start": self.rtt_num_start,
                "vmid": self.vmid,
                "flags": self.flags,
                "sve_vl": self.sve_vl,
                "num_bps": self.num_bps,
                "num_wps": self.num_wps,
                "pmu_num_ctrs": self.pmu_num_ctrs,
                "rpv": self.rpv,
                "measurements": b"".join(self.measurements),
            }
        )
        pe.write(self.pa, image, Pas.REALM)

    def store_rim(self, pe: ProcessingElement) -> None:
        """Write back only the RIM slot (the common case of a measured command)."""
        pe.write(self.pa + _RIM_OFFSET, self.measurements[0], _REALM_PAS)


# REC flag bits (RMM-private)
REC_RUNNABLE = 1 << 0
REC_PSCI_PENDING = 1 << 1  # a CPU_ON / AFFINITY_INFO request awaits RMI_PSCI_COMPLETE
REC_HOST_CALL_PENDING = 1 << 2
REC_CONTEXT_VALID = 1 << 3  # the vCPU register context is saved in the aux granules
REC_RESET_PENDING = 1 << 4  # a completed CPU_ON: reset pc/x0/PSTATE/SCTLR on next entry
REC_PSCI_RESULT_PENDING = 1 << 5  # deliver psci_result in x0 (x1..x3 = 0) on next entry
REC_TOKEN_INIT = 1 << 6  # RSI_ATTESTATION_TOKEN_INIT was called
REC_MMIO_READ = 1 << 7  # the last exit was an emulatable read (EMUL_MMIO completes it)

REC_LAYOUT = Layout(
    "Rec",
    4096,
    [
        Field("owner", 0x000, 8),
        Field("rec_idx", 0x008, 8),
        Field("mpidr", 0x010, 8),
        Field("flags", 0x018, 8),
        Field("pc", 0x020, 8),
        Field("pstate", 0x028, 8),
        Field("gprs", 0x100, 31 * 8, raw=True),
        Field("set_ripas_base", 0x200, 8),
        Field("set_ripas_top", 0x208, 8),
        Field("set_ripas_addr", 0x210, 8),
        Field("set_ripas_value", 0x218, 8),
        Field("set_ripas_change_destroyed", 0x220, 8),
        Field("set_ripas_response", 0x228, 8),
        Field("last_esr", 0x240, 8),
        Field("last_far", 0x248, 8),
        Field("last_hpfar", 0x250, 8),
        Field("psci_fid", 0x260, 8),
        Field("psci_target_mpidr", 0x268, 8),
        Field("psci_entry", 0x270, 8),
        Field("psci_context", 0x278, 8),
        Field("psci_result", 0x280, 8),
        Field("host_call_ipa", 0x288, 8),
        Field("token_len", 0x290, 8),
        Field("context_len", 0x298, 8),
        Field("token_copied", 0x2A0, 8),
        Field("gicv3_hcr", 0x300, 8),
        Field("gicv3_lrs", 0x308, 16 * 8, raw=True),
        Field("challenge", 0x400, 64, raw=True),
        Field("num_aux", 0x800, 8),
        Field("aux", 0x808, NUM_REC_AUX * 8, raw=True),
        Field("meas_snapshot", 0x900, MEASUREMENT_SLOTS * SLOT_SIZE, raw=True),
    ],
)

PSTATE_EL1H_DAIF = 0x3C5  # EL1h, D, A, I, F masked


_GPRS = struct.Struct("<31Q")


class Rec:
    """A REC, held as the image of its granule. Integer fields are read and written in
    place (``rec["name"]``); ``gprs`` (x0..x30 of the initial / reset state) is unpacked on
    load and packed back by :meth:`store`, which writes the granule."""

    __slots__ = ("gprs", "image", "pa")
    _INTS: ClassVar[dict[str, tuple[int, struct.Struct]]] = {
        f.name: (f.offset, struct.Struct({1: "<B", 2: "<H", 4: "<I", 8: "<Q"}[f.width]))
        for f in REC_LAYOUT.fields.values()
        if not f.raw
    }
    _RAW: ClassVar[dict[str, tuple[int, int]]] = {
        f.name: (f.offset, f.width) for f in REC_LAYOUT.fields.values() if f.raw
    }

    def __init__(self, pa: int, image: bytearray) -> None:
        self.pa = pa
        self.image = image
        off = REC_LAYOUT.offset("gprs")
        self.gprs = list(_GPRS.unpack_from(image, off))

    @classmethod
    def new(cls, pa: int, *, owner: int, rec_idx: int, mpidr: int, flags: int, pc: int,
            pstate: int, gprs: list[int], num_aux: int, aux: bytes) -> Rec:
        rec = cls(pa, bytearray(REC_LAYOUT.size))
        rec.gprs = list(gprs) + [0] * (31 - len(gprs))
        for name, value in (("owner", owner), ("rec_idx", rec_idx), ("mpidr", mpidr),
                            ("flags", flags), ("pc", pc), ("pstate", pstate),
                            ("num_aux", num_aux)):
            rec[name] = value
        rec["aux"] = aux
        return rec

    @classmethod
    def load(cls, pe: ProcessingElement, pa: int) -> Rec:
        return cls(pa, bytearray(pe.read(pa, REC_LAYOUT.size, Pas.REALM)))

    def store(self, pe: ProcessingElement) -> None:
        _GPRS.pack_into(self.image, REC_LAYOUT.offset("gprs"),
                        *(g & ((1 << 64) - 1) for g in self.gprs))
        pe.write(self.pa, bytes(self.image), Pas.REALM)

    # ------------------------------------------------------------------ fields
    def __getitem__(self, name: str) -> int:
        off, st = self._INTS[name]
        return int(st.unpack_from(self.image, off)[0])

    def __setitem__(self, name: str, value: int | bytes) -> None:
        if isinstance(value, int):
            off, st = self._INTS[name]
            st.pack_into(self.image, off, value & ((1 << (8 * st.size)) - 1))
        else:
            off, width = self._RAW[name]
            if len(value) > width:
                raise ValueError(f"REC field {name} holds {width} bytes")
            self.image[off : off + width] = bytes(value).ljust(width, b"\0")

    def raw(self, name: str) -> bytes:
        off, width = self._RAW[name]
        return bytes(self.image[off : off + width])

    @property
    def owner(self) -> int:
        return self["owner"]

    @property
    def rec_idx(self) -> int:
        return self["rec_idx"]

    @property
    def mpidr(self) -> int:
        return self["mpidr"]

    @property
    def flags(self) -> int:
        return self["flags"]

    @flags.setter
    def flags(self, value: int) -> None:
        self["flags"] = value

    @property
    def pc(self) -> int:
        return self["pc"]

    @pc.setter
    def pc(self, value: int) -> None:
        self["pc"] = value

    @property
    def pstate(self) -> int:
        return self["pstate"]

    @pstate.setter
    def pstate(self, value: int) -> None:
        self["pstate"] = value

    @property
    def runnable(self) -> bool:
        return bool(self.flags & REC_RUNNABLE)

    @property
    def psci_pending(self) -> bool:
        return bool(self.flags & REC_PSCI_PENDING)

    @property
    def aux(self) -> list[int]:
        n = self["num_aux"]
        off = REC_LAYOUT.offset("aux")
        return list(struct.unpack_from(f"<{n}Q", self.image, off))
