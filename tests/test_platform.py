"""The assembled platform: memory map, GPT at boot, configuration, sparse DRAM, the PL011
and the ``ccasim info`` command (DESIGN.md harness contract, README memory map)."""

from __future__ import annotations

import itertools
import json

import pytest
from typer.testing import CliRunner

from ccasim import (
    ConfigError,
    GranuleProtectionFault,
    Platform,
    PlatformConfig,
    SecurityState,
)
from ccasim.arch.memory import RegionKind
from ccasim.arch.security import PhysicalAddressSpace as Pas
from ccasim.cli.main import app
from rme_helpers import (
    E_RMM_OK,
    GPI_REALM,
    GPI_ROOT,
    PAS_GPI,
    RMM_GTSI_DELEGATE,
    GiB,
    MiB,
    bits,
    realm,
)

TiB = 1 << 40


@pytest.fixture
def p() -> Platform:
    return Platform()


# ------------------------------------------------------------------------------ memory map


def test_default_memory_map(p: Platform) -> None:
    names = {r.name for r in p.regions()}
    assert names == {"secure_dram", "uart0", "root", "rmm", "ns_dram"}
    ns = p.region("ns_dram")
    assert ns.base == 0x8000_0000 and ns.size >= 2 * GiB
    assert p.pa_bits == 48
    assert p.region("uart0").kind is RegionKind.MMIO
    assert {r.name: r.pas for r in p.regions()} == {
        "secure_dram": Pas.SECURE, "uart0": Pas.NON_SECURE, "root": Pas.ROOT,
        "rmm": Pas.REALM, "ns_dram": Pas.NON_SECURE}
    for r in p.regions():
        assert r.base % 4096 == 0 and r.size % 4096 == 0 and r.size > 0
    for a, b in itertools.combinations(p.regions(), 2):
        assert a.end <= b.base or b.end <= a.base, (a.name, b.name)
    assert p.region("rmm").end <= ns.base


CONFIGS = {
    "default": PlatformConfig(),
    "1 cpu, 16 MiB": PlatformConfig(cpus=1, dram_size=16 * MiB),
    "16 GiB L0GPTSZ": PlatformConfig(l0gptsz=34, dram_size=6 * GiB),
    "512 GiB L0GPTSZ": PlatformConfig(l0gptsz=39),
    "40-bit PA": PlatformConfig(pa_bits=40, dram_size=62 * GiB),
    "1 TiB": PlatformConfig(dram_size=TiB, cpus=2),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gpt_summary_matches_the_boot_pas(name: str) -> None:
    p = Platform(CONFIGS[name])
    summary = p.el3.gpt_summary()
    assert [r.name for r, _ in summary] == [r.name for r in p.regions()]
    for region, counts in summary:
        assert counts == {PAS_GPI[region.pas]: region.size // 4096}, region.name


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gpt_registers_as_tf_a_programs_them(name: str) -> None:
    config = CONFIGS[name]
    p = Platform(config)
    top = p.region("ns_dram").end
    pps = {0: 32, 1: 36, 2: 40, 3: 42, 4: 44, 5: 48, 6: 52}
    for cpu in range(config.cpus):
        gpccr = p.el3.sysreg("GPCCR_EL3", cpu)
        assert bits(gpccr, 16, 16) == 1  # GPC enabled
        assert bits(gpccr, 13, 12) == 0b11  # inner shareable
        assert bits(gpccr, 9, 8) == bits(gpccr, 11, 10) == 0b01  # WB-RA-WA
        assert bits(gpccr, 15, 14) == 0b00  # 4 KB granules
        assert {0: 30, 4: 34, 6: 36, 9: 39}[bits(gpccr, 23, 20)] == config.l0gptsz
        t = pps[bits(gpccr, 2, 0)]
        smaller = [b for b in pps.values() if b < t]
        assert top <= 1 << t and (not smaller or top > 1 << max(smaller))  # smallest PPS
        assert t <= p.pa_bits
        assert p.el3.sysreg("GPTBR_EL3", cpu) == p.el3.sysreg("GPTBR_EL3", 0)
    l0 = bits(p.el3.sysreg("GPTBR_EL3"), 39, 0) << 12
    root = p.region("root")
    assert root.contains(l0)
    assert p.el3.gpi(l0) == GPI_ROOT  # the tables live in Root memory


@pytest.mark.parametrize("l0gptsz", [30, 34, 36, 39])
def test_l0gptsz_is_read_only(l0gptsz: int) -> None:
    p = Platform(PlatformConfig(l0gptsz=l0gptsz, cpus=1))
    field = {30: 0, 34: 4, 36: 6, 39: 9}[l0gptsz]
    with p.cpus[0].probe(SecurityState.ROOT)._running() as pe:
        for attempt in (0, 4, 6, 9, 0xF):
            pe.write_sysreg("GPCCR_EL3", pe.read_sysreg("GPCCR_EL3") & ~(0xF << 20) | attempt << 20)
            assert bits(pe.read_sysreg("GPCCR_EL3"), 23, 20) == field
    p.host.read(p.region("ns_dram").base, 8)  # the GPT still walks with the fixed L0GPTSZ


def test_gpt_is_not_reachable_from_lower_worlds(p: Platform) -> None:
    l0 = bits(p.el3.sysreg("GPTBR_EL3"), 39, 0) << 12
    for state, pas in ((SecurityState.NON_SECURE, Pas.NON_SECURE),
                       (SecurityState.REALM, Pas.REALM), (SecurityState.SECURE, Pas.SECURE)):
        with pytest.raises(GranuleProtectionFault):
            p.cpus[0].probe(state).write(l0, b"\0" * 8, pas)


# ------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pa_bits": 47},
        {"pa_bits": 0},
        {"dram_size": 15 * MiB},
        {"dram_size": 17 * MiB},
        {"dram_size": 0},
        {"cpus": 0},
        {"cpus": 257},
        {"l0gptsz": 31},
        {"secure_dram_size": 1 * MiB},
        {"secure_dram_size": 512 * MiB},  # runs into the UART
        {"rmm_size": 3 * MiB},
        {"token_format": "cbor"},
        {"pa_bits": 32, "dram_size": 4 * GiB},  # memory map beyond the PA range
        {"dram_size": 200 * TiB},  # the GPT would not fit in the Root region
    ],
)
def test_config_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PlatformConfig(**kwargs)  # type: ignore[arg-type]
    assert issubclass(ConfigError, ValueError)


