"""The EL3 monitor (Root world): cold boot, SMC dispatch, world switches.

Standing in for TF-A BL31. Every SMC from any world arrives in :meth:`Monitor.handle_smc`
(installed as the PEs' EL3 vector). The caller's security state is recovered the way BL31
does it, from SCR_EL3.{NSE,NS} and the EL in SPSR_EL3. Services are chosen by function-ID
range; an unknown FID returns SMC_UNKNOWN (-1) in x0 with x1..x7 untouched.

Each PE has a saved register context per lower world (Non-secure, Secure, Realm). A world
switch saves the live registers of the world being left, loads those of the world being
entered, programs SCR_EL3 and ERETs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..arch.memory import MemoryMap
from ..arch.pe import ProcessingElement
from ..arch.security import SecurityState, scr_for, state_from_scr
from ..config import PlatformConfig
from ..trace import Tracer, fid_name
from . import smccc
from .gpt_lib import GptLib

# A service returns the caller's result registers (x0, x1, ...) or None when it has already
# switched worlds and arranged the return itself.
Results = tuple[int, ...] | None
Handler = Callable[[ProcessingElement, SecurityState, int], Results]

SPSR_EL2H = (2 << 2) | 1
SPSR_EL1H = (1 << 2) | 1
SCR_BASE = (1 << 10) | (1 << 8)  # RW (lower ELs AArch64), HCE


_WORLD_BITS = (1 << 62) | 1  # SCR_EL3.{NSE, NS}
_CALLER_CACHE: dict[tuple[int, int], SecurityState] = {}
_SCR_OF: dict[SecurityState, int] = {
    s: SCR_BASE | scr_for(s) for s in SecurityState if s is not SecurityState.ROOT
}


class FirmwareError(RuntimeError):
    """An internal inconsistency of modelled firmware (a model bug, never a guest input)."""


@dataclass
class WorldContext:
    """The lower-EL register state EL3 keeps for one world on one PE."""

    x: list[int] = field(default_factory=lambda: [0] * 31)
    spsr: int = SPSR_EL2H


@dataclass
class Service:
    name: str
    matches: Callable[[int], bool]
    handler: Handler


class Monitor:
    """EL3 firmware for the whole platform (one instance, running on whichever PE trapped)."""

    def __init__(
        self, config: PlatformConfig, memory_map: MemoryMap, pes: list[ProcessingElement]
    ) -> None:
        self.config = config
        self.memory_map = memory_map
        self.pes = pes
        self.gpt = GptLib(config, memory_map)
        self.gpt.attach(pes[0].memory)
        self.contexts: dict[int, dict[SecurityState, WorldContext]] = {
            pe.index: {
                s: WorldContext()
                for s in (SecurityState.NON_SECURE, SecurityState.SECURE, SecurityState.REALM)
            }
            for pe in pes
        }
        self.services: list[Service] = []
        self.tracer: Tracer | None = None
        self._routes: dict[int, Service | None] = {}
        self.smc_count = 0
        for pe in pes:
            pe.smc_vector = self.handle_smc

    def register(self, name: str, matches: Callable[[int], bool], handler: Handler) -> None:
        self.services.append(Service(name, matches, handler))
        self._routes.clear()

    def route(self, fid: int) -> Service | None:
        """The service owning ``fid`` (first match in registration order), memoised."""
        routes = self._routes
        if fid in routes:
            return routes[fid]
        found = next((s for s in self.services if s.matches(fid)), None)
        if len(routes) < 65536:  # garbage FIDs must not grow the table without bound
            routes[fid] = found
        return found

    # ------------------------------------------------------------------ SMC entry
    def caller_state(self, pe: ProcessingElement) -> SecurityState:
        """The SMC caller's security state from SCR_EL3.{NSE,NS} and SPSR_EL3.M[3:2]."""
        key = (pe.sysregs["SCR_EL3"] & _WORLD_BITS, (pe.sysregs["SPSR_EL3"] >> 2) & 3)
        state = _CALLER_CACHE.get(key)
        if state is None:
            state = _CALLER_CACHE[key] = state_from_scr(*key)
        return state

    def handle_smc(self, pe: ProcessingElement) -> None:
        """The SMC exception vector: decode, dispatch, return (or switch worlds)."""
        self.smc_count += 1
        sysregs = pe.sysregs
        caller = _CALLER_CACHE.get(
            (sysregs["SCR_EL3"] & _WORLD_BITS, (sysregs["SPSR_EL3"] >> 2) & 3))
        if caller is None:
            caller = self.caller_state(pe)
        fid = pe.x[0] & 0xFFFE_FFFF  # w0, SVE hint (bit 16) cleared
        tracer = self.tracer
        if tracer is not None:
            begin, args = tracer.now(), [hex(v) for v in pe.x[1:6]]
        routes = self._routes
        service = routes[fid] if fid in routes else self.route(fid)
        if service is None:
            results: Results = (smccc.SMC_UNKNOWN,)
        else:
            results = service.handler(pe, caller, fid)
        if results is not None:
            self.return_to_caller(pe, results)
        if tracer is not None:
            tracer.span(fid_name(fid), "smc", pe.index, begin, {
                "caller": caller.name, "args": args, "x0": hex(pe.x[0]),
                "results": [hex(v) for v in pe.x[1:4]]})

    def return_to_caller(self, pe: ProcessingElement, results: tuple[int, ...]) -> None:
        x = pe.x
        for i, value in enumerate(results):
            x[i] = value & smccc.MASK64
        pe.eret()

    # ------------------------------------------------------------------ world switch
    def save_world(self, pe: ProcessingElement, state: SecurityState) -> None:
        ctx = self.contexts[pe.index][state]
        ctx.x = list(pe.x)
        ctx.spsr = pe.sysregs["SPSR_EL3"]

    def restore_world(self, pe: ProcessingElement, state: SecurityState) -> None:
        """Load ``state``'s saved context and program SCR_EL3 for it (still at EL3)."""
        if self.tracer is not None:
            self.tracer.instant(f"world switch -> {state.name}", "world", pe.index, {})
        ctx = self.contexts[pe.index][state]
        pe.x = list(ctx.x)
        pe.sysregs["SPSR_EL3"] = ctx.spsr
        pe.set_scr(_SCR_OF[state])

    def enter_lower(
        self, pe: ProcessingElement, state: SecurityState, el: int, regs: list[int] | None = None
    ) -> None:
        """Prepare an ERET into ``state`` at ``el`` with fresh x0..x7 = ``regs``."""
        ctx = self.contexts[pe.index][state]
        ctx.spsr = (el << 2) | 1
        if regs is not None:
            ctx.x = [r & smccc.MASK64 for r in regs] + ctx.x[len(regs) :]
        self.restore_world(pe, state)
        pe.eret()

    def exit_to_normal_world(self, pe: ProcessingElement) -> None:
        """End of cold boot on ``pe``: ERET to the Non-secure world at EL2 (BL33)."""
        self.enter_lower(pe, SecurityState.NON_SECURE, 2)
