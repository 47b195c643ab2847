"""Minimal ELF64 (AArch64, little-endian) loading: PT_LOAD segments and the entry point."""

from __future__ import annotations

import struct
from dataclasses import dataclass

PT_LOAD = 1
EM_AARCH64 = 183


class ElfError(ValueError):
    pass


@dataclass(frozen=True)
class LoadSegment:
    address: int  # physical address (p_paddr): the IPA a VMM loads it at
    data: bytes  # file contents followed by zeros up to p_memsz


@dataclass(frozen=True)
class ElfImage:
    entry: int
    segments: tuple[LoadSegment, ...]


def is_elf(data: bytes) -> bool:
    return data[:4] == b"\x7fELF"


def parse_elf(data: bytes) -> ElfImage:
    if not is_elf(data):
        raise ElfError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ElfError("only little-endian ELF64 images are supported")
    try:
        (
            _e_type,
            e_machine,
            _v,
            e_entry,
            e_phoff,
            _shoff,
            _flags,
            _ehsize,
            e_phentsize,
            e_phnum,
        ) = struct.unpack_from("<HHIQQQIHHH", data, 16)
    except struct.error:
        raise ElfError("truncated ELF header") from None
    if e_machine != EM_AARCH64:
        raise ElfError(f"ELF machine {e_machine} is not AArch64")
    segments = []
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        try:
            p_type, _pflags, p_offset, _vaddr, p_paddr, p_filesz, p_memsz, _align = (
                struct.unpack_from("<IIQQQQQQ", data, off)
            )
        except struct.error:
            raise ElfError("truncated program header table") from None
        if p_type != PT_LOAD or p_memsz == 0:
            continue
        if p_offset + p_filesz > len(data) or p_filesz > p_memsz:
            raise ElfError(f"segment {i} lies outside the file")
        body = data[p_offset : p_offset + p_filesz] + bytes(p_memsz - p_filesz)
        segments.append(LoadSegment(p_paddr, body))
    if not segments:
        raise ElfError("no PT_LOAD segments")
    return ElfImage(e_entry, tuple(segments))
