"""Plain keyword-only functions shared by the API, the CLI and the worker."""
