"""`keys`: the API keys callers of the HTTP API send as `Authorization: Bearer <key>`."""

from __future__ import annotations

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from serving.cli.common import err, now, open_store, out, reported_errors, start
from store.api_keys import ApiKeyError, Scope, create_key, list_keys, revoke_key

SCOPES_HELP = f"{', '.join(Scope)} (repeat for several; admin implies every other)."

app = typer.Typer(
    help="Create, list and revoke the API keys of the HTTP API.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command()
def create(
    name: str = typer.Option(..., metavar="NAME", help="A unique name: `keys revoke` uses it."),
    scope: list[str] = typer.Option(..., metavar="SCOPE", help=SCOPES_HELP),
) -> None:
    """Create a key; it is printed once, alone on the last line of stdout."""
    settings = start()
    with reported_errors(ApiKeyError), open_store(settings).begin() as session:
        key = create_key(session, name, scope, now())
    err.print(f"Created key [bold]{escape(name)}[/]; copy it now, leadloop keeps only its hash:")
    print(key)  # not Rich: the key must reach a pipe exactly as made


@app.command("list")
def list_command() -> None:
    """Every key: name, scopes, created, revoked (never the key itself)."""
    settings = start()
    with reported_errors(), open_store(settings)() as session:
        keys = list_keys(session)
    if not keys:
        err.print("No API keys yet: `leadloop keys create --name NAME --scope SCOPE` makes one.")
        return
    table = Table("name", "scopes", "created", "revoked", box=box.SIMPLE_HEAD, pad_edge=False)
    for key in keys:
        revoked = f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
        table.add_row(
            escape(key.name), ",".join(key.scopes), f"{key.created_at:%Y-%m-%d %H:%M}", revoked
        )
    out.print(table)


@app.command()
def revoke(name: str = typer.Argument(..., metavar="NAME", help="The key's name.")) -> None:
    """Revoke a key: requests made with it get 401 from now on."""
    settings = start()
    with reported_errors(ApiKeyError), open_store(settings).begin() as session:
        revoked_at = revoke_key(session, name, now())
    out.print(f"Key [bold]{escape(name)}[/] revoked as of {revoked_at:%Y-%m-%d %H:%M} UTC.")
