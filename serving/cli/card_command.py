"""`leadloop card-link`: a signed link to a lead's card, for a CRM to embed."""

from __future__ import annotations

import typer

from serving.cli.common import fail, now, open_store, out, reported_errors, start

#: Where `leadloop serve` answers by default, when no public address is configured.
LOCAL_SERVICE = "http://127.0.0.1:8000"


def card_link(
    lead_id: str = typer.Argument(..., metavar="LEAD_ID", help="The CRM's lead id."),
    expires_in: int | None = typer.Option(
        None,
        "--expires-in",
        min=60,
        help="Seconds the link stays valid (default and most: LEADLOOP_CARD_LINK_SECONDS).",
    ),
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        help=f"The service's address (default: LEADLOOP_PUBLIC_URL, else {LOCAL_SERVICE}).",
    ),
) -> None:
    """Print a signed link that opens the lead's card without an API key, until it expires."""
    settings = start()
    from serving.card_links import BadCardLink, CardLinks
    from serving.lead_views import has_score
    from serving.settings import KeyFileError

    with reported_errors(KeyFileError):
        links = CardLinks(settings.card_key_bytes, settings.card_link_seconds)
        if not has_score(open_store(settings), lead_id):
            raise fail(f"leadloop has no score of lead {lead_id!r}: score it first")
    base = base_url or str(settings.public_url or LOCAL_SERVICE)
    try:
        link = links.link(base, lead_id, now(), expires_in)
    except BadCardLink as exc:
        option = {"expires_in": "--expires-in", "base_url": "--base-url"}.get(exc.field, "LEAD_ID")
        raise fail(f"{option}: {exc}") from None
    out.print(link.url, highlight=False)
