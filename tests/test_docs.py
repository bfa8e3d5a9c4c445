"""Every ```python block of README.md and docs/*.md runs.

Each file's blocks run in order in one namespace per file, so a later block may use names from
an earlier one. A block right after a line ``<!-- no-test -->`` is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIP_MARK = "<!-- no-test -->"
_FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [f for f in files if f.is_file()]


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of each ```python block not marked ``<!-- no-test -->``."""
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(1).lower() not in ("python", "py", "python3"):
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if before.strip() == SKIP_MARK:
            continue
        line = text.count("\n", 0, match.start()) + 2
        blocks.append((line, match.group(2)))
    return blocks


def test_block_extraction() -> None:
    text = (
        "# t\n\n```python\nx = 1\n```\n\n<!-- no-test -->\n```python\nraise SystemExit\n```\n"
        "```bash\nls\n```\n```py\ny = x + 1\n```\n"
    )
    assert python_blocks(text) == [(4, "x = 1\n"), (15, "y = x + 1\n")]


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(path: Path) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    for line, code in python_blocks(path.read_text(encoding="utf-8")):
        compiled = compile(code, f"{path.name}:{line}", "exec")
        exec(compiled, namespace)
