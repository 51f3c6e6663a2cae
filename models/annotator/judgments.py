"""Integer-coded judgments: the input every inference path of the annotator model reads.

A plain data type (numpy arrays and counts), with no dependency on the algorithms that use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .errors import AnnotatorDataError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Judgments:
    """Integer-coded judgments, sorted by pair (``pair_start`` delimits each pair's votes)."""

    reviewer: IntArray
    pair: IntArray
    y: IntArray
    s: IntArray
    n_reviewers: int
    n_pairs: int
    pair_responses: IntArray | None = None  # (n_pairs, 2) response indices, when known
    n_responses: int = 0
    pair_features: FloatArray | None = None  # (n_pairs, F) response-feature differences
    lapse_cues: FloatArray | None = None  # (n, C) what a lapse may lean toward (.lapse_cues)
    # the largest lapse rate a reviewer may have: 0.5, or more in a label task (see
    # AnnotatorConfig.label_lapse_max)
    lapse_max: float = 0.5

    def __post_init__(self) -> None:
        problem = None
        if np.any(np.diff(self.pair) < 0):
            problem = "judgments are not sorted by pair"
        elif self.pair_responses is not None and self.pair_responses.shape != (self.n_pairs, 2):
            problem = "pair_responses does not have one (response 1, response 2) row per pair"
        elif self.pair_features is not None and self.pair_features.shape[0] != self.n_pairs:
            problem = "pair_features does not have one row per pair"
        elif self.lapse_cues is not None and self.lapse_cues.shape[0] != self.y.shape[0]:
            problem = "lapse_cues does not have one row per judgment"
        if problem is not None:
            raise AnnotatorDataError(
                problem, where="annotator model input (coded judgments)",
                expected="judgments sorted by pair; per-pair arrays with one row per pair",
                fix="code the model frame with models.annotator.data.encode_frame",
            )

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    def subset(self, rows: NDArray[np.bool_]) -> tuple[Judgments, IntArray]:
        """The judgments where ``rows`` is true, pairs and reviewers recoded (pairs left with
        no vote dropped). Returns them and, for each of their reviewers, its index here."""
        kept_pair = np.bincount(self.pair[rows], minlength=self.n_pairs) > 0
        pair_code = np.cumsum(kept_pair) - 1
        reviewers, reviewer = np.unique(self.reviewer[rows], return_inverse=True)
        part = Judgments(
            reviewer=reviewer.astype(np.int64), pair=pair_code[self.pair[rows]].astype(np.int64),
            y=self.y[rows], s=self.s[rows], n_reviewers=int(reviewers.size),
            n_pairs=int(kept_pair.sum()),
            pair_responses=(None if self.pair_responses is None
                            else self.pair_responses[kept_pair]),
            n_responses=self.n_responses,
            pair_features=None if self.pair_features is None else self.pair_features[kept_pair],
            lapse_cues=None if self.lapse_cues is None else self.lapse_cues[rows],
            lapse_max=self.lapse_max,
        )
        return part, reviewers.astype(np.int64)

    @property
    def pair_start(self) -> IntArray:
        return np.searchsorted(self.pair, np.arange(self.n_pairs + 1)).astype(np.int64)
