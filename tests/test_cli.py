"""The ``ccasim`` command line: demo, run, map, info and every error path.

Commands run in-process through typer's CliRunner; a few run as real subprocesses of the
installed ``ccasim`` entry point, and usage errors go through ``ccasim.cli.main.main`` (the
entry point), which turns them into one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ccasim import Platform, SecurityState
from ccasim.cli.main import app, main
from ccasim.guest import programs
from ccasim.host.rmi import RmiClient
from ccasim.mapview import KINDS, MapView, gpi_name, memory_map_view, render_svg

runner = CliRunner()
ENTRY_POINT = Path(sys.executable).with_name("ccasim")
DEMO_STEPS = ["boot", "build", "run", "attest", "map", "isolation", "teardown"]


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def assert_clean_error(code: int, out: str, err: str) -> str:
    """Non-zero exit, exactly one line of output, an ``error:`` line, no traceback."""
    text = out + err
    assert code not in (0, None), text
    assert "Traceback" not in text and "╭" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error:"), text
    return lines[0]


def check_trace(path: Path) -> set[str]:
    """Validate a Chrome trace-event file; returns the categories it holds."""
    doc = json.loads(path.read_text())
    events = doc["traceEvents"]
    assert isinstance(events, list) and events
    named: set[tuple[int, int]] = set()
    used: set[tuple[int, int]] = set()
    stacks: dict[tuple[int, int], list[str]] = defaultdict(list)
    for e in events:
        assert e["ph"] in {"X", "B", "E", "i", "I", "M", "C"}, e
        key = (e["pid"], e["tid"])
        if e["ph"] == "M":
            if e["name"] == "thread_name":
                assert e["args"]["name"], e
                named.add(key)
            continue
        used.add(key)
        assert isinstance(e["ts"], int | float) and e["ts"] >= 0, e
        if e["ph"] == "X":
            assert isinstance(e["dur"], int | float) and e["dur"] >= 0, e
    for e in sorted((e for e in events if e["ph"] in "BE"), key=lambda e: e["ts"]):
        key = (e["pid"], e["tid"])
        if e["ph"] == "B":
            stacks[key].append(e["name"])
        else:
            assert stacks[key], f"E without B: {e}"
            begun = stacks[key].pop()
            assert e.get("name", begun) == begun, e
    assert not any(stacks.values()), "B events without E"
    assert used <= named, f"threads without a name: {used - named}"
    return {e.get("cat", "") for e in events}


# ------------------------------------------------------------------------------- demo


def test_demo_every_step_passes() -> None:
    code, out, _ = invoke("demo")
    assert code == 0, out
    for name in DEMO_STEPS:
        (line,) = [ln for ln in out.splitlines() if ln.split()[1:2] == [name]]
        assert line.split()[0] == "✓", line
    assert "✗" not in out
    assert "realm> Hello from inside the realm" in out
    assert "map> ns_dram" in out
    assert "all steps passed" in out


def test_demo_json() -> None:
    code, out, _ = invoke("demo", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True
    assert [s["name"] for s in data["steps"]] == DEMO_STEPS
    assert all(s["ok"] for s in data["steps"])
    (map_step,) = [s for s in data["steps"] if s["name"] == "map"]
    granules = map_step["granules"]
    assert (granules["rd"], granules["rec"], granules["rec_aux"]) == (1, 1, 16)
    assert granules["rtt"] >= 2 and granules["data"] >= 1


def test_demo_trace(tmp_path: Path) -> None:
    trace = tmp_path / "demo.json"
    code, out, _ = invoke("demo", "--trace", str(trace))
    assert code == 0, out
    categories = check_trace(trace)
    assert {"smc", "rec", "gpt", "world", "fault"} <= categories


def test_demo_subprocess() -> None:
    if not ENTRY_POINT.exists():
        pytest.skip("the ccasim entry point is not installed next to this interpreter")
    done = subprocess.run([str(ENTRY_POINT), "demo", "--json"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------------- run


@pytest.fixture(scope="module")
def realm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with hello.bin (the hello program) and realm.toml describing it."""
    root = tmp_path_factory.mktemp("realm")
    layout = programs.GuestLayout()
    image = programs.hello(layout)
    (root / "hello.bin").write_bytes(image.data)
    (root / "realm.toml").write_text(f"""\
[realm]
personalization = "cli test"

[[memory]]
base = {layout.ram_base:#x}
size = "2M"

[[image]]
file = "hello.bin"
ipa = {image.base:#x}
""")
    return root


def test_run(realm_dir: Path) -> None:
    code, out, err = invoke("run", str(realm_dir / "realm.toml"))
    assert code == 0, out + err
    assert out == programs.HELLO_TEXT
    assert "system_off" in err


