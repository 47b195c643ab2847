"""Conformance coverage: every RMI/RSI failure condition, and which test triggers it.

The conditions come from the tables the code itself uses: the :class:`~ccasim.rmm.errors.
Conditions` objects of the RMI command modules (``ccasim.rmm.rmi.*``) and the
``RSI_CONDITIONS`` tables of the RSI modules (``ccasim.rmm.rsi.*``). Which conditions the
test suite triggers is recorded while it runs: the pytest plugin (:class:`ConformancePlugin`,
registered by ``tests/conftest.py``) listens to the RMI and RSI dispatchers
(:data:`ccasim.rmm.errors.CONDITION_LISTENERS`) and attributes every reported failure to
the test running at that moment.

* ``pytest --conformance-out FILE`` writes the recording as JSON; ``ccasim conformance
  FILE`` shows it (``--run`` runs the suite itself).
* A run of the whole suite fails when a listed condition has no test (conditions marked
  :data:`UNREACHABLE`, with the reason, are exempt); ``--conformance-check=off`` disables
  that, ``=on`` forces it for partial runs too.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .rmm.errors import CONDITION_LISTENERS, Conditions
from .rmm.rmi import RMI_TABLE
from .rmm.rmi import data as _rmi_data
from .rmm.rmi import granule as _rmi_granule
from .rmm.rmi import realm as _rmi_realm
from .rmm.rmi import rec as _rmi_rec
from .rmm.rmi import rtt as _rmi_rtt
from .rmm.rmi import system as _rmi_system
from .rmm.rsi import RSI_TABLE, RsiCondition
from .rmm.rsi import attestation as _rsi_attestation
from .rmm.rsi import config as _rsi_config
from .rmm.rsi import host_call as _rsi_host_call
from .rmm.rsi import measurement as _rsi_measurement
from .rmm.rsi import memory as _rsi_memory
from .rmm.rsi import version as _rsi_version

RMI_MODULES: tuple[ModuleType, ...] = (
    _rmi_system, _rmi_granule, _rmi_realm, _rmi_rec, _rmi_rtt, _rmi_data,
)
RSI_MODULES: tuple[ModuleType, ...] = (
    _rsi_version, _rsi_measurement, _rsi_config, _rsi_memory, _rsi_host_call,
    _rsi_attestation,
)

Key = tuple[str, str, str]  # (interface, command, label)

_BOUND2 = ("an address at or above 2^48 is never in tracked DRAM (the memory map ends far "
           "below 256 TiB), so the granule lookup fails its _bound check first")
UNREACHABLE: dict[Key, str] = {
    ("RMI", "RMI_RTT_CREATE", "rtt_bound2"): _BOUND2,
    ("RMI", "RMI_DATA_CREATE", "data_bound2"): _BOUND2,
    ("RMI", "RMI_DATA_CREATE_UNKNOWN", "data_bound2"): _BOUND2,
    ("RSI", "RSI_HOST_CALL", "addr_granule"): (
        "a 256-byte RsiHostCall at a 256-byte aligned address (addr_align) always fits in "
        "its 4 KB granule"),
    ("RSI", "RSI_IPA_STATE_GET", "ripas"): (
        "the walk of a protected IPA ends at a leaf (a level-3 entry is never a table) and "
        "the RMM never writes NS entries below the protected-space top, which is aligned to "
        "every starting-level entry; only a corrupted RTT could get there"),
}


@dataclass(frozen=True)
class ConditionInfo:
    """One failure condition of one command, as the code declares it."""

    interface: str  # "RMI" or "RSI"
    command: str
    label: str
    status: str
    description: str

    @property
    def key(self) -> Key:
        return (self.interface, self.command, self.label)

    @property
    def unreachable(self) -> str | None:
        return UNREACHABLE.get(self.key)


def rmi_conditions() -> list[ConditionInfo]:
    """Every RMI command's conditions, in the order the command checks them."""
    out: list[ConditionInfo] = []
    seen: set[str] = set()
    for module in RMI_MODULES:
        for value in vars(module).values():
            if isinstance(value, Conditions) and value.command not in seen:
                seen.add(value.command)
                out.extend(ConditionInfo("RMI", value.command, c.label, c.status.name,
                                         c.description) for c in value)
    return out


