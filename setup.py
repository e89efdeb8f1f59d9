"""Build the native core, procshare._core, as C11 with warnings as errors."""

from pathlib import Path

from setuptools import Extension, setup

NATIVE = Path("src/procshare/_native")

setup(
    ext_modules=[
        Extension(
            "procshare._core",
            sources=sorted(str(p) for p in NATIVE.glob("*.c")),
            depends=sorted(str(p) for p in NATIVE.glob("*.h")),
            extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2"],
        )
    ]
)
