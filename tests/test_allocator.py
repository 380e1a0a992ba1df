"""hpbench.allocator: freed large blocks stay with the process (glibc only), checked by resident memory."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import sys
from hpbench.allocator import keep_freed_memory
def resident_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
block = bytearray(200 * 2**20)  # zero-filled: every page touched
held = resident_mb()
del block
print(applied, held - resident_mb())
"""


def _freed_mb(mode: str, **env: str) -> tuple[str, float]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env=environment).stdout
    applied, released = out.split()
    return applied, float(released)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt; other allocators are left alone")
def test_a_freed_large_block_is_kept_only_when_asked():
    applied, kept_released = _freed_mb("keep")
    assert applied == "True"
    assert kept_released < 20  # the 200 MB stay in the heap for the next step
    _, default_released = _freed_mb("default")
    assert default_released > 180  # glibc's default: a mmapped block, returned at free


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt; other allocators are left alone")
def test_glibc_settings_in_the_environment_win():
    applied, released = _freed_mb("keep", MALLOC_TRIM_THRESHOLD_="131072")  # glibc's default trim, said by the user
    assert applied == "False"
    assert released > 180  # left as the environment configured it: the block went back at free
