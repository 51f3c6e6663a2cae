"""What a lapse may lean toward besides the reply shown first: the longer reply, one model's reply.

A rushed reviewer who does not read both replies still picks one, and rarely at random: the longer
reply looks more thorough, one model's style is familiar. Such a lapse is a tilted coin whose
tilt depends on cues of the pair (in the pair's canonical orientation, each in ``{-1, 0, +1}``):

* ``longer``: ``+1`` when response 1 is clearly longer (length ratio above :data:`LENGTH_RATIO`),
  ``-1`` when response 2 is, ``0`` otherwise or when lengths are unknown;
* ``model:<name>``: ``+1`` when response 1 comes from model ``<name>`` and response 2 does not,
  ``-1`` the other way round, ``0`` otherwise (one cue per model that appears on at least
  :data:`MIN_MODEL_SHARE` of the pairs, at most :data:`MAX_MODEL_CUES`, the least common model
  left out as the reference: the cues of all models would sum to zero).

With the lean ``w_r`` (one coefficient per cue) and position tilt ``gamma_r`` of reviewer ``r``, a
lapse that is not a tie picks response 1 with probability ``sigmoid(logit(gamma_r) s + w_r . x)``
-- the first-shown tilt of :mod:`.likelihood` when no cue is set. The lean is learned by a Newton
step per EM iteration on the lapse-weighted Bernoulli log-likelihood (:func:`lean_step`): by
default one lean for the whole pool (each reviewer's own lean, a point estimate, would make the
lapse explanation look better than it is; see there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import NDArray
from scipy.special import expit
from scipy.stats import chi2

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

LENGTH_RATIO = 1.15
"""Replies within this length ratio count as the same length (no ``longer`` cue)."""
MIN_MODEL_SHARE = 0.05
"""A model gets a cue only when it is on one side of at least this share of the pairs."""
MAX_MODEL_CUES = 4
MIN_DISTINCT_LENGTHS = 10
"""Below this many distinct reply lengths the replies are fixed labels: no ``longer`` cue."""
LENGTH_COLUMNS = ("response_1_length", "response_2_length")
LONGER_LABEL = "the longer label text"
SHORTER_LABEL = "the shorter label text"
"""How verdicts name the two labels of a label task, which the model tells apart by length
alone; the fit job puts the label texts in their place where the warehouse has them."""
MODEL_COLUMNS = ("response_1_model", "response_2_model")


@dataclass(frozen=True)
class CueSpec:
    """Which cues a fit uses: ``longer`` and the models that have a cue (fixed at fit time so a
    loaded fit builds the same cues for new rows)."""

    length: bool = False
    models: tuple[str, ...] = ()
    label_order: bool = False  # votes without a display order are read in label order

    @property
    def names(self) -> list[str]:
        return (["longer"] if self.length else []) + [f"model:{m}" for m in self.models]

    @property
    def size(self) -> int:
        return len(self.names)

    def to_json(self) -> dict[str, object]:
        return {"length": self.length, "models": list(self.models),
                "label_order": self.label_order}

    @classmethod
    def from_json(cls, data: dict[str, object] | None) -> CueSpec:
        if not data:
            return cls()
        models = data.get("models") or []
        return cls(length=bool(data.get("length")), models=tuple(str(m) for m in models),  # type: ignore[union-attr]
                   label_order=bool(data.get("label_order", False)))


NO_CUES = CueSpec()
"""Lapses lean only toward the reply shown first."""


def choose_cues(frame: pl.DataFrame) -> CueSpec:
    """The cues the frame can carry: ``longer`` when lengths are known and differ on at least
    :data:`MIN_MODEL_SHARE` of the rows, and the commonest models on either side of the pairs."""
    length = False
    if all(c in frame.columns for c in LENGTH_COLUMNS):
        x = _length_cue(frame)
        lengths = np.unique(np.concatenate([
            frame[c].cast(pl.Float64).drop_nulls().to_numpy() for c in LENGTH_COLUMNS]))
        # a label task reuses a few fixed replies ("Yes, ..." / "No, ..."): there "longer"
        # would name a label, not a property of free replies
        length = bool(np.mean(x != 0) >= MIN_MODEL_SHARE and lengths.size >= MIN_DISTINCT_LENGTHS)
    models: tuple[str, ...] = ()
    if all(c in frame.columns for c in MODEL_COLUMNS):
        m1 = frame[MODEL_COLUMNS[0]].cast(pl.String).to_numpy()
        m2 = frame[MODEL_COLUMNS[1]].cast(pl.String).to_numpy()
        names, counts = np.unique(
            np.concatenate([m1[(m1 != m2) & (m1 != None)],  # noqa: E711 (numpy object compare)
                            m2[(m1 != m2) & (m2 != None)]]).astype(str),  # noqa: E711
            return_counts=True)
        order = np.argsort(-counts, kind="stable")
        keep = [str(names[i]) for i in order if counts[i] >= MIN_MODEL_SHARE * frame.height]
        # the cues of all models sum to zero on pairs of two known models: one model is left
        # out as the reference (with two models one cue says everything)
        n_models = np.unique(np.concatenate([m1[m1 != None], m2[m2 != None]]).astype(str)).size  # noqa: E711
        limit = min(MAX_MODEL_CUES, max(n_models - 1, 0))
        models = tuple(sorted(keep[:limit]))
    return CueSpec(length=length, models=models)


def label_task(frame: pl.DataFrame) -> bool:
    """Are the replies a few fixed labels ("Yes, ..." / "No, ...")? Every row's reply lengths
    known, fewer than :data:`MIN_DISTINCT_LENGTHS` distinct ones and at least two."""
    if not all(c in frame.columns for c in LENGTH_COLUMNS) or frame.height == 0:
        return False
    lengths = frame.select(pl.concat_list(LENGTH_COLUMNS).alias("l")).explode("l")["l"]
    if lengths.null_count():
        return False
    return 2 <= lengths.n_unique() < MIN_DISTINCT_LENGTHS


def label_side(frame: pl.DataFrame) -> NDArray[np.int64]:
    """Per row, which label is response 1 in a label task: ``+1`` the longer label text, ``-1``
    the shorter, ``0`` where the two have the same length (they cannot be told apart here).
    The warehouse orders a pair's replies by a hash, a coin flip per item, so response 1 names
    no label; the label's length does."""
    if not all(c in frame.columns for c in LENGTH_COLUMNS):
        return np.zeros(frame.height, dtype=np.int64)
    l1 = frame[LENGTH_COLUMNS[0]].cast(pl.Int64).fill_null(0).to_numpy()
    l2 = frame[LENGTH_COLUMNS[1]].cast(pl.Int64).fill_null(0).to_numpy()
    return np.sign(l1 - l2).astype(np.int64)


