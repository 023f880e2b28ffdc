"""Writing model folders safely: never over a user's model without being told, never half-written."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from training.errors import OutputExists


def refuse_overwrite(out: Path, force: bool, what: str = "") -> None:
    """Raise OutputExists if `out` holds anything and `force` is not set."""
    if out.exists() and (out.is_file() or any(out.iterdir())) and not force:
        raise OutputExists(f"{out} already exists{what}. Pass --force to replace it, or choose another output folder.")


@contextmanager
def publish_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder to write into; on success it replaces `out` in one rename,
    so a crash midway never leaves a half-written folder under the real name."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    yield tmp
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
