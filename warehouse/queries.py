"""Read queries over the warehouse shared by the CLI, the models and the dashboards."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

from dissensus.warehouse.errors import EmptyDataError


def frame(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> pl.DataFrame:
    """Run a query and return all of its rows as a polars frame."""
    return con.sql(sql, params=params).pl() if params else con.sql(sql).pl()


@dataclass(frozen=True)
class WarehouseCounts:
    comparisons: int
    comparisons_without_reviewer: int
    pairs: int
    prompts: int
    responses: int
    texts: int
    reviewers: int
    batches: int
    quarantined: int


def counts(con: duckdb.DuckDBPyConnection) -> WarehouseCounts:
    """Row counts of the main tables."""
    row = con.execute("""
        SELECT (SELECT count(*) FROM comparisons),
               (SELECT count(*) FROM comparisons WHERE NOT has_reviewer),
               (SELECT count(*) FROM pairs), (SELECT count(*) FROM prompts),
               (SELECT count(*) FROM responses), (SELECT count(*) FROM texts),
               (SELECT count(*) FROM reviewers), (SELECT count(*) FROM ingest_batches),
               (SELECT count(*) FROM quarantine)
    """).fetchall()[0]
    return WarehouseCounts(*(int(v) for v in row))


def batches(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Ingest batches, newest first."""
    return frame(con, """
        SELECT batch_id AS batch, file_name AS file, format,
               strftime(started_at, '%Y-%m-%d %H:%M') AS started, round(seconds, 1) AS seconds,
               rows_read AS read, rows_accepted AS accepted, rows_duplicate AS duplicates,
               rows_quarantined AS quarantined, notes
        FROM ingest_batches ORDER BY batch_id DESC
    """)


def fits_and_runs(con: duckdb.DuckDBPyConnection, limit: int = 5) -> pl.DataFrame:
    """The newest annotator-model fits and reward runs, newest first (``limit`` of each): what
    ``dissensus status`` lists so that a user finds the ids other commands take."""
    return frame(con, f"""
        (SELECT 'fit' AS what, fit_id AS id, strftime(created_at, '%Y-%m-%d %H:%M') AS created,
                method || ', ' || n_schools || ' school' || CASE WHEN n_schools = 1 THEN ''
                    ELSE 's' END || ', ' || n_comparisons || ' comparisons' AS details,
                created_at AS _at
         FROM fits ORDER BY created_at DESC, fit_id DESC LIMIT {int(limit)})
        UNION ALL
        (SELECT 'reward run', run_id, strftime(created_at, '%Y-%m-%d %H:%M'),
                kind || ', accuracy vs consensus ' || coalesce(
                    printf('%.3f', TRY_CAST(json_extract(metrics, '$.accuracy_consensus')
                                            AS DOUBLE)), '?'),
                created_at
         FROM reward_runs ORDER BY created_at DESC, run_id DESC LIMIT {int(limit)})
        ORDER BY what, _at DESC
    """).drop("_at")


def quarantine_summary(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Quarantined rows grouped by field and reason (values in quotes folded together)."""
    return frame(con, r"""
        SELECT coalesce(field, '(row)') AS field,
               regexp_replace(reason, '''[^'']*''', '''…''', 'g') AS reason,
               count(*) AS rows, min(line) AS first_line, any_value(file_path) AS example_file
        FROM quarantine GROUP BY ALL ORDER BY rows DESC
    """)


def quarantine_rows(
    con: duckdb.DuckDBPyConnection, batch_id: int | None = None, limit: int | None = None
) -> pl.DataFrame:
    """Quarantined rows with file, line, field, reason and the raw source text."""
    where = "WHERE batch_id = ?" if batch_id is not None else ""
    params = [batch_id] if batch_id is not None else []
    suffix = f"LIMIT {int(limit)}" if limit else ""
    return frame(
        con,
        f"SELECT batch_id, file_path, line, field, reason, raw FROM quarantine {where} "
        f"ORDER BY batch_id, line {suffix}",
        params,
    )


def model_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Judgments in the annotator model's shape.

    Columns: comparison_id, reviewer_id, pair_id, prompt_id, outcome (+1 response_1 preferred,
    -1 response_2, 0 tie), first_shown (1 or 2, null when unknown), response_1_id and
    response_2_id (the pair's canonical responses), response_1_tags and response_2_tags (their
    tags) and category (the prompt's), response_1_length / response_2_length (characters) and
    response_1_model / response_2_model (null when unknown). Rows without a reviewer id are left
    out: the annotator model cannot judge anonymous reviewers. Withdrawn comparisons (deleted at
    their source, or the old versions of revised ones) are not in ``comparisons`` but in
    ``comparison_withdrawals`` (:mod:`dissensus.warehouse.withdrawals`), so none is read here.
    """
    judgments = frame(con, """
        WITH judged AS (
            SELECT comparison_id, reviewer_id, pair_id, prompt_id, outcome, first_shown,
                   CASE WHEN a_is_response_1 THEN response_a_id ELSE response_b_id END
                       AS response_1_id,
                   CASE WHEN a_is_response_1 THEN response_b_id ELSE response_a_id END
                       AS response_2_id
            FROM comparisons WHERE has_reviewer
        )
        SELECT j.*, r1.tags AS response_1_tags, r2.tags AS response_2_tags, p.category,
               t1.n_chars AS response_1_length, t2.n_chars AS response_2_length,
               r1.model AS response_1_model, r2.model AS response_2_model
        FROM judged j
        LEFT JOIN responses r1 ON r1.response_id = j.response_1_id
        LEFT JOIN responses r2 ON r2.response_id = j.response_2_id
        LEFT JOIN texts t1 ON t1.text_id = r1.text_id
        LEFT JOIN texts t2 ON t2.text_id = r2.text_id
        LEFT JOIN prompts p ON p.prompt_id = j.prompt_id
        ORDER BY j.pair_id, j.reviewer_id, j.comparison_id
    """)
    if judgments.height == 0:
        total = con.execute("SELECT count(*) FROM comparisons").fetchall()[0][0]  # type: ignore[index]
        if total:
            raise EmptyDataError(
                f"The warehouse holds {total} comparisons but none has a reviewer id.",
                expected="comparisons with reviewer_id",
                fix="the annotator model judges reviewers; ingest data that names them",
            )
        raise EmptyDataError(
            "The warehouse holds no comparisons.",
            fix="run `dissensus ingest FILE` or `dissensus demo` first",
        )
    return judgments.with_columns(
        pl.col("outcome").cast(pl.Int8), pl.col("first_shown").cast(pl.Int8)
    )
