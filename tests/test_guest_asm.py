"""The guest assembler: keystone wrapper, symbol addresses, error reporting, quirks."""

from __future__ import annotations

import struct

import pytest

from ccasim.guest.asm import GuestAssemblyError, Image, assemble

BASE = 0x8000_0000
NOP = bytes.fromhex("1f2003d5")


def test_symbols_entry_and_bytes() -> None:
    img = assemble("_start:\n    b foo\n    nop\nfoo: nop\n    .quad foo\n", BASE)
    assert img.base == BASE
    assert img.entry == BASE
    assert dict(img.symbols) == {"_start": BASE, "foo": BASE + 8}
    assert img.data[:4] == bytes.fromhex("02000014")  # b +8
    assert struct.unpack_from("<Q", img.data, 12)[0] == BASE + 8
    assert img.size == 20 and img.end == BASE + 20
    assert img.offset("foo") == 8


def test_entry_label_and_default_entry() -> None:
    assert assemble("nop\nmain: nop\n", BASE).entry == BASE
    assert assemble("nop\nmain: nop\n", BASE, entry="main").entry == BASE + 4
    with pytest.raises(GuestAssemblyError, match="entry label 'nope'"):
        assemble("nop\n", BASE, entry="nope")


def test_cache_returns_the_same_image() -> None:
    src = "x: nop\ny: nop\n"
    assert assemble(src, BASE) is assemble(src, BASE)
    assert assemble(src, BASE + 0x1000).symbols["y"] == BASE + 0x1004


def test_image_is_the_source_alone_even_with_a_literal_pool() -> None:
    img = assemble('ldr x0, =0x123456789\nldr x1, =msg\nret\nmsg: .asciz "hi"\n', BASE)
    # code (12) + "hi\0" (3) + pad to 8 (1) + two literals (16)
    assert img.size == 32
    assert struct.unpack_from("<QQ", img.data, 16) == (0x1_2345_6789, BASE + 12)
    assert img.symbols == {"msg": BASE + 12}


def test_alignment_is_absolute_for_unaligned_bases() -> None:
    img = assemble("start: nop\n.balign 2048\nvec: nop\n", BASE + 0x400)
    assert img.symbols["vec"] == BASE + 0x800
    assert img.size == 0x404


def test_trailing_comments_statements_and_strings() -> None:
    src = (
        "a: nop // trailing comment\n  // whole-line comment\n"
        's: .ascii "x // y; z: w"\nb: c: nop; nop\n'
    )
    img = assemble(src, BASE)
    assert img.symbols == {"a": BASE, "s": BASE + 4, "b": BASE + 16, "c": BASE + 16}
    assert img.data[4:16] == b"x // y; z: w"


def test_labels_inside_macros_are_not_symbols() -> None:
    src = ".macro m v\nlbl_\\v: mov x0, #\\v\n.endm\nm 5\nm 6\nafter: nop\n"
    img = assemble(src, BASE)
    assert dict(img.symbols) == {"after": BASE + 8}


def test_udf_becomes_a_word() -> None:
    assert assemble("udf #0\nudf #0x12\n", BASE).data == bytes.fromhex("0000000012000000")


def test_dot_text_is_ignored() -> None:  # keystone itself segfaults on ".text"
    assert assemble(".text\nnop\n", BASE).data == NOP


@pytest.mark.parametrize(
    ("source", "line_no", "message"),
    [
        ("nop\nnop\nbogus x0\nnop\n", 3, "Invalid mnemonic"),
        ("nop\nb nowhere\nnop\n", 2, "undefined symbol 'nowhere'"),
        ("nop\nmov x0, #0x123456789\nfoo: nop\n", 2, "cannot be encoded"),
        ("1: nop\nb 1b\n", 1, "numeric local labels"),
        ("a: nop\ncbz x0, 2f\n", 2, "numeric local label references"),
        ("adrp x0, foo\nfoo: nop\n", 1, "adrp"),
        ("adr x0, foo\nadd x0, x0, :lo12:foo\nfoo: nop\n", 2, ":lo12:"),
        ("nop\n.data\nnop\n", 2, "single section"),
        ("x: .section .foo\n", 1, "single section"),
        ("a: nop\na: nop\n", 2, "defined twice"),
        ("nop\nmov x0, #1 // caf\u00e9\n", 2, "non-ASCII"),
        ("udf #0x10000\n", 1, "not 16 bits"),
        # keystone calls exit(1) ("LLVM ERROR: fixup value out of range"): isolated
        ("tbz x0, #1, far\n.skip 0x10000\nfar: nop\n", 1, "fixup value out of range"),
        ("adr x0, far\n.skip 0x200000\nfar: nop\n", 1, "too far"),
        (".macro m a\nmov x0, #\\a\n.endm\nm 5\nbad x0\n", 5, "Invalid mnemonic"),
    ],
)
def test_errors_name_the_line(source: str, line_no: int, message: str) -> None:
    with pytest.raises(GuestAssemblyError, match=message) as info:
        assemble(source, BASE)
    assert info.value.line_no == line_no
    assert info.value.line == source.split("\n")[line_no - 1]
    assert f"line {line_no}:" in str(info.value)


def test_bad_base() -> None:
    with pytest.raises(GuestAssemblyError, match="4-byte-aligned"):
        assemble("nop", BASE + 2)


def test_image_helpers() -> None:
    img = assemble("a: nop\n.skip 0x1000\nb: nop\n", BASE)
    granules = list(img.granules())
    assert [ipa for ipa, _ in granules] == [BASE, BASE + 0x1000]
    assert all(len(chunk) == 0x1000 for _, chunk in granules)
    assert granules[1][1][:8] == bytes(4) + NOP and granules[1][1][8:] == bytes(0xFF8)
    assert img.read(BASE + 0x1004, 4) == NOP
    with pytest.raises(ValueError, match="outside the image"):
        img.read(BASE + 0x1004, 8)
    with pytest.raises(KeyError, match="similar: a"):
        img.symbol("A")
    with pytest.raises(ValueError, match="granule-aligned"):
        list(Image(base=BASE + 4, data=b"", entry=BASE + 4).granules())


def test_empty_source() -> None:
    img = assemble("", BASE)
    assert img.data == b"" and img.entry == BASE and dict(img.symbols) == {}
