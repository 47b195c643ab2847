"""Platform configuration and the memory map it implies.

The default is an FVP-like system (Base RevC AEM FVP with RME): Secure DRAM low, a PL011
UART at 0x1C09_0000, a Root region holding the monitor's data and the GPT, the RMM's Realm
carve-out just below the Non-secure DRAM, and Non-secure DRAM from 0x8000_0000.
"""

from __future__ import annotations

from dataclasses import dataclass

from .arch.gpt import L0GPTSZ_BITS, PARANGE_BITS, PPS_BITS
from .arch.memory import GRANULE_SIZE, MemoryMap, Region, RegionKind
from .arch.security import PhysicalAddressSpace as Pas

MiB = 1 << 20
GiB = 1 << 30

SECURE_DRAM_BASE = 0x0600_0000
UART0_BASE = 0x1C09_0000
ROOT_BASE = 0x2000_0000
NS_DRAM_BASE = 0x8000_0000

EL3_DATA_SIZE = 1 * MiB  # monitor data at the start of the Root region (contexts, stacks)
RMM_PRIVATE_BASE = 1 * MiB  # offset of the RMM's granule-tracking array in its carve-out


class ConfigError(ValueError):
    """A PlatformConfig that cannot describe a platform."""


@dataclass(frozen=True)
class PlatformConfig:
    """Every field is optional; the defaults give a realistic platform (DESIGN.md)."""

    dram_size: int = 2 * GiB
    pa_bits: int = 48
    cpus: int = 4
    hash_algorithms: tuple[str, ...] = ("sha256", "sha512")
    vmid_bits: int = 16
    num_bps: int = 2
    num_wps: int = 2
    pmu_counters: int = 0
    sve_vl: int = 0
    lpa2: bool = False
    cpak_pem: str | None = None
    seed: int = 0
    token_format: str = "cmw"
    secure_dram_size: int = 32 * MiB
    rmm_size: int = 64 * MiB
    l0gptsz: int = 30  # bits covered by one level-0 GPT entry (fixed by the implementation)

    def __post_init__(self) -> None:
        if self.pa_bits not in PARANGE_BITS.values():
            raise ConfigError(f"pa_bits must be one of {sorted(PARANGE_BITS.values())}")
        if self.dram_size < 16 * MiB or self.dram_size % (2 * MiB):
            raise ConfigError("dram_size must be a multiple of 2 MiB and at least 16 MiB")
        if not 1 <= self.cpus <= 256:
            raise ConfigError("cpus must be between 1 and 256")
        if self.l0gptsz not in L0GPTSZ_BITS.values():
            raise ConfigError(f"l0gptsz must be one of {sorted(L0GPTSZ_BITS.values())}")
        for name in ("secure_dram_size", "rmm_size"):
            value = getattr(self, name)
            if value < 2 * MiB or value % (2 * MiB):
                raise ConfigError(f"{name} must be a multiple of 2 MiB and at least 2 MiB")
        if self.token_format not in ("cmw", "legacy"):
            raise ConfigError('token_format must be "cmw" or "legacy"')
        if self.secure_dram_base + self.secure_dram_size > UART0_BASE:
            raise ConfigError("secure_dram_size too large for the memory map")
        if self.rmm_base < ROOT_BASE + self.root_size:
            raise ConfigError("dram_size too large: the GPT does not fit in the Root region")
        if self.memory_top > 1 << self.pa_bits:
            raise ConfigError(f"the memory map ends at {self.memory_top:#x}, beyond pa_bits")

    # ------------------------------------------------------------------ derived layout
    @property
    def secure_dram_base(self) -> int:
        return SECURE_DRAM_BASE

    @property
    def rmm_region_size(self) -> int:
        """The RMM carve-out: at least ``rmm_size``, and large enough for the RMM's image,
        its granule-tracking array (2 bytes per tracked 4 KB granule) and the shared buffer."""
        needed = RMM_PRIVATE_BASE + self.dram_size // GRANULE_SIZE * 2 + GRANULE_SIZE
        return max(self.rmm_size, _align_up(needed, 2 * MiB))

    @property
    def rmm_base(self) -> int:
        return NS_DRAM_BASE - self.rmm_region_size

    @property
    def memory_top(self) -> int:
        return NS_DRAM_BASE + self.dram_size

    @property
    def pps_bits(self) -> int:
        """The smallest protected physical size that covers the memory map."""
        for bits in sorted(PPS_BITS.values()):
            if self.memory_top <= 1 << bits:
                return bits
        raise ConfigError("memory map beyond the largest PPS")

    @property
    def l0_entries(self) -> int:
        return 1 << max(self.pps_bits - self.l0gptsz, 0)

    @property
    def l0_table_size(self) -> int:
        return max(self.l0_entries * 8, 4096)

    @property
    def l1_table_size(self) -> int:
        return 1 << (min(self.l0gptsz, self.pps_bits) - 12 - 4 + 3)

    @property
    def l1_tables(self) -> int:
        """Level-1 tables reserved in the Root region: one per L0 entry up to the memory top,
        so a granule transition never runs out of GPT memory."""
        return -(-self.memory_top // (1 << self.l0gptsz))

    @property
    def root_size(self) -> int:
        l0_offset = _align_up(EL3_DATA_SIZE, self.l0_table_size)
        pool_offset = _align_up(l0_offset + self.l0_table_size, self.l1_table_size)
        return _align_up(pool_offset + self.l1_tables * self.l1_table_size, 2 * MiB)

    def memory_map(self) -> MemoryMap:
        return MemoryMap(
            [
                Region(
                    "secure_dram",
                    self.secure_dram_base,
                    self.secure_dram_size,
                    RegionKind.DRAM,
                    Pas.SECURE,
                    "Secure DRAM (SPMC and partitions)",
                ),
                Region(
                    "uart0",
                    UART0_BASE,
                    GRANULE_SIZE,
                    RegionKind.MMIO,
                    Pas.NON_SECURE,
                    "PL011 UART, Non-secure console",
                ),
                Region(
                    "root",
                    ROOT_BASE,
                    self.root_size,
                    RegionKind.DRAM,
                    Pas.ROOT,
                    "EL3 monitor data and the Granule Protection Table",
                ),
                Region(
                    "rmm",
                    self.rmm_base,
                    self.rmm_region_size,
                    RegionKind.DRAM,
                    Pas.REALM,
                    "RMM image, data and the RMM-EL3 shared buffer",
                ),
                Region(
                    "ns_dram",
                    NS_DRAM_BASE,
                    self.dram_size,
                    RegionKind.DRAM,
                    Pas.NON_SECURE,
                    "Non-secure DRAM (host; delegable to Realm/Secure)",
                ),
            ]
        )


def _align_up(value: int, align: int) -> int:
    return -(-value // align) * align
