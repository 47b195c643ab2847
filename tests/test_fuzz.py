"""The fuzzers (ccasim.fuzz): bounded host and guest campaigns, shrinking injected failures
to minimal reproducers that run as scripts, sharding over processes and over a local Ray
instance, and ``ccasim fuzz``.

``CCASIM_LONG=<n>`` scales the clean campaigns up (n x 40 host runs of 500 steps, n x 100
guest programs of 80 items).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from ccasim import PlatformConfig
from ccasim.fuzz import common, guest, host
from ccasim.fuzz.campaign import run_campaign
from ccasim.guest.asm import assemble
from ccasim.rmm.rmi import RMI_TABLE
from ccasim.rmm.rsi import RSI_TABLE

LONG = int(os.environ.get("CCASIM_LONG", "0") or 0)


def env() -> dict[str, str]:
    """The environment for subprocesses, as it is now (a test may have changed it)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")) if p)}


CLI = [sys.executable, "-c", "from ccasim.cli.main import main; main()"]
UNDELEGATE = 0xC400_0152
RSI_VERSION = 0xC400_0190
# The granules the injected host failure is about: the fuzzer's pool (from ``POOL``).
POOL = PlatformConfig().memory_map()["ns_dram"].base + host.POOL_OFFSET
MAGIC = 0xDEAD_BEEF_0000_0001

# Installs the injected failures; the same source runs in this process (through
# monkeypatch) and in front of the reproducer scripts in a subprocess.
INJECT = textwrap.dedent(f"""
    import dataclasses
    from ccasim.rmm.rmi import RMI_TABLE
    from ccasim.rmm.rsi import RSI_TABLE

    def undelegate_bug(command):
        def handler(rmm, pe, args):
            results = command.handler(rmm, pe, args)
            if {POOL:#x} <= args[0] < {POOL + host.POOL_SIZE * 0x1000:#x}:
                raise KeyError("injected: undelegating a pool granule")
            return results
        return dataclasses.replace(command, handler=handler)

    def rsi_version_bug(command):
        def handler(ctx):
            if ctx.engine.x(1) == {MAGIC:#x}:
                raise ZeroDivisionError("injected: RSI_VERSION of the magic value")
            return command.handler(ctx)
        return dataclasses.replace(command, handler=handler)

    def install():
        RMI_TABLE[{UNDELEGATE:#x}] = undelegate_bug(RMI_TABLE[{UNDELEGATE:#x}])
        RSI_TABLE[{RSI_VERSION:#x}] = rsi_version_bug(RSI_TABLE[{RSI_VERSION:#x}])
""")


def _inject_namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {}
    exec(INJECT, ns)
    return ns


