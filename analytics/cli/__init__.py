"""The ``dissensus`` command: the service's front door.

This entry module only builds the typer :data:`app` (the global ``--db`` option) and registers
the command modules. Each command module imports :mod:`.common` and library code, never this
module nor another command module:

* :mod:`.ingest`: ``ingest``, ``status``, ``reindex``, ``quarantine``, ``withdrawals``
* :mod:`.demo`: ``simulate``, ``demo``
* :mod:`.fit`: ``fit``
* :mod:`.audit`: ``reviewers``, ``reviewer``
* :mod:`.reward`: ``train``, ``evaluate``, ``score``
* :mod:`.serve`: ``serve``
* :mod:`.api`: ``api`` (the HTTP API) and ``api token create / list / revoke``
* :mod:`.traffic`: ``traffic ingest``, ``drift``, ``audit-sample``
* :mod:`.export`: ``export`` (preferences for reward-model trainers)

The work itself is done by the jobs (:mod:`dissensus.analytics.jobs`) and the library modules
they call; the README's "Where things are" maps every command to them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dissensus.analytics.cli import (
    api,
    audit,
    common,
    demo,
    export,
    fit,
    ingest,
    reward,
    serve,
    traffic,
)
from dissensus.warehouse.db import DB_ENV_VAR, default_db_path

__all__ = ["app"]

app = typer.Typer(
    name="dissensus",
    help="Reviewer-disagreement and reward-modeling analytics for human preference data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    db: Annotated[
        Path | None,
        typer.Option(
            "--db", help=f"Warehouse file (DuckDB). Default: ${DB_ENV_VAR} or ./dissensus.duckdb."
        ),
    ] = None,
) -> None:
    """Global options."""
    common.State.db = db if db is not None else default_db_path()


for _module in (ingest, demo, fit, audit, reward, serve, api, traffic, export):
    _module.register(app)