def rsi_conditions() -> list[ConditionInfo]:
    out: list[ConditionInfo] = []
    for module in RSI_MODULES:
        table: Iterable[RsiCondition] = getattr(module, "RSI_CONDITIONS", ())
        out.extend(ConditionInfo("RSI", c.command, c.label, c.status.name, c.description)
                   for c in table)
    return out


def all_conditions() -> list[ConditionInfo]:
    return rmi_conditions() + rsi_conditions()


def commands() -> list[tuple[str, str]]:
    """(interface, name) of every RMI and RSI command, by function ID."""
    return ([("RMI", c.name) for _fid, c in sorted(RMI_TABLE.items())]
            + [("RSI", c.name) for _fid, c in sorted(RSI_TABLE.items())])


# ---------------------------------------------------------------------------------------
# recording
class Recorder:
    """Collects (interface, command, label) -> test node IDs while it is started."""

    def __init__(self) -> None:
        self.hits: dict[Key, set[str]] = {}
        self.current: str | None = None

    def start(self) -> None:
        if self._on_condition not in CONDITION_LISTENERS:
            CONDITION_LISTENERS.append(self._on_condition)

    def stop(self) -> None:
        if self._on_condition in CONDITION_LISTENERS:
            CONDITION_LISTENERS.remove(self._on_condition)

    def _on_condition(self, interface: str, command: str, label: str) -> None:
        self.hits.setdefault((interface, command, label), set()).add(
            self.current or "<outside a test>")

    def to_json(self, complete: bool = False) -> dict[str, Any]:
        return {
            "complete": complete,
            "hits": [{"interface": i, "command": c, "label": lab, "tests": sorted(tests)}
                     for (i, c, lab), tests in sorted(self.hits.items())],
        }

    def save(self, path: str | Path, complete: bool = False) -> None:
        Path(path).write_text(json.dumps(self.to_json(complete), indent=1) + "\n")


def load_hits(path: str | Path) -> tuple[dict[Key, list[str]], bool]:
    """The hits of a recording written by :meth:`Recorder.save`, and its ``complete``."""
    raw = json.loads(Path(path).read_text())
    hits = {(h["interface"], h["command"], h["label"]): list(h["tests"]) for h in raw["hits"]}
    return hits, bool(raw.get("complete", False))


# ---------------------------------------------------------------------------------------
# the report
@dataclass
class Row:
    condition: ConditionInfo
    tests: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.tests:
            return "tested"
        return "unreachable" if self.condition.unreachable else "MISSING"


@dataclass
class Report:
    rows: list[Row]
    undeclared: dict[Key, list[str]]  # recorded labels no table declares
    commands: list[tuple[str, str]]

    @property
    def missing(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "MISSING"]

    @property
    def unreachable(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "unreachable"]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.undeclared

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "conditions": len(self.rows),
            "tested": sum(1 for r in self.rows if r.verdict == "tested"),
            "missing": [_row_key(r) for r in self.missing],
            "unreachable": [{**_row_key(r), "reason": r.condition.unreachable}
                            for r in self.unreachable],
            "undeclared": [{"interface": i, "command": c, "label": lab, "tests": t}
                           for (i, c, lab), t in sorted(self.undeclared.items())],
            "commands": [
                {"interface": iface, "command": name,
                 "conditions": [{"label": r.condition.label, "status": r.condition.status,
                                 "description": r.condition.description,
                                 "verdict": r.verdict, "tests": r.tests,
                                 **({"reason": r.condition.unreachable}
                                    if r.condition.unreachable else {})}
                                for r in self.rows
                                if (r.condition.interface, r.condition.command)
                                == (iface, name)]}
                for iface, name in self.commands
            ],
        }


def _row_key(row: Row) -> dict[str, str]:
    c = row.condition
    return {"interface": c.interface, "command": c.command, "label": c.label}


