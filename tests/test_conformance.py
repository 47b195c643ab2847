"""Conformance coverage (``ccasim.conformance``, ``ccasim conformance``): the condition
registry, the recorder, the pytest plugin that fails a whole-suite run with untested
conditions, the report — and tests for conditions nothing else triggers."""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ccasim import Platform, PlatformConfig
from ccasim.cli.main import app
from ccasim.conformance import (
    RMI_MODULES,
    RSI_MODULES,
    UNREACHABLE,
    Recorder,
    all_conditions,
    build_report,
    commands,
    rsi_conditions,
)
from ccasim.host.rmi import RmiClient
from ccasim.rmm.errors import CONDITION_LISTENERS, Conditions
from ccasim.rmm.rmi import RMI_TABLE
from ccasim.rmm.rsi import RSI_TABLE
from realm_rig import (
    ERROR_INPUT,
    PSCI,
    PSCI_CPU_ON,
    RSI_ERROR_INPUT,
    RSI_SUCCESS,
    RSI_TOKEN_CONTINUE,
    RSI_TOKEN_INIT,
    Rig,
    call,
    dump,
    load_imm,
)

runner = CliRunner()
TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def rig() -> Rig:
    return Rig()


# ---------------------------------------------------------------------------------------
# the registry
def test_every_command_is_listed_with_its_conditions() -> None:
    names = commands()
    assert {n for i, n in names if i == "RMI"} == {c.name for c in RMI_TABLE.values()}
    assert {n for i, n in names if i == "RSI"} == {c.name for c in RSI_TABLE.values()}
    conditions = all_conditions()
    keys = [c.key for c in conditions]
    assert len(keys) == len(set(keys))
    for c in conditions:
        assert (c.interface, c.command) in names, c  # a table for a command that exists
        assert c.status.startswith("ERROR_"), c
        assert c.description
    # every Conditions table of the RMI command modules is collected
    tables = [v for m in RMI_MODULES for v in vars(m).values() if isinstance(v, Conditions)]
    assert {t.command for t in tables} == {c.command for c in conditions
                                           if c.interface == "RMI"}
    for key, reason in UNREACHABLE.items():
        assert key in keys and reason


def test_rsi_tables_declare_exactly_the_raised_conditions() -> None:
    """Each RSI module's RSI_CONDITIONS lists exactly the (status, label) pairs its code
    raises, so the table cannot drift from the handlers."""
    declared_all = {(c.command, c.label) for c in rsi_conditions()}
    for module in RSI_MODULES:
        tree = ast.parse(inspect.getsource(module))
        raised = set()
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "RsiError"):
                status, label = node.args[0], node.args[1]
                assert isinstance(status, ast.Attribute) and isinstance(label, ast.Constant)
                raised.add((status.attr, label.value))
        declared = {(c.status.name, c.label) for c in module.RSI_CONDITIONS}
        assert declared == raised, module.__name__
    commands_with_rsi = {c for c, _ in declared_all}
    assert commands_with_rsi <= {c.name for c in RSI_TABLE.values()}


# ---------------------------------------------------------------------------------------
# recording
def test_recorder_attributes_failures_to_the_current_test() -> None:
    p = Platform(PlatformConfig(cpus=1))
    client = RmiClient(p)
    recorder = Recorder()
    recorder.start()
    try:
        recorder.current = "t::one"
        assert client.call("GRANULE_DELEGATE", 0x8000_0001).status == ERROR_INPUT
        recorder.current = "t::two"
        assert client.call("GRANULE_DELEGATE", 0x8000_0001).status == ERROR_INPUT
        assert client.call("VERSION", 0x1_0000).ok  # success: nothing recorded
    finally:
        recorder.stop()
    assert client.call("GRANULE_UNDELEGATE", 0x8000_0001).status == ERROR_INPUT
    assert recorder._on_condition not in CONDITION_LISTENERS
    assert recorder.hits == {("RMI", "RMI_GRANULE_DELEGATE", "gran_align"): {"t::one",
                                                                              "t::two"}}


def _recording(tmp_path: Path, hits: dict[tuple[str, str, str], list[str]],
               complete: bool = True) -> Path:
    out = tmp_path / "rec.json"
    out.write_text(json.dumps({"complete": complete, "hits": [
        {"interface": i, "command": c, "label": lab, "tests": t}
        for (i, c, lab), t in hits.items()]}))
    return out


