"""The virtual address a faulting A64 load/store accessed (for FAR).

Unicorn's TLB-fill hook reports only the page of a faulting access, so the model computes
the architectural FAR from the instruction and the registers, as the hardware would report
it: the address of the access (Arm ARM C6, load/store addressing modes).
"""

from __future__ import annotations

from collections.abc import Callable

MASK64 = (1 << 64) - 1


def _sext(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _extend(value: int, option: int) -> int:
    """ExtendReg: UXTB/H/W/X, SXTB/H/W/X by ``option``."""
    size = 8 << (option & 3)
    value &= (1 << size) - 1 if size < 64 else MASK64
    if option & 4 and size < 64:
        value = _sext(value, size)
    return value & MASK64


def effective_address(insn: int, reg: Callable[[int], int], sp: int, pc: int) -> int | None:
    """The address accessed by the load/store ``insn`` (None if not a load/store form this
    function knows). ``reg(n)`` reads Xn for n in 0..30; base register 31 is SP."""

    def base() -> int:
        n = (insn >> 5) & 0x1F
        return sp if n == 31 else reg(n)

    op0 = (insn >> 25) & 0xF
    if op0 & 0b0101 != 0b0100:  # not in the loads-and-stores encoding group
        return None
    # Load register (literal): xx01 1x00
    if insn & 0x3B00_0000 == 0x1800_0000:
        return (pc + (_sext(insn >> 5, 19) << 2)) & MASK64
    # Load/store exclusive and ordered, compare-and-swap: xx00 1000
    if insn & 0x3F00_0000 == 0x0800_0000:
        return base()
    # Load/store pair (all indexing modes): xx10 1xxx
    if insn & 0x3A00_0000 == 0x2800_0000:
        opc = (insn >> 30) & 3
        vector = bool(insn & (1 << 26))
        scale = (2 + opc) if vector else (2 + (opc >> 1))
        mode = (insn >> 23) & 3  # 1 post-index, 2 signed offset, 3 pre-index, 0 no-allocate
        offset = _sext(insn >> 15, 7) << scale
        return base() if mode == 1 else (base() + offset) & MASK64
    # Load/store register (unsigned immediate): xx11 1x01
    if insn & 0x3B00_0000 == 0x3900_0000:
        size = (insn >> 30) & 3
        if insn & (1 << 26) and (insn >> 23) & 1:  # 128-bit SIMD&FP
            size = 4
        return (base() + (((insn >> 10) & 0xFFF) << size)) & MASK64
    # Load/store register with 9-bit immediate / register offset / atomics: xx11 1x00
    if insn & 0x3B00_0000 == 0x3800_0000:
        if insn & (1 << 21):
            if (insn >> 10) & 3 == 0b10:  # register offset
                size = (insn >> 30) & 3
                if insn & (1 << 26) and (insn >> 23) & 1:
                    size = 4
                option = (insn >> 13) & 7
                shift = size if insn & (1 << 12) else 0
                m = (insn >> 16) & 0x1F
                rm = 0 if m == 31 else reg(m)
                return (base() + (_extend(rm, option) << shift)) & MASK64
            return base()  # atomic memory operations, pointer-authenticated loads
        mode = (insn >> 10) & 3  # 0 unscaled, 1 post-index, 2 unprivileged, 3 pre-index
        offset = _sext(insn >> 12, 9)
        return base() if mode == 1 else (base() + offset) & MASK64
    # SIMD structures (LD1/ST1 ...): xx00 110x
    if insn & 0xBE00_0000 == 0x0C00_0000:
        return base()
    return None