def build_report(hits: dict[Key, list[str]] | dict[Key, set[str]]) -> Report:
    conditions = all_conditions()
    declared = {c.key for c in conditions}
    rows = [Row(c, sorted(hits.get(c.key, ()))) for c in conditions]
    undeclared = {k: sorted(v) for k, v in hits.items() if k not in declared}
    names = commands()
    listed = set(names)
    names += sorted({(c.interface, c.command) for c in conditions} - listed)
    return Report(rows, undeclared, names)


# ---------------------------------------------------------------------------------------
# the pytest plugin (registered by tests/conftest.py; no pytest import needed here)
class ConformancePlugin:
    """Records which test triggers which condition; writes ``--conformance-out``; fails a
    whole-suite run in which a listed condition has no test."""

    name = "ccasim-conformance"

    @staticmethod
    def addoption(parser: Any) -> None:
        group = parser.getgroup("ccasim conformance")
        group.addoption("--conformance-out", metavar="FILE", default=None,
                        help="write which test triggers each RMI/RSI failure condition "
                             "(JSON, for `ccasim conformance FILE`)")
        group.addoption("--conformance-check", choices=("auto", "on", "off"), default="auto",
                        help="fail the session when a failure condition has no test: auto "
                             "(only when the whole suite ran), on, off")

    def __init__(self, config: Any) -> None:
        self.config = config
        self.recorder = Recorder()
        self.report: Report | None = None
        self.deselected = 0
        self.complete = False
        self.enforced = False

    # -- hooks
    def pytest_sessionstart(self, session: Any) -> None:
        self.recorder.start()

    def pytest_deselected(self, items: list[Any]) -> None:
        self.deselected += len(items)

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.recorder.current = nodeid

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self.recorder.current = None

    def pytest_sessionfinish(self, session: Any, exitstatus: int) -> None:
        self.recorder.stop()
        self.complete = self._whole_suite(session) and int(exitstatus) == 0
        out = self.config.getoption("conformance_out")
        if out:
            self.recorder.save(out, complete=self.complete)
        mode = self.config.getoption("conformance_check")
        if mode == "off" or (mode == "auto" and not self.complete):
            return
        self.enforced = True
        self.report = build_report(self.recorder.hits)
        if not self.report.ok and int(session.exitstatus) == 0:
            session.exitstatus = 1  # pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        report = self.report
        if report is None:
            return
        tr = terminalreporter
        if report.ok:
            tested = sum(1 for r in report.rows if r.verdict == "tested")
            tr.write_line(f"conformance: {tested} of {len(report.rows)} RMI/RSI failure "
                          f"conditions triggered by a test; {len(report.unreachable)} marked "
                          "unreachable")
            return
        tr.section("conformance: failure conditions without a test", sep="=", red=True)
        for row in report.missing:
            c = row.condition
            tr.write_line(f"{c.interface} {c.command} {c.label} ({c.status}): "
                          f"{c.description}")
        for (iface, cmd, label), tests in sorted(report.undeclared.items()):
            tr.write_line(f"{iface} {cmd} {label}: raised (by {tests[0]}) but declared in "
                          "no condition table")

    # -- helpers
    def _whole_suite(self, session: Any) -> bool:
        """Did this session run every test of the suite (no selection, no early stop)?"""
        config = self.config
        if self.deselected or getattr(session, "shouldstop", False):
            return False
        if config.getoption("collectonly", False) or not getattr(session, "testscollected", 0):
            return False
        if config.getoption("keyword", "") or config.getoption("markexpr", ""):
            return False
        root = Path(str(config.rootpath))
        testpaths = [(root / p).resolve() for p in config.getini("testpaths")] or [root]
        for arg in config.args:
            path = Path(str(arg).split("::")[0])
            path = (Path(str(config.invocation_params.dir)) / path).resolve()
            if "::" in str(arg) or not any(path == t or path in t.parents for t in testpaths):
                return False
        return True


__all__ = ["UNREACHABLE", "ConditionInfo", "ConformancePlugin", "Recorder", "Report",
           "all_conditions", "build_report", "commands", "load_hits", "rmi_conditions",
           "rsi_conditions"]
