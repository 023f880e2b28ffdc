"""`onboard keys ...`: the served API's keys (stored hashed in WORKSPACE/serving/keys.sqlite)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agent.cli.common import DEFAULT_WS, WorkspaceOpt
from agent.ui import console, err_console, handle_errors

keys_app = typer.Typer(help="API keys of the served bot: once one exists, every request but the health checks "
                            "needs one.", no_args_is_help=True, rich_markup_mode=None)
KeysFileOpt = Annotated[Path | None, typer.Option("--keys-file", envvar="ONBOARD_KEYS_FILE",
                                                  help="Key store [default: WORKSPACE/serving/keys.sqlite].")]


def _store(workspace: Path, keys_file: Path | None):
    from rag.workspace import Workspace
    from serving.keys import KeyStore

    return KeyStore(keys_file or Workspace(workspace).keys_file)


@keys_app.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Argument(help="Who uses the key, e.g. support-site.")],
    rpm: Annotated[int | None, typer.Option(help="Requests per minute it may make [default: no limit].")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute it may use (prompt + answer, or embedded) "
                                                 "[default: no limit].")] = None,
    workspace: WorkspaceOpt = DEFAULT_WS,
    keys_file: KeysFileOpt = None,
):
    """Make a key and print its secret, once: only its hash is kept."""
    store = _store(workspace, keys_file)
    first = not store.required()
    key, secret = store.create(name, rpm=rpm, tpm=tpm)
    console.print(f"key {key.id} ({key.name}): {secret}", highlight=False, soft_wrap=True)
    err_console.print("Store the secret now: it is not kept and cannot be shown again. Clients send it as "
                      "`Authorization: Bearer <secret>`.", highlight=False)
    if first:
        err_console.print(f"From now on every request to a server using {store.path} needs a key (a running "
                          "server sees this at once).", highlight=False)


@keys_app.command("list")
@handle_errors
def list_keys(workspace: WorkspaceOpt = DEFAULT_WS, keys_file: KeysFileOpt = None):
    """The keys: id, name, first characters, limits, and when made or revoked (never the secrets)."""
    keys = _store(workspace, keys_file).list()
    if not keys:
        console.print("no keys: the server asks for none (`onboard keys create NAME` makes one)")
        return
    table = Table("id", "name", "key", "requests/min", "tokens/min", "created", "revoked")
    for k in keys:
        table.add_row(k.id, k.name, k.shown, str(k.rpm or "-"), str(k.tpm or "-"), _when(k.created),
                      _when(k.revoked) if k.revoked else "")
    console.print(table)


@keys_app.command("revoke")
@handle_errors
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (`onboard keys list`).")],
           workspace: WorkspaceOpt = DEFAULT_WS, keys_file: KeysFileOpt = None):
    """Revoke a key: requests with it get 401 from now on (servers see it at once)."""
    key = _store(workspace, keys_file).revoke(key_id)
    console.print(f"revoked {key.id} ({key.name}, {key.shown})", highlight=False)


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))
