"""Where a reviewer departs from the consensus, what do the departures favour?

Evidence a labeling lead can check, beside the model's verdict: a reviewer whose votes against a
clear consensus mostly pick the longer reply (or one model's, or the reply shown first) either
lapses in that direction or has a taste for it. Either way the lean is a fact about their votes,
named in words with its counts, not a lapse rate.

For reviewer ``r`` and cue ``c`` (see :mod:`.lapse_cues`; the display order counts as the cue
``first shown``), the *departures* are their non-tie votes on clear pairs (consensus probability
beyond ``0.5 +- CLEAR``) that go against the consensus, on pairs where the cue is set; ``t`` of
the ``n`` favour the cued reply. Against the share ``p0`` of the same among the other reviewers'
departures (the reviewer left out, so one strong lean does not hide itself), the evidence is the
Bayes factor of "the reviewer has a share of their own" (uniform prior) over "the pool's share"::

    BF = B(t + 1, n - t + 1) / (p0^t (1 - p0)^(n - t))

A lean is named when ``BF >= bayes_factor`` and the share ``t / n`` exceeds ``p0``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import betaln

from .data import EncodedFrame
from .lapse_cues import LONGER_LABEL

FloatArray = NDArray[np.float64]
CLEAR = 0.1
"""A pair is clear when the consensus probability is beyond 0.5 +- CLEAR (below 0.4 or above
0.6): a vote against it is a departure, not a coin flip on a pair nobody can call."""
MIN_DEPARTURES = 5


def clear_departures(p: FloatArray, y: NDArray) -> tuple[NDArray, NDArray]:
    """``(clear, departs)`` per judgment, ``p`` its pair's consensus probability that response 1
    is better: a non-tie vote on a clear pair, and such a vote against the consensus."""
    clear = (np.abs(p - 0.5) > CLEAR) & (y != 0)
    return clear, clear & (np.sign(y) != np.sign(p - 0.5))


def _cue_label(name: str) -> str:
    if name == "first":
        return "the reply shown first"
    if name == "label":
        return LONGER_LABEL
    if name == "longer":
        return "the longer reply"
    return f"{name.split(':', 1)[-1]}'s reply"


def departure_leans(enc: EncodedFrame, p_first: FloatArray, bayes_factor: float = 10.0,
                    ) -> list[str | None]:
    """One sentence per reviewer naming what their departures from the consensus favour
    (``None`` where nothing stands out); ``p_first`` is each pair's consensus probability that
    response 1 is better."""
    d = enc.judgments
    cues = [("label" if enc.cues.label_order else "first", d.s.astype(float))]
    if d.lapse_cues is not None:
        cues += [(name, d.lapse_cues[:, i]) for i, name in enumerate(enc.cues.names)]
    _, departs = clear_departures(np.asarray(p_first, dtype=float)[d.pair], d.y)
    out: list[list[str]] = [[] for _ in range(d.n_reviewers)]
    for name, x in cues:
        cued = departs & (x != 0)
        n = np.bincount(d.reviewer, cued, d.n_reviewers).astype(np.int64)
        t = np.bincount(d.reviewer, cued & (np.sign(d.y) == np.sign(x)),
                        d.n_reviewers).astype(np.int64)
        if n.sum() < MIN_DEPARTURES:
            continue
        others = np.maximum(n.sum() - n, 1)
        p0 = np.clip((t.sum() - t) / others, 0.05, 0.95)
        log_bf = betaln(t + 1, n - t + 1) - (t * np.log(p0) + (n - t) * np.log1p(-p0))
        stands_out = (n >= MIN_DEPARTURES) & (t / np.maximum(n, 1) > p0) & (
            log_bf >= np.log(bayes_factor))
        for r in np.flatnonzero(stands_out):
            out[r].append(f"{_cue_label(name)} in {t[r]} of {n[r]} (others {p0[r]:.0%})")
    return [("departures from a clear consensus favour " + "; ".join(parts)) if parts else None
            for parts in out]
