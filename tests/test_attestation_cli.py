"""``ccasim verify``: exit codes, JSON output, reference files, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ccasim.cli.main import app

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "attestation"
TFM = DATA / "tf-m-iat-verifier" / "head-08c16e9"
CPAK = TFM / "cca_platform.pub.pem"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="shared/data/attestation is absent")

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["verify", *args])
    return result.exit_code, result.stdout, result.stderr


def test_affirming_exit_0() -> None:
    code, out, _ = _run(str(DATA / "minted" / "t10.cbor"), "--cpak", str(CPAK))
    assert code == 0, out
    assert "AFFIRMING" in out and "cca-realm-binding" in out


def test_json_output() -> None:
    code, out, _ = _run(str(DATA / "minted" / "t20.cbor"), "--cpak", str(CPAK), "--json")
    assert code == 0
    ear = json.loads(out)
    assert ear["ccasim.status"] == "affirming"
    assert ear["ccasim.token-format"] == "cmw"
    realm = ear["submods"]["CCA_REALM"]["ear.veraison.annotated-evidence"]
    assert realm["cca-realm-profile"] == "tag:arm.com,2024:realm#2.0.0"


@pytest.mark.parametrize("token", ["t10_badbind.cbor", "t10_badrealm.cbor", "t10_badplat.cbor"])
def test_contraindicated_exit_1(token: str) -> None:
    code, out, _ = _run(str(DATA / "minted" / token), "--cpak", str(CPAK), "--json")
    assert code == 1
    assert json.loads(out)["ccasim.status"] == "contraindicated"


def test_unwrapped_907_exit_1() -> None:
    code, out, _ = _run(str(DATA / "veraison-ccatoken" / "testBadUnwrappedTokens.cbor"),
                        "--json")
    assert code == 1
    (finding,) = [f for f in json.loads(out)["ccasim.findings"] if f["claim"] == "cca-token"]
    assert finding["status"] == "contraindicated" and "[263, bstr]" in finding["detail"]


def test_no_cpak_is_a_warning_exit_3() -> None:
    code, out, _ = _run(str(DATA / "minted" / "t10.cbor"))
    assert code == 3
    assert "unverified" in out


def test_jwk_cpak() -> None:
    code, _, _ = _run(str(DATA / "rust-ccatoken" / "cca-token-01.cbor"), "--cpak",
                      str(DATA / "rust-ccatoken" / "cpak.json"))
    assert code == 0


def test_reference_files(tmp_path: Path) -> None:
    token = DATA / "tf-m-iat-verifier" / "head-08c16e9" / "cca_example_token.cbor"
    code, out, _ = _run(str(token), "--cpak", str(CPAK), "--json")
    assert code == 0
    realm = json.loads(out)["submods"]["CCA_REALM"]["ear.veraison.annotated-evidence"]
    good = tmp_path / "good.toml"
    good.write_text(f'[realm]\nrim = "{realm["cca-realm-initial-measurement"]}"\n'
                    'hash_algo = "sha-256"\n[platform]\nlifecycles = ["secured"]\n')
    assert _run(str(token), "--cpak", str(CPAK), "--reference", str(good))[0] == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"realm": {"rim": "00" * 32}}))
    code, out, _ = _run(str(token), "--cpak", str(CPAK), "--reference", str(bad), "--json")
    assert code == 1
    problems = {f["claim"] for f in json.loads(out)["ccasim.findings"]
                if f["status"] == "contraindicated"}
    assert problems == {"cca-realm-initial-measurement"}


@pytest.mark.parametrize("case", ["missing-token", "missing-cpak", "missing-ref", "bad-ref",
                                  "unparseable-ref"])
def test_usage_errors_exit_2(tmp_path: Path, case: str) -> None:
    token = str(DATA / "minted" / "t10.cbor")
    bad_ref = tmp_path / "ref.json"
    bad_ref.write_text(json.dumps({"realm": {"nope": 1}}))
    junk = tmp_path / "ref.toml"
    junk.write_text("this is = = not toml")
    args = {
        "missing-token": [str(tmp_path / "absent.cbor")],
        "missing-cpak": [token, "--cpak", str(tmp_path / "absent.pem")],
        "missing-ref": [token, "--reference", str(tmp_path / "absent.json")],
        "bad-ref": [token, "--reference", str(bad_ref)],
        "unparseable-ref": [token, "--reference", str(junk)],
    }[case]
    result = runner.invoke(app, ["verify", *args])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.output


def test_help_lists_both_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "verify" in result.stdout and "info" in result.stdout
