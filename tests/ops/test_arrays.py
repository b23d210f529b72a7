"""Array utilities: the allocator tuning is applied on Linux and can be switched off."""

import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_tune_allocator_applies_and_can_be_disabled():
    code = "import ember.ops.arrays as a; print(a.tune_allocator())"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"EMBER_MALLOC_TUNING": "0", "PATH": ""})
    assert on.stdout.strip() == "True"
    assert off.stdout.strip() == "False"
