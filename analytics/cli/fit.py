"""``dissensus fit``: the annotator model (reliability, schools, noise / pluralism / ambiguity).

Every option sets a field of :class:`dissensus.models.annotator.config.AnnotatorConfig`: the
common ones have options of their own (:data:`OPTION_FIELDS`), ``--set FIELD=VALUE`` sets any
field. The options' help text and defaults are the config fields' own descriptions and defaults;
they are filled in when help is shown (:class:`ConfigHelpCommand`), so that other commands do not
pay for importing the annotator package. An option left out leaves the config's default.

The work is :func:`dissensus.analytics.jobs.fit.run_fit` over
:class:`dissensus.models.annotator.estimator.AnnotatorModel`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from dissensus.analytics.cli.common import (
    State,
    build_config,
    console,
    embedding_progress,
    fail,
    open_warehouse,
    parse_settings,
)
from dissensus.warehouse.errors import DissensusError

OPTION_FIELDS: dict[str, str] = {
    "schools": "n_schools",
    "method": "method",
    "seed": "seed",
    "draws": "draws",
    "tune": "tune",
    "chains": "chains",
    "tie_per_reviewer": "tie_per_reviewer",
    "pool_responses": "pool_responses",
    "response_features": "response_features",
    "features": "features",
}
"""Each explicit option of ``dissensus fit`` (parameter name) and the config field it sets."""

SET_HELP = ("Any config field, as FIELD=VALUE (VALUE read as JSON where it parses, e.g. "
            "--set max_iter=300); repeatable; wins over the options above. The fields are "
            "listed below.")


def describe(command: ConfigHelpCommand) -> None:
    """Give each option the description and default of the config field it sets, and list the
    other fields (for ``--set``) with their defaults below the options."""
    from dissensus.models.annotator.config import AnnotatorConfig

    fields = AnnotatorConfig.model_fields
    for param in command.params:
        name = OPTION_FIELDS.get(param.name or "")
        if name is not None:
            field = fields[name]
            param.help = field.description + ("" if name == param.name else f" (sets {name})")
            param.default = field.default
            param.show_default = True
        elif param.name == "set_":
            param.help = SET_HELP
    others = [f"{name}={json.dumps(field.default)}" for name, field in fields.items()
              if name not in OPTION_FIELDS.values()]
    command.epilog = ("Other settings, for --set (each described in "
                      "models/annotator/config.py): " + ", ".join(others) + ".")


class ConfigHelpCommand(TyperCommand):
    """A command whose options' help comes from :class:`AnnotatorConfig`, read at help time."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        describe(self)
        return super().format_help(ctx, formatter)


def fit(
    schools: Annotated[str | None, typer.Option(metavar="auto|1|2|3")] = None,
    method: Annotated[str | None, typer.Option()] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    draws: Annotated[int | None, typer.Option()] = None,
    tune: Annotated[int | None, typer.Option()] = None,
    chains: Annotated[int | None, typer.Option()] = None,
    tie_per_reviewer: Annotated[bool | None, typer.Option()] = None,
    pool_responses: Annotated[bool | None, typer.Option()] = None,
    response_features: Annotated[bool | None, typer.Option()] = None,
    features: Annotated[str | None, typer.Option(
        metavar="auto|tags|embeddings|both|none")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", metavar="FIELD=VALUE")] = None,
) -> None:
    """Fit the annotator model: reliability, schools, noise / pluralism / ambiguity per pair."""
    from dissensus.analytics.jobs.fit import fit_report_lines, run_fit
    from dissensus.models.annotator.config import AnnotatorConfig

    given = {"schools": schools, "method": method, "seed": seed, "draws": draws, "tune": tune,
             "chains": chains, "tie_per_reviewer": tie_per_reviewer,
             "pool_responses": pool_responses, "response_features": response_features,
             "features": features}
    fields: dict[str, object] = {OPTION_FIELDS[k]: v for k, v in given.items() if v is not None}
    if schools is not None and schools != "auto":
        try:
            fields["n_schools"] = int(schools)
        except ValueError:
            fail(DissensusError(f"--schools {schools!r} is not a number of schools.",
                                expected="auto, 1, 2 or 3", fix="pass --schools auto"))
    fields |= parse_settings(set_)
    config = build_config(AnnotatorConfig, AnnotatorConfig, fields, "fit")
    with (open_warehouse() as con, embedding_progress() as embed,
          console.status("fitting the annotator model")):
        outcome = run_fit(con, config, db_path=State.db, embed_progress=embed)
    for line in fit_report_lines(outcome):
        console.print(line, highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``fit`` to ``app``."""
    app.command(cls=ConfigHelpCommand)(fit)
