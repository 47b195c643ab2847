"""AArch64 assembly for realm guests, with keystone-engine.

:func:`assemble` turns GNU-style AArch64 assembly into an :class:`Image` placed at an IPA:
the bytes, the entry address and the address of every label.

Keystone has no symbol-table API, so the label addresses are read back from the machine
code itself: the source is assembled once with ``.ltorg`` (flush the literal pool) followed
by a marker word and one ``.quad <label>`` per top-level label; the image is everything
before the marker and the table after it gives the absolute addresses. Appending at the end
cannot move anything before it, so the image is exactly what the source alone assembles to.

Keystone can take the whole process down: some mistakes end in ``LLVM ERROR: fixup value
out of range`` (``exit(1)``), ``.text`` segfaults, and a few errors are only printed on
stderr while the call "succeeds" with no output. On POSIX each assembly therefore runs in a
forked child (a few milliseconds; results are cached per ``(source, base, entry)``) and any
such failure becomes a :class:`GuestAssemblyError`. When an assembly fails, the offending
line is found by assembling growing prefixes of the source (unknown symbols resolved to a
dummy address, so forward references do not count as errors) — keystone's own statement
count is 0 for most errors.

Rules enforced before keystone sees the source (each gives a :class:`GuestAssemblyError`
that names the line and says what to write instead):

* numeric local labels (``1:`` / ``b 1b``) are not supported — use named labels
  (``.L`` names are fine);
* ``udf #imm`` is not a keystone mnemonic; it is rewritten to ``.word imm``;
* ``adrp`` is mis-encoded and ``:lo12:`` aborts keystone — use ``adr`` (±1 MiB) or
  ``ldr xN, =label``;
* one section only: ``.text`` is ignored, ``.data``/``.bss``/``.section``… are rejected;
* a trailing ``// comment`` after a statement is stripped (keystone rejects it).

Alignment directives (``.balign``/``.align``/``.p2align``) are relative to the start of
the image; the image is assembled as if it started at ``base`` rounded down to 4 KiB, so
alignments up to 4 KiB are absolute for any ``base``. Keystone silently mis-encodes a
``b.cond``/``cbz``/``ldr``-literal whose target is exactly 1 MiB away; keep images small.
"""

from __future__ import annotations

import functools
import os
import pickle
import re
import signal
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import IO

GRANULE = 0x1000
_ANCHOR = 0x1000  # the image is assembled from base rounded down to this
_MAGIC = 0x4B53_5359_4D54_4142  # b"BATMYSSK": marks the start of the symbol table


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Image:
    """Machine code placed at an IPA.

    ``symbols`` maps every top-level label of the source to its absolute address.
    ``entry`` is the address execution starts at: the ``entry`` label given to
    :func:`assemble`, else ``_start`` if the source defines it, else ``base``.
    """

    base: int
    data: bytes
    entry: int
    symbols: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def end(self) -> int:
        """First address after the image."""
        return self.base + len(self.data)

    def symbol(self, name: str) -> int:
        """Address of label ``name``; a KeyError lists similar labels."""
        try:
            return self.symbols[name]
        except KeyError:
            near = [s for s in self.symbols if name.lower() in s.lower()][:8]
            hint = f"; similar: {', '.join(near)}" if near else ""
            raise KeyError(f"no label {name!r} in the image{hint}") from None

    def offset(self, name: str) -> int:
        """Offset of label ``name`` from the start of the image."""
        return self.symbol(name) - self.base

    def read(self, address: int, size: int) -> bytes:
        """Bytes of the image at ``address`` (as loaded, i.e. before the guest runs)."""
        start = address - self.base
        if start < 0 or start + size > len(self.data):
            raise ValueError(
                f"[{address:#x}, +{size:#x}) is outside the image [{self.base:#x}, {self.end:#x})"
            )
        return self.data[start : start + size]

    def granules(self) -> Iterator[tuple[int, bytes]]:
        """The image as (IPA, 4 KiB of content) pairs, the last one zero-padded — what a
        VMM hands to RMI_DATA_CREATE. ``base`` must be granule-aligned."""
        if self.base % GRANULE:
            raise ValueError(f"image base {self.base:#x} is not granule-aligned")
        for off in range(0, len(self.data), GRANULE):
            chunk = self.data[off : off + GRANULE]
            yield self.base + off, chunk.ljust(GRANULE, b"\0")


