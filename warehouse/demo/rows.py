"""From simulated judgments to the input rows of the data contract.

Row-level details are drawn once for all comparisons (vectorised) and kept in :class:`Core`;
:func:`build_rows` then turns any slice of comparisons into a polars frame by gathering strings
from small lookup series, so a million rows take a few seconds and chunks equal the full frame.

* ``strength``: careful non-tie: ``1 + [z > 1.2] + [z > 2.6]`` with ``z = |eta| + N(0, 0.6)``;
  ties 1; lapses 1, 2, 3 with probabilities 0.7, 0.22, 0.08.
* ``seconds_spent``: reviewer median (75 s careful, 12 s rushed, times LogNormal(0, 0.25))
  times LogNormal(0, 0.5) per judgment, times 0.4 for lapses of careful reviewers.
* ``rationale``: a template chosen by the clearest feature difference between the chosen and
  the rejected reply, in an order that depends on the reviewer's school; generic text for ties
  and lapses; rushed reviewers write little or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from dissensus.warehouse.demo.phrases import RATIONALE_REASONS
from dissensus.warehouse.demo.schools import ESC, HAL, HED, OFF, REF, SCHOOL_NAMES, WARM

#: Monday of ISO week 2026-W14, the first day of the simulated collection.
START: Final = datetime(2026, 3, 30, tzinfo=UTC)
START_WEEK: Final = 14
N_WEEKS: Final = 8
#: First week (0-based) labelled with guideline version v2.
GUIDELINE_V2_WEEK: Final = 4
DAY: Final = 86_400
_R = {name: i for i, name in enumerate(RATIONALE_REASONS)}


@dataclass
class Core:
    """Everything needed to render comparison rows; per-comparison arrays in final order."""

    pair: npt.NDArray[np.int64]
    reviewer: npt.NDArray[np.int64]
    a_is_1: npt.NDArray[np.bool_]
    first_is_1: npt.NDArray[np.bool_]
    outcome: npt.NDArray[np.int64]
    created: npt.NDArray[np.int64]  # seconds since START
    strength: npt.NDArray[np.int64]
    seconds: npt.NDArray[np.float64]
    rationale: npt.NDArray[np.int64]  # index into rationale_texts
    pair_prompt: npt.NDArray[np.int64]
    pair_r1: npt.NDArray[np.int64]
    pair_r2: npt.NDArray[np.int64]
    pair_gold: npt.NDArray[np.int64]  # +1 response_1, -1 response_2, 0 not a gold pair
    prompt_texts: pl.Series
    prompt_ids: pl.Series
    prompt_category: pl.Series
    reply_texts: pl.Series
    reply_text_ids: pl.Series
    reply_models: pl.Series
    reply_tags: pl.Series
    reviewer_ids: pl.Series
    reviewer_pool: pl.Series
    reviewer_locale: pl.Series
    reviewer_tenure: pl.Series
    rationale_texts: pl.Series

    @property
    def n_comparisons(self) -> int:
        """Number of comparisons."""
        return len(self.pair)


def strengths(
    rng: np.random.Generator,
    eta: npt.NDArray[np.float64],
    careful: npt.NDArray[np.bool_],
    outcome: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Stated strength 1-3 (see the module docstring)."""
    z = np.abs(eta) + rng.normal(0.0, 0.6, size=len(eta))
    careful_strength = 1 + (z > 1.2).astype(np.int64) + (z > 2.6)
    lapse_strength = 1 + (rng.random(len(eta))[:, None] > [0.7, 0.92]).sum(axis=1)
    strength = np.where(careful, careful_strength, lapse_strength)
    return np.where(careful & (outcome == 0), 1, strength).astype(np.int64)


def seconds_spent(
    rng: np.random.Generator,
    reviewer_speed: npt.NDArray[np.float64],
    rushed: npt.NDArray[np.bool_],
    careful: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float64]:
    """Seconds per judgment (see the module docstring), rounded to 0.1 s, at least 2 s."""
    seconds = reviewer_speed * rng.lognormal(0.0, 0.5, size=len(reviewer_speed))
    seconds = np.where(~careful & ~rushed, 0.4 * seconds, seconds)
    return np.round(np.maximum(seconds, 2.0), 1)


