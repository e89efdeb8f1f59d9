"""Damaged segments of every kind raise clean exceptions: never a crash, never a hang."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from typing import Any

import pytest

import damage

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = range(24)


def run_cases(kind: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    prefix = f"dmg-{uuid.uuid4().hex[:8]}"
    names = damage.prepare(kind, prefix, SEEDS)
    try:
        return subprocess.run(
            [sys.executable, os.path.join(TESTS, "damage.py"), kind, *names],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip
    finally:
        for name in names:
            for path in damage.files(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)


@pytest.mark.parametrize("kind", sorted(damage.KINDS))
def test_damaged_segments_fail_cleanly(kind: str) -> None:
    r = run_cases(kind)
    last = [line for line in r.stdout.splitlines() if line.startswith("case")][-1:]
    assert r.returncode == 0 and r.stdout.endswith("done\n"), (
        f"exit {r.returncode} after {last}:\n{r.stderr[-3000:]}"
    )


def _sanitizer_build(tmp: str) -> dict[str, str]:
    """Build procshare._core with AddressSanitizer and UBSan into a copy of the package;
    the environment that runs the fuzzer on it."""
    root = os.path.dirname(TESTS)
    lib = subprocess.run(
        ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not os.path.isabs(lib):
        pytest.skip("gcc has no AddressSanitizer runtime here")
    shutil.copytree(os.path.join(root, "src"), os.path.join(tmp, "src"))
    for file in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(root, file), tmp)
    flags = "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    build = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace", "-q"],
        cwd=tmp, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "CFLAGS": flags},
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    return {
        **os.environ,
        "PYTHONPATH": os.path.join(tmp, "src"),
        "LD_PRELOAD": lib,
        "ASAN_OPTIONS": "detect_leaks=0",
    }


def test_damaged_segments_under_sanitizers(tmp_path: Any) -> None:
    """The same cases with the core built with AddressSanitizer and UBSan: an
    out-of-bounds read that happens not to crash fails here."""
    env = _sanitizer_build(str(tmp_path))
    failed = []
    for kind in sorted(damage.KINDS):
        r = run_cases(kind, env)
        if r.returncode != 0 or not r.stdout.endswith("done\n"):
            failed.append(f"{kind}: exit {r.returncode}\n{r.stderr[-2000:]}")
    assert not failed, "\n".join(failed)
