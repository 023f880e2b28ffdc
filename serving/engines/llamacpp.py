"""llama.cpp for CPUs: `onboard serve` on a GGUF file (what `onboard export --format gguf` writes) starts
llama-cpp-python's OpenAI-compatible server as a child process on a free loopback port, and forwards to it
through the remote engine; this server keeps retrieval, citations, the API and its limits. Closing the engine
stops the child.

llama-cpp-python is an extra (a C++ build of a few minutes): `make setup LLAMACPP=1`, or point
ONBOARD_LLAMACPP_PYTHON at any Python that has `llama_cpp.server`.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from serving.engines.remote import RemoteEngine
from serving.errors import ModelNotLoaded, UpstreamError

log = logging.getLogger(__name__)

START_S = 180.0
"""How long the child may take to load the model and answer GET /v1/models."""


class LlamaCppEngine(RemoteEngine):
    def __init__(self, gguf: Path, python: str | None = None, threads: int | None = None, timeout: float = 600.0):
        """Start llama.cpp's server on `gguf` with `python` (default: this one) and `threads` CPU threads.

        Raises:
            ModelNotLoaded: `gguf` is not a GGUF file, `python` has no llama_cpp.server, or the server did not
                start (its log's last lines say why).
        """
        gguf = Path(gguf)
        if gguf.suffix != ".gguf" or not gguf.is_file():
            raise ModelNotLoaded(f"{gguf}: engine llamacpp serves a .gguf file; write one with `onboard export "
                                 "--format gguf` and pass it as --model.")
        python = python or sys.executable
        found = subprocess.run([python, "-c", "import llama_cpp.server"], capture_output=True)
        if found.returncode != 0:
            raise ModelNotLoaded(f"engine llamacpp needs llama-cpp-python's server in {python}: `make setup "
                                 "LLAMACPP=1` (a build of a few minutes), or set ONBOARD_LLAMACPP_PYTHON to a Python "
                                 "that has it.")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.log_path = Path(tempfile.mkstemp(prefix="onboard-llamacpp-", suffix=".log")[1])
        cmd = [python, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", "0", "--model_alias", gguf.stem]
        if threads:
            cmd += ["--n_threads", str(threads)]
        with self.log_path.open("wb") as out:
            self._child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        super().__init__(f"http://127.0.0.1:{port}/v1", gguf.stem, timeout=timeout)
        try:
            self._wait()
        except BaseException:
            self._stop()
            raise
        log.info("llama.cpp serves %s on port %d (pid %d, log %s)", gguf, port, self._child.pid, self.log_path)

    def _wait(self) -> None:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self._child.poll() is not None:
                raise ModelNotLoaded(f"llama.cpp's server exited ({self._child.returncode}) while loading the model:"
                                     f"\n{self._tail()}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise ModelNotLoaded(f"llama.cpp's server did not answer within {START_S:.0f} s:\n{self._tail()}")

    def _tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _stop(self) -> None:
        if self._child.poll() is None:
            self._child.terminate()
            try:
                self._child.wait(30)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()

    def _unreachable(self, e: httpx.HTTPError) -> UpstreamError:
        """The connection failed: when the child died (a crash in llama.cpp), say so with its log."""
        try:
            self._child.wait(2.0)
        except subprocess.TimeoutExpired:
            return super()._unreachable(e)
        return UpstreamError(f"llama.cpp's server exited ({self._child.returncode}) while answering; the end of its "
                             f"log ({self.log_path}):\n{self._tail()}")

    async def ready(self) -> str | None:
        if self._child.poll() is not None:
            return f"llama.cpp's server exited ({self._child.returncode}); see {self.log_path}"
        return await super().ready()

    async def close(self) -> None:
        await super().close()
        self._stop()
