"""Response features as covariates of the school margins: tags, and tags within a category.

Reviewers' viewpoints are usually about *what a reply does*: a caution-first reviewer rewards
escalating a chest-pain message, an access-first one rewards offering an appointment. When the
data carry such flags (the contract's ``response_a_tags`` / ``response_b_tags``: ``refusal``,
``escalation``, ``hallucination``...), school ``k``'s margin on pair ``j`` is modelled as

    m_{j,k} ~ w_k . d_j + noise,    d_j = x(response_1) - x(response_2),

with ``x`` one indicator per tag plus one per (tag, prompt category): a school may weigh a tag
differently in, say, urgent-symptom prompts. Every pair with a tag difference then informs the
school weights ``w_k``, and they inform every pair -- pooling far beyond the 1-2 pairs a reply
is usually compared in. See :mod:`.deviation_prior` for how the school deviations use it and
:mod:`.pooling` for the consensus margin.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

TAG_COLUMNS = ("response_1_tags", "response_2_tags")
CATEGORY_COLUMN = "category"
MIN_PAIRS = 5
"""A feature is kept when it differs between the two replies of at least this many pairs."""
MAX_FEATURES = 200
"""At most this many features (the most frequent): the regression stays cheap and stable."""


@dataclass(frozen=True)
class PairFeatures:
    """``(J, F)`` feature differences ``x(response_1) - x(response_2)``, in pair order."""

    diff: FloatArray
    names: list[str]

    @property
    def n_features(self) -> int:
        return int(self.diff.shape[1])


def _tag_sets(values: list[object]) -> list[frozenset[str]]:
    """One set of tags per value: a list of tags, a comma-separated string or null."""
    out = []
    for v in values:
        if v is None:
            out.append(frozenset())
        elif isinstance(v, str):
            out.append(frozenset(t.strip() for t in v.split(",") if t.strip()))
        else:
            out.append(frozenset(str(t) for t in v if t is not None and str(t)))  # type: ignore[attr-defined]
    return out


def pair_features(per_pair: pl.DataFrame) -> PairFeatures | None:
    """Feature differences from one row per pair (sorted by ``pair_id``) with the tag columns.

    ``per_pair`` needs ``response_1_tags`` and ``response_2_tags`` (lists of strings or
    comma-separated strings, null when unknown) and may carry ``category``. Returns ``None``
    when no feature differs in at least :data:`MIN_PAIRS` pairs (no tags, or tags that never
    tell two replies apart).
    """
    if not all(c in per_pair.columns for c in TAG_COLUMNS):
        return None
    tags_1 = _tag_sets(per_pair["response_1_tags"].to_list())
    tags_2 = _tag_sets(per_pair["response_2_tags"].to_list())
    category = (per_pair[CATEGORY_COLUMN].cast(pl.String).to_list()
                if CATEGORY_COLUMN in per_pair.columns else [None] * per_pair.height)
    counts: Counter[str] = Counter()
    pair_terms: list[tuple[frozenset[str], frozenset[str]]] = []
    for t1, t2, cat in zip(tags_1, tags_2, category, strict=True):
        f1 = t1 | {f"{t}|{cat}" for t in t1} if cat else t1
        f2 = t2 | {f"{t}|{cat}" for t in t2} if cat else t2
        pair_terms.append((f1, f2))
        counts.update(f1 ^ f2)
    names = sorted(n for n, c in counts.most_common(MAX_FEATURES) if c >= MIN_PAIRS)
    if not names:
        return None
    column = {n: i for i, n in enumerate(names)}
    diff = np.zeros((per_pair.height, len(names)))
    for j, (f1, f2) in enumerate(pair_terms):
        for n in f1 - f2:
            if n in column:
                diff[j, column[n]] += 1.0
        for n in f2 - f1:
            if n in column:
                diff[j, column[n]] -= 1.0
    return PairFeatures(diff, names)
