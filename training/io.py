"""Never over a user's model or run without being told: `refuse_overwrite`. (Writing atomically is
`rag.io`'s: `atomic_write`, `publish_dir`, `publish_file`.)"""

from __future__ import annotations

from pathlib import Path

from training.errors import OutputExists


def refuse_overwrite(out: Path, force: bool, what: str = "") -> None:
    """Raise OutputExists if `out` holds anything and `force` is not set."""
    if out.exists() and (out.is_file() or any(out.iterdir())) and not force:
        raise OutputExists(f"{out} already exists{what}. Pass --force to replace it, or choose another output folder.")
