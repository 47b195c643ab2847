"""Declarative little-endian structure layouts.

A structure is declared once as (field, offset, width) and packed/unpacked from that
declaration; no code elsewhere uses raw offsets. Widths are in bytes; integer fields are
1, 2, 4 or 8 bytes wide, wider fields are raw bytes.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar


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
    """An ordered set of non-overlapping fields inside a structure of ``size`` bytes.

    The declaration is compiled once into a :class:`struct.Struct`, so packing and
    unpacking a structure is a single C call.
    """

    _CODES: ClassVar[dict[int, str]] = {1: "B", 2: "H", 4: "I", 8: "Q"}

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
        fmt = "<"
        pos = 0
        for f in ordered:
            if f.offset > pos:
                fmt += f"{f.offset - pos}x"
            fmt += f"{f.width}s" if f.raw else self._CODES[f.width]
            pos = f.end
        if size > pos:
            fmt += f"{size - pos}x"
        self._struct = struct.Struct(fmt)
        self._names = [f.name for f in ordered]
        self._defaults: dict[str, int | bytes] = {f.name: (b"" if f.raw else 0) for f in ordered}
        self._masks = {f.name: (1 << (8 * f.width)) - 1 for f in ordered if not f.raw}
        self._field_structs = {
            f.name: struct.Struct("<" + self._CODES[f.width]) for f in ordered if not f.raw
        }

    def __getitem__(self, name: str) -> Field:
        return self.fields[name]

    def offset(self, name: str) -> int:
        return self.fields[name].offset

    def unpack(self, data: bytes) -> dict[str, int | bytes]:
        if len(data) < self.size:
            raise ValueError(f"{self.name}: need {self.size} bytes, got {len(data)}")
        return dict(zip(self._names, self._struct.unpack_from(data), strict=True))

    def unpack_tuple(self, data: bytes) -> tuple[int | bytes, ...]:
        """Field values in declaration (offset) order: one C call, for hot paths."""
        return self._struct.unpack_from(data)

    def unpack_int(self, data: bytes, name: str) -> int:
        f = self.fields[name]
        return int.from_bytes(data[f.offset : f.end], "little")

    def pack(self, values: Mapping[str, int | bytes]) -> bytes:
        """The structure with the given fields set and every other byte zero."""
        buf = bytearray(self.size)
        fields = self.fields
        for name, value in values.items():
            f = fields.get(name)
            if f is None:
                raise KeyError(f"{self.name} has no field {name}")
            if isinstance(value, bytes | bytearray):
                if len(value) > f.width:
                    raise ValueError(f"{self.name}.{name}: {len(value)} bytes > {f.width}")
                buf[f.offset : f.offset + len(value)] = value
            else:
                self._field_structs[name].pack_into(buf, f.offset, value & self._masks[name])
        return bytes(buf)

    def pack_values(self, *values: int | bytes) -> bytes:
        """Pack values given in declaration (offset) order, without checks; for hot paths
        whose callers already hold in-range values."""
        return self._struct.pack(*values)
