"""What the replies say, as a few numbers per reply: content features for the school deviations.

Real preference data rarely tag replies ("escalation", "refusal"), yet reviewers' schools
usually differ over exactly that kind of content. Each reply's sentence embedding ``e_r`` (the
reward models' encoder, cached beside the warehouse) is reduced to ``D`` standardised principal
components,

    z_r = diag(s)^-1 P' (e_r - mean),     P: the top-D principal axes of the warehouse's replies,

and a pair's feature difference is ``z_1 - z_2``, used exactly as tag differences are (see
:mod:`.features` and :mod:`.deviation_prior`): school ``k``'s margin is pulled by
``w_k . (z_1 - z_2)``. Principal axes have no names, so a school's direction ``w_k - mean_k w``
is described by the replies that score highest along it (:func:`school_examples`).

Why principal components of the replies (not of pair differences, nor a random projection):
on the demo world without tags, 32 components found the schools with a careful-reviewer ARI of
0.74 over 3 seeds of 10k comparisons and 0.80 on 6k (votes alone: 0.65); 8 or 16 components were
no better than the votes, 64 no better on fresh seeds and 128 over-fitted (benchmarks/RESULTS.md,
"Schools from what the replies say"). Standardising the components or keeping their variance
ratios gave the same schools (0.741 against 0.736).

Two closer readings, opt-in (``content_unit='sentences'``, ``content_axis``): a reply as the sum
of its sentences' embeddings (:func:`sentence_sums`), and one more direction learnt on the full
embedding from the votes of the reviewers a first fit places (:class:`VoteAxis`). Together they
found the demo world's schools with ARI 0.801 on twelve seeds of 10,000 comparisons against
0.743, where a perfect content feature reaches 0.809 on the first six; on a world of 6,000
comparisons with a 35% minority they did worse than whole replies (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from .features import CONTENT_COLUMNS

FloatArray = NDArray[np.float64]
AXIS_PLACED_PROBABILITY = 0.9
"""School probability from which a reviewer's votes train a :class:`VoteAxis` (stricter than
the summary's placing bar, so that the two schools of its target are seldom mixed)."""
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
"""Where a reply is cut into sentences: after . ! or ? and the space that follows."""


@dataclass(frozen=True)
class ContentBasis:
    """The reduction ``z = (e - mean) @ axes' / scale`` fitted on one set of replies."""

    mean: FloatArray  # (D_in,)
    axes: FloatArray  # (D, D_in)
    scale: FloatArray  # (D,)

    @classmethod
    def fit(cls, embeddings: NDArray[np.floating], dims: int) -> ContentBasis:
        """Principal axes of ``embeddings`` (replies x encoder dimensions), at most ``dims``
        (fewer when there are fewer replies or dimensions)."""
        e = np.asarray(embeddings, dtype=float)
        if e.ndim != 2 or e.shape[0] < 2:
            raise ValueError(f"need a (replies, dims) array of 2+ replies, got shape {e.shape}")
        mean = e.mean(axis=0)
        _, sv, vt = np.linalg.svd(e - mean, full_matrices=False)
        keep = int(min(dims, np.sum(sv > 1e-9 * max(sv[0], 1e-300))))
        scale = sv[:keep] / np.sqrt(max(e.shape[0] - 1, 1))
        return cls(mean, vt[:keep], scale)

    @property
    def dims(self) -> int:
        return int(self.axes.shape[0])

    def transform(self, embeddings: NDArray[np.floating]) -> FloatArray:
        """``(replies, D)`` standardised components."""
        return ((np.asarray(embeddings, dtype=float) - self.mean) @ self.axes.T) / self.scale


def with_content(frame: pl.DataFrame, response_ids: list[str], coords: FloatArray) -> pl.DataFrame:
    """``frame`` with ``response_1_content`` / ``response_2_content`` joined on the reply ids
    (null where a reply has none)."""
    table = pl.DataFrame(
        {"response_id": response_ids, "content": coords.tolist()},
        schema={"response_id": pl.String, "content": pl.List(pl.Float64)},
    )
    out = frame.drop(*CONTENT_COLUMNS, strict=False)
    for side, column in zip(("response_1_id", "response_2_id"), CONTENT_COLUMNS, strict=True):
        out = out.join(table.rename({"response_id": side, "content": column}),
                       on=side, how="left")
    return out


