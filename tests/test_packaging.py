"""The package as a package index shows it: licence, metadata, extras and the README.

The real build (``python -m build``, ``twine check``, the wheel installed alone in a fresh venv)
is a step of ``.ci/run``; these checks are the fast part, run with the suite.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parent.parent
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def pyproject() -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def index_readme() -> str:
    """README.md as the package index gets it: the build hook's substitutions applied in order."""
    hook = pyproject()["tool"]["hatch"]["metadata"]["hooks"]["fancy-pypi-readme"]
    [fragment] = hook["fragments"]
    text = (ROOT / fragment["path"]).read_text(encoding="utf-8")
    for sub in hook["substitutions"]:
        text = re.sub(sub["pattern"], sub["replacement"], text)
    return text


def setup_commands(text: str) -> list[str]:
    block = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert block is not None
    assert text.index(block.group(0)) < text.index("\n## ")  # at the top
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]


def test_license() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert "smtpmock developers" in text
    project = pyproject()["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]


def test_metadata_an_index_shows() -> None:
    project = pyproject()["project"]
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(project["urls"])
    assert len(project["keywords"]) >= 5
    versions = {c.rsplit(" :: ", 1)[1] for c in project["classifiers"] if ":: Python :: 3." in c}
    assert versions == {"3.10", "3.11", "3.12", "3.13"}
    assert project["requires-python"] == ">=3.10"


def test_no_empty_extras() -> None:
    project = pyproject()["project"]
    core = {_name(r) for r in project["dependencies"]}
    for extra, requirements in project["optional-dependencies"].items():
        own = {_name(r) for r in requirements} - core
        assert own, f"extra {extra!r} installs nothing that smtpmock does not already need"
        assert not ({_name(r) for r in requirements} & core), f"{extra!r} repeats a core dependency"
    assert {"build", "twine"} <= {_name(r) for r in project["optional-dependencies"]["dev"]}


def test_readme_starts_with_exactly_two_setup_commands() -> None:
    run, test = setup_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert run == "python -m pip install '.[server]' && python -m smtpmock serve"
    assert test == "python -m pip install -e '.[test,server]' && python -m pytest -n 2"
    assert test in (ROOT / ".ci" / "run").read_text(encoding="utf-8")  # CI runs that very line


def test_readme_links_work_in_a_checkout() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    relative = [t for t in _LINK.findall(text) if not t.startswith(("http://", "https://", "#"))]
    assert relative  # the docs list, the screenshots
    for target in relative:
        assert (ROOT / target.split("#", 1)[0]).is_file(), target


def test_readme_on_the_index_installs_from_it_and_has_absolute_links() -> None:
    text = index_readme()
    run, test = setup_commands(text)
    assert run == "python -m pip install 'smtpmock[server]' && python -m smtpmock serve"
    assert test.endswith("python -m pytest -n 2")
    assert "in a checkout" in text.split("\n## ", 1)[0]  # the test command says where it works
    targets = _LINK.findall(text)
    assert "docs/tls-auth.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    for target in targets:
        assert target.startswith("https://"), target
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images
    assert all(i.startswith("https://raw.githubusercontent.com/") for i in images)
    home = pyproject()["project"]["urls"]["Source"]
    for target in targets:
        if "raw.githubusercontent.com" not in target and "MagicStack" not in target:
            assert target.startswith(home), target
