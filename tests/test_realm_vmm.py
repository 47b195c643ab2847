"""Whole guest programs in realms run by the VMM (``ccasim.host.vmm``), which drives them only
through the RMI: console over emulated MMIO, measurement extension checked with hashlib, an
attestation token fetched through RSI and verified, two vCPUs on two PEs, the benchmark
loops, and a teardown that returns every granule to the Normal world.
"""

from __future__ import annotations

import hashlib

import pytest

from ccasim import Platform, PlatformConfig
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.attestation.verify import verify_token
from ccasim.guest import programs
from ccasim.guest.programs import GuestLayout
from ccasim.host.vmm import HostCall, RealmSpec, Segment, Vmm

LAYOUT = GuestLayout()


def spec_for(image: programs.Image, *, vcpus: int = 1, boot_args: tuple[int, ...] = (),
             hash_algorithm: str = "sha256") -> RealmSpec:
    return RealmSpec(segments=(Segment(image.base, image.data),), entry=image.entry,
                     ram=((LAYOUT.ram_base, LAYOUT.ram_size),), s2sz=LAYOUT.s2sz,
                     vcpus=vcpus, boot_args=boot_args, uart_ipa=LAYOUT.uart_ipa,
                     hash_algorithm=hash_algorithm)


@pytest.fixture(scope="module")
def platform() -> Platform:
    return Platform(PlatformConfig(cpus=2))


def test_hello(platform: Platform) -> None:
    vmm = Vmm(platform)
    vm = vmm.create(spec_for(programs.hello(LAYOUT)))
    result = vmm.run(vm, timeout_s=10)
    assert (result.reason, result.error) == ("system_off", None)
    assert result.console == programs.HELLO_TEXT.encode()
    assert result.exits["PSCI"] == 1
    vmm.destroy(vm)


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_measurement_extend_matches_hashlib(platform: Platform, algo: str) -> None:
    vmm = Vmm(platform)
    vm = vmm.create(spec_for(programs.measurement_extend(LAYOUT), hash_algorithm=algo))
    result = vmm.run(vm, timeout_s=10)
    assert result.reason == "system_off"
    size = hashlib.new(algo).digest_size
    rem = hashlib.new(algo, bytes(size) + programs.DEFAULT_EXTEND_VALUE).digest()
    assert result.console.decode() == "REM[1] = " + rem.ljust(64, bytes(1)).hex() + "\n"
    vmm.destroy(vm)


def test_attestation_token_is_fetched_and_verifies(platform: Platform) -> None:
    calls: list[HostCall] = []
    vmm = Vmm(platform, host_call=lambda call: calls.append(call) or None)
    image = programs.attestation(LAYOUT)
    vm = vmm.create(spec_for(image))
    result = vmm.run(vm, timeout_s=30)
    assert result.reason == "system_off", result
    assert len(calls) == 1 and calls[0].imm == programs.TOKEN_HOST_CALL_IMM
    ipa, length, status = calls[0].gprs[:3]
    assert status == 0 and 0 < length <= 2 * 0x1000
    token = b"".join(
        platform.el3.read(vm.handle.data[ipa + off], 0x1000, Pas.REALM)
        for off in range(0, length, 0x1000))[:length]
    verdict = verify_token(token, platform.el3.cpak_public_pem())
    assert verdict.status != "contraindicated", verdict.problems()
    assert verdict.realm_claims is not None
    assert bytes(verdict.realm_claims[10]) == programs.DEFAULT_CHALLENGE
    vmm.destroy(vm)


def test_two_vcpus_on_two_pes(platform: Platform) -> None:
    vmm = Vmm(platform)
    vm = vmm.create(spec_for(programs.two_vcpus(LAYOUT), vcpus=2))
    result = vmm.run(vm, timeout_s=10)
    assert result.reason == "system_off", result
    text = result.console.decode()
    assert text.startswith("vCPU 0: CPU_ON\n")
    assert "Hello from vCPU 1\n" in text
    assert text.endswith("vCPU 0: vCPU 1 is off\n")
    vmm.destroy(vm)


@pytest.mark.parametrize("program", [programs.alu_loop, programs.load_store_loop])
def test_benchmark_loops_run_to_completion(platform: Platform, program: object) -> None:
    vmm = Vmm(platform)
    vm = vmm.create(spec_for(program(LAYOUT), boot_args=(100_000,)))  # type: ignore[operator]
    result = vmm.run(vm, timeout_s=10)
    assert result.reason == "system_off", result
    vmm.destroy(vm)


def test_teardown_returns_every_granule(platform: Platform) -> None:
    """After destroy, every granule the VMM used is Non-secure again (host-readable)."""
    vmm = Vmm(platform)
    vm = vmm.create(spec_for(programs.hello(LAYOUT)))
    used = [vm.handle.rd, *vm.recs, *vm.handle.data.values(), *vm.handle.rtts.values()]
    used += [a for aux in vm.handle.aux.values() for a in aux]
    assert vmm.run(vm, timeout_s=10).reason == "system_off"
    vmm.destroy(vm)
    for pa in used:
        assert platform.host.read(pa, 8) == bytes(8)
