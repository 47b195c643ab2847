"""What an RSI/PSCI handler or an exit handler works on while a REC runs on a PE."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..arch.execution import ExecutionEngine
from ..arch.pe import ProcessingElement
from ..arch.security import PhysicalAddressSpace as Pas
from . import s2tt
from .objects import Realm, Rec
from .recrun import RecExitReason
from .s2tt import Ripas, Rtte

if TYPE_CHECKING:
    from .rmm import Rmm

MASK64 = (1 << 64) - 1


class EmulatedAbort(Exception):
    """An RSI call needs a page whose IPA is unmapped but whose RIPAS is RAM or DESTROYED:
    the REC exits with an emulated stage-2 data abort and the call is retried (§7.2)."""

    def __init__(self, ipa: int, level: int) -> None:
        super().__init__(f"emulated stage-2 abort at IPA {ipa:#x}")
        self.ipa = ipa
        self.level = level


class EmptyPage(Exception):
    """An RSI call's page has RIPAS EMPTY: the call fails with RSI_ERROR_INPUT."""


@dataclass
class RecExit:
    """An exit to the host: the RmiRecExit fields to write (all others zero)."""

    reason: RecExitReason
    fields: dict[str, int | bytes] = field(default_factory=dict)


@dataclass
class RunContext:
    rmm: Rmm
    pe: ProcessingElement
    engine: ExecutionEngine
    realm: Realm
    rec: Rec

    # ------------------------------------------------------------------ registers
    def args(self, count: int) -> list[int]:
        """x1..x<count> of the REC."""
        return self.engine.xs(1, count)

    def results(self, *values: int) -> None:
        """x0.. := values (the rest of the registers are preserved)."""
        for i, value in enumerate(values):
            self.engine.set_x(i, value & MASK64)

    # ------------------------------------------------------------------ realm memory
    def page(self, ipa: int) -> int:
        """The PA backing the protected ``ipa`` under the RSI page-access rules (§9):
        ASSIGNED_RAM → its PA; RIPAS EMPTY → :class:`EmptyPage`; unmapped RAM or anything
        DESTROYED → :class:`EmulatedAbort`."""
        w = s2tt.walk(self.pe, self.realm.geometry, ipa & ~0xFFF, 3)
        kind = w.kind
        if kind is Rtte.ASSIGNED_RAM:
            return s2tt.output_address(w.desc, w.level) | (ipa & (s2tt.level_size(w.level) - 1))
        if kind in (Rtte.TABLE, Rtte.ASSIGNED_NS, Rtte.UNASSIGNED_NS):
            raise EmptyPage()
        if s2tt.ripas_of(kind) == Ripas.EMPTY:
            raise EmptyPage()
        raise EmulatedAbort(ipa, w.level)

    def read(self, ipa: int, size: int) -> bytes:
        return self.pe.read(self.page(ipa), size, Pas.REALM)

    def write(self, ipa: int, data: bytes) -> None:
        self.pe.write(self.page(ipa), data, Pas.REALM)
