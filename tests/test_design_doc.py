"""DESIGN.md stays true to the tree: the files it names exist, and its layers are the contract's."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "DESIGN.md"
LAYERS_MARK = "<!-- layers:"
# a path in the tree, in backticks or in the diagram: drill/run/monitor.py, drill/evidence/ ...
_PATH = re.compile(
    r"(?<![\w./-])((?:drill|schemas|tests|playbooks|benchmarks)/[A-Za-z0-9_./-]*[A-Za-z0-9_/])"
)


def design() -> str:
    return DESIGN.read_text(encoding="utf-8")


def stated_layers(text: str) -> list[set[str]]:
    """The fenced block after the layers mark: one layer per line, top first, siblings split by |."""
    after = text[text.index(LAYERS_MARK) :]
    block = after[after.index("```") :].split("\n", 1)[1]
    body = block[: block.index("```")]
    return [{name.strip() for name in line.split("|")} for line in body.splitlines() if line.strip()]


def contract_layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [
        {name.strip().removeprefix("drill.") for name in layer.split("|")} for layer in contract["layers"]
    ]


def test_design_doc_is_in_the_repository_and_short() -> None:
    assert DESIGN.is_file()
    text = design()
    assert text.startswith("# drill: design\n")
    assert len(text.splitlines()) <= 250


def test_the_sections_the_readme_cites_are_there() -> None:
    headings = re.findall(r"^## (\d+)\. (.+)$", design(), flags=re.MULTILINE)
    assert [n for n, _title in headings] == [str(i) for i in range(1, len(headings) + 1)]
    titles = dict(headings)
    assert titles["2"].startswith("Words and timing semantics")  # README: "drill follows DESIGN.md §2"
    assert "Not built yet" in titles.values()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for cited in re.findall(r"DESIGN\.md` §(\d+)", readme):
        assert cited in titles, f"README cites DESIGN.md §{cited}, which does not exist"


def test_every_path_the_design_names_exists() -> None:
    named = {p for p in _PATH.findall(design()) if "<" not in p and "*" not in p}
    assert len([p for p in named if p.startswith("drill/")]) >= 30
    missing = sorted(
        p for p in named if not (ROOT / p).exists() or (p.endswith("/") and not (ROOT / p).is_dir())
    )
    assert missing == []


def test_every_module_in_the_layout_table_exists() -> None:
    """Table rows list a folder, then its files: `drill/run/` | `scheduler.py`, `monitor.py` ..."""
    missing = []
    for row in re.findall(r"^\| `(drill/[a-z_/]+/)` \| (.+) \|$", design(), flags=re.MULTILINE):
        folder, files = row
        for name in re.findall(r"`([a-z_]+\.py)`", files):
            if not (ROOT / folder / name).is_file():
                missing.append(folder + name)
    assert missing == []


def test_the_stated_layer_order_is_the_import_linter_contract() -> None:
    stated = stated_layers(design())
    assert stated == contract_layers()
    for layer in stated:  # and each name is a real module or package
        for name in layer:
            assert (ROOT / "drill" / f"{name}.py").is_file() or (ROOT / "drill" / name).is_dir(), name


def test_the_layer_parser_reads_a_changed_order_as_different() -> None:
    text = design()
    swapped = text.replace("\nresults\nplan\n", "\nplan\nresults\n", 1)
    assert swapped != text
    assert stated_layers(swapped) != contract_layers()
