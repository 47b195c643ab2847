"""Every code snippet in the documentation runs.

For each document (``docs/*.md`` and the README's "Driving the RMI from Python" section)
the fenced blocks run in order, in a fresh working directory, sharing one namespace:

* ```` ```python ```` blocks are executed;
* in ```` ```sh ```` / ```` ```console ```` blocks, every line that starts with ``ccasim``
  runs through typer's CliRunner and must exit 0 — or with the status an
  ``<!-- doctest: exit=N -->`` comment right before the block names; other lines
  (``pip install``, ``pytest``) are shown to the reader, not run;
* ``<!-- doctest: skip -->`` before a block leaves it out (none of the docs needs it).

Every ``src/ccasim/...`` path the reading guide names must exist.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ccasim.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
README = ROOT / "README.md"
README_SECTION = "## Driving the RMI from Python"

_BLOCK = re.compile(
    r"(?:^<!--\s*doctest:\s*(?P<opts>[^>]*?)\s*-->\n)?^```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)


@dataclass
class Block:
    lang: str
    code: str
    line: int
    exit: int = 0
    skip: bool = False


def blocks(text: str) -> list[Block]:
    out = []
    for m in _BLOCK.finditer(text):
        opts = (m["opts"] or "").split()
        block = Block(m["lang"], m["code"], text.count("\n", 0, m.start("code")) + 1)
        for opt in opts:
            if opt == "skip":
                block.skip = True
            elif opt.startswith("exit="):
                block.exit = int(opt.removeprefix("exit="))
            else:
                raise ValueError(f"line {block.line}: unknown doctest option {opt!r}")
        out.append(block)
    return out


def readme_section() -> str:
    text = README.read_text()
    start = text.index(README_SECTION)
    end = text.find("\n## ", start + len(README_SECTION))
    return text[start : end if end >= 0 else len(text)]


def run_blocks(name: str, text: str) -> int:
    """Run a document's blocks; returns how many ran."""
    runner = CliRunner()
    namespace: dict[str, object] = {"__name__": f"docs.{name}"}
    ran = 0
    for block in blocks(text):
        if block.skip:
            continue
        where = f"{name}:{block.line}"
        if block.lang == "python":
            exec(compile(block.code, where, "exec"), namespace)
            ran += 1
        elif block.lang in ("sh", "shell", "console", "bash"):
            for i, line in enumerate(block.code.splitlines()):
                line = line.strip().removeprefix("$ ")
                if not line.startswith("ccasim ") and line != "ccasim":
                    continue
                args = shlex.split(line, comments=True)[1:]
                result = runner.invoke(app, args)
                assert result.exit_code == block.exit, (
                    f"{where}+{i}: `{line}` exited {result.exit_code}, expected "
                    f"{block.exit}\n{result.output}")
                assert "Traceback" not in result.output, f"{where}+{i}: {result.output}"
                ran += 1
    return ran


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_doc_snippets_run(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ran = run_blocks(doc.name, doc.read_text())
    if doc.name.startswith("tutorial-"):
        assert ran > 0


def test_readme_rmi_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    section = readme_section()
    assert [b.lang for b in blocks(section)] == ["python"]
    assert run_blocks("README.md", section) == 1


def test_readme_links_every_doc() -> None:
    text = README.read_text()
    for doc in DOCS:
        assert f"docs/{doc.name}" in text, f"README does not link docs/{doc.name}"


def test_reading_guide_paths_exist() -> None:
    guide = (ROOT / "docs" / "reading-guide.md").read_text()
    paths = set(re.findall(r"`(src/ccasim/[\w/.]+)`", guide))
    assert len(paths) > 40
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"the reading guide names files that do not exist: {missing}"


def test_expected_docs_present() -> None:
    names = {d.name for d in DOCS}
    assert {"reading-guide.md", "tutorial-guest.md", "tutorial-host.md",
            "tutorial-attestation.md"} <= names
