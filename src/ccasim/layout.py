"""Declarative little-endian structure layouts.

A structure is declared once as (field, offset, width) and packed/unpacked from that
declaration; no code elsewhere uses raw offsets. Widths are in bytes; integer fields are
1, 2, 4 or 8 bytes wide, wider fields are raw bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    width: int
    raw: bool = False  # bytes rather than an integer

    @property
    def end(self) -> int:
        return self.offset + self.width


class Layout:
    """An ordered set of non-overlapping fields inside a structure of ``size`` bytes."""

    def __init__(self, name: str, size: int, fields: list[Field]) -> None:
        ordered = sorted(fields, key=lambda f: f.offset)
        for a, b in itertools.pairwise(ordered):
            if a.end > b.offset:
                raise ValueError(f"{name}: fields {a.name} and {b.name} overlap")
        if ordered and ordered[-1].end > size:
            raise ValueError(f"{name}: field {ordered[-1].name} exceeds the structure")
        for f in ordered:
            if not f.raw and f.width not in (1, 2, 4, 8):
                raise ValueError(f"{name}.{f.name}: integer fields are 1, 2, 4 or 8 bytes")
        self.name = name
        self.size = size
        self.fields = {f.name: f for f in ordered}

    def __getitem__(self, name: str) -> Field:
        return self.fields[name]

    def offset(self, name: str) -> int:
        return self.fields[name].offset

    def unpack(self, data: bytes) -> dict[str, int | bytes]:
        if len(data) < self.size:
            raise ValueError(f"{self.name}: need {self.size} bytes, got {len(data)}")
        out: dict[str, int | bytes] = {}
        for f in self.fields.values():
            chunk = data[f.offset : f.end]
            out[f.name] = bytes(chunk) if f.raw else int.from_bytes(chunk, "little")
        return out

    def unpack_int(self, data: bytes, name: str) -> int:
        f = self.fields[name]
        return int.from_bytes(data[f.offset : f.end], "little")

    def pack(self, values: Mapping[str, int | bytes]) -> bytes:
        buf = bytearray(self.size)
        for name, value in values.items():
            f = self.fields[name]
            if isinstance(value, bytes | bytearray):
                if len(value) > f.width:
                    raise ValueError(f"{self.name}.{name}: {len(value)} bytes > {f.width}")
                buf[f.offset : f.offset + len(value)] = value
            else:
                buf[f.offset : f.end] = (value & ((1 << (8 * f.width)) - 1)).to_bytes(
                    f.width, "little"
                )
        return bytes(buf)
