"""``ccasim measure DESC.toml``: the offline RIM equals the RIM ``ccasim run`` builds; the
reference values it writes are accepted by ``ccasim verify`` for a token of that realm;
``--explain`` and ``--json``; usage errors exit 2 with one line and no traceback."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ccasim.cli.run as cli_run
from ccasim import Platform, SecurityState
from ccasim.attestation.rim import predict_rim
from ccasim.cli.main import app
from ccasim.guest import programs
from ccasim.guest.programs import GuestLayout
from ccasim.host.description import load_description
from ccasim.host.vmm import HostCall, RealmSpec, RealmVm, Vmm
from ccasim.rmm.objects import Realm

runner = CliRunner()
LAYOUT = GuestLayout()
RIM_LINE = re.compile(r"^RIM \((sha-256|sha-512)\): ([0-9a-f]+)$", re.MULTILINE)


def write_description(tmp_path: Path, *, algo: str = "sha256", image: bytes | None = None,
                      entry: int | None = None, name: str = "realm.toml",
                      extra: str = "") -> Path:
    """A realm description with the hello guest (or ``image``) as a raw binary."""
    data = programs.hello(LAYOUT).data if image is None else image
    (tmp_path / "guest.bin").write_bytes(data)
    boot = f"entry = {entry:#x}\n" if entry is not None else ""
    text = f"""\
[realm]
ipa_bits = {LAYOUT.s2sz}
hash_algorithm = "{algo}"
personalization = "cli measure test"