class GuestAssemblyError(Exception):
    """The source could not be assembled. ``line_no`` is 1-based in the source given to
    :func:`assemble` (None when the failure could not be tied to a line)."""

    def __init__(self, message: str, *, line_no: int | None = None, line: str | None = None):
        self.message = message
        self.line_no = line_no
        self.line = line
        where = f"line {line_no}: {line.strip()!r}: " if line_no is not None and line else ""
        super().__init__(f"{where}{message}")


# ----------------------------------------------------------------------------- API


def assemble(source: str, base: int, *, entry: str | None = None) -> Image:
    """Assemble ``source`` for an image starting at IPA ``base``.

    Results are cached on ``(source, base, entry)``; an :class:`Image` is immutable.
    Raises :class:`GuestAssemblyError` with the offending line on any failure.
    """
    return _assemble_cached(source, base, entry)


def assemble_cache_clear() -> None:
    _assemble_cached.cache_clear()


@functools.lru_cache(maxsize=256)
def _assemble_cached(source: str, base: int, entry: str | None) -> Image:
    if base < 0 or base % 4 or base >= 1 << 64:
        raise GuestAssemblyError(f"image base {base:#x} must be a 4-byte-aligned 64-bit address")
    prep = _prepare(source)
    pad = base % _ANCHOR
    origin = base - pad
    head = f".skip {pad}\n" if pad else ""
    body = "\n".join(prep.lines)
    table = "\n.ltorg\n" + f".quad {_MAGIC:#x}\n" + "".join(f".quad {n}\n" for n in prep.labels)
    out = _keystone(head + body + table, origin, resolve_unknown=False)
    if out.data is None:
        raise _diagnose(source, prep, head, origin, out.error)
    data = out.data
    tail = 8 * (1 + len(prep.labels))
    if len(data) < pad + tail or struct.unpack_from("<Q", data, len(data) - tail)[0] != _MAGIC:
        raise GuestAssemblyError("internal: symbol table not found after the image")
    values = struct.unpack_from(f"<{len(prep.labels)}Q", data, len(data) - tail + 8)
    symbols = dict(zip(prep.labels, values, strict=True))
    if entry is not None:
        if entry not in symbols:
            raise GuestAssemblyError(f"entry label {entry!r} is not defined")
        entry_address = symbols[entry]
    else:
        entry_address = symbols.get("_start", base)
    return Image(
        base=base,
        data=bytes(data[pad : len(data) - tail]),
        entry=entry_address,
        symbols=MappingProxyType(symbols),
    )


# ----------------------------------------------------------------------------- source rules

_LABEL_RE = re.compile(r"\s*([A-Za-z_.$][A-Za-z0-9_.$]*)\s*:(?!:)")
_NUMERIC_LABEL_RE = re.compile(r"\s*\d+\s*:")
_NUMERIC_REF_RE = re.compile(r"(?<![\w#.$])\d+[bfBF]\b")
_BLOCK_OPEN = {".macro", ".rept", ".irp", ".irpc"}
_BLOCK_CLOSE = {".endm", ".endr"}
_REJECTED_DIRECTIVES = {
    ".data",
    ".bss",
    ".section",
    ".pushsection",
    ".popsection",
    ".previous",
    ".subsection",
    ".rodata",
    ".include",
    ".incbin",
}


@dataclass
class _Prepared:
    lines: list[str]  # one per source line, rewritten
    labels: list[str]  # top-level labels, in order of definition
    cuts: list[int]  # k such that lines[:k] ends outside any .macro/.rept block


