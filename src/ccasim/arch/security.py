"""Security states and physical address spaces (Arm ARM RME, DDI0615 §2; rme-hardware §1).

The numbering follows the PAS encoding QEMU uses and that makes GPI matching a mask test:
Secure = 0, Non-secure = 1, Root = 2, Realm = 3, so a GPI of the form ``0b10xx`` admits
exactly the PAS ``xx``.
"""

from __future__ import annotations

import enum


class SecurityState(enum.IntEnum):
    """The four security states of an RME PE, selected by SCR_EL3.{NSE,NS} below EL3."""

    SECURE = 0
    NON_SECURE = 1
    ROOT = 2
    REALM = 3

    @property
    def scr_nse_ns(self) -> tuple[int, int]:
        """SCR_EL3.{NSE, NS} for a lower EL in this state (Root is EL3 itself)."""
        return _SCR_BITS[self]

    @property
    def natural_pas(self) -> PhysicalAddressSpace:
        """The PAS an access of this state emits when no descriptor selects another one."""
        return PhysicalAddressSpace(int(self))


class PhysicalAddressSpace(enum.IntEnum):
    """The four physical address spaces (rme-hardware §1)."""

    SECURE = 0
    NON_SECURE = 1
    ROOT = 2
    REALM = 3


_SCR_BITS = {
    SecurityState.SECURE: (0, 0),
    SecurityState.NON_SECURE: (0, 1),
    SecurityState.REALM: (1, 1),
    SecurityState.ROOT: (0, 0),  # EL3: SCR bits do not select Root; EL3 is always Root
}

# Which PAS each security state can emit (rme-hardware §1 table).
_EMITTABLE: dict[SecurityState, frozenset[PhysicalAddressSpace]] = {
    SecurityState.ROOT: frozenset(PhysicalAddressSpace),
    SecurityState.REALM: frozenset({PhysicalAddressSpace.REALM, PhysicalAddressSpace.NON_SECURE}),
    SecurityState.SECURE: frozenset({PhysicalAddressSpace.SECURE, PhysicalAddressSpace.NON_SECURE}),
    SecurityState.NON_SECURE: frozenset({PhysicalAddressSpace.NON_SECURE}),
}


def may_emit(state: SecurityState, pas: PhysicalAddressSpace) -> bool:
    """True if software in ``state`` can issue an access to ``pas`` at all."""
    return pas in _EMITTABLE[state]


def emittable(state: SecurityState) -> frozenset[PhysicalAddressSpace]:
    """The set of PAS that ``state`` can emit."""
    return _EMITTABLE[state]


def state_from_scr(scr_el3: int, el: int) -> SecurityState:
    """Security state of a PE at exception level ``el`` given SCR_EL3 (NSE bit 62, NS bit 0)."""
    if el == 3:
        return SecurityState.ROOT
    nse = (scr_el3 >> 62) & 1
    ns = scr_el3 & 1
    if nse == 0:
        return SecurityState.NON_SECURE if ns else SecurityState.SECURE
    if ns:
        return SecurityState.REALM
    raise ValueError("SCR_EL3.{NSE,NS} = {1,0} is reserved below EL3")


SCR_NS = 1 << 0
SCR_GPF = 1 << 48
SCR_NSE = 1 << 62


def scr_for(state: SecurityState) -> int:
    """The SCR_EL3 world-select bits EL3 programs to run a lower EL in ``state``."""
    nse, ns = _SCR_BITS[state]
    return (SCR_NSE if nse else 0) | (SCR_NS if ns else 0)
