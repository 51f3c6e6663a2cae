"""The seeded demo world: a simulated healthcare-scheduling assistant judged by a crowd.

Generative model (the annotator model in ``models/annotator`` is fitted to exactly this):

1. **Pool.** Prompts in five categories (scheduling, cancellation, billing, account_access,
   urgent_symptoms), each with 4-6 candidate replies by ``assistant-v1/v2/v3``; reply features
   (escalation, appointment_offer, hallucination, hedge, refusal, warmth, length) come from
   the model's habits. See :mod:`warehouse.demo.pool` and :mod:`warehouse.demo.schools`.
2. **Schools.** ``K = n_schools`` viewpoints with shares ``(1 - minority_share, minority_share)``
   (``access_first``, ``caution_first``; K = 1 is the null world; a third ``empathy_first``
   splits the minority share). School ``k`` scores a reply with the linear utility ``u_k`` and a
   pair ``j`` has margin ``m_{j,k} = u_k(response_1) - u_k(response_2)``, in the canonical
   orientation of :func:`dissensus.warehouse.ids.pair_id` (response_1 has the smaller response id).
3. **Pairs.** ``round(contested_share * P)`` contested pairs (two schools disagree in sign,
   both ``|m| >= clear_margin``; none when K = 1), ``round(ambiguous_share * P)`` ambiguous
   pairs (``|m_k| < ambiguous_margin`` for all k) and clear pairs for the rest (same sign,
   ``|m_k| >= clear_margin``), drawn from the pool's candidate pairs.
4. **Votes.** Each pair gets ``V_j ~ Uniform{votes_per_pair}`` distinct reviewers (adjusted by
   +-1 steps so the total is exact), drawn by lognormal activity weights. Then
   ``round(repeat_share * n)`` deliberate repeats: a reviewer judges a pair they already judged
   again, half of them with the display order swapped.
5. **Judgments.** See :mod:`dissensus.warehouse.demo.crowd`: careful with probability ``1 - eps_r``
   (ordered logit with thresholds ``+-tau`` on ``eta = m_{j,k(r)} + beta_r s_n``), otherwise a
   lapse that picks the first-shown reply with probability ``gamma_r``.
6. **Rows.** ``response_a`` is response_1 with probability 1/2, independently of the display
   order ``shown_first``; timestamps uniform over 8 weeks from 2026-W14 (working hours),
   guideline v2 from week 5, gold answers on whole clear pairs (about ``gold_share`` of rows).

``simulate_world`` holds everything in memory: a million comparisons (about 180,000 pairs from
50,000 prompts and 200,000 replies, 25,000 reviewers) build in about 10 s and take about 1 GB as
a polars frame (1.4 GB peak RSS). :func:`iter_world_chunks` yields the same rows chunk by chunk,
holding only the numeric arrays (about 100 bytes per comparison) and the pool texts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import polars as pl

from dissensus.warehouse.demo.config import WorldConfig
from dissensus.warehouse.demo.crowd import assign_reviewers, draw_reviewers, judge, split_votes
from dissensus.warehouse.demo.pool import CLEAR, build_pool, choose_pairs, materialise
from dissensus.warehouse.demo.rows import (
    DAY,
    N_WEEKS,
    Core,
    build_rows,
    rationale_codes,
    rationale_index,
    seconds_spent,
    strengths,
)
from dissensus.warehouse.demo.schools import school_names, school_shares
from dissensus.warehouse.demo.texts import rationale_table
from dissensus.warehouse.demo.truth import truth_frames
from dissensus.warehouse.demo.vocab import CATEGORIES


@dataclass
class DemoWorld:
    """A simulated world: the input rows plus the ground truth behind them."""

    config: WorldConfig
    comparisons: pl.DataFrame
    """Input rows (every contract column plus ``reviewer_tenure_months``), in time order."""
    reviewers: pl.DataFrame
    """Truth per reviewer: school, lapse rate, position bias, lapse tilt, flags, workload."""
    pairs: pl.DataFrame
    """Truth per pair: margins per school (canonical orientation), consensus, kind."""
    judgments: pl.DataFrame
    """Truth per comparison: careful or lapse, display order, outcome for response_1."""
    schools: list[str]
    """School names; ``school_index`` in the truth frames indexes this list."""
    responses: pl.DataFrame = field(default_factory=pl.DataFrame)
    """Truth per response: id, text, model, features and utility per school."""


def simulate_world(config: WorldConfig | None = None, **overrides: object) -> DemoWorld:
    """Simulate a world; ``overrides`` replace fields of ``config`` (or of the defaults)."""
    config = replace(config or WorldConfig(), **overrides)  # type: ignore[arg-type]
    core, truth = _simulate(config)
    return DemoWorld(
        config=config,
        comparisons=build_rows(core),
        reviewers=truth["reviewers"],
        pairs=truth["pairs"],
        judgments=truth["judgments"],
        schools=school_names(config.n_schools),
        responses=truth["responses"],
    )


def iter_world_chunks(
    config: WorldConfig | None = None, chunk_size: int = 100_000
) -> Iterator[pl.DataFrame]:
    """Yield the comparison rows of ``simulate_world(config)`` in chunks of ``chunk_size``.

    Only the numeric per-comparison arrays and the pool texts are held; each chunk's strings are
    gathered when it is yielded, so peak memory is far below the full frame's.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    core, _ = _simulate(config or WorldConfig())
    for start in range(0, core.n_comparisons, chunk_size):
        yield build_rows(core, start, start + chunk_size)


