"""Shared helpers for the platform-layer tests (imported as ``rme_helpers``).

The constants here are written down from the spec digests (shared/spec/rme-hardware.md), not
imported from the code under test, so that the tests compare the model against the spec.
The GPT walker below does what the hardware does (GPTBR_EL3 -> L0 -> L1) with Root-state
reads issued by EL3 on PE 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

from ccasim import Platform, SecurityState
from ccasim.arch.pe import ProcessingElement
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.platform import WorldPort

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
GRANULE = 4 * KiB
MASK64 = (1 << 64) - 1

# GPI encodings, rme-hardware §2.
GPI_NO_ACCESS = 0b0000
GPI_SECURE = 0b1000
GPI_NS = 0b1001
GPI_ROOT = 0b1010
GPI_REALM = 0b1011
GPI_NSO = 0b1101
GPI_ANY = 0b1111
BASE_GPIS = frozenset({GPI_NO_ACCESS, GPI_SECURE, GPI_NS, GPI_ROOT, GPI_REALM, GPI_ANY})

# The PAS that a "<world> only" GPI admits (rme-hardware §2 table).
GPI_ONLY_PAS = {GPI_SECURE: Pas.SECURE, GPI_NS: Pas.NON_SECURE, GPI_ROOT: Pas.ROOT,
                GPI_REALM: Pas.REALM}
PAS_GPI = {pas: gpi for gpi, pas in GPI_ONLY_PAS.items()}

# Which PAS each security state can emit (rme-hardware §1 table).
EMITTABLE: dict[SecurityState, tuple[Pas, ...]] = {
    SecurityState.ROOT: (Pas.ROOT, Pas.REALM, Pas.SECURE, Pas.NON_SECURE),
    SecurityState.REALM: (Pas.REALM, Pas.NON_SECURE),
    SecurityState.SECURE: (Pas.SECURE, Pas.NON_SECURE),
    SecurityState.NON_SECURE: (Pas.NON_SECURE,),
}
STATE_PAS_PAIRS = [(s, pas) for s, pases in EMITTABLE.items() for pas in pases]

# SMC function IDs and status codes (rme-hardware §7, rmm-abi §12).
SMC_UNKNOWN = MASK64
RMM_GTSI_DELEGATE = 0xC400_01B0
RMM_GTSI_UNDELEGATE = 0xC400_01B1
FIRME_GM_GPI_SET = 0xC400_0402
E_RMM_OK = 0
E_RMM_BAD_ADDR = -2 & MASK64
E_RMM_BAD_PAS = -3 & MASK64


def u64(value: int) -> int:
    """A (possibly negative) status as the 64-bit register value."""
    return value & MASK64


def bits(value: int, hi: int, lo: int) -> int:
    """value[hi:lo], inclusive, as the spec writes bit fields."""
    if hi < lo:
        return 0
    return (value >> lo) & ((1 << (hi - lo + 1)) - 1)


@contextmanager
def at_el3(platform: Platform, cpu: int = 0) -> Iterator[ProcessingElement]:
    """Run as EL3 (Root state) on PE ``cpu``."""
    with platform.cpus[cpu].probe(SecurityState.ROOT)._running() as pe:
        assert pe.el == 3 and pe.security_state is SecurityState.ROOT
        yield pe


def root_read_u64(platform: Platform, pa: int) -> int:
    return int.from_bytes(platform.el3.read(pa, 8, Pas.ROOT), "little")


def root_write_u64(platform: Platform, pa: int, value: int) -> None:
    platform.el3.write(pa, (value & MASK64).to_bytes(8, "little"), Pas.ROOT)


def tlbi_paallos(platform: Platform, cpu: int = 0) -> None:
    with at_el3(platform, cpu) as pe:
        pe.tlbi_paallos()


class SpecGeometry:
    """P, S, T read back from GPCCR_EL3 with the encodings of rme-hardware §3."""

    PPS: ClassVar[dict[int, int]] = {0: 32, 1: 36, 2: 40, 3: 42, 4: 44, 5: 48, 6: 52}
    PGS: ClassVar[dict[int, int]] = {0b00: 12, 0b01: 16, 0b10: 14}
    L0GPTSZ: ClassVar[dict[int, int]] = {0: 30, 4: 34, 6: 36, 9: 39}

    def __init__(self, gpccr: int) -> None:
        self.t = self.PPS[bits(gpccr, 2, 0)]
        self.p = self.PGS[bits(gpccr, 15, 14)]
        self.s = self.L0GPTSZ[bits(gpccr, 23, 20)]

    def l0_index(self, pa: int) -> int:
        return bits(pa, self.t - 1, self.s) if self.s < self.t else 0

    def l1_index(self, pa: int) -> int:
        return bits(pa, min(self.s, self.t) - 1, self.p + 4)

    def gpi_index(self, pa: int) -> int:
        return bits(pa, self.p + 3, self.p)


def geometry(platform: Platform, cpu: int = 0) -> SpecGeometry:
    return SpecGeometry(platform.el3.sysreg("GPCCR_EL3", cpu))


def l0_entry_pa(platform: Platform, pa: int) -> int:
    """PA of the L0 descriptor covering ``pa``: GPTBR_EL3.BADDR[39:0] = PA[51:12] of L0."""
    l0_base = bits(platform.el3.sysreg("GPTBR_EL3"), 39, 0) << 12
    return l0_base + 8 * geometry(platform).l0_index(pa)


def l1_entry_pa(platform: Platform, pa: int) -> int:
    """PA of the L1 descriptor for ``pa``, walking GPTBR -> L0 as the hardware does.

    If the L0 entry is a block descriptor, EL3 software first replaces it by an L1 table
    (same GPI everywhere, in the table slot the monitor reserves for that L0 entry), the way
    the monitor itself does before its first transition in a block region.
    """
    g = geometry(platform)
    l0_pa = l0_entry_pa(platform, pa)
    l0 = root_read_u64(platform, l0_pa)
    if bits(l0, 3, 0) == 0b0001:  # block
        gpi = bits(l0, 7, 4)
        table = platform.monitor.gpt.l1_slot(g.l0_index(pa))
        entries = 1 << (min(g.s, g.t) - g.p - 4)
        platform.el3.write(table, (gpi * 0x1111_1111_1111_1111).to_bytes(8, "little") * entries)
        root_write_u64(platform, l0_pa, table | 0b0011)
        l0 = root_read_u64(platform, l0_pa)
    assert bits(l0, 3, 0) == 0b0011, f"L0 descriptor {l0:#x} is not a table"
    l1_base = bits(l0, 51, 12) << 12
    return l1_base + 8 * g.l1_index(pa)


def write_gpi(platform: Platform, pa: int, gpi: int, *, tlbi: bool = True) -> None:
    """EL3 writes ``gpi`` for ``pa``'s granule into the real GPT (then TLBI PAALLOS)."""
    g = geometry(platform)
    entry_pa = l1_entry_pa(platform, pa)
    desc = root_read_u64(platform, entry_pa)
    assert bits(desc, 3, 0) != 0b0001, "contiguous descriptor; not handled by this helper"
    shift = 4 * g.gpi_index(pa)
    root_write_u64(platform, entry_pa, (desc & ~(0xF << shift)) | (gpi << shift))
    if tlbi:
        tlbi_paallos(platform)


def ns_granule(platform: Platform, index: int = 5) -> int:
    """A granule of Non-secure DRAM."""
    r = platform.region("ns_dram")
    return r.base + index * GRANULE


def realm(platform: Platform, cpu: int = 0) -> WorldPort:
    return platform.cpus[cpu].probe(SecurityState.REALM)


def secure(platform: Platform, cpu: int = 0) -> WorldPort:
    return platform.cpus[cpu].probe(SecurityState.SECURE)
