"""Build the Cython kernels in ``native/``; everything else is declared in pyproject.toml.

A machine without a C compiler still installs: the kernels are skipped and the pure-Python twins
serve (``native.kernel`` falls back to them).
"""

from __future__ import annotations

import glob
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build kernels, but let the install succeed without them unless FLEET_REQUIRE_NATIVE=1."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - compiler missing or broken
            if os.environ.get("FLEET_REQUIRE_NATIVE") == "1":
                raise
            print(f"warning: Cython kernels not built ({exc}); pure-Python twins will be used")


def _extensions() -> list:
    # scripts/bootstrap.sh builds the kernels in place once (build_ext --inplace); the editable
    # install before it need not compile them a first time in pip's isolated build environment.
    if os.environ.get("FLEET_SKIP_NATIVE") == "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    sources = sorted(glob.glob("native/_*.pyx"))
    extensions = cythonize(sources, compiler_directives={"language_level": "3"}, quiet=True)
    for ext in extensions:
        # No fused multiply-add contraction: the compiled kernels must give the same bits as their
        # pure-Python twins (tests compare them exactly), which gcc on AArch64 would otherwise break.
        ext.extra_compile_args = [*ext.extra_compile_args, "-ffp-contract=off"]
    return extensions


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
