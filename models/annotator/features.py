"""Response features as covariates of the school margins: tags, and tags within a category.

Reviewers' viewpoints are usually about *what a reply does*: a caution-first reviewer rewards
escalating a chest-pain message, an access-first one rewards offering an appointment. When the
data carry such flags (the contract's ``response_a_tags`` / ``response_b_tags``: ``refusal``,
``escalation``, ``hallucination``...), school ``k``'s margin on pair ``j`` is modelled as

    m_{j,k} ~ w_k . d_j + noise,    d_j = x(response_1) - x(response_2),

with ``x`` one indicator per tag plus one per (tag, prompt category): a school may weigh a tag
differently in, say, urgent-symptom prompts. Real data rarely carry tags; then ``x`` can be the
reply's *content*: its sentence embedding reduced to a few standardised principal components
(:mod:`.content`; the columns ``response_1_content`` / ``response_2_content``), whose
differences enter exactly as the tag differences do. Every pair with a feature difference
then informs the school weights ``w_k``, and they inform every pair -- pooling far beyond the
1-2 pairs a reply is usually compared in. See :mod:`.deviation_prior` for how the school
deviations use it and :mod:`.pooling` for the consensus margin.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

TAG_COLUMNS = ("response_1_tags", "response_2_tags")
CONTENT_COLUMNS = ("response_1_content", "response_2_content")
CONTENT_PREFIX = "content_"
"""Content features are named ``content_1``, ``content_2``... (principal components)."""
FeatureSource = Literal["auto", "tags", "embeddings", "both", "none"]
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

    @property
    def content_index(self) -> list[int]:
        """Columns that are content components (not tags), in component order."""
        return [i for i, n in enumerate(self.names) if n.startswith(CONTENT_PREFIX)]

    @property
    def source(self) -> str:
        """'tags', 'embeddings' or 'both': what the features are made of."""
        content = len(self.content_index)
        return "embeddings" if content == len(self.names) else "tags" if not content else "both"


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


def pair_features(per_pair: pl.DataFrame, source: FeatureSource = "auto") -> PairFeatures | None:
    """Feature differences from one row per pair (sorted by ``pair_id``) with the tag columns.

    ``per_pair`` needs ``response_1_tags`` and ``response_2_tags`` (lists of strings or
    comma-separated strings, null when unknown) and may carry ``category``. Returns ``None``
    when no feature differs in at least :data:`MIN_PAIRS` pairs (no tags, or tags that never
    tell two replies apart). ``source``: which features to use when the frame carries both
    tags and content (``response_*_content``); ``auto`` takes the tags when they tell replies
    apart, else the content.
    """
    if source == "none":
        return None
    tags = _tag_features(per_pair) if source in ("auto", "tags", "both") else None
    if source == "tags" or (source == "auto" and tags is not None):
        return tags
    content = _content_features(per_pair)
    if tags is None or content is None:
        return tags if content is None else content
    return PairFeatures(np.hstack([tags.diff, content.diff]), tags.names + content.names)


def _content_features(per_pair: pl.DataFrame) -> PairFeatures | None:
    """Differences of the replies' content components; a pair missing either reply's content
    gets zeros (no evidence either way)."""
    if not all(c in per_pair.columns for c in CONTENT_COLUMNS):
        return None
    first, second = (per_pair[c].to_list() for c in CONTENT_COLUMNS)
    dims = max((len(v) for v in first + second if v is not None), default=0)
    if dims == 0:
        return None
    diff = np.zeros((per_pair.height, dims))
    for j, (a, b) in enumerate(zip(first, second, strict=True)):
        if a is not None and b is not None and len(a) == dims and len(b) == dims:
            diff[j] = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if int(np.sum(np.any(diff != 0.0, axis=1))) < MIN_PAIRS:
        return None
    return PairFeatures(diff, [f"{CONTENT_PREFIX}{i + 1}" for i in range(dims)])


def _tag_features(per_pair: pl.DataFrame) -> PairFeatures | None:
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
