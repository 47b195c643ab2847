"""An Arm PrimeCell PL011 UART (DDI0183), enough for console output and polled input."""

from __future__ import annotations

from collections.abc import Callable

UARTDR = 0x000
UARTRSR = 0x004
UARTFR = 0x018
UARTIBRD = 0x024
UARTFBRD = 0x028
UARTLCR_H = 0x02C
UARTCR = 0x030
UARTIFLS = 0x034
UARTIMSC = 0x038
UARTRIS = 0x03C
UARTMIS = 0x040
UARTICR = 0x044

FR_RXFE = 1 << 4
FR_TXFF = 1 << 5
FR_TXFE = 1 << 7

# UARTPeriphID0..3 and UARTPCellID0..3 at 0xFE0..0xFFC (PL011 r1p5).
_ID_REGS = {
    0xFE0: 0x11,
    0xFE4: 0x10,
    0xFE8: 0x34,
    0xFEC: 0x00,
    0xFF0: 0x0D,
    0xFF4: 0xF0,
    0xFF8: 0x05,
    0xFFC: 0xB1,
}


class Pl011:
    """Transmitted bytes collect in :attr:`output` and go to ``sink`` if one is given;
    bytes queued with :meth:`feed` are returned by reads of UARTDR."""

    def __init__(self, sink: Callable[[bytes], None] | None = None) -> None:
        self.output = bytearray()
        self.sink = sink
        self._rx = bytearray()
        self._regs: dict[int, int] = {
            UARTCR: 0x300,
            UARTLCR_H: 0,
            UARTIMSC: 0,
            UARTIBRD: 0,
            UARTFBRD: 0,
            UARTIFLS: 0x12,
        }

    def feed(self, data: bytes) -> None:
        self._rx.extend(data)

    def mmio_read(self, offset: int, size: int) -> int:
        if offset == UARTDR:
            if self._rx:
                return self._rx.pop(0)
            return 0
        if offset == UARTFR:
            return FR_TXFE | (0 if self._rx else FR_RXFE)
        if offset in _ID_REGS:
            return _ID_REGS[offset]
        if offset in (UARTRIS, UARTMIS, UARTRSR):
            return 0
        return self._regs.get(offset, 0)

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if offset == UARTDR:
            byte = bytes([value & 0xFF])
            self.output += byte
            if self.sink is not None:
                self.sink(byte)
            return
        if offset in self._regs:
            self._regs[offset] = value & 0xFFFF
