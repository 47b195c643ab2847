"""Realm descriptions in TOML (``ccasim run REALM.toml``, ``ccasim measure REALM.toml``).

```toml
[realm]
ipa_bits = 40                 # s2sz
hash_algorithm = "sha256"     # or "sha512"
personalization = "my realm"  # RPV: text (UTF-8) or "0x..." hex, at most 64 bytes
vcpus = 1
uart_ipa = 0x801c090000       # optional; default: unprotected base + 0x1C09_0000

[[memory]]                    # protected RAM (RIPAS RAM), any number of ranges
base = 0x80000000
size = "2M"

[[image]]                     # raw binary at `ipa`, or an ELF (its PT_LOAD segments)
file = "guest.bin"
ipa = 0x80000000
measured = true

[boot]
entry = 0x80000000            # default: the ELF entry, else the first image's IPA
args = [0x80100000]           # x0..x7 of the boot vCPU
```
Paths are relative to the TOML file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .elf import ElfError, is_elf, parse_elf
from .vmm import RealmSpec, Segment

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class DescriptionError(ValueError):
    """A realm description that cannot be loaded; the message names the problem."""


def parse_size(value: Any, what: str) -> int:
    """A 64-bit unsigned value: an int, or a string such as ``"0x8000_0000"``, ``"2M"``,
    ``"1.5GiB"`` (binary unit suffixes; the result must be a whole number)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64:
        return value
    if isinstance(value, str):
        text = value.strip().upper().removesuffix("B").removesuffix("I")
        try:
            if text and text[-1] in UNITS:
                scaled = float(text[:-1]) * UNITS[text[-1]]
                result = int(scaled) if scaled.is_integer() else -1
            else:
                result = int(text, 0)
        except (ValueError, OverflowError):
            result = -1
        if 0 <= result < 1 << 64:
            return result
    raise DescriptionError(f"{what}: {value!r} is not a size")


def _table(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DescriptionError(f"{what} must be a table")
    return value


def _tables(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise DescriptionError(f"{what} must be an array of tables ([[{what}]])")
    return [_table(item, f"{what}[{i}]") for i, item in enumerate(value)]


def parse_rpv(value: Any) -> bytes:
    if not isinstance(value, str):
        raise DescriptionError("realm.personalization must be a string")
    if value.startswith("0x"):
        try:
            data = bytes.fromhex(value[2:])
        except ValueError:
            raise DescriptionError("realm.personalization: bad hex") from None
    else:
        data = value.encode()
    if len(data) > 64:
        raise DescriptionError("realm.personalization is longer than 64 bytes")
    return data.ljust(64, b"\0")


def load_description(path: str | Path) -> RealmSpec:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DescriptionError(f"{path}: no such file") from None
    except OSError as err:
        raise DescriptionError(f"{path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise DescriptionError(f"{path}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as err:
        raise DescriptionError(f"{path}: {err}") from None
    return spec_from_dict(doc, path.parent)


def spec_from_dict(doc: dict[str, Any], base_dir: Path) -> RealmSpec:
    realm = _table(doc.get("realm", {}), "realm")
    s2sz = realm.get("ipa_bits", 40)
    if isinstance(s2sz, bool) or not isinstance(s2sz, int) or not 32 <= s2sz <= 48:
        raise DescriptionError("realm.ipa_bits must be an integer in 32..48")
    memory = _tables(doc.get("memory", [{"base": 0x8000_0000, "size": 0x20_0000}]), "memory")
    ram = []
    for i, m in enumerate(memory):
        base = parse_size(m.get("base"), f"memory[{i}].base")
        size = parse_size(m.get("size"), f"memory[{i}].size")
        if base % 4096 or size % 4096 or size == 0:
            raise DescriptionError(f"memory[{i}] must be whole, non-empty 4 KiB granules")
        if base + size > 1 << (s2sz - 1):
            raise DescriptionError(f"memory[{i}] is not inside the protected IPA space")
        ram.append((base, size))
    segments: list[Segment] = []
    entry: int | None = None
    for i, img in enumerate(_tables(doc.get("image", []), "image")):
        if not isinstance(img.get("file"), str):
            raise DescriptionError(f"image[{i}] needs a file (a path string)")
        file = base_dir / img["file"]
        try:
            data = file.read_bytes()
        except OSError as err:
            raise DescriptionError(f"image[{i}]: {file}: {err.strerror}") from None
        measured = img.get("measured", True)
        if not isinstance(measured, bool):
            raise DescriptionError(f"image[{i}].measured must be true or false")
        if is_elf(data):
            try:
                elf = parse_elf(data)
            except ElfError as err:
                raise DescriptionError(f"image[{i}]: {file}: {err}") from None
            segments += [Segment(s.address, s.data, measured) for s in elf.segments]
            entry = entry if entry is not None else elf.entry
        else:
            if "ipa" not in img:
                raise DescriptionError(f"image[{i}]: a raw binary needs an ipa")
            ipa = parse_size(img["ipa"], f"image[{i}].ipa")
            segments.append(Segment(ipa, data, measured))
            entry = entry if entry is not None else ipa
    for seg in segments:
        if not any(b <= seg.ipa and seg.ipa + len(seg.data) <= b + s for b, s in ram):
            raise DescriptionError(f"image data at {seg.ipa:#x} is not inside any memory range")
    boot = _table(doc.get("boot", {}), "boot")
    if "entry" in boot:
        entry = parse_size(boot["entry"], "boot.entry")
    if entry is None:
        raise DescriptionError("no entry point: give boot.entry or an image")
    raw_args = boot.get("args", [])
    if not isinstance(raw_args, list):
        raise DescriptionError("boot.args must be an array")
    args = tuple(parse_size(a, f"boot.args[{i}]") for i, a in enumerate(raw_args))
    if len(args) > 8:
        raise DescriptionError("boot.args holds at most 8 values (x0..x7)")
    vcpus = realm.get("vcpus", 1)
    if isinstance(vcpus, bool) or not isinstance(vcpus, int) or not 1 <= vcpus <= 64:
        raise DescriptionError("realm.vcpus must be an integer in 1..64")
    algo = realm.get("hash_algorithm", "sha256")
    if str(algo).lower() not in ("sha256", "sha-256", "sha512", "sha-512"):
        raise DescriptionError("realm.hash_algorithm must be sha256 or sha512")
    uart = realm.get("uart_ipa")
    return RealmSpec(
        segments=tuple(segments),
        entry=entry,
        ram=tuple(ram),
        s2sz=s2sz,
        hash_algorithm=str(algo),
        rpv=parse_rpv(realm.get("personalization", "")),
        vcpus=vcpus,
        boot_args=args,
        uart_ipa=parse_size(uart, "realm.uart_ipa") if uart is not None else None,
    )
