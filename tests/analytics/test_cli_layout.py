"""The CLI package: one-way imports, and ``dissensus fit`` options that are the config's own."""

from __future__ import annotations

import ast
from pathlib import Path

import typer
from typer.testing import CliRunner

import dissensus.analytics.cli as entry
from dissensus.analytics.cli import fit as fit_cli
from dissensus.models.annotator.config import AnnotatorConfig

CLI = Path(entry.__file__).resolve().parent
COMMAND_MODULES = sorted(p.stem for p in CLI.glob("*.py")
                         if p.stem not in ("__init__", "__main__", "common"))


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_command_modules_import_only_common() -> None:
    assert {"ingest", "demo", "fit", "audit", "reward", "serve"} <= set(COMMAND_MODULES)
    for name in [*COMMAND_MODULES, "common"]:
        cli_imports = {m for m in _imported(CLI / f"{name}.py")
                       if m.startswith("dissensus.analytics.cli")}
        assert cli_imports <= {"dissensus.analytics.cli.common"} | {
            f"dissensus.analytics.cli.common.{n}" for n in dir(entry.common)
        }, (name, cli_imports)


def test_every_command_is_registered() -> None:
    names = {c.name or c.callback.__name__ for c in entry.app.registered_commands}
    assert names == {"ingest", "status", "reindex", "quarantine", "withdrawals", "simulate",
                     "demo", "fit",
                     "reviewers", "reviewer", "train", "evaluate", "score", "serve", "drift",
                     "audit-sample", "export"}
    assert {g.name for g in entry.app.registered_groups} == {"api", "traffic"}


def test_fit_options_are_config_fields_with_their_help() -> None:
    fields = AnnotatorConfig.model_fields
    assert set(fit_cli.OPTION_FIELDS.values()) <= set(fields)
    result = CliRunner().invoke(entry.app, ["fit", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert str(fields["draws"].description) in result.output
    assert "k_selection_max_comparisons=250000" in " ".join(result.output.split())
    command = typer.main.get_command(entry.app).commands["fit"]  # type: ignore[attr-defined]
    assert {p.name for p in command.params} - {"set_"} == set(fit_cli.OPTION_FIELDS)
    fit_cli.describe(command)
    for param in command.params:
        if param.name in fit_cli.OPTION_FIELDS:
            field = fields[fit_cli.OPTION_FIELDS[param.name]]
            assert str(param.help).startswith(str(field.description)), param.name
            assert param.default == field.default, param.name


def test_fit_set_refuses_unknown_fields_and_invalid_values(tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(tmp_path / "w.duckdb")
    unknown = runner.invoke(entry.app, ["--db", db, "fit", "--set", "max_iters=3"])
    assert unknown.exit_code == 2
    said = " ".join(unknown.output.split())
    assert "max_iters" in said and "max_iter," in said and "n_schools" in said
    invalid = runner.invoke(entry.app, ["--db", db, "fit", "--set", "max_iter=0"])
    assert invalid.exit_code == 2 and "max_iter" in invalid.output
    assert not (tmp_path / "w.duckdb").exists()  # refused before the warehouse was opened


def test_reviewer_reasons_go_below_the_table_on_a_narrow_console(monkeypatch) -> None:
    import polars as pl
    from rich.console import Console

    from dissensus.analytics.cli import audit as audit_cli

    reasons = ("annotator model: lapse rate ~49% (94% interval 46%-50%); strong lean toward "
               "one label: favours the shorter label text; gold accuracy 50% on 760")
    frame = pl.DataFrame({"rank": [1], "reviewer_id": ["A11GX90QFWDLMM"],
                          "verdict": ["fails gold questions"], "n_votes": [760],
                          "reasons": [reasons]})
    for width, below in ((80, True), (200, False)):
        console = Console(width=width, record=True)
        monkeypatch.setattr(audit_cli, "console", console)
        audit_cli._emit(frame, "table", "reviewers", 10)
        text = console.export_text()
        lines = text.splitlines()
        assert "A11GX90QFWDLMM" in text  # an id is never folded across lines
        assert ("reasons:" in lines) is below, text
        assert max(len(line) for line in lines) <= width
        if below:  # the reasons read as prose under their reviewer, not a squeezed column
            assert reasons in " ".join(text[text.index("reasons:"):].split())
            assert all(len(line.strip()) > 20 for line in lines[lines.index("reasons:") + 2:]
                       if line.strip())
        else:
            assert "│ annotator model: lapse rate" in text  # in the table's column


def test_verdicts_and_intervals_wrap_between_words_on_an_80_column_console(monkeypatch) -> None:
    import polars as pl
    from rich.console import Console

    from dissensus.analytics.cli import audit as audit_cli

    frame = pl.DataFrame({
        "rank": [1, 2, 3], "reviewer_id": ["r0050", "r0058", "r0042"],
        "verdict": ["unreliable: frequent lapses", "position-biased",
                    "cannot tell from their votes"],
        "n_votes": [281, 84, 114],
        "reliability": [0.53, 0.68, 0.64], "reliability_low": [0.5, 0.5, 0.5],
        "reliability_high": [0.61, 0.98, 0.95],
        "agreement": [0.68, 0.67, 0.6], "agreement_low": [0.63, 0.58, 0.51],
        "agreement_high": [0.74, 0.76, 0.68], "school": [0, 0, 0],
        "reasons": ["annotator model: lapse rate ~47%", "picks the first-shown reply 73%",
                    "their 114 votes favour lapses 2.1 to 1 over careful"]})
    console = Console(width=80, record=True)
    monkeypatch.setattr(audit_cli, "console", console)
    audit_cli._emit(frame, "table", "reviewers", 10)
    text = console.export_text()
    table = text[:text.index("reasons:")]
    assert max(len(line) for line in text.splitlines()) <= 80
    # every word of a verdict, every interval and the headers are whole on some line
    for word in ("unreliable:", "frequent", "lapses", "position-biased", "cannot", "votes",
                 "(0.63–0.74)", "(0.5–0.98)", "reliability", "agreement", "0.53", "0.68"):
        assert word in table, (word, text)
    assert "1. r0050" in text  # the reasons below still name their reviewer


def test_a_figure_the_fit_could_not_give_reads_as_a_dash() -> None:
    import polars as pl

    from dissensus.analytics.cli.audit import _with_interval

    frame = pl.DataFrame({"agreement": [0.81234, float("nan"), 0.5],
                          "agreement_low": [0.62, float("nan"), None],
                          "agreement_high": [0.93, float("nan"), None]})
    shown = _with_interval(frame, "agreement")["agreement"].to_list()
    assert shown == ["0.81 (0.62–0.93)", "-", "0.5"]
