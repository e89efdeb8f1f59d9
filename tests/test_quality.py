"""The code itself: ruff lint and format, mypy --strict over the package, the native core's
stub against the built module (stubtest), and clang-format over the C core."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NATIVE = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src/procshare/_native").glob("*.[ch]"))

CHECKS = {
    "ruff-check": [sys.executable, "-m", "ruff", "check", "src", "tests"],
    "ruff-format": [sys.executable, "-m", "ruff", "format", "--check", "src", "tests"],
    "mypy": [sys.executable, "-m", "mypy"],
    "stubtest": [sys.executable, "-m", "mypy.stubtest", "procshare._core",
                 "--allowlist", "tests/stubtest-allowlist.txt"],
    "clang-format": ["clang-format", "--dry-run", "--Werror", *NATIVE],
}  # fmt: skip


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_tool_passes(check: str) -> None:
    command = CHECKS[check]
    module = command[2].split(".")[0] if command[0] == sys.executable else None
    if (importlib.util.find_spec(module) if module else shutil.which(command[0])) is None:
        pytest.skip(f"{module or command[0]} is not installed (pip install -e '.[test]')")
    r = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
