"""`python -m agent.cli ...`: the same CLI as the `onboard` command."""

from agent.cli import app

app()
