"""The `leadloop` command line: one module per group of commands, each command a few lines of
wiring (read the settings, call one service, print the result).

Progress and logs go to stderr, results to stdout, so `--json` output can be piped. Bad input
exits with code 2 and a one-line reason, never a traceback.
"""

from __future__ import annotations

from importlib.metadata import version

import typer

from serving.cli import (
    card_command,
    data_commands,
    key_commands,
    model_commands,
    report_commands,
    score_command,
    serve_command,
)

app = typer.Typer(
    help="leadloop: lead scores with reasons, learned from closed sales outcomes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: the rich layout shows type placeholders (<str>, <bool>) beside every option.
    rich_markup_mode=None,
)


def _print_version(asked: bool) -> None:
    if asked:
        print(f"leadloop {version('leadloop')}")
        raise typer.Exit()


@app.callback()
def main(
    _version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version."
    ),
) -> None:
    """leadloop: lead scores with reasons, learned from closed sales outcomes."""


app.command("demo-data")(data_commands.demo_data)
app.command("import")(data_commands.import_export)
app.command()(data_commands.erase)
app.command("card-link")(card_command.card_link)
app.command()(model_commands.train)
app.command()(model_commands.promote)
app.command()(model_commands.rollback)
app.command()(report_commands.report)
app.command()(score_command.score)
app.command()(serve_command.serve)
app.add_typer(key_commands.app, name="keys")
