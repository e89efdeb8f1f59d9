"""The Python examples of the README and the documentation run as written, and print what
their comments say; the documentation site builds with warnings as errors."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
EXAMPLES = [
    pytest.param(code, id=f"{page.relative_to(ROOT)}:{i + 1}")
    for page in PAGES
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
]


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


@pytest.mark.parametrize("code", EXAMPLES)
def test_example(code: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Run as a script; an example on Redis gets a real server's URL in PROCSHARE_URL."""
    script = tmp_path / "example.py"
    script.write_text(code)
    env = dict(os.environ)
    if "PROCSHARE_URL" in code:
        env["PROCSHARE_URL"] = request.getfixturevalue("redis_server")
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, check=False, env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr
    promised = expected_output(code)
    assert promised, "an example should say what it prints"
    lines = run.stdout.splitlines()
    for text, whole_line in promised:
        assert (text in lines) if whole_line else (text in run.stdout), (
            f"{text!r} not in the output:\n{run.stdout}"
        )


def test_every_page_has_examples() -> None:
    for page in PAGES:
        shown = page.read_text()
        if page.parent.name == "guides" or page.name in ("README.md", "index.md"):
            assert "```python" in shown, f"{page.name} shows no example"


def test_the_docs_build_strictly(tmp_path: Path) -> None:
    """mkdocs build --strict: every link, every page in the nav, every included README
    section and every API reference entry resolves."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, check=False, env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "site" / "reference" / "index.html").exists()
