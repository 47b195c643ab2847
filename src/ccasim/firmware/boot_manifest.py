"""The RMM-EL3 boot manifest, v0.3 (rmm-abi §12.3), written by EL3 into the shared buffer.

Layout at the base of the 4 KB shared buffer::

    0   version (u32; (major << 16) | minor)     4  padding
    8   plat_data (pointer, 0: none)
    16  plat_dram    {num_banks, banks*, checksum}
    40  plat_console {num_consoles, consoles*, checksum}

followed here by the bank array ({base, size} per bank) and the console array. Checksums
make ``num + pointer + checksum + Σ(all u64 words of the entries)`` zero modulo 2^64.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..layout import Field, Layout

MANIFEST_VERSION = (0 << 16) | 3

MANIFEST = Layout(
    "RmmBootManifest",
    64,
    [
        Field("version", 0, 4),
        Field("padding", 4, 4),
        Field("plat_data", 8, 8),
        Field("num_banks", 16, 8),
        Field("banks", 24, 8),
        Field("banks_checksum", 32, 8),
        Field("num_consoles", 40, 8),
        Field("consoles", 48, 8),
        Field("consoles_checksum", 56, 8),
    ],
)
BANK = Layout("NsDramBank", 16, [Field("base", 0, 8), Field("size", 8, 8)])
CONSOLE = Layout(
    "ConsoleInfo",
    40,
    [
        Field("base", 0, 8),
        Field("map_pages", 8, 8),
        Field("name", 16, 8, raw=True),
        Field("clk_in_hz", 24, 8),
        Field("baud_rate", 32, 8),
    ],
)

MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class Console:
    base: int
    name: str = "pl011"
    map_pages: int = 1
    clk_in_hz: int = 24_000_000
    baud_rate: int = 115_200


def checksum(count: int, pointer: int, words: list[int]) -> int:
    """The value that makes count + pointer + checksum + Σwords ≡ 0 (mod 2^64)."""
    return (-(count + pointer + sum(words))) & MASK64


def words_of(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)]


def build(buffer_pa: int, banks: list[tuple[int, int]], consoles: list[Console]) -> bytes:
    """The manifest image for a shared buffer at ``buffer_pa`` (pointers are PAs)."""
    banks_pa = buffer_pa + MANIFEST.size
    bank_bytes = b"".join(BANK.pack({"base": b, "size": s}) for b, s in banks)
    consoles_pa = banks_pa + len(bank_bytes)
    console_bytes = b"".join(
        CONSOLE.pack(
            {
                "base": c.base,
                "map_pages": c.map_pages,
                "name": c.name.encode()[:8],
                "clk_in_hz": c.clk_in_hz,
                "baud_rate": c.baud_rate,
            }
        )
        for c in consoles
    )
    header = MANIFEST.pack(
        {
            "version": MANIFEST_VERSION,
            "plat_data": 0,
            "num_banks": len(banks),
            "banks": banks_pa,
            "banks_checksum": checksum(len(banks), banks_pa, words_of(bank_bytes)),
            "num_consoles": len(consoles),
            "consoles": consoles_pa,
            "consoles_checksum": checksum(len(consoles), consoles_pa, words_of(console_bytes)),
        }
    )
    image = header + bank_bytes + console_bytes
    if len(image) > 4096:
        raise ValueError("boot manifest does not fit in the shared buffer")
    return image
