"""Fixtures for fault injection: a tiny filesystem that fills up."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture
def small_fs(tmp_path) -> Iterator[Callable[[int], Path]]:
    """`small_fs(kib)` mounts a tmpfs of `kib` KiB and returns its folder; unmounted after the test.
    Skips, saying why, where the test cannot mount one (not root, or no mount permission in a container)."""
    mounted: list[Path] = []

    def make(kib: int) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs to fill needs root; run as root to test a full disk")
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(where)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); a full disk is not tested")
        mounted.append(where)
        return where

    yield make
    for m in mounted:
        subprocess.run(["umount", "-l", str(m)], check=False)