def test_run_json(realm_dir: Path) -> None:
    code, out, _ = invoke("run", str(realm_dir / "realm.toml"), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["reason"] == "system_off" and data["error"] is None
    assert data["console"] == programs.HELLO_TEXT
    assert data["exits"]["PSCI"] == 1


def test_run_trace(realm_dir: Path, tmp_path: Path) -> None:
    trace = tmp_path / "run.json"
    code, _, _ = invoke("run", str(realm_dir / "realm.toml"), "--trace", str(trace))
    assert code == 0
    assert {"smc", "rec", "gpt", "world"} <= check_trace(trace)


def test_run_subprocess(realm_dir: Path) -> None:
    if not ENTRY_POINT.exists():
        pytest.skip("the ccasim entry point is not installed next to this interpreter")
    done = subprocess.run([str(ENTRY_POINT), "run", "realm.toml"], cwd=realm_dir,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == programs.HELLO_TEXT


# ------------------------------------------------------------------------------- map


def test_map_booted_platform() -> None:
    code, out, _ = invoke("map")
    assert code == 0, out
    for name in ("secure_dram", "uart0", "root", "rmm", "ns_dram", "Owners"):
        assert name in out
    assert "No realms" in out


def test_map_demo_svg(tmp_path: Path) -> None:
    svg = tmp_path / "x.svg"
    code, out, _ = invoke("map", "--demo", "--out", str(svg))
    assert code == 0, out
    assert "realm 1 (VMID 1)" in out and "└ detail" in out
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "realm 1 (VMID 1)" in texts and "ns_dram" in texts


def test_map_json() -> None:
    code, out, _ = invoke("map", "--demo", "--json")
    assert code == 0
    data = json.loads(out)
    (realm,) = data["realms"]
    counts = {k: len(v) for k, v in realm["granules"].items()}
    assert counts.keys() == {"rd", "rec", "rec_aux", "rtt", "data"}
    assert (counts["rd"], counts["rec"], counts["rec_aux"]) == (1, 1, 16)
    assert len(realm["shared"]) == 2  # the demo's token window
    assert data["problems"] == []


def test_map_png_or_one_line_error(tmp_path: Path) -> None:
    png = tmp_path / "x.png"
    code, _, err = invoke("map", "--out", str(png))
    if code == 0:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        line = assert_clean_error(code, "", err)
        assert "PNG" in line and ".svg" in line


def _region_checks(view: MapView) -> None:
    """Spans tile every region, and agree with the GPT summary's per-GPI counts."""
    for region in view.regions:
        pos = region.base
        by_gpi: dict[str, int] = defaultdict(int)
        for span in region.spans:
            assert span.base == pos and span.size > 0
            assert span.kind in KINDS
            pos = span.end
            by_gpi[gpi_name(span.gpi)] += span.granules
        assert pos == region.end
        assert dict(by_gpi) == region.gpi_counts, region.name


def test_map_view_tracks_every_granule_owner() -> None:
    """Library view: a realm built through the RMI, a delegated unused granule and NS
    granules moved to Secure at run time each appear with their owner and GPI."""
    p = Platform()
    from ccasim.cli.demo import build_demo_realm

    demo = build_demo_realm(p, challenge=bytes(64))
    client = RmiClient(p, pool_offset=0x4000_0000)
    spare = client.new_delegated()
    secure = p.region("ns_dram").base + 0x6000_0000
    assert p.cpus[0].probe(SecurityState.SECURE).smc(0xC400_0402, secure, 2, 0b1000)[0] == 0
    view = memory_map_view(p)
    _region_checks(view)
    assert view.problems == []
    (realm,) = view.realms
    assert realm.rd == demo.vm.handle.rd and realm.state == "ACTIVE"
    kinds = realm.by_kind()
    assert {g.pa for g in kinds["data"]} == set(demo.vm.handle.data.values())
    assert {g.ipa for g in kinds["data"]} == set(demo.vm.handle.data)
    assert {g.pa for g in kinds["rtt"]} >= set(demo.vm.handle.rtts.values())
    assert {g.pa for g in kinds["rec"]} == set(demo.vm.recs)
    assert {g.pa for g in realm.shared} == set(demo.vm.shared_pages.values())
    assert view.delegated == [spare]
    spans = {(s.base, s.kind) for s in view.region("ns_dram").spans}
    assert (spare, "delegated") in spans and (secure, "secure_rt") in spans
    handle = demo.vm.handle
    expected = (1 + len(handle.recs) * 17 + handle.num_start + len(handle.rtts)
                + len(handle.data))
    owners = {o: n for o, n, _, _ in view.owners()}
    assert owners["realm 1 (VMID 1)"] == len(realm.granules) == expected
    svg = render_svg(view)
    ET.fromstring(svg)


# ------------------------------------------------------------------------------- info


def test_info() -> None:
    code, out, _ = invoke("info")
    assert code == 0
    assert "Physical memory map" in out and "ns_dram" in out


def test_info_json() -> None:
    code, out, _ = invoke("info", "--dram", "1T", "--json")
    assert code == 0
    data = json.loads(out)
    (ns,) = [r for r in data["regions"] if r["name"] == "ns_dram"]
    assert ns["size"] == 1 << 40 and data["rmm_boot_status"] == 0


# ------------------------------------------------------------------------------- errors


def _toml(tmp_path: Path, text: str, image: bool = True) -> str:
    if image:
        (tmp_path / "hello.bin").write_bytes(programs.hello(programs.GuestLayout()).data)
    path = tmp_path / "realm.toml"
    path.write_text(text)
    return str(path)


_IMAGE = '[[image]]\nfile = "hello.bin"\nipa = 0x80000000\n'
BAD_DESCRIPTIONS = {
    "not TOML": "[[[ this is not toml",
    "image file missing": '[[image]]\nfile = "missing.bin"\nipa = 0x80000000\n',
    "size not a size": '[[memory]]\nbase = 0x80000000\nsize = "huge"\n' + _IMAGE,
    "size zero": "[[memory]]\nbase = 0x80000000\nsize = 0\n" + _IMAGE,
    "base unaligned": '[[memory]]\nbase = 0x80000800\nsize = "2M"\n' + _IMAGE,
    "memory beyond the IPA space": '[realm]\nipa_bits = 33\n[[memory]]\nbase = 0x80000000\n'
                                   'size = "4G"\n' + _IMAGE,
    "image outside memory": '[[memory]]\nbase = 0x80000000\nsize = "2M"\n[[image]]\n'
                            'file = "hello.bin"\nipa = 0x90000000\n',
    "memory not a table array": "memory = 5\n" + _IMAGE,
    "realm not a table": "realm = 3\n" + _IMAGE,
    "no entry point": '[[memory]]\nbase = 0x80000000\nsize = "2M"\n',
}


@pytest.mark.parametrize("command", ["run", "measure"])
@pytest.mark.parametrize("case", sorted(BAD_DESCRIPTIONS))
def test_bad_description(tmp_path: Path, command: str, case: str) -> None:
    path = _toml(tmp_path, BAD_DESCRIPTIONS[case])
    assert_clean_error(*invoke(command, path))


def test_realm_not_a_table_keeps_brackets(tmp_path: Path) -> None:
    line = assert_clean_error(*invoke("run", _toml(tmp_path, "realm = 3\n" + _IMAGE)))
    assert "realm" in line


@pytest.mark.parametrize("command", ["run", "measure"])
def test_description_missing(tmp_path: Path, command: str) -> None:
    line = assert_clean_error(*invoke(command, str(tmp_path / "nope.toml")))
    assert "nope.toml" in line


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, b"\x89PNG\r\n\x1a\n\0\0\xff"])
def test_description_garbage(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.toml"
    path.write_bytes(content)
    assert_clean_error(*invoke("run", str(path)))


def test_description_is_a_directory(tmp_path: Path) -> None:
    assert_clean_error(*invoke("run", str(tmp_path)))


@pytest.mark.parametrize("command", ["info", "map"])
@pytest.mark.parametrize("dram", ["nonsense", "1K", "-5G", "3M"])
def test_bad_dram(command: str, dram: str) -> None:
    assert_clean_error(*invoke(command, "--dram", dram))


def test_map_bad_out_suffix(tmp_path: Path) -> None:
    line = assert_clean_error(*invoke("map", "--out", str(tmp_path / "x.txt")))
    assert ".svg" in line


def test_map_unwritable_out(tmp_path: Path) -> None:
    assert_clean_error(*invoke("map", "--out", str(tmp_path / "no" / "such" / "x.svg")))


def test_verify_missing_token(tmp_path: Path) -> None:
    assert_clean_error(*invoke("verify", str(tmp_path / "token.cbor")))


def _entry(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["ccasim", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    code = exit_info.value.code
    return code if isinstance(code, int) else 1, captured.out, captured.err


USAGE_ERRORS = {
    "unknown command": (["frobnicate"], "No such command"),
    "unknown option": (["demo", "--frobnicate"], "No such option"),
    "missing argument": (["run"], "Missing argument"),
    "bad integer": (["info", "--cpus", "many"], "--cpus"),
    "unknown option of map": (["map", "--png"], "No such option"),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_errors(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                      case: str) -> None:
    args, words = USAGE_ERRORS[case]
    code, out, err = _entry(monkeypatch, capsys, *args)
    assert code == 2
    line = assert_clean_error(code, out, err)
    assert words in line and "--help" in line


def test_usage_error_subprocess() -> None:
    if not ENTRY_POINT.exists():
        pytest.skip("the ccasim entry point is not installed next to this interpreter")
    done = subprocess.run([str(ENTRY_POINT), "frobnicate"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    line = assert_clean_error(done.returncode, done.stdout, done.stderr)
    assert "frobnicate" in line


def test_entry_point_success(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _entry(monkeypatch, capsys, "info", "--json")
    assert code == 0 and json.loads(out)["cpus"] == 4
