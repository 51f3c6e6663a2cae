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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray

from .features import CONTENT_COLUMNS

FloatArray = NDArray[np.float64]


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
