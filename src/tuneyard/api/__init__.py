"""The HTTP API (FastAPI): the Emissary platform API plus tuneyard's extras."""