def _length_cue(frame: pl.DataFrame) -> FloatArray:
    l1 = frame[LENGTH_COLUMNS[0]].cast(pl.Float64).fill_null(0.0).to_numpy()
    l2 = frame[LENGTH_COLUMNS[1]].cast(pl.Float64).fill_null(0.0).to_numpy()
    known = (l1 > 0) & (l2 > 0)
    ratio = np.log(np.where(known, l1, 1.0) / np.where(known, l2, 1.0))
    return np.where(np.abs(ratio) > np.log(LENGTH_RATIO), np.sign(ratio), 0.0)


def cue_matrix(spec: CueSpec, frame: pl.DataFrame) -> FloatArray | None:
    """``(rows, C)`` cues of the frame's rows under ``spec`` (``None`` when the spec has none);
    columns the frame lacks give zeros (no lean can act there)."""
    if spec.size == 0:
        return None
    cols: list[FloatArray] = []
    if spec.length:
        cols.append(_length_cue(frame) if all(c in frame.columns for c in LENGTH_COLUMNS)
                    else np.zeros(frame.height))
    if spec.models:
        if all(c in frame.columns for c in MODEL_COLUMNS):
            m1 = frame[MODEL_COLUMNS[0]].cast(pl.String).fill_null("").to_numpy().astype(str)
            m2 = frame[MODEL_COLUMNS[1]].cast(pl.String).fill_null("").to_numpy().astype(str)
            for m in spec.models:
                cols.append((m1 == m).astype(float) - (m2 == m).astype(float))
        else:
            cols.extend(np.zeros(frame.height) for _ in spec.models)
    return np.column_stack(cols).astype(np.float64)


def lean_offsets(cues: FloatArray | None, lean: FloatArray | None,
                 reviewer: IntArray) -> FloatArray | float:
    """``w_r . x_n`` per judgment (0 when the fit has no cues)."""
    if cues is None or lean is None or cues.shape[1] == 0:
        return 0.0
    return np.einsum("nc,nc->n", cues, lean[reviewer])


NOTABLE_LEAN = 0.4
"""A pool lean (logit scale) from which the fit summary mentions it: a lapse then picks the
favoured reply about 60% of the time or more."""


def describe_lean(lean: dict[str, float]) -> str:
    """The pool's notable leans in words, e.g. "toward the longer reply (picked in 78% of
    lapses where the lengths differ)"; empty when none is notable."""
    parts = []
    for name, w in lean.items():
        if abs(w) < NOTABLE_LEAN:
            continue
        share = float(expit(abs(w)))
        if name == "longer":
            what = "the longer reply" if w > 0 else "the shorter reply"
            where = "the lengths differ"
        else:
            model = name.split(":", 1)[-1]
            what = f"model {model}'s reply" if w > 0 else f"the reply not from model {model}"
            where = f"one reply is from {model}"
        parts.append(f"toward {what} (picked in {share:.0%} of lapses where {where})")
    return "; ".join(parts)


