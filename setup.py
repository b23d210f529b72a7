"""Builds ember's optional compiled kernels, ``ember.ops._native`` (see src/ember/ops/native.py)
from the C sources in src/ember/ops/csrc/.

Everything else about the package is in pyproject.toml. The extension is optional: without a C
compiler (or with one that rejects these flags) the build skips it and ember runs its plain
NumPy kernels. It is compiled for the machine that builds it (``-march=native``), which is the
machine that runs it for a source install; set ``EMBER_NATIVE_CFLAGS`` to replace the flags.
"""

import glob
import os
import shlex

from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-add, so the kernels round like their NumPy twins.
# -fno-math-errno -fopenmp-simd: lets GCC call glibc's vectorized exp/tanh (libmvec).
CFLAGS = ["-O3", "-march=native", "-fno-math-errno", "-ffp-contract=off", "-fopenmp-simd"]
if os.environ.get("EMBER_NATIVE_CFLAGS"):
    CFLAGS = shlex.split(os.environ["EMBER_NATIVE_CFLAGS"])

# NumPy's headers let the kernels read array arguments directly (helpers.c); without them
# (NumPy not importable at build time) the extension reads them through the buffer protocol.
try:
    import numpy

    NUMPY = dict(include_dirs=[numpy.get_include()], define_macros=[("EMBER_HAVE_NUMPY", "1")])
except ImportError:  # pragma: no cover - pyproject.toml lists numpy as a build requirement
    NUMPY = {}

setup(ext_modules=[Extension(
    "ember.ops._native", sources=sorted(glob.glob("src/ember/ops/csrc/*.c")),
    depends=["src/ember/ops/csrc/native.h", "src/ember/ops/csrc/simd.h"],
    extra_compile_args=CFLAGS,
    extra_link_args=["-lm", "-lpthread"], optional=True, **NUMPY)])
