"""Which fit is the latest (one rule for every reader), and where artefacts live beside a file."""

from __future__ import annotations

from pathlib import Path

import duckdb

from dissensus.warehouse import artefacts
from dissensus.warehouse.db import connect, connect_memory, database_path, schema_version
from dissensus.warehouse.fits import fit_record, latest_fit
from dissensus.warehouse.schema import LATEST_VERSION


def _fit(con: duckdb.DuckDBPyConnection, fit_id: str, day: int, outputs: tuple[str, ...]) -> None:
    con.execute("INSERT INTO fits (fit_id, created_at, method, n_schools, n_comparisons, "
                "seconds, diagnostics) VALUES (?, ?, 'test', 2, 1, 0.0, ?)",
                [fit_id, f"2026-01-0{day}", '{"verdicts": {"clear": 1}}'])
    if "weights" in outputs:
        con.execute("INSERT INTO comparison_weights (fit_id, comparison_id, weight) "
                    "VALUES (?, 'c1', 1.0)", [fit_id])
    if "reviewers" in outputs:
        con.execute("INSERT INTO reviewer_estimates (fit_id, reviewer_id, n_comparisons, flagged) "
                    "VALUES (?, 'r1', 1, false)", [fit_id])


def test_latest_fit_with_and_without_a_required_output() -> None:
    con = connect_memory()
    assert latest_fit(con) is None and fit_record(con, None) is None
    _fit(con, "f-old", 1, ("weights", "reviewers"))
    _fit(con, "f-weights", 2, ("weights",))
    _fit(con, "f-bare", 3, ())
    assert latest_fit(con) == "f-bare"
    assert latest_fit(con, having="comparison_weights") == "f-weights"
    assert latest_fit(con, having="reviewer_estimates") == "f-old"
    assert latest_fit(con, having="pair_estimates") is None
    record = fit_record(con, "f-bare")
    assert record is not None and record["diagnostics"] == {"verdicts": {"clear": 1}}
    _fit(con, "f-bare-2", 3, ())  # same time: the larger id wins, every time
    assert latest_fit(con) == "f-bare-2"


def test_a_file_without_output_tables_has_no_latest_fit() -> None:
    con = duckdb.connect(":memory:")
    assert latest_fit(con) is None
    assert latest_fit(con, having="reviewer_estimates") is None


def test_artefact_folders_sit_beside_the_warehouse(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    assert artefacts.fits_folder(db) == tmp_path / "w.duckdb.fits"
    assert artefacts.reward_runs_folder(db) == tmp_path / "w.duckdb.reward_runs"
    assert artefacts.embeddings_folder(db) == tmp_path / "w.duckdb.embeddings"
    assert artefacts.demo_truth_folder(db) == tmp_path / "w_truth"
    assert artefacts.artefact_folders(db) == [
        tmp_path / "w.duckdb.fits", tmp_path / "w.duckdb.reward_runs",
        tmp_path / "w.duckdb.embeddings", tmp_path / "w_truth",
    ]
    assert artefacts.warehouse_files(db) == [db, tmp_path / "w.duckdb.wal"]
    con = connect(db)
    assert database_path(con) == db
    con.close()
    assert database_path(connect_memory()) is None


def test_fits_made_before_flag_kinds_get_them_on_upgrade(tmp_path: Path, schema_before) -> None:
    """What a reviewer was flagged for is read from the reason's words once, by the migration
    that adds ``flag_kinds``; the audit then reads the column, whatever the words."""
    db = tmp_path / "w.duckdb"
    con = connect(db)
    schema_before(con, 12)
    _fit(con, "f-old", 1, ())
    reasons = {
        "lean": ("strong lean toward one label (β ≈ +1.9, 94% interval +1.2 to +2.0): favours "
                 'the label "Yes"'),
        "bias": "strong position bias (β ≈ -1.1, 94% interval -1.6 to -0.7): favours ...",
        "lapse": "lapse rate ~40% (94% interval 30%–50%; the votes favour it 50 to 1 ...)",
        "both": "lapse rate ~40% (...); strong position bias (β ≈ +1.0 ...): favours ...",
        "reversed": "votes reversed: against a clear consensus on 30 of 36 votes ...",
        "ok": None,
    }
    for reviewer, reason in reasons.items():
        con.execute("INSERT INTO reviewer_estimates (fit_id, reviewer_id, n_comparisons, "
                    "flagged, flag_reason) VALUES ('f-old', ?, 10, ?, ?)",
                    [reviewer, reason is not None, reason])
    con.close()
    con = connect(db)  # a writer upgrades it
    assert schema_version(con) == LATEST_VERSION
    kinds = dict(con.execute("SELECT reviewer_id, flag_kinds FROM reviewer_estimates").fetchall())
    assert kinds == {"lean": "lean", "bias": "lean", "lapse": "lapses", "both": "lapses, lean",
                     "reversed": "reversed", "ok": None}
    con.close()