def _split_comment(line: str) -> tuple[str, str]:
    """(code, trailing ``//`` comment) — ``//`` inside a string literal is code."""
    in_str = False
    i = 0
    while i < len(line):
        c = line[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "/" and line.startswith("//", i):
            return line[:i], line[i:]
        i += 1
    return line, ""


def _split_statements(code: str) -> list[str]:
    """Split on ``;`` outside string literals."""
    parts: list[str] = []
    in_str = False
    start = 0
    i = 0
    while i < len(code):
        c = code[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == ";":
            parts.append(code[start:i])
            start = i + 1
        i += 1
    parts.append(code[start:])
    return parts


def _rewrite_statement(stmt: str, labels: list[str] | None, fail: Callable[[str], None]) -> str:
    """Check one statement; record its labels (when at top level); return its new text."""
    rest = stmt
    if _NUMERIC_LABEL_RE.match(rest):
        fail("numeric local labels ('1:', 'b 1b') are not supported by keystone; use a name")
    while m := _LABEL_RE.match(rest):
        if labels is not None:
            labels.append(m.group(1))
        rest = rest[m.end() :]
    words = rest.split(None, 1)
    if not words:
        return stmt
    op = words[0].lower()
    operands = words[1] if len(words) > 1 else ""
    prefix = stmt[: len(stmt) - len(rest)]
    if op == ".text":
        return prefix
    if op in _REJECTED_DIRECTIVES:
        fail(f"{op} is not supported: the image is a single section")
    if op == "adrp":
        fail("adrp is mis-encoded by keystone; use 'adr' (±1 MiB) or 'ldr xN, =label'")
    if not op.startswith(".") and (":lo12:" in operands.lower() or ":got" in operands.lower()):
        fail("relocation operators (:lo12:, :got:) abort keystone; use 'adr' or 'ldr xN, =label'")
    if not op.startswith(".") and _NUMERIC_REF_RE.search(operands):
        fail("numeric local label references ('1b', '2f') are not supported; use a name")
    if op == "udf":
        imm = operands.strip().lstrip("#").strip()
        try:
            value = int(imm, 0)
        except ValueError:
            fail(f"udf needs a literal immediate, got {imm!r}")
            value = 0
        if not 0 <= value <= 0xFFFF:
            fail(f"udf immediate {value:#x} is not 16 bits")
        return f"{prefix}.word {value:#x}"
    return stmt


def _prepare(source: str) -> _Prepared:
    lines: list[str] = []
    labels: list[str] = []
    cuts: list[int] = []
    depth = 0
    seen: set[str] = set()
    for number, raw in enumerate(source.split("\n"), start=1):

        def fail(message: str, number: int = number, raw: str = raw) -> None:
            raise GuestAssemblyError(message, line_no=number, line=raw)

        if not raw.isascii():
            bad = next(c for c in raw if not c.isascii())
            fail(f"non-ASCII character {bad!r}; keystone reads ASCII only")
        code, _comment = _split_comment(raw.rstrip("\r"))
        if code.lstrip().startswith("#"):
            lines.append(code)
        else:
            new: list[str] = []
            for stmt in _split_statements(code):
                op = stmt.split(None, 1)[0].lower() if stmt.strip() else ""
                line_labels: list[str] | None = [] if depth == 0 else None
                new.append(_rewrite_statement(stmt, line_labels, fail))
                for name in line_labels or []:
                    if name in seen:
                        fail(f"label {name!r} is defined twice")
                    seen.add(name)
                    labels.append(name)
                if op in _BLOCK_OPEN:
                    depth += 1
                elif op in _BLOCK_CLOSE:
                    depth = max(0, depth - 1)
            lines.append(";".join(new))
        if depth == 0:
            cuts.append(number)
    return _Prepared(lines=lines, labels=labels, cuts=cuts)


# ----------------------------------------------------------------------------- diagnosis


def _diagnose(
    source: str, prep: _Prepared, head: str, origin: int, error: str
) -> GuestAssemblyError:
    src_lines = source.split("\n")
    body = "\n".join(prep.lines)
    full = _keystone(head + body, origin, resolve_unknown=True)
    if full.data is not None:
        if full.unresolved:
            name = full.unresolved[0]
            user = _first_use(src_lines, name)
            if user is not None:
                return GuestAssemblyError(
                    f"undefined symbol {name!r}", line_no=user, line=src_lines[user - 1]
                )
            return GuestAssemblyError(f"undefined symbol {name!r}")
        return GuestAssemblyError(f"label addresses could not be resolved: {error}")
    # The smallest complete prefix that fails holds the bad line.
    lo, hi = 0, len(prep.cuts) - 1
    found: tuple[int, str] | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        k = prep.cuts[mid]
        out = _keystone(head + "\n".join(prep.lines[:k]), origin, resolve_unknown=True)
        if out.data is None:
            found = (k, out.error)
            hi = mid - 1
        else:
            lo = mid + 1
    if found is None:
        return GuestAssemblyError(error)
    k, message = found
    if "out of range" in message:
        # The prefix fails once the far label is defined; blame the line that uses it.
        for name in _line_labels(src_lines[k - 1]):
            user = _first_use(src_lines, name)
            if user is not None:
                k = user
                break
    return GuestAssemblyError(_explain(message), line_no=k, line=src_lines[k - 1])


def _first_use(src_lines: list[str], name: str) -> int | None:
    pattern = re.compile(rf"(?<![\w.$]){re.escape(name)}(?![\w.$])")
    for number, line in enumerate(src_lines, start=1):
        code, _ = _split_comment(line)
        if pattern.search(code) and name not in _line_labels(code):
            return number
    return None


def _line_labels(code: str) -> list[str]:
    names: list[str] = []
    for stmt in _split_statements(code):
        rest = stmt
        while m := _LABEL_RE.match(rest):
            names.append(m.group(1))
            rest = rest[m.end() :]
    return names


def _explain(message: str) -> str:
    if "fixup value out of range" in message:
        return (
            f"{message} (a PC-relative reference — adr, ldr literal, b.cond, cbz, tbz — "
            "is too far from its target)"
        )
    if message.startswith("Unknown error"):
        return (
            f"{message} (keystone says no more; usually an operand that cannot be encoded, "
            "e.g. an immediate out of range: use 'ldr xN, =value' or movz/movk)"
        )
    return message


# ----------------------------------------------------------------------------- keystone


@dataclass(frozen=True)
class _KsOutcome:
    data: bytes | None  # None on failure
    error: str = ""
    unresolved: tuple[str, ...] = ()


def _ks_run(source: str, origin: int, resolve_unknown: bool) -> _KsOutcome:
    """Run keystone in this process (may never return: see the module docstring)."""
    from keystone import (  # type: ignore[import-untyped, unused-ignore]
        KS_ARCH_ARM64,
        KS_MODE_LITTLE_ENDIAN,
        Ks,
        KsError,
    )

    ks = Ks(KS_ARCH_ARM64, KS_MODE_LITTLE_ENDIAN)
    unresolved: list[str] = []
    if resolve_unknown:

        def resolver(name: bytes, value: list[int]) -> bool:
            unresolved.append(name.decode("ascii", "replace"))
            value[0] = origin
            return True

        ks.sym_resolver = resolver
    try:
        encoding, _count = ks.asm(source.encode("ascii"), origin, as_bytes=True)
    except KsError as exc:
        return _KsOutcome(None, str(exc), tuple(unresolved))
    return _KsOutcome(bytes(encoding or b""), "", tuple(unresolved))


def _keystone(source: str, origin: int, *, resolve_unknown: bool) -> _KsOutcome:
    if not hasattr(os, "fork"):
        return _ks_run(source, origin, resolve_unknown)
    with tempfile.TemporaryFile() as err:
        rfd, wfd = os.pipe()
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork() with threads alive (e.g. the execution
            # watchdog); the child only runs keystone and os.write, then os._exit.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # child: never returns
            status = 0
            try:
                os.close(rfd)
                os.dup2(err.fileno(), 2)
                outcome = _ks_run(source, origin, resolve_unknown)
                if outcome.data is not None:
                    diag = _read_all(err)
                    if "error:" in diag:
                        outcome = _KsOutcome(None, _first_error(diag), outcome.unresolved)
                payload = pickle.dumps(outcome)
                view = memoryview(payload)
                while view:
                    view = view[os.write(wfd, view) :]
            except BaseException:
                status = 1
            finally:
                os._exit(status)
        os.close(wfd)
        chunks: list[bytes] = []
        with os.fdopen(rfd, "rb") as reader:
            while chunk := reader.read(1 << 16):
                chunks.append(chunk)
        _, wait_status = os.waitpid(pid, 0)
        payload = b"".join(chunks)
        if payload:
            outcome = pickle.loads(payload)
            assert isinstance(outcome, _KsOutcome)
            return outcome
        diag = _read_all(err)
        if os.WIFSIGNALED(wait_status):
            sig = os.WTERMSIG(wait_status)
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = str(sig)
            why = f"keystone crashed ({name})"
        else:
            why = f"keystone aborted (exit status {os.WEXITSTATUS(wait_status)})"
        text = _first_error(diag) if diag.strip() else ""
        return _KsOutcome(None, f"{text} — {why}" if text else why)


def _read_all(f: IO[bytes]) -> str:
    fileno = f.fileno()
    os.lseek(fileno, 0, os.SEEK_SET)
    chunks: list[bytes] = []
    while chunk := os.read(fileno, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _first_error(diag: str) -> str:
    for line in diag.splitlines():
        s = line.strip()
        if s.startswith(("error:", "LLVM ERROR:")) or "error:" in s:
            return s
    return diag.strip().splitlines()[0] if diag.strip() else "keystone reported an error"