def school_examples(directions: FloatArray, coords: FloatArray, texts: list[str],
                    top: int = 2, width: int = 110) -> list[list[str]]:
    """Per school, up to ``top`` replies furthest along its direction (``directions``: schools x
    D, each relative to the schools' mean), shortened to ``width`` characters: what that
    school rewards more than the others do.

    A reply is named for one school only, and only where it lies on that school's side of the
    mean (a positive score); the schools take turns, so that where few distinct replies exist
    (a label task's two label texts) each school still gets the reply it leans toward rather
    than the first school taking them all."""
    directions = np.asarray(directions, dtype=float)
    scores = np.asarray(coords, dtype=float) @ directions.T  # (replies, schools)
    orders = [np.argsort(-scores[:, k], kind="stable") for k in range(directions.shape[0])]
    positions = [0] * len(orders)
    out: list[list[str]] = [[] for _ in orders]
    seen: set[str] = set()
    for _ in range(top):
        for k, order in enumerate(orders):
            while positions[k] < order.size:
                i = order[positions[k]]
                positions[k] += 1
                if scores[i, k] <= 0:
                    positions[k] = order.size  # the rest lie on the other side of the mean
                    break
                text = " ".join(texts[i].split())
                if text in seen:
                    continue
                seen.add(text)
                out[k].append(text if len(text) <= width else text[: width - 1] + "…")
                break
    return out


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (cut after . ! ?); a text without any is one sentence."""
    parts = [part.strip() for part in SENTENCE_END.split(text.strip())]
    return [part for part in parts if part] or [text]


def sentence_sums(texts: Sequence[str],
                  embed: Callable[[list[str]], NDArray[np.floating]]) -> FloatArray:
    """``(texts, dims)``: each text as the sum of its sentences' embeddings.

    Reviewers' tastes attach to statements (a referral to a doctor, an offer to book, a
    disclaimer), and a reply is a few of them. Summed, each statement adds the same vector
    whatever else the reply says, so a school's taste for it is one linear direction; a whole
    reply's embedding blends its statements, each diluted by the rest. On the untagged demo
    world a ridge on the summed embeddings carries 97-98% of the true school deviation against
    84-87% for the whole replies' (benchmarks/RESULTS.md). ``embed`` maps a list of distinct
    sentences to their embeddings, in order (each sentence is embedded once)."""
    sentences = [split_sentences(t) for t in texts]
    distinct = sorted({s for group in sentences for s in group})
    if not distinct:
        raise ValueError("no texts to embed")
    vectors = np.asarray(embed(distinct), dtype=float)
    row = {s: i for i, s in enumerate(distinct)}
    return np.stack([vectors[[row[s] for s in group]].sum(axis=0) for group in sentences])


@dataclass(frozen=True)
class VoteAxis:
    """A content direction learnt from the votes of the reviewers a first fit places.

    On every pair that placed reviewers of both schools voted on, the target is the
    difference of the two schools' mean votes (votes in {-1, 0, 1}), weighted by
    ``n_1 n_0 / (n_1 + n_0)`` (the inverse of its sampling variance, up to a constant); a
    ridge regression of it on the pair's embedding difference, penalty chosen by efficient
    leave-one-out (scikit-learn's ``RidgeCV``), gives the direction ``w``. Each reply's score
    ``e . w``, standardised, is a feature the second fit uses beside the components: it reads
    the full embedding where the components keep a few of its axes, and its target comes from
    votes, not from the first fit's own predictions (which would only restate them)."""

    scores: FloatArray  # (replies,) standardised
    n_pairs: int
    alpha: float

    @classmethod
    def from_fit(cls, votes: pl.DataFrame, reviewer_estimates: pl.DataFrame,
                 response_ids: Sequence[str], embeddings: NDArray[np.floating],
                 n_schools: int) -> VoteAxis | None:
        """The axis from a fit's reviewer estimates (reviewer_id, school, school_probability,
        flagged): the reviewers placed at :data:`AXIS_PLACED_PROBABILITY` and not flagged
        train it. None unless the fit has two schools (the target is their difference)."""
        if n_schools != 2:
            return None
        flagged = (pl.col("flagged").fill_null(False) if "flagged" in reviewer_estimates.columns
                   else pl.lit(False))
        placed = reviewer_estimates.filter(
            (pl.col("school_probability") >= AXIS_PLACED_PROBABILITY) & ~flagged)
        return cls.fit(votes, placed, response_ids, embeddings)

    @classmethod
    def fit(cls, votes: pl.DataFrame, schools: pl.DataFrame, response_ids: Sequence[str],
            embeddings: NDArray[np.floating], min_pairs: int = 30) -> VoteAxis | None:
        """``votes``: pair_id, reviewer_id, outcome, response_1_id, response_2_id;
        ``schools``: reviewer_id and school (0 or 1) of the placed reviewers. None where
        fewer than ``min_pairs`` pairs were voted on by both schools."""
        from sklearn.linear_model import RidgeCV

        per = (votes.select("pair_id", "reviewer_id", "outcome", "response_1_id",
                            "response_2_id")
               .join(schools.select("reviewer_id", "school"), on="reviewer_id")
               .group_by("pair_id", "response_1_id", "response_2_id")
               .agg(one=pl.col("outcome").filter(pl.col("school") == 1).cast(pl.Float64).mean(),
                    zero=pl.col("outcome").filter(pl.col("school") == 0).cast(pl.Float64)
                    .mean(),
                    n1=(pl.col("school") == 1).sum(), n0=(pl.col("school") == 0).sum())
               .filter((pl.col("n1") > 0) & (pl.col("n0") > 0)).sort("pair_id"))
        row = {str(r): i for i, r in enumerate(response_ids)}
        known = [(row.get(str(a)), row.get(str(b))) for a, b in
                 zip(per["response_1_id"], per["response_2_id"], strict=True)]
        keep = np.array([a is not None and b is not None for a, b in known], dtype=bool)
        if keep.sum() < min_pairs:
            return None
        e = np.asarray(embeddings, dtype=float)
        first = np.array([a for (a, _), k in zip(known, keep, strict=True) if k])
        second = np.array([b for (_, b), k in zip(known, keep, strict=True) if k])
        n1, n0 = per["n1"].to_numpy()[keep], per["n0"].to_numpy()[keep]
        target = (per["one"] - per["zero"]).to_numpy()[keep]
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13), fit_intercept=False).fit(
            e[first] - e[second], target, sample_weight=n1 * n0 / (n1 + n0))
        score = e @ ridge.coef_
        spread = float(score.std())
        if not spread > 0:
            return None
        return cls((score - score.mean()) / spread, int(keep.sum()), float(ridge.alpha_))
