"""`python -m tuneyard.cli`."""

from tuneyard.cli import app

app()