def test_report_of_a_full_recording_is_ok(tmp_path: Path) -> None:
    hits = {c.key: ["tests/t.py::x"] for c in all_conditions() if not c.unreachable}
    result = runner.invoke(app, ["conformance", str(_recording(tmp_path, hits)), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] and data["missing"] == [] and data["complete"]
    assert data["tested"] == len(hits)
    assert {(u["command"], u["label"]) for u in data["unreachable"]} == {
        (c, lab) for _i, c, lab in UNREACHABLE}
    listed = {(c["interface"], c["command"]) for c in data["commands"]}
    assert listed == set(commands())
    features = next(c for c in data["commands"] if c["command"] == "RMI_FEATURES")
    assert features["conditions"] == []  # a command with no failure condition is shown


def test_report_shows_the_gaps(tmp_path: Path) -> None:
    conditions = [c for c in all_conditions() if not c.unreachable]
    hits = {c.key: ["tests/t.py::x"] for c in conditions[1:]}
    hits[("RSI", "RSI_VERSION", "made_up")] = ["tests/t.py::y"]
    path = _recording(tmp_path, hits, complete=False)
    result = runner.invoke(app, ["conformance", str(path), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    first = conditions[0]
    assert data["missing"] == [{"interface": first.interface, "command": first.command,
                                "label": first.label}]
    assert data["undeclared"] == [{"interface": "RSI", "command": "RSI_VERSION",
                                   "label": "made_up", "tests": ["tests/t.py::y"]}]
    result = runner.invoke(app, ["conformance", str(path), "--missing"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert first.label in result.output and "no test" in result.output
    assert "declared in no condition table" in result.output
    assert "not from a complete" in result.output
    report = build_report(hits)
    assert [r.condition for r in report.missing] == [first]


def test_cli_usage_errors(tmp_path: Path) -> None:
    assert runner.invoke(app, ["conformance"]).exit_code == 2
    assert runner.invoke(app, ["conformance", str(tmp_path / "nope.json")]).exit_code == 2
    assert runner.invoke(app, ["conformance", "--run", "--tests",
                               str(tmp_path / "none")]).exit_code == 2


_SUITE = '''
from ccasim import Platform, PlatformConfig
from ccasim.host.rmi import RmiClient


def test_one_condition():
    client = RmiClient(Platform(PlatformConfig(cpus=1, dram_size=16 << 20)))
    assert client.call("GRANULE_DELEGATE", 0x8000_0001)[0] == 1
'''


def _mini_suite(tmp_path: Path) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    (suite / "test_mini.py").write_text(_SUITE)
    return suite


def test_plugin_fails_a_run_with_untested_conditions(tmp_path: Path) -> None:
    suite = _mini_suite(tmp_path)
    out = tmp_path / "cov.json"
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
         "--rootdir", str(suite), f"--conformance-out={out}"],
        capture_output=True, text=True, env=env, check=False)
    # the one test passed, but the whole (mini) suite leaves conditions untested
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert "failure conditions without a test" in proc.stdout
    assert "RMI RMI_GRANULE_DELEGATE gran_bound" in proc.stdout
    data = json.loads(out.read_text())
    assert data["complete"] is True
    assert data["hits"] == [{"interface": "RMI", "command": "RMI_GRANULE_DELEGATE",
                             "label": "gran_align",
                             "tests": ["test_mini.py::test_one_condition"]}]
    # a partial run (one file named) is not checked
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite / "test_mini.py"), "-q",
         "-p", "no:cacheprovider", "--rootdir", str(suite)],
        capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_run_records_the_suite(tmp_path: Path) -> None:
    suite = _mini_suite(tmp_path)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ccasim"), "conformance", "--run", "--tests",
         str(suite), "--json"],
        capture_output=True, text=True, cwd=suite, check=False)
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["suite_exit"] == 0 and data["complete"] is True
    delegate = next(c for c in data["commands"] if c["command"] == "RMI_GRANULE_DELEGATE")
    verdicts = {c["label"]: c["verdict"] for c in delegate["conditions"]}
    assert verdicts == {"gran_align": "tested", "gran_bound": "MISSING",
                        "gran_state": "MISSING", "gran_gpt": "MISSING"}


# ---------------------------------------------------------------------------------------
# conditions no other test triggers
def test_psci_complete_with_recs_of_two_realms_is_owner(rig: Rig) -> None:
    a = rig.realm(call(PSCI_CPU_ON, 1, "sec", 0, imm=1), text="sec:\n    b sec\n", recs=2)
    b = rig.realm("", recs=1)
    ex = a.run(0)
    assert ex.status == 0 and ex.reason == PSCI and ex.gprs[0] == PSCI_CPU_ON
    r = a.rmi("PSCI_COMPLETE", a.recs[0], b.recs[0], 0)
    assert r.status == ERROR_INPUT
    last = rig.p.rmm.last_error
    assert last is not None and last.label == "owner"
    assert a.rmi("PSCI_COMPLETE", a.recs[0], a.recs[1], 0).ok  # the right target still works


def _token_init() -> str:
    return load_imm("x0", RSI_TOKEN_INIT) + "    smc #0\n" + dump(1)


_TOKEN_BUFFER = "    .balign 0x1000\ntok:\n    .skip 0x1000\n"


def test_token_builder_failure_is_token_build(rig: Rig) -> None:
    def broken(*_args: object) -> bytes:
        raise RuntimeError("signing key unavailable")

    rig.p.rmm.token_builder = broken
    g = rig.realm(_token_init() + call(RSI_TOKEN_CONTINUE, "tok", 0, 0x100, imm=2),
                  data=_TOKEN_BUFFER)
    assert g.dump(imm=1).gprs[0] == RSI_SUCCESS
    assert g.dump(imm=2).gprs[:2] == [RSI_ERROR_INPUT, 0]
    err = rig.p.rmm.last_rsi_error
    assert err is not None and getattr(err, "label", "") == "token_build"


@pytest.mark.parametrize("token", [b"", b"\xa5" * (12 * 4096 + 1)])
def test_empty_or_oversized_token_is_token_size(rig: Rig, token: bytes) -> None:
    rig.p.rmm.token_builder = lambda *_args: token
    g = rig.realm(_token_init() + call(RSI_TOKEN_CONTINUE, "tok", 0, 0x100, imm=2),
                  data=_TOKEN_BUFFER)
    assert g.dump(imm=1).gprs[0] == RSI_SUCCESS
    assert g.dump(imm=2).gprs[:2] == [RSI_ERROR_INPUT, 0]
    err = rig.p.rmm.last_rsi_error
    assert err is not None and getattr(err, "label", "") == "token_size"
