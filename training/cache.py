"""Where Onboard keeps downloaded and converted models, and how it fingerprints files there.

Its own module because both sides of model loading need it: `training/base_model.py` fingerprints
model folders (`weights_sha256`) and `training/gguf.py` keys GGUF conversions by content. With these
helpers in either of the two, each imported the other; here they depend on nothing but the standard
library.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20


def models_cache() -> Path:
    """Where downloaded and converted models live: `$ONBOARD_CACHE`, else `~/.cache/onboard/models`."""
    env = os.environ.get("ONBOARD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "onboard" / "models"


def sha256_file(path: Path, progress=None) -> str:
    """sha256 of a file; `progress(n)` (e.g. a tqdm bar's update) is called with each chunk's size."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            if progress:
                progress(len(chunk))
    return h.hexdigest()


_hash_memo: dict[tuple[str, int, int], str] = {}


def content_hash(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for the life of the process: one run
    resolves the same 500 MB GGUF for the tokenizer and again for the model, and should hash it once."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_memo:
        _hash_memo[key] = sha256_file(path)
    return _hash_memo[key]