POOL_PRIOR_SD = 2.0
"""Prior sd (logit scale) of the pool's lean: weak, the pool's lapses are many."""


def _newton(grad: FloatArray, hess: FloatArray, lean: FloatArray) -> FloatArray:
    step = np.linalg.solve(hess, grad[..., None])[..., 0]
    return np.clip(lean + np.clip(step, -1.0, 1.0), -4.0, 4.0)


def lean_step(
    cues: FloatArray, y: IntArray, reviewer: IntArray, n_reviewers: int, lapse: FloatArray,
    position_logit: FloatArray, lean: FloatArray, pool: FloatArray, prior_sd: float | None,
) -> tuple[FloatArray, FloatArray]:
    """One Newton step for the pool's lean and, with ``prior_sd``, each reviewer's; returns
    ``(lean (R, C), pool lean (C,))``.

    Maximises ``sum_n lambda_n [t_n log p_n + (1 - t_n) log(1 - p_n)]`` with ``lambda_n`` the
    posterior probability that judgment ``n`` was a lapse (ties left out: they carry no
    direction), ``t_n = 1[y_n = +1]`` and ``p_n = sigmoid(o_n + w . x_n)``, ``o_n`` the position
    tilt's term; concave, so the Newton step is safe. The pool's lean ``w_bar`` (prior
    ``N(0, POOL_PRIOR_SD^2)``) is fitted on every lapse. A lean of each reviewer's own (prior
    ``N(w_bar, prior_sd^2)``) is a plugged-in point estimate that only the lapse branch uses, so
    it makes lapses look likelier than they are for every reviewer whose votes are near coin
    flips (near-tie pairs); it is off by default (``prior_sd=None``), every reviewer's lapses
    then lean as the pool's do.
    """
    n_c = cues.shape[1]
    w_lam = lapse * (y != 0)
    t = (y > 0).astype(float)
    # the pool
    p = expit(position_logit + cues @ pool)
    grad = cues.T @ (w_lam * (t - p)) - pool / POOL_PRIOR_SD**2
    hess = (cues * (w_lam * p * (1.0 - p))[:, None]).T @ cues + np.eye(n_c) / POOL_PRIOR_SD**2
    pool = _newton(grad, hess, pool)
    if prior_sd is None:
        return np.broadcast_to(pool, (n_reviewers, n_c)).copy(), pool
    # each reviewer, around the pool
    p = expit(position_logit + np.einsum("nc,nc->n", cues, lean[reviewer]))
    resid, curv = w_lam * (t - p), w_lam * p * (1.0 - p)
    prec = 1.0 / prior_sd**2
    grad_r = np.stack([np.bincount(reviewer, resid * cues[:, c], n_reviewers)
                       for c in range(n_c)], axis=1) - prec * (lean - pool)
    hess_r = np.empty((n_reviewers, n_c, n_c))
    for a in range(n_c):
        for b in range(a, n_c):
            v = np.bincount(reviewer, curv * cues[:, a] * cues[:, b], n_reviewers)
            hess_r[:, a, b] = hess_r[:, b, a] = v
    hess_r += prec * np.eye(n_c)[None]
    return _newton(grad_r, hess_r, lean), pool


def lean_score_test(cues: FloatArray, y: IntArray, s: IntArray, lapse: FloatArray,
                    gamma: FloatArray) -> tuple[float, float]:
    """Rao's score test of "lapses lean toward the cues" at no lean: ``(statistic, p-value)``.

    With ``lambda_n`` a judgment's posterior probability of being a lapse under the fit without
    cues, the lapse-weighted Bernoulli log-likelihood of :func:`lean_step` has at ``w = 0`` the
    score ``U = X' (lambda (t - p))`` and information ``I = X' diag(lambda p (1 - p)) X``;
    ``U' I^-1 U`` is about chi-square with one degree of freedom per cue when lapses do not lean.
    Half of it is about what fitting the lean would add to the log-likelihood, so a small
    statistic says the costly fit with cues cannot win the comparison it is run for.
    """
    weight = lapse * (y != 0)
    target = (y > 0).astype(float)
    p = expit(np.log(gamma / (1.0 - gamma)) * s)
    score = cues.T @ (weight * (target - p))
    info = (cues * (weight * p * (1.0 - p))[:, None]).T @ cues
    stat = float(score @ np.linalg.lstsq(info, score, rcond=None)[0])
    return stat, float(chi2.sf(stat, cues.shape[1]))
