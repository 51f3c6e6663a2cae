"""Simulated reviewers for the audit-loop benchmark (benchmarks/audit_loop.py).

An audit file as ``dissensus audit-sample`` writes it goes to a crowd drawn from the demo
world's own reviewers (schools, lapse rates, position biases: the same people who judged the
training comparisons), each judging by the simulator's rule (:func:`warehouse.demo.crowd.judge`)
on their school's true margin. True utilities of live replies come from the traffic
simulator's truth (``utility_<school>``); a turn the sample could not pair with another model's
reply (the ``.single`` file) is paired, as a labelling team would, with an unserved model's
reply to the same prompt (the truth's ``alt_response``, ``TrafficConfig(alternatives=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from dissensus.warehouse.demo import DemoWorld
from dissensus.warehouse.demo.crowd import judge


@dataclass
class Truth:
    """True utilities per school of every served reply and of each turn's alternative."""

    served: dict[tuple[str, str], np.ndarray]
    """(prompt, response) -> utility per school."""
    alternative: dict[str, tuple[str, str, np.ndarray]]
    """traffic_id -> (reply text, model, utility per school)."""


def traffic_truth(rows: pl.DataFrame, truth: pl.DataFrame, schools: list[str]) -> Truth:
    """The lookups of :class:`Truth` from ``simulate_traffic``'s rows and truth."""
    joined = rows.select("traffic_id", "prompt", "response").join(truth, on="traffic_id")
    mine = np.column_stack([joined[f"utility_{s}"].to_numpy() for s in schools])
    alt = np.column_stack([joined[f"alt_utility_{s}"].to_numpy() for s in schools])
    served = {(p, r): mine[i] for i, (p, r) in
              enumerate(zip(joined["prompt"], joined["response"], strict=True))}
    alternative = {t: (text, model, alt[i]) for i, (t, text, model) in enumerate(zip(
        joined["traffic_id"], joined["alt_response"], joined["alt_model"], strict=True))}
    return Truth(served, alternative)


def paired(pairs: pl.DataFrame, singles: pl.DataFrame, truth: Truth) -> pl.DataFrame:
    """One comparison row per sampled turn: the sample's pairs as written, and each single
    turn against the alternative reply a labelling team would add; ``_ua``/``_ub`` hold the
    true utilities of response_a and response_b."""
    frames = []
    if pairs.height:
        frames.append(pairs.with_columns(pl.lit(False).alias("paired_by_team")))
    if singles.height:
        alt = [truth.alternative[t] for t in singles["traffic_id"]]
        frames.append(singles.select(
            "prompt", pl.col("response").alias("response_a"),
            pl.Series("response_b", [a[0] for a in alt]), "category", "batch",
            pl.col("model").alias("response_a_model"),
            pl.Series("response_b_model", [a[1] for a in alt]), "audit_reason", "traffic_id",
            pl.lit(True).alias("paired_by_team")))
    rows = pl.concat(frames, how="diagonal_relaxed")
    ua = [truth.served[(p, a)] for p, a in zip(rows["prompt"], rows["response_a"], strict=True)]
    alt_of = {t: u for t, (_, _, u) in truth.alternative.items()}
    ub = [alt_of[t] if team else truth.served[(p, b)] for p, b, t, team in zip(
        rows["prompt"], rows["response_b"], rows["traffic_id"], rows["paired_by_team"],
        strict=True)]
    return rows.with_columns(pl.Series("_ua", ua), pl.Series("_ub", ub))


def review(rows: pl.DataFrame, world: DemoWorld, votes: int, rng: np.random.Generator,
           prefix: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``votes`` distinct reviewers judge each row; (comparison rows with ``reviewer_id``,
    ``choice``, ``shown_first`` and ``comparison_id``, truth judgments for an oracle fit)."""
    people = world.reviewers
    activity = people["activity"].to_numpy()
    chosen = np.concatenate([
        rng.choice(people.height, size=votes, replace=False, p=activity / activity.sum())
        for _ in range(rows.height)])  # each turn's votes by distinct people, busier ones more
    row = np.repeat(np.arange(rows.height), votes)
    school = people["school_index"].to_numpy()[chosen]
    ua = np.stack(rows["_ua"].to_list())[row]
    ub = np.stack(rows["_ub"].to_list())[row]
    margin = ua[np.arange(len(row)), school] - ub[np.arange(len(row)), school]
    a_first = rng.random(len(row)) < 0.5
    judged = judge(rng, margin, a_first, people["lapse_rate"].to_numpy()[chosen],
                   people["position_bias"].to_numpy()[chosen],
                   people["lapse_tilt"].to_numpy()[chosen], world.config.tie_threshold)
    ids = [f"{prefix}-{i:06d}" for i in range(len(row))]
    reviewers = people["reviewer_id"].gather(chosen)
    out = rows.drop("_ua", "_ub").gather(row).with_columns(
        pl.Series("comparison_id", ids), reviewers.alias("reviewer_id"),
        pl.Series("choice", np.where(judged.outcome > 0, "a",
                                     np.where(judged.outcome < 0, "b", "tie"))),
        pl.Series("shown_first", np.where(a_first, "a", "b")))
    truth = pl.DataFrame({"comparison_id": ids, "reviewer_id": reviewers,
                          "careful": judged.careful})
    return out, truth