def rationale_codes(
    winner: npt.NDArray[np.float64],
    loser: npt.NDArray[np.float64],
    school: npt.NDArray[np.int64],
    careful: npt.NDArray[np.bool_],
    rushed: npt.NDArray[np.bool_],
    outcome: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Reason code per judgment (index into :data:`~warehouse.demo.phrases.RATIONALE_REASONS`).

    ``winner``/``loser`` are the feature rows of the chosen and rejected reply (for ties the
    order does not matter). Priority: rushed, lapse, tie, the loser's hallucination, the
    loser's refusal, the caution school's escalation and hedge, the empathy school's warmth,
    an offer, the access school's dislike of the loser's escalation and hedge, warmth, generic.
    """

    def gain(f: int) -> npt.NDArray[np.bool_]:
        return winner[:, f] > loser[:, f]

    def loss(f: int) -> npt.NDArray[np.bool_]:
        return loser[:, f] > winner[:, f]

    access = school == SCHOOL_NAMES.index("access_first")
    caution = school == SCHOOL_NAMES.index("caution_first")
    empathy = school == SCHOOL_NAMES.index("empathy_first")
    rules = [
        (rushed, "rushed"),
        (~careful, "careless"),
        (outcome == 0, "tie"),
        (loss(HAL), "loser_hallucinates"),
        (loss(REF), "loser_refuses"),
        (caution & gain(ESC), "winner_escalates"),
        (caution & gain(HED), "winner_hedges"),
        (empathy & gain(WARM), "warmer"),
        (gain(OFF), "winner_offers"),
        (access & loss(ESC), "loser_escalates"),
        (access & loss(HED), "loser_hedges"),
        (empathy & gain(ESC), "winner_escalates"),
        (gain(WARM), "warmer"),
    ]
    conditions = [condition for condition, _ in rules]
    choices = [_R[name] for _, name in rules]
    return np.select(conditions, choices, default=_R["fallback"]).astype(np.int64)


def rationale_index(
    rng: np.random.Generator,
    codes: npt.NDArray[np.int64],
    winner_is_a: npt.NDArray[np.bool_],
    offsets: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    null_index: int,
) -> npt.NDArray[np.int64]:
    """Pick the row of the rationale table for each judgment.

    Rushed reviewers leave it empty half the time, everyone else 5% of the time
    (``null_index`` is the table's null entry).
    """
    variant = rng.integers(0, 1 << 30, size=len(codes)) % counts[codes]
    index = offsets[codes] + 2 * variant + (~winner_is_a).astype(np.int64)
    empty_p = np.where(codes == _R["rushed"], 0.5, 0.05)
    return np.where(rng.random(len(codes)) < empty_p, null_index, index)


def build_rows(core: Core, start: int = 0, stop: int | None = None) -> pl.DataFrame:
    """Contract rows for comparisons ``start:stop`` (all contract columns plus a reviewer_*)."""
    stop = core.n_comparisons if stop is None else min(stop, core.n_comparisons)
    window = slice(start, stop)
    pair = core.pair[window]
    a_is_1 = core.a_is_1[window]
    r1, r2 = core.pair_r1[pair], core.pair_r2[pair]
    reply_a, reply_b = np.where(a_is_1, r1, r2), np.where(a_is_1, r2, r1)
    prompt = core.pair_prompt[pair]
    orient = np.where(a_is_1, 1, -1)
    reviewer = core.reviewer[window]
    created = core.created[window]
    week = np.minimum(created // (7 * DAY), N_WEEKS - 1)
    ab = pl.Series(["b", "tie", "a"])
    gold = pl.Series(["b", None, "a"], dtype=pl.String)
    batches = pl.Series([f"{START.year}-W{START_WEEK + w:02d}" for w in range(N_WEEKS)])
    versions = pl.Series(["v1" if w < GUIDELINE_V2_WEEK else "v2" for w in range(N_WEEKS)])
    first_is_a = core.first_is_1[window] == a_is_1
    width = max(7, len(str(core.n_comparisons)))
    numbers = pl.Series(np.arange(start + 1, stop + 1, dtype=np.int64))
    epoch = int(START.timestamp()) + created
    # Rows carry the texts themselves, as most exports do; the id columns stay empty.
    no_ids = pl.repeat(None, stop - start, dtype=pl.String, eager=True)
    columns = {
        "comparison_id": ("cmp-" + numbers.cast(pl.String).str.zfill(width)),
        "reviewer_id": core.reviewer_ids.gather(reviewer),
        "prompt_id": no_ids,
        "prompt": core.prompt_texts.gather(prompt),
        "response_a_id": no_ids,
        "response_a": core.reply_texts.gather(reply_a),
        "response_b_id": no_ids,
        "response_b": core.reply_texts.gather(reply_b),
        "choice": ab.gather(core.outcome[window] * orient + 1),
        "shown_first": pl.Series(np.where(first_is_a, "a", "b")),
        "strength": pl.Series(core.strength[window]),
        "created_at": pl.from_epoch(pl.Series(epoch), time_unit="s").dt.strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        "seconds_spent": pl.Series(core.seconds[window]),
        "category": core.prompt_category.gather(prompt),
        "guideline_version": versions.gather(week),
        "batch": batches.gather(week),
        "rationale": core.rationale_texts.gather(core.rationale[window]),
        "gold_choice": gold.gather(core.pair_gold[pair] * orient + 1),
        "response_a_model": core.reply_models.gather(reply_a),
        "response_b_model": core.reply_models.gather(reply_b),
        "response_a_tags": core.reply_tags.gather(reply_a),
        "response_b_tags": core.reply_tags.gather(reply_b),
        "reviewer_pool": core.reviewer_pool.gather(reviewer),
        "reviewer_locale": core.reviewer_locale.gather(reviewer),
        "reviewer_tenure_months": core.reviewer_tenure.gather(reviewer),
    }
    return pl.DataFrame([series.alias(name) for name, series in columns.items()])
