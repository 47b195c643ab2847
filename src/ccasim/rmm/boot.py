"""RMM cold boot: validate the boot arguments and the boot manifest (rmm-abi §12).

Runs at R-EL2. The manifest is read from the shared buffer with Realm-state accesses that
the GPC checks; anything that faults or does not add up gives the matching boot error.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arch.faults import ArchFault
from ..arch.memory import GRANULE_SIZE
from ..arch.pe import ProcessingElement
from ..firmware import boot_manifest as bm
from ..firmware.errors import ERmmBoot

RMM_EL3_IFC_MAJOR = 0
RMM_EL3_IFC_MINOR = 3
MAX_CPUS = 256
MAX_DRAM_BANKS = 16
MASK64 = (1 << 64) - 1


class BootError(Exception):
    def __init__(self, status: ERmmBoot, why: str) -> None:
        super().__init__(f"{status.name}: {why}")
        self.status = status


@dataclass(frozen=True)
class BootInfo:
    """What the RMM keeps from the boot arguments and the manifest."""

    num_cpus: int
    ifc_version: int
    dram_banks: tuple[tuple[int, int], ...]
    console_base: int | None


def validate_boot_args(cpu_id: int, version: int, num_cpus: int, shared: int) -> None:
    """Checks in TF-RMM's order: interface version, CPU count, CPU id, shared buffer."""
    major, minor = (version >> 16) & 0x7FFF, version & 0xFFFF
    if version >> 31 or major != RMM_EL3_IFC_MAJOR or minor < RMM_EL3_IFC_MINOR:
        raise BootError(ERmmBoot.VERSION_NOT_VALID, f"interface {major}.{minor}")
    if not 1 <= num_cpus <= MAX_CPUS:
        raise BootError(ERmmBoot.CPUS_OUT_OF_RANGE, f"{num_cpus} CPUs")
    if cpu_id >= num_cpus:
        raise BootError(ERmmBoot.CPU_ID_OUT_OF_RANGE, f"CPU {cpu_id} of {num_cpus}")
    if shared == 0 or shared % GRANULE_SIZE:
        raise BootError(ERmmBoot.INVALID_SHARED_BUFFER, f"{shared:#x}")


def read_manifest(pe: ProcessingElement, shared: int) -> BootInfo:
    """Read and check the v0.3 manifest at the base of the shared buffer."""
    try:
        page = pe.read(shared, GRANULE_SIZE)
    except ArchFault as fault:
        raise BootError(ERmmBoot.INVALID_SHARED_BUFFER, str(fault)) from None
    header = bm.MANIFEST.unpack(page)
    version = int(header["version"])
    if version >> 16 != 0 or (version & 0xFFFF) < 3:  # major 0; minor 3 or a compatible later one
        raise BootError(ERmmBoot.MANIFEST_VERSION_NOT_SUPPORTED, f"{version:#x}")
    banks = _read_array(
        pe,
        shared,
        page,
        int(header["num_banks"]),
        int(header["banks"]),
        int(header["banks_checksum"]),
        bm.BANK.size,
        MAX_DRAM_BANKS,
    )
    dram: list[tuple[int, int]] = []
    for entry in banks:
        base, size = (int.from_bytes(entry[i : i + 8], "little") for i in (0, 8))
        if base % GRANULE_SIZE or size % GRANULE_SIZE or size == 0:
            raise BootError(ERmmBoot.MANIFEST_DATA_ERROR, "unaligned DRAM bank")
        if dram and base < dram[-1][0] + dram[-1][1]:
            raise BootError(ERmmBoot.MANIFEST_DATA_ERROR, "DRAM banks unordered or overlapping")
        if base + size > 1 << pe.pa_bits:
            raise BootError(ERmmBoot.MANIFEST_DATA_ERROR, "DRAM bank beyond the PA range")
        dram.append((base, size))
    if not dram:
        raise BootError(ERmmBoot.MANIFEST_DATA_ERROR, "no DRAM banks")
    consoles = _read_array(
        pe,
        shared,
        page,
        int(header["num_consoles"]),
        int(header["consoles"]),
        int(header["consoles_checksum"]),
        bm.CONSOLE.size,
        4,
    )
    console_base = bm.CONSOLE.unpack_int(consoles[0], "base") if consoles else None
    return BootInfo(0, 0, tuple(dram), console_base)


def _read_array(
    pe: ProcessingElement,
    shared: int,
    page: bytes,
    count: int,
    pointer: int,
    checksum: int,
    entry_size: int,
    limit: int,
) -> list[bytes]:
    if count > limit:
        raise BootError(ERmmBoot.MANIFEST_DATA_ERROR, f"{count} entries")
    if count == 0:
        return []
    start = pointer - shared
    if start < 0 or start + count * entry_size > GRANULE_SIZE:
        raise BootError(ERmmBoot.MANIFEST_DATA_ERROR, "array outside the shared buffer")
    raw = page[start : start + count * entry_size]
    total = (count + pointer + checksum + sum(bm.words_of(raw))) & MASK64
    if total:
        raise BootError(ERmmBoot.MANIFEST_DATA_ERROR, "checksum mismatch")
    return [raw[i * entry_size : (i + 1) * entry_size] for i in range(count)]
