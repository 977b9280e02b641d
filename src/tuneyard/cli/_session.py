"""What commands share: the API client from the saved login, the current project,
and turning every client failure into one line on stderr."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from ._output import fail

if TYPE_CHECKING:
    from tuneyard.client import TuneyardClient

PROJECT_HELP = "Project id (default: $TUNEYARD_PROJECT, else the one `projects use` saved)."
ProjectOption = typer.Option(None, "--project", "-p", help=PROJECT_HELP, show_default=False)
JsonOption = typer.Option(False, "--json", help="Print JSON (what the server sent).")
QuietOption = typer.Option(False, "--quiet", "-q", help="Print only the new object's id.")
YesOption = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


class Group(TyperGroup):
    """The root command group: a client error ends the command with one clear line.

    Errors are caught here, around every subcommand, so no command needs its
    own try/except and none can leak a traceback for a user error.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        from pydantic import ValidationError

        from tuneyard.client.errors import (
            TuneyardAPIError,
            TuneyardClientError,
            TuneyardConnectionError,
        )

        try:
            return super().invoke(ctx)
        except TuneyardAPIError as exc:
            hint = ""
            if exc.status == 401:
                hint = "; check the API key (`tuneyard login`, or TUNEYARD_API_KEY)"
            fail(f"{exc}{hint}")
        except TuneyardConnectionError as exc:
            fail(f"{exc}; is the server running (`tuneyard serve`), and is the URL right "
                 "(`tuneyard login --url`, or TUNEYARD_URL)?")
        except TuneyardClientError as exc:
            fail(str(exc))
        except ValidationError as exc:  # a server answering in a shape we do not know
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ()))
            fail(f"unexpected response from the server ({exc.title}: {where} "
                 f"{first.get('msg', '')}); is it a tuneyard server of this version?")
        except BrokenPipeError:
            # The reader went away (`tuneyard ... | head`): not an error to report.
            # Point stdout at /dev/null so the interpreter's final flush is quiet.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(1) from None
        except OSError as exc:  # a local file: missing, unwritable, disk full
            fail(str(exc))


def client(*, require_key: bool = True) -> TuneyardClient:
    """A client for the saved (or env-given) server; fails clearly when not logged in."""
    from tuneyard.client import TuneyardClient
    from tuneyard.client.config import load_credentials

    creds = load_credentials(os.environ)
    if require_key and not creds.api_key:
        fail("not logged in: run `tuneyard login` (or set TUNEYARD_URL and TUNEYARD_API_KEY)")
    return TuneyardClient(creds.url, creds.api_key)


def project_id(given: str | None) -> str:
    """The project a command works on: --project, $TUNEYARD_PROJECT, or the saved one."""
    if given:
        return given
    from tuneyard.client.config import load_credentials

    saved = load_credentials(os.environ).project
    if not saved:
        fail("no project given: pass --project/-p ID, or choose one with "
             "`tuneyard projects use ID`")
    return saved


def confirm(question: str, yes: bool) -> None:
    if not yes and not typer.confirm(question, default=False, err=True):
        fail("not confirmed; nothing was changed (pass --yes to skip the question)")
