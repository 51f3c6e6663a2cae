"""Training data for the reward models, read from the warehouse.

One training example per comparison n on pair j = (prompt x, responses 1 and 2) in the
canonical orientation: target y_n = 1 (response_1 preferred), 0 (response_2) or 1/2 (tie);
weight w_n = P(careful judgment) from the annotator model's ``comparison_weights`` (1 without a
fit); school weights s_{n,k} = posterior school membership of its reviewer (uniform without).

Splits hold out whole groups (pairs, or prompts with all their pairs): group g goes to test when
u_g < test_share, to validation when u_g < test_share + validation_share, else to train, with
u_g a uniform number hashed from (seed, g). The split depends only on the seed and the ids, not
on row order, so ``evaluate`` re-creates the split of ``train`` exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl

from dissensus.models.reward.errors import MissingFitError, RewardModelError
from dissensus.warehouse.fits import latest_fit

SPLITS = ("train", "validation", "test")


@dataclass
class PreferenceData:
    """Comparisons with text indices, targets, weights and split; and the texts they use."""

    comparisons: pl.DataFrame
    """comparison_id, pair_id, prompt_id, reviewer_id, response_1_id, response_2_id, prompt_idx,
    r1_idx,
    r2_idx, outcome, y, tie, weight, school_weights (list), split."""
    texts: pl.DataFrame
    """text_id, body, n_chars; row i is text index i."""
    n_schools: int
    fit_id: str | None
    pair_verdicts: pl.DataFrame | None = None
    """pair_id, verdict (clear / noise / pluralism / ambiguous) from the fit, when it has them."""

    def school_matrix(self) -> npt.NDArray[np.float32]:
        """(n, K) school weights; uniform 1/K rows where a comparison has none."""
        k = max(self.n_schools, 1)
        col = self.comparisons["school_weights"].to_list()
        out = np.full((len(col), k), 1.0 / k, dtype=np.float32)
        for i, row in enumerate(col):
            if row is not None and len(row) == k:
                out[i] = row
        return out


def split_groups(groups: pl.Series, seed: int, validation: float, test: float) -> pl.Series:
    """'train', 'validation' or 'test' per element of ``groups`` (see the module docstring)."""
    def draw(group: str) -> str:
        digest = hashlib.blake2b(f"{seed}:{group}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "little") / 2**64
        return "test" if u < test else "validation" if u < test + validation else "train"

    table = {g: draw(g) for g in groups.unique().to_list()}
    return groups.replace_strict(table, return_dtype=pl.String)


def check_fit(con: duckdb.DuckDBPyConnection, fit_id: str | None, kind: str) -> str:
    """The fit to take weights from for ``kind``; fails in words when there is none."""
    if fit_id is None:
        found = latest_fit(con, having="comparison_weights")
        if found is None:
            raise MissingFitError(
                f"The '{kind}' reward model needs comparison weights from an annotator-model "
                "fit, and the warehouse holds none.",
                expected="rows in comparison_weights (made by `dissensus fit`)",
                fix="run `dissensus fit` first, or train `--kind plain` (or distributional)",
            )
        return found
    n = con.execute(
        "SELECT count(*) FROM comparison_weights WHERE fit_id = ?", [fit_id]
    ).fetchall()[0][0]
    if not n:
        known = [r[0] for r in
                 con.execute("SELECT fit_id FROM fits ORDER BY created_at").fetchall()]
        raise MissingFitError(
            f"There are no comparison weights for fit '{fit_id}'.",
            where="comparison_weights",
            expected="a fit id in the fits table" + (f": {', '.join(known)}" if known
                                                               else " (there are none yet)"),
            fix="pass --fit with one of those ids, or run `dissensus fit` first",
        )
    return fit_id


def load_preferences(
    con: duckdb.DuckDBPyConnection,
    fit_id: str | None = None,
    *,
    split_by: str = "pair",
    seed: int = 0,
    validation_share: float = 0.15,
    test_share: float = 0.2,
    min_weight: float = 0.0,
    audit_batch_cap: float = 1.0,
) -> PreferenceData:
    """Comparisons joined with their texts (and weights when ``fit_id`` is given), split.

    ``cap`` (a column, 1 for most rows) scales down audit batches: with ``W_b`` the weight of
    audit batch ``b`` and ``W_0`` that of all non-audit comparisons, ``cap = min(1, c W_0 /
    W_b)`` for ``c = audit_batch_cap``, so no batch carries more than ``c W_0``."""
    params: list[object] = [fit_id] if fit_id is not None else []
    join = (
        "LEFT JOIN comparison_weights w ON w.comparison_id = c.comparison_id AND w.fit_id = ?"
        if fit_id is not None
        else "LEFT JOIN (SELECT NULL::VARCHAR AS comparison_id, NULL::DOUBLE AS weight, "
        "NULL::DOUBLE[] AS school_weights) w ON false"
    )
    rows = con.sql(
        f"""
        SELECT c.comparison_id, c.pair_id, c.prompt_id, c.reviewer_id, p.response_1_id,
               p.response_2_id,
               c.prompt_id AS prompt_text_id, r1.text_id AS text_1_id, r2.text_id AS text_2_id,
               c.outcome::INTEGER AS outcome, coalesce(w.weight, 1.0) AS weight,
               w.weight IS NULL AS weight_missing, w.school_weights, c.batch
        FROM comparisons c JOIN pairs p USING (pair_id)
        JOIN responses r1 ON r1.response_id = p.response_1_id
        JOIN responses r2 ON r2.response_id = p.response_2_id
        {join}
        ORDER BY c.comparison_id
        """,
        params=params or None,
    ).pl()
    if rows.height == 0:
        raise RewardModelError(
            "The warehouse holds no comparisons to train a reward model on.",
            fix="run `dissensus ingest FILE` or `dissensus demo` first",
        )
    if fit_id is not None:
        missing = int(rows["weight_missing"].sum())
        if missing == rows.height:
            raise MissingFitError(
                f"Fit '{fit_id}' has no weights for any comparison in this warehouse.",
                fix="refit the annotator model on this warehouse (`dissensus fit`)",
            )
    rows = rows.filter(pl.col("weight") >= min_weight) if min_weight > 0 else rows
    rows = _cap_audit_batches(rows, audit_batch_cap)
    n_schools = 0
    if fit_id is not None:
        lengths = rows["school_weights"].list.len().drop_nulls()
        n_schools = int(lengths.max()) if lengths.len() else 0  # type: ignore[arg-type]
    texts_ids = pl.concat(
        [rows["prompt_text_id"], rows["text_1_id"], rows["text_2_id"]]
    ).unique(maintain_order=True)
    texts = text_bodies(con, texts_ids.to_list())
    index = {t: i for i, t in enumerate(texts["text_id"].to_list())}
    group = rows["pair_id"] if split_by == "pair" else rows["prompt_id"]
    comparisons = rows.with_columns(
        pl.col("prompt_text_id").replace_strict(index, return_dtype=pl.Int64).alias("prompt_idx"),
        pl.col("text_1_id").replace_strict(index, return_dtype=pl.Int64).alias("r1_idx"),
        pl.col("text_2_id").replace_strict(index, return_dtype=pl.Int64).alias("r2_idx"),
        ((pl.col("outcome") + 1) / 2).cast(pl.Float32).alias("y"),
        (pl.col("outcome") == 0).alias("tie"),
        split_groups(group, seed, validation_share, test_share).alias("split"),
    )
    verdicts = None
    if fit_id is not None:
        verdicts = con.sql("SELECT pair_id, verdict FROM pair_estimates WHERE fit_id = ?",
                           params=[fit_id]).pl()
    return PreferenceData(comparisons, texts, n_schools, fit_id,
                          verdicts if verdicts is not None and verdicts.height else None)


def _cap_audit_batches(rows: pl.DataFrame, cap: float) -> pl.DataFrame:
    """Add the ``cap`` factor column (see :func:`load_preferences`)."""
    from dissensus.models.reward.config import AUDIT_BATCH_PREFIX

    audit = pl.col("batch").fill_null("").str.starts_with(AUDIT_BATCH_PREFIX)
    base = float(rows.filter(~audit)["weight"].sum())
    per_batch = pl.col("weight").sum().over("batch")
    return rows.with_columns(
        pl.when(audit).then(pl.min_horizontal(pl.lit(1.0), cap * base / per_batch))
        .otherwise(1.0).alias("cap"))


def text_bodies(con: duckdb.DuckDBPyConnection, text_ids: list[str]) -> pl.DataFrame:
    """text_id, body, n_chars for ``text_ids``, in that order."""
    wanted = pl.DataFrame({"text_id": text_ids})
    found = wanted.join(con.sql(
        "SELECT text_id, body, n_chars FROM texts WHERE text_id IN (SELECT unnest(?::VARCHAR[]))",
        params=[text_ids],
    ).pl(), on="text_id", how="inner", maintain_order="left")
    if found.height != len(text_ids):
        raise RewardModelError(
            f"{len(text_ids) - found.height} texts referenced by comparisons are missing.",
            where="texts", fix="re-ingest the source files; the warehouse is inconsistent",
        )
    return found


def response_table(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every response with its prompt text id, text id, length and tags (for scoring)."""
    return con.sql("""
        SELECT r.response_id, r.prompt_id, r.text_id, t.n_chars, coalesce(r.tags, []) AS tags
        FROM responses r JOIN texts t USING (text_id) ORDER BY r.response_id
    """).pl()
