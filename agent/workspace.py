"""Where each stage keeps its files inside a workspace folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Workspace:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    @property
    def tiny_base(self) -> Path:
        return self.root / "base" / "tiny"

    @property
    def train_file(self) -> Path:
        return self.root / "data" / "sft" / "train.jsonl"

    @property
    def test_file(self) -> Path:
        return self.root / "data" / "sft" / "test.jsonl"

    @property
    def run_dir(self) -> Path:
        return self.root / "runs" / "sft"

    @property
    def merged_model(self) -> Path:
        return self.root / "models" / "merged"

    @property
    def has_index(self) -> bool:
        return (self.root / "chroma").is_dir()
