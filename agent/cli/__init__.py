"""The `onboard` command line: one verb per module, each a thin shell over `agent.pipeline`.

Options also read environment variables (ONBOARD_WORKSPACE, ...). A user's mistake prints one line
and exits 1; a bug prints one line that says so and exits 2; ONBOARD_DEBUG=1 shows the traceback.
"""

from __future__ import annotations

import typer

from agent.cli.base import base_app
from agent.cli.chat import chat
from agent.cli.data import data_app
from agent.cli.deploy import deploy
from agent.cli.evaluate import evaluate
from agent.cli.index import ingest, search
from agent.cli.keys import keys_app
from agent.cli.models import export, merge
from agent.cli.run import run
from agent.cli.serve import demo, serve
from agent.cli.train import train
from agent.ui import handle_errors

app = typer.Typer(help="Onboard: turn a general LLM into your company's domain expert.", no_args_is_help=True,
                  rich_markup_mode=None, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(base_app, name="base")
app.add_typer(data_app, name="data")
app.add_typer(keys_app, name="keys")
for verb in (chat, run, ingest, search, handle_errors(train), merge, export, serve, deploy, demo):
    app.command()(verb)
app.command("eval")(evaluate)

__all__ = ["app"]