def test_largest_map_that_fits_32_bit_pa() -> None:
    p = Platform(PlatformConfig(pa_bits=32, dram_size=2 * GiB, cpus=1))
    assert p.region("ns_dram").end == 1 << 32
    assert p.el3.rmm_boot_status == 0


# ------------------------------------------------------------------------------ sparse memory


def test_one_tib_platform_is_sparse() -> None:
    p = Platform(PlatformConfig(dram_size=TiB, cpus=2))
    ns = p.region("ns_dram")
    assert ns.size == TiB
    for pa in (ns.base, ns.base + TiB // 2 + 0x1234_0000, ns.end - 4096):
        assert p.host.read(pa, 64) == bytes(64)
    p.host.write(ns.end - 1, b"\x5a")
    assert p.host.read(ns.end - 2, 2) == b"\x00\x5a"
    assert p.cpus[1].host.read(ns.end - 1, 1) == b"\x5a"
    # A transition at the far end needs an L1 table there; the GPT has room for it.
    g = ns.end - 4096
    assert realm(p).smc(RMM_GTSI_DELEGATE, g)[0] == E_RMM_OK
    assert p.el3.gpi(g) == GPI_REALM
    with pytest.raises(GranuleProtectionFault):
        p.host.read(ns.end - 1, 1)
    assert realm(p).read(ns.end - 1, 1, Pas.REALM) == b"\x5a"


def test_zeroing_memory_reads_back_zero(p: Platform) -> None:
    pa = p.region("ns_dram").base + 3 * 4096 + 100
    p.host.write(pa, b"\xff" * 10_000)
    p.memory.zero(pa + 10, 9_000)
    data = p.host.read(pa, 10_000)
    assert data == b"\xff" * 10 + bytes(9_000) + b"\xff" * 990


# ------------------------------------------------------------------------------ PL011

UARTDR, UARTFR = 0x000, 0x018
FR_RXFE, FR_TXFF, FR_TXFE = 1 << 4, 1 << 5, 1 << 7


def test_pl011_output_through_host_writes(p: Platform) -> None:
    base = p.region("uart0").base
    for ch in b"hello, realm\n":
        fr = int.from_bytes(p.host.read(base + UARTFR, 4), "little")
        assert not fr & FR_TXFF and fr & FR_TXFE
        p.host.write(base + UARTDR, bytes([ch]))
    p.host.write(base + UARTDR, (0x4321).to_bytes(4, "little"))  # only the low byte is data
    assert bytes(p.uart.output) == b"hello, realm\n!"


def test_pl011_input_and_flags(p: Platform) -> None:
    base = p.region("uart0").base
    assert int.from_bytes(p.host.read(base + UARTFR, 4), "little") & FR_RXFE
    p.uart.feed(b"ok")
    assert not int.from_bytes(p.host.read(base + UARTFR, 4), "little") & FR_RXFE
    assert p.host.read(base + UARTDR, 4) == b"o\0\0\0"
    assert p.host.read(base + UARTDR, 1) == b"k"
    assert int.from_bytes(p.host.read(base + UARTFR, 4), "little") & FR_RXFE


def test_pl011_identification_registers(p: Platform) -> None:
    base = p.region("uart0").base
    ids = [p.host.read(base + off, 4)[0] for off in range(0xFE0, 0x1000, 4)]
    periph = sum(b << (8 * i) for i, b in enumerate(ids[:4]))
    cell = sum(b << (8 * i) for i, b in enumerate(ids[4:]))
    assert periph & 0xFFF == 0x011  # part number: PL011
    assert (periph >> 12) & 0xFF == 0x41  # designer: Arm
    assert cell == 0xB105_F00D  # PrimeCell identification


def test_uart_is_a_non_secure_device(p: Platform) -> None:
    base = p.region("uart0").base
    sec = p.cpus[0].probe(SecurityState.SECURE)
    with pytest.raises(GranuleProtectionFault):
        sec.write(base, b"s", Pas.SECURE)
    sec.write(base, b"s", Pas.NON_SECURE)
    realm(p).write(base, b"r", Pas.NON_SECURE)
    assert bytes(p.uart.output) == b"sr"


# ------------------------------------------------------------------------------ CLI

runner = CliRunner()


def test_cli_info() -> None:
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    for name in ("secure_dram", "uart0", "root", "rmm", "ns_dram", "GPCCR_EL3"):
        assert name in result.output


def test_cli_info_json() -> None:
    result = runner.invoke(app, ["info", "--json", "--cpus", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    p = Platform(PlatformConfig(cpus=2))
    assert data["cpus"] == 2 and data["pa_bits"] == 48
    assert data["rmm_boot_status"] == 0
    assert data["gpt"]["GPCCR_EL3"] == p.el3.sysreg("GPCCR_EL3")
    assert data["gpt"]["GPTBR_EL3"] == p.el3.sysreg("GPTBR_EL3")
    regions = {r["name"]: r for r in data["regions"]}
    assert set(regions) == {r.name for r in p.regions()}
    for r in p.regions():
        entry = regions[r.name]
        assert (entry["base"], entry["size"], entry["pas"]) == (r.base, r.size, r.pas.name)
        assert sum(entry["gpi_granules"].values()) == r.size // 4096
    assert regions["ns_dram"]["gpi_granules"] == {"NON_SECURE": 2 * GiB // 4096}
    assert regions["rmm"]["gpi_granules"] == {"REALM": p.region("rmm").size // 4096}


def test_cli_info_json_with_a_large_dram() -> None:
    result = runner.invoke(app, ["info", "--json", "--dram", "1T", "--cpus", "1"])
    assert result.exit_code == 0, result.output
    regions = {r["name"]: r for r in json.loads(result.stdout)["regions"]}
    assert regions["ns_dram"]["size"] == TiB


@pytest.mark.parametrize(
    "args",
    [["--dram", "banana"], ["--dram", "1M"], ["--dram", "3M"], ["--dram", ""],
     ["--pa-bits", "47"], ["--cpus", "0"], ["--dram", "300T"]],
)
def test_cli_bad_arguments_fail_cleanly(args: list[str]) -> None:
    result = runner.invoke(app, ["info", *args])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