@pytest.fixture
def injected(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    ns = _inject_namespace()
    monkeypatch.setitem(RMI_TABLE, UNDELEGATE, ns["undelegate_bug"](RMI_TABLE[UNDELEGATE]))
    monkeypatch.setitem(RSI_TABLE, RSI_VERSION, ns["rsi_version_bug"](RSI_TABLE[RSI_VERSION]))
    yield


def run_script(path: Path, *, inject: bool) -> subprocess.CompletedProcess[str]:
    """Run a reproducer as a subprocess, optionally with the injected failures installed."""
    prelude = (INJECT + "\ninstall()\n") if inject else ""
    code = prelude + f"import runpy\nrunpy.run_path({str(path)!r}, run_name='__main__')\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env(), check=False)


# ------------------------------------------------------------------------------ clean runs
def test_host_campaign_finds_nothing() -> None:
    runs, steps = (40 * LONG, 500) if LONG else (8, 400)
    result = run_campaign("host", runs, steps, 2 if LONG else 1, seed=11)
    assert [f.failure for f in result.failures] == []
    assert result.total_steps >= runs * steps
    assert all(o.failure is None for o in result.outcomes)
    print(f"host: {result.total_steps} steps, {result.steps_per_second:.0f} steps/s")


def test_guest_campaign_finds_nothing() -> None:
    runs, items = (100 * LONG, 80) if LONG else (24, 60)
    result = run_campaign("guest", runs, items, 2 if LONG else 1, seed=11)
    assert [f.failure for f in result.failures] == []
    assert result.total_entries >= runs
    print(f"guest: {result.total_steps} items, {result.total_entries} REC entries, "
          f"{result.steps_per_second:.0f} items/s")


def test_host_run_is_deterministic_and_replays() -> None:
    a = host.run_host(5, 150)
    b = host.run_host(5, 150)
    assert a.steps == b.steps and a.failure is None
    r = host.replay(a.steps)
    assert r.failure is None and r.count == len(a.steps)


class HostileHost(RuleBasedStateMachine):
    """The hostile host as a Hypothesis state machine: Hypothesis picks the actions (one rule
    each) and the random source of their choices. A failure is shrunk by the fuzzer's own
    delta debugging over the steps (much faster than Hypothesis replaying whole platforms,
    whose shrink phase is therefore off) and reported as a reproducer script."""

    def __init__(self) -> None:
        super().__init__()
        self.fuzzer = host.HostFuzzer(0)
        failure = self.fuzzer.start()
        assert failure is None, str(failure)

    def _do(self, action: str, rnd: random.Random) -> None:
        failure = self.fuzzer.act(action, rnd)
        if failure is not None:
            small = host.shrink_steps(self.fuzzer.steps, failure, budget_s=60)
            again = host.replay(small).failure
            raise AssertionError(f"{failure}\n{failure.detail}\n" + host.reproducer(
                small, again if again is not None else failure))

    def teardown(self) -> None:
        common.dispose(self.fuzzer.p)

    @rule(rnd=st.randoms(use_true_random=False))
    def rmi(self, rnd: random.Random) -> None:
        self._do("rmi", rnd)

    @rule(rnd=st.randoms(use_true_random=False))
    def realm_create(self, rnd: random.Random) -> None:
        self._do("realm_create", rnd)

    @rule(rnd=st.randoms(use_true_random=False))
    def rec_create(self, rnd: random.Random) -> None:
        self._do("rec_create", rnd)

    @rule(rnd=st.randoms(use_true_random=False))
    def data_create(self, rnd: random.Random) -> None:
        self._do("data_create", rnd)

    @rule(rnd=st.randoms(use_true_random=False))
    def rec_run(self, rnd: random.Random) -> None:
        self._do("rec_run", rnd)

    @rule(rnd=st.randoms(use_true_random=False))
    def write_page(self, rnd: random.Random) -> None:
        self._do("write_page", rnd)

    @rule(rnd=st.randoms(use_true_random=False))
    def ffa(self, rnd: random.Random) -> None:
        self._do("ffa", rnd)

    @rule(rnd=st.randoms(use_true_random=False))
    def odd_fid(self, rnd: random.Random) -> None:
        self._do("odd_fid", rnd)


def test_state_machine_rules_cover_every_action() -> None:
    rules = {name for name in vars(HostileHost) if name in host.ACTION_WEIGHTS}
    assert rules == set(host.ACTION_WEIGHTS)


TestHostileHost = HostileHost.TestCase
TestHostileHost.settings = settings(
    max_examples=200 * LONG if LONG else 12,
    stateful_step_count=60 if LONG else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


# ------------------------------------------------------------------------------ shrinking
def test_shrinker_ddmin_is_minimal() -> None:
    calls = 0

    def fails(xs: list[int]) -> bool:
        nonlocal calls
        calls += 1
        return {3, 17, 42} <= set(xs)

    assert common.shrink(list(range(100)), fails) == [3, 17, 42]
    assert calls < 150


def test_host_failure_shrinks_to_a_reproducer(injected: None, tmp_path: Path) -> None:
    """An RMI handler that raises when a pool granule is undelegated: the campaign
    finds it, the shrinker keeps exactly DELEGATE + UNDELEGATE of that granule, and the
    reproducer script reproduces it in a fresh interpreter (and only with the bug)."""
    result = run_campaign("host", 4, 300, seed=0, shrink_seconds=60)
    assert len(result.failures) == 1, [f.signature for f in result.failures]
    report = result.failures[0]
    assert report.signature == "exception:KeyError@ccasim.rmm.rmi.__init__:dispatch"
    assert report.shrunk_length == 2 < report.original_length
    steps = report.reproducer.splitlines()
    calls = [line for line in steps if line.startswith("r.")]
    assert len(calls) == 2
    target = int(calls[0].split(", ")[2].split(")")[0], 16)
    assert POOL <= target < POOL + host.POOL_SIZE * 0x1000
    assert f"0xc4000151, {target:#x})" in calls[0] and f"0xc4000152, {target:#x})" in calls[1]
    # every run that failed is listed, the reproducer is written once
    assert all(result.outcomes[i].failure is not None for i in report.runs)
    paths = result.write(tmp_path)
    assert len(paths) == 1 and paths[0].read_text() == report.reproducer
    proc = run_script(paths[0], inject=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reproduced: [exception:KeyError@ccasim.rmm.rmi.__init__:dispatch]" in proc.stdout
    assert "injected: undelegating a pool granule" in proc.stdout
    fixed = run_script(paths[0], inject=False)
    assert fixed.returncode != 0 and "AssertionError" in fixed.stderr


def test_a_bug_of_the_fuzzer_is_reported_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: host.HostFuzzer) -> None:
        raise ValueError("generator bug")

    monkeypatch.setattr(host.HostFuzzer, "act_odd_fid", broken)
    result = run_campaign("host", 2, 200, seed=1)
    assert [f.signature for f in result.failures] == ["fuzzer:ValueError"]
    seed = result.outcomes[0].seed
    assert f"run_host({seed}, 200)" in result.failures[0].reproducer


def test_host_reproducer_from_steps(injected: None) -> None:
    """reproducer(steps) on its own: replays to learn the failure, then prints the calls."""
    target = POOL + 0x5000
    steps = [host.Step("smc", 0, 0xC400_0151, (target,)),
             host.Step("write", 1, pa=target + 0x1000, data=b"\x01" + bytes(20) + b"\x02"),
             host.Step("smc", 1, 0xC400_0152, (target,))]
    text = host.reproducer(steps)
    assert "r.write(1, " in text and "r.page(0x16, {0x0: '01', 0x15: '02'})" in text
    compile(text, "repro.py", "exec")
    small = host.shrink_steps(steps, host.replay(steps).failure)  # type: ignore[arg-type]
    assert [s.fid for s in small] == [0xC400_0151, 0xC400_0152]
    with pytest.raises(ValueError):
        host.reproducer(small[:1])


def test_host_rmi_return_convention(monkeypatch: pytest.MonkeyPatch) -> None:
    """An RMI return path that clobbers x5..x7 (the bug of an earlier model) is a failure;
    so is an x0 that is no RMI status."""
    from ccasim.firmware import rmmd

    steps = [host.Step("smc", 0, 0xC400_0150, (0x1_0000, 0, 0, 0, 5, 6, 7))]
    assert host.replay(steps).failure is None
    complete = rmmd.Rmmd._req_complete

    def clobbering(self: Any, pe: Any) -> Any:
        out = complete(self, pe)
        pe.x[5:8] = [0, 0, 0]
        return out

    monkeypatch.setattr(rmmd.Rmmd, "_req_complete", clobbering)
    failure = host.replay(steps).failure
    assert failure is not None and failure.signature == "abi:rmi-x5", failure

    def bad_status(self: Any, pe: Any) -> Any:
        out = complete(self, pe)
        pe.x[0] = 0x0305
        return out

    monkeypatch.setattr(rmmd.Rmmd, "_req_complete", bad_status)
    failure = host.replay(steps).failure
    assert failure is not None and failure.signature == "abi:rmi-status", failure


def test_guest_failure_shrinks_to_a_reproducer(injected: None, tmp_path: Path) -> None:
    """A guest item that makes the RMM raise (RSI_VERSION of a magic value, injected) among
    random items shrinks to that single item; its script reproduces it."""
    # random loads and system register reads, so that the stream reaches the bad item
    filler = [i for i in guest.generate(7, 120).items
              if i.text.startswith(("ldr x", "ldr w", "ldrb", "ldrh", "mrs"))][:20]
    bad = guest.Item((*guest.mov_imm(1, MAGIC), *guest.mov_imm(0, RSI_VERSION), guest.SMC0),
                     "smc RSI_VERSION(magic)")
    program = guest.GuestProgram((*filler[:12], bad, *filler[12:]), 7)
    run = guest.run_program(program)
    assert run.failure is not None, run.end
    assert run.failure.signature == "exception:ZeroDivisionError@ccasim.rmm.rsi.__init__:dispatch"
    small = guest.shrink_program(program, run.failure)
    assert small.items == (bad,)
    path = tmp_path / "guest_repro.py"
    path.write_text(guest.reproducer(small, run.failure))
    proc = run_script(path, inject=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reproduced: [exception:ZeroDivisionError" in proc.stdout


def test_guest_memory_check_sees_a_write_outside_the_realm(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A model bug that writes another realm's memory while a REC runs is a failure."""
    from ccasim.arch.security import PhysicalAddressSpace as Pas
    from ccasim.rmm import run as rmm_run

    others: list[int] = []
    build = guest.GuestHarness.build

    def spy(self: guest.GuestHarness) -> Any:
        vm, other = build(self)
        others.append(next(iter(other.handle.data.values())))
        return vm, other

    original = rmm_run.RecRunner.run

    def leaky(self: Any, pe: Any, realm: Any, rec: Any, enter: Any) -> Any:
        values = original(self, pe, realm, rec, enter)
        pe.write(others[-1] + 0x10, b"\xee", Pas.REALM)
        return values

    monkeypatch.setattr(guest.GuestHarness, "build", spy)
    monkeypatch.setattr(rmm_run.RecRunner, "run", leaky)
    run = guest.run_program(guest.generate(3, 5))
    assert run.failure is not None and run.failure.signature == "memory:other-realm"


# ------------------------------------------------------------------------------ encodings
def test_guest_encodings_match_the_assembler() -> None:
    pairs = [
        (guest.mov_imm(9, 0x1234_0000), "movz x9, #0x1234, lsl #16"),
        (guest.mov_imm(3, 0xBEEF_0000_0000_0000), "movz x3, #0xbeef, lsl #48"),
        (guest.mov_imm(4, 0x1_0002), "movz x4, #2\nmovk x4, #1, lsl #16"),
        ([guest.sysreg_op(True, 5, 3, 0, 1, 0, 0)], "mrs x5, SCTLR_EL1"),
        ([guest.sysreg_op(False, 7, 3, 0, 12, 0, 0)], "msr VBAR_EL1, x7"),
        ([guest.sysreg_op(True, 1, 2, 0, 0, 2, 2)], "mrs x1, MDSCR_EL1"),
        ([guest.SMC0, guest.WFI, guest.ERET], "smc #0\nwfi\neret"),
        ([guest.branch(0x8000_0000, 0x8000_0010)], "b .+16"),
    ]
    forms = ["ldr x1, [x9]", "str x1, [x9]", "ldr w1, [x9]", "str w1, [x9]",
             "ldrb w1, [x9]", "strb w1, [x9]", "ldrh w1, [x9]", "strh w1, [x9]",
             "ldp x1, x2, [x9]", "stp x1, x2, [x9]", "ldr x1, [x9], #8", "ldxr x1, [x9]",
             "dc zva, x9", "dc civac, x9"]
    for (name, base, pair), text in zip(guest.MEMORY_OPS, forms, strict=True):
        word = base | 9 if name.startswith("dc") else base | 9 << 5 | 1 | (
            (2 << 10) if pair else 0)
        pairs.append(([word], text))
    for words, text in pairs:
        image = assemble(text, 0x8000_0000)
        got = [int.from_bytes(image.data[i : i + 4], "little") for i in range(0, image.size, 4)]
        assert got == words, text


# ------------------------------------------------------------------------------ sharding
def test_workers_give_the_same_merged_result() -> None:
    one = run_campaign("host", 4, 150, workers=1, seed=3)
    two = run_campaign("host", 4, 150, workers=2, seed=3)
    assert two.backend == "processes"
    assert one.to_dict(timing=False) == two.to_dict(timing=False)
    # the seeds depend on the campaign seed and run index only
    assert [o.seed for o in one.outcomes] == [common.derive_seed(3, "host", i)
                                              for i in range(4)]
    other = run_campaign("host", 2, 10, seed=4)
    assert other.outcomes[0].seed != one.outcomes[0].seed


def test_ray_cluster_gives_the_same_result(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The --ray path: ``ccasim fuzz --ray ADDRESS`` in a subprocess against a local Ray
    instance this test starts on the loopback interface only (Ray's single-machine mode,
    set before Ray is imported) and stops again."""
    # Ray otherwise advertises and binds the machine's network address.
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ccasim[ray]')")
    ray.init(address="local", num_cpus=2, include_dashboard=False,
             _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False)
    try:
        address = ray.get_runtime_context().gcs_address
        assert address.startswith("127.0.0.1:"), address
        proc = subprocess.run(
            [*CLI, "fuzz", "--host", "--runs", "4",
             "--steps", "120", "--seed", "9", "--ray", address, "--json",
             "--out", str(tmp_path)],
            capture_output=True, text=True, timeout=300,
            env=env(), check=False)
    finally:
        ray.shutdown()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    remote = json.loads(proc.stdout)
    assert remote["backend"] == "ray"
    local = run_campaign("host", 4, 120, seed=9).to_dict(timing=False)
    assert {k: remote[k] for k in local if k != "outcomes"} == {
        k: v for k, v in local.items() if k != "outcomes"}
    assert [{k: v for k, v in o.items() if k != "seconds"} for o in remote["outcomes"]] == (
        local["outcomes"])


# ------------------------------------------------------------------------------ CLI
def test_cli_fuzz(tmp_path: Path) -> None:
    ok = subprocess.run([*CLI, "fuzz", "--guest", "--runs",
                         "2", "--steps", "20", "--json", "--out", str(tmp_path)],
                        capture_output=True, text=True, timeout=120, env=env(), check=False)
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["kind"] == "guest" and data["runs"] == 2 and data["failures"] == []
    assert not any(tmp_path.iterdir())
    usage = subprocess.run([*CLI, "fuzz"],
                           capture_output=True, text=True, timeout=60, env=env(), check=False)
    assert usage.returncode == 2 and "choose one of --host and --guest" in usage.stderr


def test_cli_fuzz_reports_failures(injected: None, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ccasim.cli.main import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["fuzz", "--host", "--runs", "2", "--steps", "300",
                                      "--out", str(out), "--shrink-time", "20"])
    assert result.exit_code == 1, result.output
    written = sorted(out.glob("host-0-*.py"))
    assert len(written) == 1 and f"reproducer: {written[0]}" in result.output
    assert (out / "host-0-summary.json").exists()
    assert "exception:KeyError@ccasim.rmm.rmi.__init__:dispatch" in result.output


def test_failure_records_round_trip() -> None:
    f = common.Failure("invariant", "refcount", 3, "x", "detail")
    assert common.Failure.from_dict(json.loads(json.dumps(f.to_dict()))) == f
    step = host.Step("write", 1, pa=0x8000_1000, data=b"\x00\x07", note="n")
    assert host.Step.from_dict(step.to_dict()) == step
    program = guest.generate(1, 5)
    assert guest.GuestProgram.from_dict(program.to_dict()) == program
    assert dataclasses.replace(program, seed=2) != program