[[memory]]
base = {LAYOUT.ram_base:#x}
size = "2M"

[[memory]]                  # a second range, above a 1 GiB boundary, not 2 MiB aligned
base = 0xc0001000
size = "0x5000"

[[image]]
file = "guest.bin"
ipa = {LAYOUT.ram_base:#x}

[boot]
{boot}args = [0xc0001000, "4K"]
{extra}"""
    path = tmp_path / name
    path.write_text(text)
    return path


def _measure(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["measure", *args])
    return result.exit_code, result.stdout, result.stderr


def _printed_rim(out: str) -> tuple[str, bytes]:
    (match,) = RIM_LINE.findall(out)
    return match[0], bytes.fromhex(match[1])


def _rim_built_by_run(monkeypatch: pytest.MonkeyPatch, desc: Path) -> bytes:
    """Run ``ccasim run DESC`` in process and record the RIM of the realm it built."""
    rims: list[bytes] = []

    class RecordingVmm(Vmm):
        def create(
            self, spec: RealmSpec, progress: Callable[[int, int], None] | None = None
        ) -> RealmVm:
            vm = super().create(spec, progress)
            with self.platform.cpus[0].probe(SecurityState.REALM)._running() as pe:
                rims.append(Realm.load(pe, vm.handle.rd).rim)
            return vm

    monkeypatch.setattr(cli_run, "Vmm", RecordingVmm)
    result = runner.invoke(app, ["run", str(desc), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["reason"] == "system_off"
    assert summary["console"] == programs.HELLO_TEXT
    assert len(rims) == 1
    return rims[0]


# ------------------------------------------------------------------------------ RIM

@pytest.mark.parametrize(("algo", "name", "size"), [("sha256", "sha-256", 32),
                                                    ("sha512", "sha-512", 64)])
def test_measure_prints_the_rim_ccasim_run_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, algo: str, name: str, size: int
) -> None:
    desc = write_description(tmp_path, algo=algo)
    code, out, err = _measure(str(desc))
    assert code == 0, err
    printed_algo, rim = _printed_rim(out)  # one line, even for a 128-digit SHA-512 RIM
    assert printed_algo == name and len(rim) == size
    assert rim == _rim_built_by_run(monkeypatch, desc)
    assert rim == predict_rim(load_description(desc)).rim


def test_measure_entry_point_in_a_subprocess(tmp_path: Path) -> None:
    desc = write_description(tmp_path)
    exe = shutil.which("ccasim") or str(Path(sys.executable).with_name("ccasim"))
    proc = subprocess.run([exe, "measure", str(desc), "--json"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert bytes.fromhex(out["rim"]) == predict_rim(load_description(desc)).rim
    code, text, _ = _measure(str(desc))
    assert code == 0 and _printed_rim(text)[1].hex() == out["rim"]


def test_measure_json(tmp_path: Path) -> None:
    desc = write_description(tmp_path, algo="sha512")
    code, out, _ = _measure(str(desc), "--json")
    assert code == 0
    doc = json.loads(out)
    spec = load_description(desc)
    trace = predict_rim(spec)
    assert doc["rim"] == trace.rim.hex() and doc["hash_algorithm"] == "sha-512"
    assert doc["reference"]["realm"] == {"rim": trace.rim.hex(), "hash_algo": "sha-512",
                                         "rpv": b"cli measure test".ljust(64, b"\0").hex()}
    assert "steps" not in doc
    code, out, _ = _measure(str(desc), "--json", "--explain")
    steps = json.loads(out)["steps"]
    assert [s["step"] for s in steps] == [name for name, _ in trace.steps]
    assert steps[-1]["rim"] == doc["rim"]


def test_measure_explain_lists_every_step(tmp_path: Path) -> None:
    desc = write_description(tmp_path)
    code, out, _ = _measure(str(desc), "--explain")
    assert code == 0
    trace = predict_rim(load_description(desc))
    lines = [line for line in out.splitlines() if line.strip()]
    step_lines, last = lines[:-1], lines[-1]
    assert len(step_lines) == len(trace.steps)
    for line, (name, rim) in zip(step_lines, trace.steps, strict=True):
        assert line == f"{rim.hex()}  {name}"
    kinds = [name.split()[0] for name, _ in trace.steps]
    assert kinds[0] == "REALM_CREATE" and kinds[-1] == "REC_CREATE"
    assert "RTT_INIT_RIPAS" in kinds and "DATA_CREATE" in kinds
    # The second RAM range (5 pages at 0xc0001000) is measured page by page.
    assert sum("RTT_INIT_RIPAS [0xc000" in name for name, _ in trace.steps) == 5
    assert _printed_rim(last)[1] == trace.rim


# ------------------------------------------------------------------------------ reference

SHARED_IPA = LAYOUT.unprotected_base + 0x1000_0000


def _token_for(desc: Path, challenge: bytes) -> tuple[bytes, str]:
    """Run the realm of ``desc`` (the demo guest) with a shared window, as `ccasim run`
    would build it; return the token it hands over and the platform's CPAK (PEM)."""
    spec = replace(load_description(desc), shared=((SHARED_IPA, 0x2000),))  # not measured
    p = Platform()
    token: dict[str, bytes] = {}
    state: dict[str, Any] = {}

    def host_call(call: HostCall) -> list[int] | None:
        if call.imm == programs.CHALLENGE_HOST_CALL_IMM:
            return [int.from_bytes(challenge[i : i + 8], "little") for i in range(0, 64, 8)]
        if call.imm == programs.TOKEN_HOST_CALL_IMM:
            ipa, length, status = call.gprs[:3]
            assert status == 0
            token["bytes"] = vmm.read_shared(state["vm"], ipa, length)
        return None

    vmm = Vmm(p, host_call=host_call)
    state["vm"] = vmm.create(spec)
    result = vmm.run(state["vm"], max_exits=20_000, timeout_s=20)
    vmm.destroy(state["vm"])
    assert result.reason == "system_off" and "bytes" in token
    return token["bytes"], p.el3.cpak_public_pem()


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_reference_out_is_accepted_by_verify(tmp_path: Path, algo: str) -> None:
    image = programs.demo(LAYOUT, SHARED_IPA)
    desc = write_description(tmp_path, algo=algo, image=image.data, entry=image.entry)
    ref = tmp_path / "reference.json"
    code, out, err = _measure(str(desc), "--reference-out", str(ref))
    assert code == 0, err
    assert "reference values written to" in out
    token, cpak_pem = _token_for(desc, bytes(range(64)))
    (tmp_path / "token.cbor").write_bytes(token)
    (tmp_path / "cpak.pem").write_text(cpak_pem)
    verify = runner.invoke(app, ["verify", str(tmp_path / "token.cbor"), "--cpak",
                                 str(tmp_path / "cpak.pem"), "--reference", str(ref),
                                 "--json"])
    assert verify.exit_code == 0, verify.stdout
    assert json.loads(verify.stdout)["ccasim.status"] == "affirming"

    # Reference values of another realm (the hello guest) do not match this token.
    other = tmp_path / "other"
    other.mkdir()
    other_ref = tmp_path / "other.json"
    assert _measure(str(write_description(other, algo=algo)), "--reference-out",
                    str(other_ref))[0] == 0
    mismatch = runner.invoke(app, ["verify", str(tmp_path / "token.cbor"), "--cpak",
                                   str(tmp_path / "cpak.pem"), "--reference", str(other_ref)])
    assert mismatch.exit_code == 1


# ------------------------------------------------------------------------------ errors

BAD_DESCRIPTIONS = {
    "bad_toml": ("[realm\nipa_bits = 40\n", "realm.toml"),
    "bad_toml_value": ("[realm]\nipa_bits = \n", "realm.toml"),
    "image_outside_ram": (
        '[[memory]]\nbase = 0x80000000\nsize = "2M"\n'
        '[[image]]\nfile = "guest.bin"\nipa = 0x801ff000\n', "not inside any memory range"),
    "image_in_no_ram": (
        '[[memory]]\nbase = 0x80000000\nsize = "2M"\n'
        '[[image]]\nfile = "guest.bin"\nipa = 0x90000000\n', "not inside any memory range"),
    "size_garbage": ('[[memory]]\nbase = 0x80000000\nsize = "12Q"\n', "is not a size"),
    "size_negative": ('[[memory]]\nbase = 0x80000000\nsize = "-2M"\n', "is not a size"),
    "size_infinite": ('[[memory]]\nbase = 0x80000000\nsize = "infM"\n', "is not a size"),
    "size_overflow": ('[[memory]]\nbase = 0x80000000\nsize = "1e400M"\n', "is not a size"),
    "size_fraction": ('[[memory]]\nbase = 0x80000000\nsize = "0.3K"\n', "is not a size"),
    "size_bool": ("[[memory]]\nbase = 0x80000000\nsize = true\n", "is not a size"),
    "size_unaligned": ('[[memory]]\nbase = 0x80000000\nsize = "1000"\n', "4 KiB granules"),
    "entry_negative": ('[boot]\nentry = "-4"\n', "boot.entry"),
    "entry_too_big": ('[boot]\nentry = "0x1_0000_0000_0000_0000"\n', "boot.entry"),
    "ram_beyond_par": ('[[memory]]\nbase = "512G"\nsize = "2M"\n', "protected IPA space"),
    "memory_not_tables": ("memory = [1, 2]\n", "memory[0] must be a table"),
    "memory_string": ('memory = "2M"\n', "([[memory]])"),
    "realm_not_a_table": ("realm = 5\n", "realm must be a table"),
    "image_not_tables": ("image = [3]\n", "image[0] must be a table"),
    "image_file_not_a_string": ("[[image]]\nfile = 5\nipa = 0x80000000\n", "needs a file"),
    "image_missing_file": ('[[image]]\nfile = "nope.bin"\nipa = 0x80000000\n', "nope.bin"),
    "image_measured_not_bool": (
        '[[image]]\nfile = "guest.bin"\nipa = 0x80000000\nmeasured = "no"\n', "measured"),
    "boot_not_a_table": ("boot = 3\n", "boot must be a table"),
    "boot_args_not_a_list": ("[boot]\nentry = 0x80000000\nargs = 5\n", "boot.args"),
    "too_many_args": ("[boot]\nentry = 0x80000000\nargs = [0, 0, 0, 0, 0, 0, 0, 0, 0]\n",
                      "at most 8"),
    "no_entry": ("[realm]\nipa_bits = 40\n", "no entry point"),
    "ipa_bits": ("[realm]\nipa_bits = 52\n", "ipa_bits"),
    "hash": ('[realm]\nhash_algorithm = "md5"\n[boot]\nentry = 0\n', "hash_algorithm"),
    "rpv_too_long": (f'[realm]\npersonalization = "{"x" * 65}"\n[boot]\nentry = 0\n',
                     "personalization"),
    "vcpus_bool": ("[realm]\nvcpus = true\n[boot]\nentry = 0\n", "vcpus"),
}


def _assert_usage_error(result: Any, expected: str) -> None:
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0], lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("case", sorted(BAD_DESCRIPTIONS))
@pytest.mark.parametrize("command", ["measure", "run"])
def test_bad_description_exits_2_with_one_line(tmp_path: Path, case: str, command: str) -> None:
    body, expected = BAD_DESCRIPTIONS[case]
    (tmp_path / "guest.bin").write_bytes(programs.hello(LAYOUT).data)
    desc = tmp_path / "realm.toml"
    desc.write_text(body)
    _assert_usage_error(runner.invoke(app, [command, str(desc)]), expected)


@pytest.mark.parametrize("command", ["measure", "run"])
def test_missing_or_unreadable_description(tmp_path: Path, command: str) -> None:
    deep = tmp_path / ("a-long-directory-name-" * 4) / "missing.toml"
    _assert_usage_error(runner.invoke(app, [command, str(deep)]), "no such file")
    _assert_usage_error(runner.invoke(app, [command, str(tmp_path)]), str(tmp_path))
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    _assert_usage_error(runner.invoke(app, [command, str(binary)]), "UTF-8")


def test_reference_out_unwritable(tmp_path: Path) -> None:
    desc = write_description(tmp_path)
    result = runner.invoke(app, ["measure", str(desc), "--reference-out",
                                 str(tmp_path / "no-such-dir" / "ref.json")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert len(result.stderr.splitlines()) == 1 and "cannot write" in result.stderr
    assert "Traceback" not in result.output
