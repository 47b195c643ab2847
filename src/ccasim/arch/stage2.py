"""The hardware stage-2 translation walk (VMSAv8-64, 4 KB granule), as a PE performs it
for a realm's EL1&0 accesses (Arm ARM DDI0487 D8; rme-hardware §1 for the NS bit).

The walker knows nothing of the RMM's software encodings: an invalid descriptor is a
translation fault, whatever RIPAS/HIPAS bits it carries. The RMM gives meaning to the
fault afterwards (rmm-abi §7.2). Table reads go through a callback so that they are
Realm-state accesses checked by the GPC, as the hardware's walk accesses are.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from .security import PhysicalAddressSpace

ENTRIES = 512
OA_MASK = ((1 << 48) - 1) & ~0xFFF
NS_BIT = 1 << 55
AF_BIT = 1 << 10
S2AP_READ = 1 << 6
S2AP_WRITE = 1 << 7
XN_BIT = 1 << 54


class Stage2FaultKind(enum.Enum):
    TRANSLATION = 0b000100  # + level
    ACCESS_FLAG = 0b001000
    PERMISSION = 0b001100
    ADDRESS_SIZE = 0b000000


class Stage2Fault(Exception):
    """A stage-2 fault on the final access (s1ptw False) or on a stage-1 walk access."""

    def __init__(self, kind: Stage2FaultKind, level: int, ipa: int, *, write: bool,
                 fetch: bool, s1ptw: bool = False) -> None:
        super().__init__(f"stage-2 {kind.name.lower()} fault, level {level}, IPA {ipa:#x}")
        self.kind = kind
        self.level = level
        self.ipa = ipa
        self.write = write
        self.fetch = fetch
        self.s1ptw = s1ptw

    @property
    def fsc(self) -> int:
        """DFSC/IFSC: the fault class plus the level."""
        return self.kind.value | (self.level & 0x3)


@dataclass(frozen=True)
class Stage2Config:
    """The parts of VTTBR_EL2/VTCR_EL2 the walk needs: root table base (concatenated start
    tables are contiguous), IPA width (64 - T0SZ), start level, number of start tables,
    PA width (PS) and the VMID."""

    base: int
    ipa_bits: int
    start_level: int
    num_start: int
    pa_bits: int
    vmid: int
    # The PAS of the translation regime's own memory: where its tables are read from and
    # what a descriptor with NS = 0 selects. Realm for a realm (the RMM's RTTs); Secure for
    # a Secure partition, whose SPMC folds the Secure and Non-secure IPA spaces into one
    # table where bit 55 stands for "output in the Non-secure PAS".
    world_pas: PhysicalAddressSpace = PhysicalAddressSpace.REALM


@dataclass(frozen=True)
class Stage2Result:
    pa: int
    pas: PhysicalAddressSpace
    readable: bool
    writable: bool
    executable: bool
    level: int

    @property
    def block_size(self) -> int:
        return 1 << (12 + 9 * (3 - self.level))


def level_shift(level: int) -> int:
    return 12 + 9 * (3 - level)


def translate_stage2(
    cfg: Stage2Config,
    ipa: int,
    *,
    write: bool,
    fetch: bool,
    read_desc: Callable[[int], int],
    s1ptw: bool = False,
) -> Stage2Result:
    """Translate ``ipa``; raise :class:`Stage2Fault` as the hardware would."""
    if ipa >> cfg.ipa_bits:
        raise Stage2Fault(Stage2FaultKind.TRANSLATION, cfg.start_level, ipa, write=write,
                          fetch=fetch, s1ptw=s1ptw)
    level = cfg.start_level
    index = (ipa >> level_shift(level)) & (ENTRIES * cfg.num_start - 1)
    table = cfg.base
    while True:
        desc = read_desc(table + 8 * index)
        if not desc & 1:
            raise Stage2Fault(Stage2FaultKind.TRANSLATION, level, ipa, write=write,
                              fetch=fetch, s1ptw=s1ptw)
        is_table_or_page = bool(desc & 2)
        if level < 3 and is_table_or_page:
            table = desc & OA_MASK
            if table >> cfg.pa_bits:
                raise Stage2Fault(Stage2FaultKind.ADDRESS_SIZE, level, ipa, write=write,
                                  fetch=fetch, s1ptw=s1ptw)
            level += 1
            index = (ipa >> level_shift(level)) & (ENTRIES - 1)
            continue
        if (level == 3 and not is_table_or_page) or level == 0:
            # 0b01 at level 3 is reserved; level-0 blocks do not exist with 4 KB granules
            raise Stage2Fault(Stage2FaultKind.TRANSLATION, level, ipa, write=write,
                              fetch=fetch, s1ptw=s1ptw)
        break
    shift = level_shift(level)
    out = (desc & OA_MASK & ~((1 << shift) - 1)) | (ipa & ((1 << shift) - 1))
    if out >> cfg.pa_bits:
        raise Stage2Fault(Stage2FaultKind.ADDRESS_SIZE, level, ipa, write=write, fetch=fetch,
                          s1ptw=s1ptw)
    if not desc & AF_BIT:
        raise Stage2Fault(Stage2FaultKind.ACCESS_FLAG, level, ipa, write=write, fetch=fetch,
                          s1ptw=s1ptw)
    ns = bool(desc & NS_BIT)
    result = Stage2Result(
        pa=out,
        pas=PhysicalAddressSpace.NON_SECURE if ns else cfg.world_pas,
        readable=bool(desc & S2AP_READ),
        writable=bool(desc & S2AP_WRITE),
        # a realm mapping with NS = 1 is never executable (rme-hardware §1); nor is a Secure
        # one (SCR_EL3.SIF: no Secure instruction fetch from the Non-secure PAS)
        executable=not (desc & XN_BIT) and not ns,
        level=level,
    )
    allowed = result.executable if fetch else (result.writable if write else result.readable)
    if not allowed:
        raise Stage2Fault(Stage2FaultKind.PERMISSION, level, ipa, write=write, fetch=fetch,
                          s1ptw=s1ptw)
    return result
