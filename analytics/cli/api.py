"""``dissensus api`` (serve the HTTP API) and ``dissensus api token create / list / revoke``.

The server is :func:`dissensus.analytics.api.app.serve`; tokens are
:class:`dissensus.analytics.api.tokens.TokenStore` (hashes beside the warehouse), so they can be
made while the server runs and take effect on its next request.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from dissensus.analytics.cli.common import State, console, errors_in_words, render_frame

api_app = typer.Typer(
    help="Serve the HTTP API over the warehouse (`dissensus api`), and manage its tokens.",
    invoke_without_command=True,
    no_args_is_help=False,
)
token_app = typer.Typer(help="Tokens for the API: create, list, revoke.", no_args_is_help=True)
api_app.add_typer(token_app, name="token")


@api_app.callback()
def api(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(
        help="Interface to listen on. Anything but loopback needs a token to exist first.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8765,
    max_body_mb: Annotated[int, typer.Option(
        min=1, help="Largest POST /v1/comparisons (or Label Studio webhook) body in MiB "
        "(larger: split it).")] = 64,
    pseudonymise_salt: Annotated[str | None, typer.Option(
        envvar="DISSENSUS_SALT",
        help="Replace posted reviewer ids by a salted hash (as `dissensus ingest`).")] = None,
    snapshot_interval: Annotated[float | None, typer.Option(
        min=0, show_default=False,
        help="Refresh the read snapshot (what the dashboards and read commands open while the "
        "server holds the file) after writes, at most every this many seconds; default 5, 0 "
        "keeps none.")] = None,
) -> None:
    """Serve the JSON API (docs at /docs). While it runs it is the warehouse's only writer."""
    if ctx.invoked_subcommand is not None:
        return
    from dissensus.analytics.api.app import ApiSettings, serve

    settings = ApiSettings(db_path=State.db, host=host, port=port, max_body_mb=max_body_mb,
                           salt=pseudonymise_salt)
    if snapshot_interval is not None:  # else ApiSettings' default: one home for it
        settings = replace(settings, snapshot_interval=snapshot_interval)

    def ready(s: ApiSettings) -> None:
        console.print(f"serving {s.db_path} at [bold]{s.url}[/] (docs: {s.url}/docs); "
                      "Ctrl-C stops it", highlight=False)

    with errors_in_words():
        serve(settings, on_ready=ready)


@token_app.command("create")
def token_create(
    scope: Annotated[str, typer.Option(help="read, write or admin (each includes the ones "
                                            "before).")] = "read",
    note: Annotated[str, typer.Option(help="Who or what the token is for.")] = "",
) -> None:
    """Make a token; it is printed once and only its hash is kept."""
    from dissensus.analytics.api.tokens import TokenStore

    with errors_in_words():
        record, token = TokenStore(State.db).create(scope, note)
    console.print(f"token {record.token_id} (scope {record.scope}) for {State.db}:",
                  highlight=False)
    print(token)
    console.print("[yellow]shown once[/]: only its hash is stored; send it as "
                  "`Authorization: Bearer <token>`", highlight=False)


@token_app.command("list")
def token_list() -> None:
    """The tokens of this warehouse (ids and scopes; the tokens themselves are not kept)."""
    import polars as pl

    from dissensus.analytics.api.tokens import TokenStore

    with errors_in_words():
        records = TokenStore(State.db).records()
    if not records:
        console.print("no tokens: the API serves loopback only, without tokens")
        return
    frame = pl.DataFrame([{"token_id": r.token_id, "scope": r.scope, "created_at": r.created_at,
                           "note": r.note} for r in records])
    console.print(render_frame(frame, "API tokens"))


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="Id from `token list`.")]) -> None:
    """Remove a token; a running server refuses it from its next request."""
    from dissensus.analytics.api.tokens import TokenStore
    from dissensus.analytics.cli.common import fail
    from dissensus.warehouse.errors import DissensusError

    with errors_in_words():
        removed = TokenStore(State.db).revoke(token_id)
    if not removed:
        fail(DissensusError(f"There is no token '{token_id}'.",
                            expected="an id listed by `dissensus api token list`",
                            fix="check the id"))
    console.print(f"revoked token {token_id}")


def register(app: typer.Typer) -> None:
    """Add ``api`` (with ``api token ...``) to ``app``."""
    app.add_typer(api_app, name="api")
