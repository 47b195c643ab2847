"""The RMM-EL3 boot handshake and boot manifest (rmm-abi §12.1, §12.3)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccasim import Platform, PlatformConfig, SecurityState
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.firmware import boot_manifest
from ccasim.firmware import rmmd as rmmd_module
from ccasim.rmm.boot import BootError, read_manifest, validate_boot_args
from rme_helpers import MASK64, SMC_UNKNOWN, realm

# RMM_BOOT_COMPLETE status codes, rmm-abi §12.1.
VERSION_NOT_VALID = -2
CPUS_OUT_OF_RANGE = -3
CPU_ID_OUT_OF_RANGE = -4
INVALID_SHARED_BUFFER = -5
MANIFEST_VERSION_NOT_SUPPORTED = -6
MANIFEST_DATA_ERROR = -7

IFC_0_3 = 0x0000_0003  # (major << 16) | minor
SHARED = 0x7FFF_F000


@pytest.fixture
def p() -> Platform:
    return Platform()


# ------------------------------------------------------------------------------ handshake


@pytest.mark.parametrize("cpus", [1, 4, 9])
def test_rmm_boots_on_every_cpu(cpus: int) -> None:
    p = Platform(PlatformConfig(cpus=cpus))
    assert p.el3.rmm_boot_status == 0
    assert p.rmmd.boot_status == dict.fromkeys(range(cpus), 0)
    assert p.rmm.booted_cpus == set(range(cpus))
    info = p.rmm.boot_info
    assert info is not None and info.num_cpus == cpus
    ns = p.region("ns_dram")
    assert info.dram_banks == ((ns.base, ns.size),)  # exactly the NS DRAM bank
    assert info.console_base == p.region("uart0").base
    for pe in p.pes:  # every PE ends cold boot in the Normal world at EL2
        assert (pe.el, pe.security_state) == (2, SecurityState.NON_SECURE)


def test_shared_buffer_is_the_last_realm_page_of_the_rmm_carveout(p: Platform) -> None:
    rmm = p.region("rmm")
    assert p.rmmd.shared_buffer == rmm.end - 4096
    assert p.el3.gpi(p.rmmd.shared_buffer) == 0b1011
    # After boot the RMM has reused the buffer for attestation (RAK and platform token) and
    # scrubbed it; EL3 writes the manifest (0.3) at its base for a boot.
    assert p.el3.read(p.rmmd.shared_buffer, 4096, Pas.REALM) == bytes(4096)
    with p.el3._running() as pe:
        p.rmmd.write_manifest(pe)
    version = int.from_bytes(p.el3.read(p.rmmd.shared_buffer, 4, Pas.REALM), "little")
    assert version == IFC_0_3


def test_corrupt_manifest_at_cold_boot_fails_the_rmm(monkeypatch: pytest.MonkeyPatch) -> None:
    original = rmmd_module.Rmmd.write_manifest

    def corrupt(self: rmmd_module.Rmmd, pe: object) -> None:
        original(self, pe)  # type: ignore[arg-type]
        pe.write(self.shared_buffer + 32, b"\xff" * 8, Pas.REALM)  # type: ignore[attr-defined]

    monkeypatch.setattr(rmmd_module.Rmmd, "write_manifest", corrupt)
    p = Platform()
    assert p.el3.rmm_boot_status == MANIFEST_DATA_ERROR
    assert p.rmmd.boot_status == {0: MANIFEST_DATA_ERROR}  # no warm boot after a failure
    assert not p.rmmd.rmm_ready
    assert p.host.smc(0xC400_0150)[0] == SMC_UNKNOWN  # no RMI without an RMM
    for pe in p.pes:
        assert (pe.el, pe.security_state) == (2, SecurityState.NON_SECURE)


@pytest.mark.parametrize(("version", "status"), [(0x2, VERSION_NOT_VALID),
                                                 (0x1_0003, VERSION_NOT_VALID)])
def test_bad_interface_version_at_cold_boot(
    monkeypatch: pytest.MonkeyPatch, version: int, status: int
) -> None:
    monkeypatch.setattr(rmmd_module, "RMM_EL3_IFC_VERSION", version)
    assert Platform().el3.rmm_boot_status == status


# ------------------------------------------------------------------------------ boot arguments


def _status(err: pytest.ExceptionInfo[BootError]) -> int:
    return int(err.value.status)


def test_valid_boot_arguments() -> None:
    validate_boot_args(0, IFC_0_3, 4, SHARED)
    validate_boot_args(3, IFC_0_3, 4, SHARED)
    validate_boot_args(0, 0x0000_0007, 1, SHARED)  # same major, newer minor is accepted


@pytest.mark.parametrize(
    "version", [0x0000_0002, 0x0001_0003, 0x0002_0000, 0x8000_0003, 0x7FFF_0003])
def test_bad_version(version: int) -> None:
    with pytest.raises(BootError) as err:
        validate_boot_args(0, version, 4, SHARED)
    assert _status(err) == VERSION_NOT_VALID


@pytest.mark.parametrize("cpus", [0, 1 << 20])
def test_cpus_out_of_range(cpus: int) -> None:
    with pytest.raises(BootError) as err:
        validate_boot_args(0, IFC_0_3, cpus, SHARED)
    assert _status(err) == CPUS_OUT_OF_RANGE


@pytest.mark.parametrize(("cpu", "cpus"), [(4, 4), (5, 4), (1, 1), (MASK64, 8)])
def test_cpu_id_out_of_range(cpu: int, cpus: int) -> None:
    with pytest.raises(BootError) as err:
        validate_boot_args(cpu, IFC_0_3, cpus, SHARED)
    assert _status(err) == CPU_ID_OUT_OF_RANGE


@pytest.mark.parametrize("shared", [0, SHARED + 8, SHARED + 0x800])
def test_invalid_shared_buffer(shared: int) -> None:
    with pytest.raises(BootError) as err:
        validate_boot_args(0, IFC_0_3, 4, shared)
    assert _status(err) == INVALID_SHARED_BUFFER


@given(
    bad_version=st.booleans(), bad_cpus=st.booleans(), bad_id=st.booleans(),
    bad_shared=st.booleans(), cpus=st.integers(1, 16), extra=st.integers(0, 100),
    too_many=st.sampled_from([0, 1 << 20, 1 << 40]),
)
def test_boot_argument_checks_are_ordered(
    bad_version: bool, bad_cpus: bool, bad_id: bool, bad_shared: bool, cpus: int, extra: int,
    too_many: int,
) -> None:
    """Version, then CPU count, then CPU id, then the shared buffer (rmm-abi §12.1 order)."""
    version = 0x0000_0002 if bad_version else IFC_0_3
    num_cpus = too_many if bad_cpus else cpus
    cpu_id = (num_cpus + extra) if bad_id else min(extra, cpus - 1)
    shared = SHARED + 0x10 if bad_shared else SHARED
    expected = None
    for bad, status in ((bad_version, VERSION_NOT_VALID), (bad_cpus, CPUS_OUT_OF_RANGE),
                        (bad_id, CPU_ID_OUT_OF_RANGE), (bad_shared, INVALID_SHARED_BUFFER)):
        if bad:
            expected = status
            break
    if expected is None:
        validate_boot_args(cpu_id, version, num_cpus, shared)
        return
    with pytest.raises(BootError) as err:
        validate_boot_args(cpu_id, version, num_cpus, shared)
    assert _status(err) == expected


# ------------------------------------------------------------------------------ manifest


def _u64(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset:offset + 8], "little")


def test_manifest_layout_and_checksum_rule(p: Platform) -> None:
    """v0.3: version u32 @0, plat_data @8, plat_dram {num, ptr, checksum} @16; checksum makes
    num_banks + banks pointer + checksum + Σ(base + size) ≡ 0 (mod 2^64)."""
    shared = p.rmmd.shared_buffer
    banks = [(0x8000_0000, 1 << 30), (0x1_0000_0000, 3 << 30), (0x88_0000_0000, 1 << 20)]
    image = boot_manifest.build(shared, banks, [boot_manifest.Console(base=0x1C09_0000)])
    assert int.from_bytes(image[0:4], "little") == IFC_0_3
    assert _u64(image, 8) == 0
    num, ptr, csum = _u64(image, 16), _u64(image, 24), _u64(image, 32)
    assert num == 3
    assert shared <= ptr < shared + 4096
    table = image[ptr - shared:]
    listed = [(_u64(table, 16 * i), _u64(table, 16 * i + 8)) for i in range(num)]
    assert listed == banks
    assert (num + ptr + csum + sum(b + s for b, s in banks)) % (1 << 64) == 0
    assert _u64(image, 40) == 1  # one console


@functools.cache
def _shared_platform() -> Platform:
    return Platform()


def _read(platform: Platform, image: bytes) -> object:
    shared = platform.rmmd.shared_buffer
    platform.el3.write(shared, bytes(4096), Pas.REALM)
    platform.el3.write(shared, image, Pas.REALM)
    with realm(platform)._running() as pe:
        assert pe.security_state is SecurityState.REALM
        return read_manifest(pe, shared)


def _manifest_error(platform: Platform, image: bytes) -> int:
    with pytest.raises(BootError) as err:
        _read(platform, image)
    return _status(err)


bank_lists = st.lists(
    st.tuples(st.integers(0, 1 << 20), st.integers(1, 1 << 20)), min_size=1, max_size=16
)


@settings(max_examples=30)
@given(bank_lists)
def test_read_manifest_round_trip(gaps: list[tuple[int, int]]) -> None:
    banks, pa = [], 0
    for gap, size in gaps:  # ascending, non-overlapping, 4 KB aligned (granule counts)
        pa += gap * 4096
        banks.append((pa, size * 4096))
        pa += size * 4096
    p = _shared_platform()
    image = boot_manifest.build(p.rmmd.shared_buffer, banks, [])
    info = _read(p, image)
    assert info.dram_banks == tuple(banks)  # type: ignore[attr-defined]
    assert info.console_base is None  # type: ignore[attr-defined]


def _image(p: Platform, banks: list[tuple[int, int]] | None = None) -> bytearray:
    ns = p.region("ns_dram")
    return bytearray(boot_manifest.build(
        p.rmmd.shared_buffer, banks or [(ns.base, ns.size)],
        [boot_manifest.Console(base=p.region("uart0").base)]))


def test_read_manifest_of_the_platform(p: Platform) -> None:
    ns = p.region("ns_dram")
    info = _read(p, bytes(_image(p)))
    assert info.dram_banks == ((ns.base, ns.size),)  # type: ignore[attr-defined]
    assert info.console_base == p.region("uart0").base  # type: ignore[attr-defined]


@pytest.mark.parametrize("offset", [16, 24, 32, 64, 72])  # num, ptr, checksum, bank fields
def test_manifest_dram_checksum_mismatch(p: Platform, offset: int) -> None:
    image = _image(p)
    image[offset] ^= 0x10
    assert _manifest_error(p, bytes(image)) == MANIFEST_DATA_ERROR


def test_manifest_console_checksum_mismatch(p: Platform) -> None:
    image = _image(p)
    image[56] ^= 1  # plat_console.checksum
    assert _manifest_error(p, bytes(image)) == MANIFEST_DATA_ERROR


@pytest.mark.parametrize(
    "banks",
    [
        [(0x9000_0000, 1 << 20), (0x8000_0000, 1 << 20)],  # descending
        [(0x8000_0000, 2 << 20), (0x8010_0000, 1 << 20)],  # overlapping
        [(0x8000_0000, 1 << 20), (0x8000_0000, 1 << 20)],  # duplicate
        [(0x8000_0800, 1 << 20)],  # base not 4 KB aligned
        [(0x8000_0000, (1 << 20) + 8)],  # size not 4 KB aligned
        [(1 << 48, 1 << 20)],  # beyond the 48-bit PA range
    ],
)
def test_manifest_bad_banks(p: Platform, banks: list[tuple[int, int]]) -> None:
    assert _manifest_error(p, bytes(_image(p, banks))) == MANIFEST_DATA_ERROR


@pytest.mark.parametrize("version", [0x0001_0003, 0x0002_0000, 0x7FFF_0000])
def test_manifest_major_version_not_supported(p: Platform, version: int) -> None:
    image = _image(p)
    image[0:4] = version.to_bytes(4, "little")
    assert _manifest_error(p, bytes(image)) == MANIFEST_VERSION_NOT_SUPPORTED


def test_version_is_checked_before_the_banks(p: Platform) -> None:
    image = _image(p, [(0x9000_0000, 1 << 20), (0x8000_0000, 1 << 20)])
    image[0:4] = (0x0001_0003).to_bytes(4, "little")
    assert _manifest_error(p, bytes(image)) == MANIFEST_VERSION_NOT_SUPPORTED


def test_shared_buffer_outside_realm_pas_is_invalid(p: Platform) -> None:
    ns_page = p.region("ns_dram").base
    p.host.write(ns_page, bytes(_image(p)))
    with realm(p)._running() as pe, pytest.raises(BootError) as err:
        read_manifest(pe, ns_page)
    assert _status(err) == INVALID_SHARED_BUFFER
