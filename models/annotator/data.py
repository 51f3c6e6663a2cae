"""Validation and integer coding of the model frame (the warehouse's ``model_frame``).

Input columns: ``comparison_id``, ``reviewer_id``, ``pair_id``, ``prompt_id`` (strings),
``outcome`` (+1 response 1 preferred, -1 response 2, 0 tie) and ``first_shown`` (1 or 2: which
response was displayed first; null when unknown, which the model reads as ``s = 0``).
Optional: ``response_1_id`` and ``response_2_id`` (strings): with them, pairs that share a
response pool their consensus margins (see :mod:`.pooling`); ``response_1_tags`` and
``response_2_tags`` (lists of strings) and ``category`` (the prompt's): response features that
inform the school deviations (see :mod:`.features`); ``response_1_content`` and
``response_2_content`` (lists of floats: each reply's reduced embedding, see :mod:`.content`),
the same for data without tags.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from numpy.typing import NDArray

from .errors import AnnotatorDataError
from .features import (
    CATEGORY_COLUMN,
    CONTENT_COLUMNS,
    TAG_COLUMNS,
    FeatureSource,
    PairFeatures,
    pair_features,
)
from .judgments import Judgments
from .lapse_cues import NO_CUES, CueSpec, choose_cues, cue_matrix, label_side, label_task

REQUIRED_COLUMNS = ("comparison_id", "reviewer_id", "pair_id", "prompt_id", "outcome",
                    "first_shown")
RESPONSE_COLUMNS = ("response_1_id", "response_2_id")


@dataclass(frozen=True)
class EncodedFrame:
    """Judgments coded for the model, sorted by pair, plus the ids to decode results."""

    judgments: Judgments
    comparison_ids: list[str]  # in the sorted (model) order
    reviewer_ids: list[str]
    pair_ids: list[str]
    prompt_ids: list[str]  # per pair
    reviewer_counts: np.ndarray  # judgments per reviewer
    pair_counts: np.ndarray  # judgments per pair
    warnings: list[str]
    features: PairFeatures | None = None
    cues: CueSpec = NO_CUES  # what lapses may lean toward (besides the first-shown reply)


def _pair_responses(sorted_frame: pl.DataFrame) -> tuple[np.ndarray | None, int]:
    """``(pairs, 2)`` response indices in ``pair_id`` order, when every pair names both."""
    if not all(c in sorted_frame.columns for c in RESPONSE_COLUMNS):
        return None, 0
    per_pair = sorted_frame.group_by("pair_id").agg(
        pl.col("response_1_id").first().cast(pl.String),
        pl.col("response_2_id").first().cast(pl.String),
        pl.col("response_1_id").n_unique().alias("n1"),
        pl.col("response_2_id").n_unique().alias("n2"),
    ).sort("pair_id")
    if per_pair["response_1_id"].null_count() or per_pair["response_2_id"].null_count():
        return None, 0
    conflicting = per_pair.filter((pl.col("n1") > 1) | (pl.col("n2") > 1))
    if conflicting.height:
        raise AnnotatorDataError(
            f"{conflicting.height} pair(s) name more than one response_1_id or response_2_id, "
            f"e.g. pair {conflicting['pair_id'][0]!r}",
            where="annotator model input, columns response_1_id / response_2_id",
            expected="one (response_1_id, response_2_id) per pair_id",
            fix="build the frame with warehouse.queries.model_frame(con)",
        )
    ids, codes = np.unique(
        np.concatenate([per_pair["response_1_id"].to_numpy(), per_pair["response_2_id"].to_numpy()]
                       ).astype(str), return_inverse=True)
    return codes.reshape(2, -1).T.astype(np.int64).copy(), int(ids.size)


def vote_order(frame: pl.DataFrame, label_order: bool) -> NDArray[np.int64]:
    """``s`` per row: ``+1`` when response 1 was shown first, ``-1`` when second, ``0`` when
    unknown. With ``label_order``, a row without a display order in a label task gets which
    label response 1 is instead (:func:`.lapse_cues.label_side`): the position terms then read
    a reviewer's lean toward one label, as Dawid & Skene's confusion matrices do."""
    first = frame["first_shown"].to_numpy()
    s = np.where(first == 1, 1, np.where(first == 2, -1, 0)).astype(np.int64)
    if label_order:
        s = np.where(s == 0, label_side(frame), s)
    return s


def encode_frame(frame: pl.DataFrame, cues: CueSpec | None = None,
                 feature_source: FeatureSource = "auto",
                 label_order: bool = False) -> EncodedFrame:
    """Check the frame and code it; raises :class:`AnnotatorDataError` with a fix.

    ``cues``: the lapse cues to code (see :mod:`.lapse_cues`); by default the ones the frame's
    reply lengths and models support. ``feature_source``: which response features to code (tags,
    reply content or both, see :func:`.features.pair_features`). ``label_order``: in a label
    task, read votes without a display order in label order (:func:`vote_order`); a ``cues``
    spec that says so (a loaded fit's) does the same.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise AnnotatorDataError(
            f"the model frame lacks column(s) {', '.join(missing)}",
            where="annotator model input",
            expected=f"columns {', '.join(REQUIRED_COLUMNS)}",
            fix="build the frame with warehouse.queries.model_frame(con)",
        )
    if frame.height == 0:
        raise AnnotatorDataError(
            "there are no comparisons to fit",
            where="annotator model input",
            expected="at least one judged pair from two or more reviewers",
            fix="ingest comparisons first (dissensus ingest FILE), then fit",
        )
    n_null = int(frame["reviewer_id"].null_count())
    if n_null:
        raise AnnotatorDataError(
            f"{n_null} comparison(s) have no reviewer_id",
            where="annotator model input, column reviewer_id",
            expected="every judgment attributed to a reviewer: the model judges reviewers",
            fix="re-ingest with reviewer ids, or drop the anonymous rows before fitting",
        )
    for col in ("pair_id", "comparison_id", "outcome"):
        if frame[col].null_count():
            raise AnnotatorDataError(
                f"column {col} has {frame[col].null_count()} null value(s)",
                where=f"annotator model input, column {col}",
                expected=f"a {col} on every row",
                fix="use warehouse.queries.model_frame(con), which never emits such rows",
            )
    bad_outcome = frame.filter(~pl.col("outcome").is_in([-1, 0, 1])).height
    bad_first = frame.filter(
        pl.col("first_shown").is_not_null() & ~pl.col("first_shown").is_in([1, 2])
    ).height
    if bad_outcome or bad_first:
        raise AnnotatorDataError(
            f"{bad_outcome} outcome(s) outside {{-1, 0, 1}} and {bad_first} first_shown "
            "value(s) outside {1, 2, null}",
            where="annotator model input",
            expected="outcome +1 / -1 / 0 and first_shown 1 / 2 / null",
            fix="check the adapter that produced the frame",
        )
    n_reviewers = frame["reviewer_id"].n_unique()
    if n_reviewers < 2:
        raise AnnotatorDataError(
            f"only {n_reviewers} reviewer judged these comparisons",
            where="annotator model input",
            expected="two or more reviewers: reliability is only defined against other reviewers",
            fix="ingest judgments from more reviewers before fitting",
        )
    f = frame.sort(["pair_id", "comparison_id"])
    reviewer_ids, r_idx = np.unique(f["reviewer_id"].to_numpy().astype(str), return_inverse=True)
    pair_ids, p_idx = np.unique(f["pair_id"].to_numpy().astype(str), return_inverse=True)
    cue_spec = choose_cues(f) if cues is None else cues
    if label_order and not cue_spec.label_order and f["first_shown"].null_count():
        cue_spec = replace(cue_spec, label_order=label_task(f))
    s = vote_order(f, cue_spec.label_order)
    pair_responses, n_responses = _pair_responses(f)
    features = None
    keep = [c for c in (*TAG_COLUMNS, CATEGORY_COLUMN, *CONTENT_COLUMNS) if c in f.columns]
    if any(c in keep for c in (*TAG_COLUMNS, *CONTENT_COLUMNS)):
        per_pair = f.select("pair_id", *keep).unique("pair_id", keep="first").sort("pair_id")
        features = pair_features(per_pair, feature_source)
    judgments = Judgments(
        reviewer=r_idx.astype(np.int64),
        pair=p_idx.astype(np.int64),
        y=f["outcome"].to_numpy().astype(np.int64),
        s=s,
        n_reviewers=len(reviewer_ids),
        n_pairs=len(pair_ids),
        pair_responses=pair_responses,
        n_responses=n_responses,
        pair_features=None if features is None else features.diff,
        lapse_cues=cue_matrix(cue_spec, f),
    )
    prompt = (
        f.group_by("pair_id").agg(pl.col("prompt_id").first()).sort("pair_id")["prompt_id"]
        .cast(pl.String).fill_null("").to_list()
    )
    r_counts = np.bincount(judgments.reviewer, minlength=judgments.n_reviewers)
    p_counts = np.bincount(judgments.pair, minlength=judgments.n_pairs)
    warnings: list[str] = []
    singles = int(np.sum(r_counts == 1))
    if singles == judgments.n_reviewers:
        raise AnnotatorDataError(
            "every reviewer has a single judgment",
            where="annotator model input",
            expected="reviewers with several judgments: a reviewer's reliability is read from "
            "how their judgments hang together",
            fix="fit again once reviewers have judged more pairs",
        )
    if singles:
        warnings.append(
            f"{singles} reviewer(s) have a single judgment: kept, but their reliability stays "
            "close to the population's (wide intervals) and they are never flagged on it"
        )
    lone = int(np.sum(p_counts == 1))
    if lone:
        warnings.append(f"{lone} pair(s) have a single vote: their shares follow the prior")
    unknown = int(np.sum(s == 0))
    if unknown:
        warnings.append(
            f"{unknown} judgment(s) have no display order: position bias cannot act on them"
        )
    if cue_spec.label_order:
        warnings.append(
            "a label task without display order: position bias and lapse tilt are read in "
            "label order (positive: toward the longer label text), so a lean toward one label "
            "is seen"
        )
    return EncodedFrame(
        judgments=judgments,
        comparison_ids=f["comparison_id"].cast(pl.String).to_list(),
        reviewer_ids=reviewer_ids.tolist(),
        pair_ids=pair_ids.tolist(),
        prompt_ids=prompt,
        reviewer_counts=r_counts,
        pair_counts=p_counts,
        warnings=warnings,
        features=features,
        cues=cue_spec,
    )
