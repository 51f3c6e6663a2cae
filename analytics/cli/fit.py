"""``dissensus fit``: the annotator model (reliability, schools, noise / pluralism / ambiguity).

The work is :func:`dissensus.analytics.jobs.fit.run_fit` over
:class:`dissensus.models.annotator.estimator.AnnotatorModel`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from dissensus.analytics.cli.common import State, console, fail, open_warehouse
from dissensus.warehouse.errors import DissensusError


def fit(
    schools: Annotated[
        str, typer.Option(help="Number of reviewer schools: auto (chosen by model comparison), "
                          "1 (plain noise model), 2 or 3.")
    ] = "auto",
    method: Annotated[
        str, typer.Option(help="auto (picks by data size), em, nuts, advi or minibatch_advi.")
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    draws: Annotated[int, typer.Option(help="NUTS: posterior draws per chain.")] = 500,
    tune: Annotated[int, typer.Option(help="NUTS: warm-up steps per chain.")] = 500,
    chains: Annotated[int, typer.Option(help="NUTS: number of chains (run in parallel).")] = 2,
    tie_per_reviewer: Annotated[bool, typer.Option(
        help="EM: a tie threshold per reviewer (for reviewers who differ in how often they "
             "say 'equal'); off: one shared threshold, which catches rushed reviewers better.")
    ] = False,
    pool_responses: Annotated[bool, typer.Option(
        help="EM: pairs that share a response pool their consensus margins through a latent "
             "quality per response.")
    ] = True,
    response_features: Annotated[bool, typer.Option(
        help="EM: use the responses' tags (and tag within prompt category) to predict how each "
             "school's preference deviates; tags that predict nothing get no weight.")
    ] = True,
) -> None:
    """Fit the annotator model: reliability, schools, noise / pluralism / ambiguity per pair."""
    from dissensus.analytics.jobs.fit import fit_report_lines, run_fit
    from dissensus.models.annotator.config import AnnotatorConfig

    try:
        n_schools: str | int = "auto" if schools == "auto" else int(schools)
    except ValueError:
        fail(DissensusError(f"--schools {schools!r} is not a number of schools.",
                            expected="auto, 1, 2 or 3", fix="pass --schools auto"))
    try:
        config = AnnotatorConfig(n_schools=n_schools, method=method, seed=seed, draws=draws,
                                 tune=tune, chains=chains, tie_per_reviewer=tie_per_reviewer,
                                 pool_responses=pool_responses,
                                 response_features=response_features)
    except ValueError as error:
        fail(DissensusError("The fit settings are not valid.", expected=str(error),
                            fix="see `dissensus fit --help`"))
    with open_warehouse() as con, console.status("fitting the annotator model"):
        outcome = run_fit(con, config, db_path=State.db)
    for line in fit_report_lines(outcome):
        console.print(line, highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``fit`` to ``app``."""
    app.command()(fit)
