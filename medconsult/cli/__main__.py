"""`python -m medconsult.cli`: the CLI from an interpreter without the console script (a plugin's environment)."""

from medconsult.cli import app

app()
