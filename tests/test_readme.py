"""The README's Python examples run as written, and print what their comments say."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def expected_output(code: str) -> list[tuple[str, bool]]:
    """What each commented print promises, and whether it is a whole line: a comment that
    is a Python literal is the line printed; else its start, up to a , ; or :, is in it."""
    promised = []
    for comment in re.findall(r"^\s*print\(.*\)\s*#\s*(.+)$", code, re.M):
        try:
            ast.literal_eval(comment)
        except (ValueError, SyntaxError):
            promised.append((re.split(r"[,;:]", comment, maxsplit=1)[0].strip(), False))
        else:
            promised.append((comment.strip(), True))
    return promised


@pytest.mark.parametrize("code", EXAMPLES, ids=[f"example{i + 1}" for i in range(len(EXAMPLES))])
def test_readme_example(code: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(code)
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    promised = expected_output(code)
    assert promised, "an example should say what it prints"
    lines = run.stdout.splitlines()
    for text, whole_line in promised:
        assert (text in lines) if whole_line else (text in run.stdout), (
            f"{text!r} not in the output:\n{run.stdout}"
        )


def test_the_readme_has_its_examples() -> None:
    assert len(EXAMPLES) >= 4
