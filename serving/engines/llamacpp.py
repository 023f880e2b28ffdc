"""llama.cpp for CPUs: `onboard serve` on a GGUF file (what `onboard export --format gguf` writes) starts
llama-cpp-python's OpenAI-compatible server as a child process on a free loopback port, and forwards to it
through the remote engine; this server keeps retrieval, citations, the API and its limits. Closing the engine
stops the child.

llama-cpp-python is an extra (a C++ build of a few minutes): `make setup LLAMACPP=1`, or point
ONBOARD_LLAMACPP_PYTHON at any Python that has `llama_cpp.server`.

llama-cpp-python's server sends no usage in streams (it ignores `stream_options.include_usage`) and has no
chat-token count: this engine counts them itself, exactly as llama.cpp does (the GGUF's own chat template,
rendered as llama-cpp-python renders it, and the server's /extras/tokenize/count), so a streamed answer's
tokens are reported and charged to its key like any other, and prompts are checked against the context.

Tools: llama-cpp-python renders them with the GGUF's chat template and forces a named function with a grammar,
but reads no call back from the text the model writes: with tool_choice auto this engine reads it (serving/tools.py,
as the transformers engine does, from the bare JSON that llama.cpp's text keeps of a call: the tags are control
tokens); "required" is refused by name (llama.cpp's server cannot force it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path

import httpx

from serving.engines.base import Delta, Generation, SamplingParams
from serving.engines.remote import RemoteEngine
from serving.errors import ModelNotLoaded, TokenCountUnavailable, Unsupported, UpstreamError
from serving.tools import Layout, layout_of, parse, stream_calls

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
        self.gguf = gguf
        self._template = None
        self._bos_count: int | None = None
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

    async def generate(self, messages: list[dict], params: SamplingParams) -> Generation:
        params, layout = await self._tooling(params)
        g = await super().generate(messages, params)
        if layout is not None and not g.tool_calls:  # tool_choice auto: the calls are in the text the model wrote
            content, calls = parse(g.text, layout)
            if calls:
                g = replace(g, text=content or "", tool_calls=calls, finish_reason="tool_calls")
        return g

    async def stream(self, messages: list[dict], params: SamplingParams) -> AsyncIterator[Delta]:
        """The upstream's stream (with tool_choice auto, read for calls as the transformers engine reads its own),
        its last piece with the token counts llama.cpp does not send."""
        params, layout = await self._tooling(params)
        deltas = self._counted(messages, params)
        async with aclosing(stream_calls(deltas, layout) if layout is not None else deltas) as pieces:
            async for d in pieces:
                yield d

    async def _tooling(self, params: SamplingParams) -> tuple[SamplingParams, Layout | None]:
        """The request as llama.cpp's server honours it, and the layout to read calls from the answer's text in
        (None: no tools, or a forced call, which llama.cpp's server returns as a call itself).

        llama-cpp-python renders `tools` through the GGUF's chat template and forces a named function with a
        grammar, but reads no call back from what the model writes, and forces nothing for "required".

        Raises:
            Unsupported: tool_choice "required", or tools and a chat template that renders none.
        """
        if not params.tools:
            return params, None
        if params.tool_choice == "none":  # as the transformers engine: the tools are left out of the prompt
            return replace(params, tools=None, tool_choice=None), None
        if params.tool_choice == "required":
            raise Unsupported('tool_choice: llama.cpp\'s server cannot make the model call one of several tools; name '
                              'the function ({"type": "function", "function": {"name": ...}}), or use "auto".',
                              "tool_choice")
        if layout_of((await self._chat_template())[3]) is None:
            raise Unsupported(f"tools: the chat template of {self.gguf.name} renders no tools (no tool calling); leave "
                              "tools out, or serve a model whose template has them.", "tools")
        # llama.cpp's text leaves out control tokens, and the calls' tags are control tokens (<tool_call>, Llama 3's
        # <|python_tag|>): what is left of a call in either layout is its bare JSON, which the llama3 layout reads
        return params, ("llama3" if params.tool_choice in (None, "auto") else None)

    async def _counted(self, messages: list[dict], params: SamplingParams) -> AsyncIterator[Delta]:
        """The upstream's stream, its last piece with the token counts llama.cpp does not send."""
        said = []
        async for d in super().stream(messages, params):
            if d.finish_reason is not None and d.prompt_tokens is None:
                # a forced call is generated as its arguments' JSON (llama.cpp's grammar) and sent as a call
                said += [d.text, *(c.arguments for c in d.tool_calls or [])]
                d = replace(d, prompt_tokens=await self._prompt_tokens(messages, params),
                            completion_tokens=await self._count("".join(said)))
            elif d.text:
                said.append(d.text)
            yield d

    async def count_tokens(self, messages: list[dict]) -> int:
        """The prompt's tokens as llama.cpp counts them: the GGUF's chat template, then its tokenizer."""
        return await self._prompt_tokens(messages, None)

    async def _prompt_tokens(self, messages: list[dict], params: SamplingParams | None) -> int:
        """The prompt's tokens, with the request's tools as llama-cpp-python renders them."""
        render, bos, eos, _ = await self._chat_template()
        tools = {"tools": params.tools, "tool_choice": params.tool_choice} if params is not None and params.tools else {}
        return await self._count(render(messages=messages, bos_token=bos, eos_token=eos, add_generation_prompt=True,
                                        **tools), whole_prompt=True)

    async def _chat_template(self) -> tuple:
        """The GGUF's chat template (`_chat_template`), read once."""
        if self._template is None:
            self._template = await asyncio.to_thread(_chat_template, self.gguf)
        return self._template

    async def _count(self, text: str, whole_prompt: bool = False) -> int:
        """Tokens of `text` (llama.cpp's tokenizer, special tokens read as such); a prompt keeps the BOS that
        llama.cpp puts before it, an answer does not."""
        root = self.url.removesuffix("/v1")
        try:
            if self._bos_count is None:
                r = await self._client.post(f"{root}/extras/tokenize/count", json={"input": ""})
                self._bos_count = r.json()["count"]
            r = await self._client.post(f"{root}/extras/tokenize/count", json={"input": text})
            count = r.json()["count"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            raise TokenCountUnavailable(f"llama.cpp's server could not count tokens ({type(e).__name__}: {e}).") from None
        return count if whole_prompt else count - self._bos_count

    async def ready(self) -> str | None:
        if self._child.poll() is not None:
            return f"llama.cpp's server exited ({self._child.returncode}); see {self.log_path}"
        return await super().ready()

    async def close(self) -> None:
        await super().close()
        self._stop()


def _chat_template(gguf: Path):
    """(render, bos text, eos text, the template's source) from the GGUF's metadata, rendered as llama-cpp-python's
    Jinja2ChatFormatter renders it (transformers' chat-template environment).

    Raises:
        TokenCountUnavailable: the GGUF has no chat template.
    """
    from datetime import datetime

    from gguf import GGUFReader
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class IgnoreGeneration(Extension):  # {% generation %} ... {% endgeneration %}: the text, as transformers does
        tags = {"generation"}

        def parse(self, parser):
            parser.stream.skip(1)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    def raise_exception(message: str):
        raise TokenCountUnavailable(f"the chat template of {gguf} refuses these messages: {message}")

    fields = GGUFReader(gguf).fields
    if "tokenizer.chat_template" not in fields:
        raise TokenCountUnavailable(f"{gguf} has no chat template, so its chat tokens cannot be counted.")
    tokens = fields["tokenizer.ggml.tokens"]

    def token(key: str) -> str:
        if key not in fields:
            return ""
        return bytes(tokens.parts[tokens.data[int(fields[key].contents())]]).decode("utf-8", errors="replace")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[IgnoreGeneration, loopcontrols])
    env.globals.update(raise_exception=raise_exception, strftime_now=lambda f: datetime.now().strftime(f))
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    source = fields["tokenizer.chat_template"].contents()
    template = env.from_string(source)
    return template.render, token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id"), source
