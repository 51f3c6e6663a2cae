"""Ground-truth frames of a simulated world, and the lookups rows are rendered from.

Orientation: every margin and outcome refers to the pair's canonical order, response_1 being
the reply with the smaller :func:`warehouse.ids.response_id` (as in :func:`~warehouse.ids.pair_id`).

* ``reviewers``: reviewer_id, school, school_index, lapse_rate (eps; reliability = 1 - eps),
  position_bias (beta), lapse_tilt (gamma), is_rushed, is_position_biased (strong beta among
  careful reviewers, or gamma = 0.75 among rushed ones), n_comparisons (repeats included),
  activity, reviewer_pool, reviewer_locale, reviewer_tenure_months.
* ``pairs``: pair_id, prompt_id (text id of the prompt), category, response_1_id,
  response_2_id, margin_<school> per school, consensus_margin (school-share weighted sum),
  contested, ambiguous, kind, n_votes (distinct reviewers), n_judgments (with repeats), is_gold.
* ``judgments`` (same order as the rows): comparison_id, reviewer_id, pair_id, careful,
  first_shown_is_response_1 (s = +1), outcome (+1 response_1, -1 response_2, 0 tie; lapses
  never tie), response_a_is_response_1, school_index, margin (of the reviewer's school), eta
  (``margin + beta * s``), p_response_1_careful, p_response_2_careful, is_repeat, repeat_of.
* ``responses``: response_id, prompt_id, text_id, text, model, tags, the feature columns and
  utility_<school> per school.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from dissensus.warehouse.demo.config import WorldConfig
from dissensus.warehouse.demo.crowd import LOCALES, POOLS, Reviewers, sigmoid
from dissensus.warehouse.demo.pool import KINDS, ChosenPairs
from dissensus.warehouse.demo.rows import Core
from dissensus.warehouse.demo.schools import FEATURES, MODELS, TAG_FEATURES, school_names

_TAG_COLUMNS: Final = tuple(FEATURES.index(tag) for tag in TAG_FEATURES)


def tag_strings(features: npt.NDArray[np.float64]) -> list[str | None]:
    """Comma-separated tags of each reply (order of ``TAG_FEATURES``), ``None`` when untagged."""
    bits = (features[:, _TAG_COLUMNS] > 0).astype(np.int64)
    codes = bits @ (1 << np.arange(len(TAG_FEATURES)))
    table = [
        ",".join(t for i, t in enumerate(TAG_FEATURES) if code >> i & 1) or None
        for code in range(1 << len(TAG_FEATURES))
    ]
    return [table[c] for c in codes.tolist()]


def _ids(prefix: str, numbers: npt.NDArray[np.int64], width: int) -> pl.Series:
    return prefix + pl.Series(numbers).cast(pl.String).str.zfill(width)


def truth_frames(
    config: WorldConfig,
    chosen: ChosenPairs,
    crowd: Reviewers,
    per: dict[str, npt.NDArray],
    consensus: npt.NDArray[np.float64],
    gold: npt.NDArray[np.int64],
    shares: npt.NDArray[np.float64],
    rationale_texts: list[str],
    categories: list[str],
) -> tuple[Core, dict[str, pl.DataFrame]]:
    """Build the row-rendering :class:`Core` and the truth frames.

    ``per`` holds per-comparison arrays in final order: pair, reviewer, a_is_1, first_is_1,
    outcome, created, strength, seconds, rationale, careful, eta, margin, school, repeat_of.
    """
    names = school_names(config.n_schools)
    n = len(per["pair"])
    n_reviewers = len(crowd.school_index)
    reviewer_ids = _ids("rev-", np.arange(1, n_reviewers + 1), max(4, len(str(n_reviewers))))
    comparison_ids = _ids("cmp-", np.arange(1, n + 1), max(7, len(str(n))))
    pair_ids = pl.Series(chosen.pair_ids, dtype=pl.String)
    tags = pl.Series(tag_strings(chosen.reply_features), dtype=pl.String)
    models = pl.Series([MODELS[m] for m in chosen.reply_model.tolist()], dtype=pl.String)
    prompt_ids = pl.Series(chosen.prompt_ids, dtype=pl.String)
    pool_names = pl.Series(list(POOLS)).gather(crowd.pool)
    locale_names = pl.Series(list(LOCALES)).gather(crowd.locale)
    core = Core(
        pair=per["pair"],
        reviewer=per["reviewer"],
        a_is_1=per["a_is_1"],
        first_is_1=per["first_is_1"],
        outcome=per["outcome"],
        created=per["created"],
        strength=per["strength"],
        seconds=per["seconds"],
        rationale=per["rationale"],
        pair_prompt=chosen.prompt,
        pair_r1=chosen.r1,
        pair_r2=chosen.r2,
        pair_gold=gold,
        prompt_texts=pl.Series(chosen.prompt_texts, dtype=pl.String),
        prompt_ids=prompt_ids,
        prompt_category=pl.Series(categories).gather(chosen.prompt_category),
        reply_texts=pl.Series(chosen.reply_texts, dtype=pl.String),
        reply_text_ids=pl.Series(chosen.reply_text_ids, dtype=pl.String),
        reply_models=models,
        reply_tags=tags,
        reviewer_ids=reviewer_ids,
        reviewer_pool=pool_names,
        reviewer_locale=locale_names,
        reviewer_tenure=pl.Series(crowd.tenure_months, dtype=pl.Int64),
        rationale_texts=pl.Series([*rationale_texts, None], dtype=pl.String),
    )

    is_repeat = per["repeat_of"] >= 0
    n_pairs = len(chosen.pair_ids)
    n_judgments = np.bincount(per["pair"], minlength=n_pairs)
    n_votes = n_judgments - np.bincount(per["pair"][is_repeat], minlength=n_pairs)
    reply_ids = pl.Series(chosen.reply_ids, dtype=pl.String)
    kind = np.asarray(KINDS)[chosen.kind]
    pairs = pl.DataFrame(
        {
            "pair_id": pair_ids,
            "prompt_id": prompt_ids.gather(chosen.prompt),
            "category": core.prompt_category.gather(chosen.prompt),
            "response_1_id": reply_ids.gather(chosen.r1),
            "response_2_id": reply_ids.gather(chosen.r2),
            **{f"margin_{name}": chosen.margins[:, k] for k, name in enumerate(names)},
            "consensus_margin": consensus,
            "contested": kind == "contested",
            "ambiguous": kind == "ambiguous",
            "kind": kind,
            "n_votes": n_votes,
            "n_judgments": n_judgments,
            "is_gold": gold != 0,
        }
    )

    reviewers = pl.DataFrame(
        {
            "reviewer_id": reviewer_ids,
            "school": pl.Series(names).gather(crowd.school_index),
            "school_index": crowd.school_index,
            "lapse_rate": crowd.lapse_rate,
            "position_bias": crowd.position_bias,
            "lapse_tilt": crowd.lapse_tilt,
            "is_rushed": crowd.is_rushed,
            "is_position_biased": crowd.is_position_biased,
            "n_comparisons": np.bincount(per["reviewer"], minlength=n_reviewers),
            "activity": crowd.activity,
            "reviewer_pool": pool_names,
            "reviewer_locale": locale_names,
            "reviewer_tenure_months": crowd.tenure_months,
        }
    )

    tau = config.tie_threshold
    repeat_ids = comparison_ids.gather(np.maximum(per["repeat_of"], 0))
    judgments = pl.DataFrame(
        {
            "comparison_id": comparison_ids,
            "reviewer_id": reviewer_ids.gather(per["reviewer"]),
            "pair_id": pair_ids.gather(per["pair"]),
            "careful": per["careful"],
            "first_shown_is_response_1": per["first_is_1"],
            "outcome": per["outcome"],
            "response_a_is_response_1": per["a_is_1"],
            "school_index": per["school"],
            "margin": per["margin"],
            "eta": per["eta"],
            "p_response_1_careful": sigmoid(per["eta"] - tau),
            "p_response_2_careful": sigmoid(-per["eta"] - tau),
            "is_repeat": is_repeat,
            "repeat_of": repeat_ids,
        }
    ).with_columns(repeat_of=pl.when(pl.col("is_repeat")).then(pl.col("repeat_of")).otherwise(None))

    features = chosen.reply_features
    responses = pl.DataFrame(
        {
            "response_id": reply_ids,
            "prompt_id": prompt_ids.gather(chosen.reply_prompt),
            "text_id": pl.Series(chosen.reply_text_ids, dtype=pl.String),
            "text": core.reply_texts,
            "model": models,
            "tags": tags,
            **{name: features[:, i].astype(np.int64) for i, name in enumerate(FEATURES)},
            **{f"utility_{name}": chosen.reply_utility[:, k] for k, name in enumerate(names)},
        }
    )
    return core, {
        "pairs": pairs,
        "reviewers": reviewers,
        "judgments": judgments,
        "responses": responses,
    }