def _longer_is_1(
    texts: list[str], r1: npt.NDArray[np.int64], r2: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Whether response_1's text is the longer (in characters, what a skimming eye sees)."""
    chars = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    return chars[r1] > chars[r2]


def _simulate(config: WorldConfig) -> tuple[Core, dict[str, pl.DataFrame]]:
    seeds = np.random.SeedSequence(config.seed).spawn(6)
    rng_pool, rng_text, rng_crowd, rng_assign, rng_judge, rng_rows = (
        np.random.default_rng(s) for s in seeds
    )
    n, n_schools = config.n_comparisons, config.n_schools
    shares = school_shares(n_schools, config.minority_share)
    n_reviewers = config.reviewer_count
    high = min(config.votes_per_pair[1], n_reviewers)
    low = min(config.votes_per_pair[0], high)
    n_repeat = min(round(config.repeat_share * n), n // 2)
    votes = split_votes(rng_assign, n - n_repeat, low, high)
    n_pairs = len(votes)
    n_contested = round(config.contested_share * n_pairs) if n_schools > 1 else 0
    n_ambiguous = min(round(config.ambiguous_share * n_pairs), n_pairs - n_contested)
    quotas = (n_pairs - n_contested - n_ambiguous, n_contested, n_ambiguous)
    pool = build_pool(rng_pool, quotas, n_schools, config.clear_margin, config.ambiguous_margin)
    chosen = materialise(rng_text, pool, choose_pairs(rng_pool, pool, quotas))
    crowd = draw_reviewers(
        rng_crowd, n_reviewers, shares, config.rushed_share, config.position_biased_share
    )

    # Votes, then deliberate repeats of earlier (reviewer, pair) judgments.
    base_pair, base_reviewer = assign_reviewers(rng_assign, votes, crowd.activity)
    n_base = len(base_pair)
    source = rng_assign.choice(n_base, size=n_repeat, replace=False)
    swapped = np.arange(n_repeat) < (n_repeat + 1) // 2
    base_first = rng_assign.random(n_base) < 0.5
    base_a = rng_assign.random(n_base) < 0.5
    day = rng_assign.integers(0, N_WEEKS * 7, size=n_base)
    base_created = day * DAY + rng_assign.integers(8 * 3600, 20 * 3600, size=n_base)
    end = N_WEEKS * 7 * DAY
    gap = rng_assign.integers(DAY, 10 * DAY, size=n_repeat)
    room = np.maximum(end - 1 - base_created[source], 60)
    pair = np.concatenate([base_pair, base_pair[source]])
    reviewer = np.concatenate([base_reviewer, base_reviewer[source]])
    first_is_1 = np.concatenate([base_first, base_first[source] ^ swapped])
    a_is_1 = np.concatenate([base_a, base_a[source]])
    created = np.concatenate([base_created, base_created[source] + np.minimum(gap, room)])
    repeat_of = np.concatenate([np.full(n_base, -1), source])

    # Judgments and their row-level details.
    school = crowd.school_index[reviewer]
    margin = chosen.margins[pair, school]
    judged = judge(
        rng_judge,
        margin,
        first_is_1,
        crowd.lapse_rate[reviewer],
        crowd.position_bias[reviewer],
        crowd.lapse_tilt[reviewer],
        config.tie_threshold,
        longer_is_1=_longer_is_1(chosen.reply_texts, chosen.r1[pair], chosen.r2[pair]),
        length_lean=config.lapse_length_lean,
    )
    rushed = crowd.is_rushed[reviewer]
    r1, r2 = chosen.r1[pair], chosen.r2[pair]
    winner = np.where(judged.outcome >= 0, r1, r2)
    loser = np.where(judged.outcome >= 0, r2, r1)
    codes = rationale_codes(
        chosen.reply_features[winner],
        chosen.reply_features[loser],
        school,
        judged.careful,
        rushed,
        judged.outcome,
    )
    texts, offsets, counts = rationale_table()
    winner_is_a = (judged.outcome * np.where(a_is_1, 1, -1)) >= 0
    rationale = rationale_index(rng_rows, codes, winner_is_a, offsets, counts, len(texts))
    strength = strengths(rng_rows, judged.eta, judged.careful, judged.outcome)
    seconds = seconds_spent(rng_rows, crowd.speed[reviewer], rushed, judged.careful)

    # Gold answers on whole clear pairs, about gold_share of all rows.
    consensus = chosen.margins @ shares
    per_pair = np.bincount(pair, minlength=n_pairs)
    clear_pairs = rng_rows.permutation(np.flatnonzero(chosen.kind == CLEAR))
    covered = np.cumsum(per_pair[clear_pairs])
    gold = np.zeros(n_pairs, dtype=np.int64)
    gold_pairs = clear_pairs[:0]
    if config.gold_share > 0:
        gold_pairs = clear_pairs[: int(np.searchsorted(covered, config.gold_share * n)) + 1]
    gold[gold_pairs] = np.where(consensus[gold_pairs] > 0, 1, -1)

    # Final order: by time; comparison ids follow it.
    order = np.argsort(created, kind="stable")
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    repeat_of = np.where(repeat_of[order] >= 0, position[np.maximum(repeat_of[order], 0)], -1)
    per = {
        "pair": pair,
        "reviewer": reviewer,
        "a_is_1": a_is_1,
        "first_is_1": first_is_1,
        "outcome": judged.outcome,
        "created": created,
        "strength": strength,
        "seconds": seconds,
        "rationale": rationale,
        "careful": judged.careful,
        "eta": judged.eta,
        "margin": margin,
        "school": school,
    }
    per = {key: value[order] for key, value in per.items()}
    per["repeat_of"] = repeat_of
    core, truth = truth_frames(
        config, chosen, crowd, per, consensus, gold, shares, texts, [*CATEGORIES]
    )
    return core, truth
