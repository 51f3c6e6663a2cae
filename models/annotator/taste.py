"""Does a lapse flag survive a taste? Flagged reviewers' votes read again with a taste of their
own for a reply property, as large as the pool's tastes run.

A careful reviewer who likes longer replies (or one model's) departs from the consensus toward
them, and so does a rushed reviewer whose lapses lean that way. The two leave different marks:
a taste shifts the reviewer's margin by a fixed amount ``t`` on the logit scale, so it wins
close pairs and rarely clear ones; a lapse ignores the margin, so it departs as often on pairs
nobody doubts as on close ones. The fit has no per-reviewer taste, so it can only read the first
as lapses.

For reviewer ``r`` and a cue ``x`` (``longer``, ``model:<name>``, see :mod:`.lapse_cues`), the
careful part of each vote's likelihood becomes ``P_c(y_n | m_{j,k} + beta_r s_n + t x_n)`` and
the votes' log-likelihood is tabulated over the lapse grid and a taste grid (school and
position bias held at the reviewer's posterior mode and mean: a flagged reviewer's votes pin
them). The margin ``m_j`` is read from the pair's *cavity* -- its belief with this vote divided
out -- so the reviewer's own departure does not pull the consensus toward them (the fitted
consensus that includes the vote hides exactly the departures that tell the two apart). The
vote divided out is read with the reviewer's whole posterior, not the BP message that leaves
the vote out: one vote in many.

How common and large tastes run is learned from the pool, as the lapse and bias distributions
are: the share of reviewers with a taste along a cue and its sd maximise the marginal
likelihood of the reviewers' votes (type-II maximum likelihood over :data:`SHARE_GRID` x
:data:`SD_GRID`; share 0 = no tastes), so a pool without tastes leaves no room to explain
lapses away. A flag stands only where the votes favour "lapses" over "careful" by
``flag_bayes_factor`` against the pool's odds under every cue's taste reading; ``t = 0``
reproduces the fit's own reading.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

from .config import AnnotatorConfig
from .evidence import lapse_bayes_factor, lapse_flagged
from .grid_em import GridState
from .judgments import Judgments
from .lapse_cues import lean_offsets
from .likelihood import careful_prob_rows, lapse_prob
from .results import FitResult, Progress
from .summarise import lapse_summary

FloatArray = NDArray[np.float64]
TASTE_STEP = 0.25
TASTE_LIMIT = 3.0
"""The taste grid: ``-TASTE_LIMIT .. TASTE_LIMIT`` in steps of ``TASTE_STEP`` (logit scale)."""
SHARE_GRID = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5)
SD_GRID = (0.5, 1.0, 1.5)
"""The pool taste priors weighed: the share of reviewers with a taste and its sd (share 0:
nobody has a taste along the cue)."""
MIN_VOTES = 20
"""Reviewers with fewer votes say little about how large tastes run; left out of the pool's."""
POOL_VOTES = 20_000
"""The pool's taste prior is learned from reviewers (in a seeded random order) up to this many
votes: hundreds of reviewers on the suite's worlds, and a bounded cost on large data."""


def taste_values() -> FloatArray:
    return np.arange(-TASTE_LIMIT, TASTE_LIMIT + TASTE_STEP / 2, TASTE_STEP)


def taste_log_prior(share: float, sd: float) -> FloatArray:
    """The log prior of the taste grid: no taste, or with probability ``share`` a taste drawn
    from a normal of ``sd`` (a few reviewers with a strong taste is the shape seen, not
    everyone with a little)."""
    t = taste_values()
    spike = np.where(t == 0.0, 1.0, 0.0)
    if share <= 0 or sd <= 0:
        return np.log(np.maximum(spike, 1e-300))
    slab = np.exp(-0.5 * (t / sd) ** 2)
    return np.log(np.maximum((1 - share) * spike + share * slab / slab.sum(), 1e-300))


def _margin_beliefs(state: GridState, data: Judgments, rows: NDArray[np.int64],
                    vote_message: FloatArray, school: int) -> FloatArray:
    """``(n, M)``: for each vote, the school's margin distribution with the vote divided out of
    its pair's belief (``vote_message``: ``(n, S)``, the vote's likelihood per state)."""
    lat = state.lattice
    cav = state.pair_post[data.pair[rows]].astype(float) / np.maximum(vote_message, 1e-300)
    cav /= cav.sum(axis=1, keepdims=True)
    onto = np.zeros((lat.m_values.size, lat.n_states))  # each state's mass onto its margin
    onto[lat.midx[:, school], np.arange(lat.n_states)] = 1.0
    return cav @ onto.T


def reviewer_taste_loglik(state: GridState, data: Judgments, reviewer: int,
                          cues: FloatArray) -> FloatArray:
    """``(C, G, T)``: log p(``reviewer``'s votes | lapse rate ``e_g``, taste ``t``) along each
    column of ``cues`` (``(N, C)``, per judgment in ``{-1, 0, +1}``)."""
    rows = np.flatnonzero(data.reviewer == reviewer)
    lat = state.lattice
    e, bias = state.lapse_grid, state.bias_grid
    y, s = data.y[rows], data.s[rows].astype(float)
    tau = float(state.reviewer_tau()[reviewer])
    offset = lean_offsets(None if data.lapse_cues is None else data.lapse_cues[rows],
                          state.lean, np.full(rows.size, reviewer))
    p_lapse = lapse_prob(y, s, state.gamma[reviewer], state.reviewer_lapse_tie()[reviewer],
                         offset)  # (n,)
    q = state.reviewer_post[reviewer]
    q = q / q.sum()  # (K, G, B)
    # the vote's message to its pair: its likelihood per pair state under the reviewer's beliefs
    eta = lat.m_values[None, :, None] + bias[None, None, :] * s[:, None, None]  # (n, M, B)
    pc = careful_prob_rows(y, eta, tau)
    per_margin = np.einsum("nmb,kb->nkm", pc, np.einsum("kgb,g->kb", q, 1 - e))
    message = sum(per_margin[:, k, lat.midx[:, k]] for k in range(lat.n_schools))
    message = message + float(np.einsum("kgb,g->", q, e)) * p_lapse[:, None]  # (n, S)
    school = int(np.argmax(q.sum(axis=(1, 2))))
    beta = float(q.sum(axis=(0, 1)) @ bias)
    beliefs = _margin_beliefs(state, data, rows, message, school)  # (n, M)
    t = taste_values()
    base = (lat.m_values[None, :] + beta * s[:, None])[:, :, None]  # (n, M, 1)
    cues = np.asarray(cues, dtype=float).reshape(data.n, -1)
    out = np.empty((cues.shape[1], e.size, t.size))
    for c in range(cues.shape[1]):
        eta_t = base + t[None, None, :] * cues[rows, c][:, None, None]  # (n, M, T)
        careful = np.einsum("nm,nmt->nt", beliefs, careful_prob_rows(y, eta_t, tau))
        mix = ((1 - e)[None, :, None] * careful[:, None, :]
               + e[None, :, None] * p_lapse[:, None, None])  # (n, G, T)
        out[c] = np.log(np.maximum(mix, 1e-300)).sum(axis=0)
    return out


def pool_tastes(state: GridState, data: Judgments, cues: FloatArray,
                seed: int = 0) -> tuple[FloatArray, dict[int, FloatArray]]:
    """How common and how large tastes run along each cue: ``(C, 2)`` rows ``(share, sd)`` of
    :data:`SHARE_GRID` x :data:`SD_GRID` that maximise the marginal likelihood of the pool's
    votes (type-II ML), and the tables read, by reviewer."""
    counts = np.bincount(data.reviewer, minlength=data.n_reviewers)
    order = np.random.default_rng(seed).permutation(np.flatnonzero(counts >= MIN_VOTES))
    chosen = order[np.cumsum(counts[order]) <= max(POOL_VOTES, int(counts[order[:1]].sum()))]
    log_g = np.log(np.maximum(state.lapse_prior, 1e-300))
    tables = {int(r): reviewer_taste_loglik(state, data, int(r), cues) for r in chosen}
    n_c = np.asarray(cues).reshape(data.n, -1).shape[1]
    if not tables:
        return np.zeros((n_c, 2)), tables
    # per reviewer and cue: log p(votes | t), the lapse rate integrated under the pool's prior
    by_taste = np.stack([logsumexp(tab + log_g[None, :, None], axis=1)
                         for tab in tables.values()])  # (R, C, T)
    grid = [(share, sd) for share in SHARE_GRID for sd in SD_GRID]
    score = np.array([[float(logsumexp(by_taste[:, c] + taste_log_prior(*g)[None], axis=1).sum())
                       for g in grid] for c in range(n_c)])
    return np.asarray(grid)[np.argmax(score, axis=1)], tables


def lapse_with_taste(table: FloatArray, state: GridState, share: float,
                     sd: float) -> tuple[FloatArray, float]:
    """The lapse-rate posterior ``(G,)`` and the posterior mean taste given one (its size)
    from one cue's ``(G, T)`` table under the pool's lapse prior and taste prior."""
    joint = (table + np.log(np.maximum(state.lapse_prior, 1e-300))[:, None]
             + taste_log_prior(share, sd)[None, :])
    post = np.exp(joint - joint.max())
    post /= post.sum()
    by_taste, t = post.sum(axis=0), taste_values()
    some = np.where(t == 0.0, 0.0, by_taste)  # the taste's size, given they have one
    return post.sum(axis=1), float(some @ t / max(float(some.sum()), 1e-300))


def flags_robust_to_taste(result: FitResult, state: GridState, data: Judgments,
                          config: AnnotatorConfig, cue_names: list[str],
                          progress: Progress | None = None) -> list[str]:
    """Withdraw a lapse flag where the reviewer's votes, read with a taste of their own along
    some cue as common and large as the pool's tastes run (:func:`pool_tastes`), no longer favour
    lapses by ``flag_bayes_factor``.

    A cleared reviewer's lapse summary becomes the taste reading's (the cue that explains their
    votes best), so the reliability and evidence shown agree with the verdict (the audit then
    says "cannot tell from their votes" where the taste reading is not clear-cut either).
    Returns the fit-summary notes; ``result.diagnostics["taste_readings"]`` lists the cleared,
    ``result.diagnostics["taste_prior"]`` the pool's taste share and sd per cue.
    """
    if not config.taste_check or data.lapse_cues is None or not cue_names:
        return []
    if data.lapse_cues.shape[1] != len(cue_names):
        raise ValueError("taste check: one cue name per column of the lapse cues expected")
    flagged = np.flatnonzero(lapse_flagged(result, config))
    if not flagged.size:
        return []
    if progress is not None:
        progress("Learning how large the pool's tastes run (checks the flags)", 0.0)
    priors, tables = pool_tastes(state, data, data.lapse_cues)
    result.diagnostics["taste_prior"] = {
        name: {"share": float(share), "sd": float(sd)}
        for name, (share, sd) in zip(cue_names, priors, strict=True)}
    if not np.any(priors[:, 0] > 0):
        return []
    readings: list[dict[str, object]] = []
    e, lapse_from = state.lapse_grid, 1 - config.flag_min_reliability

    def evidence_of(lapse: FloatArray) -> float:
        return float(lapse_bayes_factor(lapse[None], state.lapse_prior, e,
                                        config.careful_lapse_limit, lapse_from)[0])

    for i, r in enumerate(flagged):
        if progress is not None:
            progress("Reading the flagged reviewers' votes with a taste of their own",
                     i / flagged.size)
        table = tables.get(int(r))
        if table is None:
            table = reviewer_taste_loglik(state, data, int(r), data.lapse_cues)
        # the same reading with no taste must flag them too: it is the taste that clears a
        # flag, not a difference between this reading and the fit's (a sampled fit's flags
        # rest on draws, this reading on the grid EM)
        if evidence_of(lapse_with_taste(table[0], state, 0.0, 0.0)[0]) < config.flag_bayes_factor:
            continue
        best: tuple[float, int, FloatArray, float] | None = None
        for c in np.flatnonzero(priors[:, 0] > 0):
            lapse, taste = lapse_with_taste(table[c], state, *map(float, priors[c]))
            evidence = evidence_of(lapse)
            if best is None or evidence < best[0]:
                best = (evidence, int(c), lapse, taste)
        assert best is not None
        evidence, c, lapse, taste = best
        if evidence >= config.flag_bayes_factor:
            continue
        for name, value in lapse_summary(lapse[None], state.lapse_prior, e, config).items():
            getattr(result, name)[r] = value[0]  # the verdict and the figures shown agree
        readings.append({"reviewer": int(r), "cue": cue_names[c], "taste": round(taste, 2),
                         "lapse_evidence": evidence})
    result.diagnostics["taste_readings"] = readings
    if not readings:
        return []
    return [f"{len(readings)} reviewer(s) not flagged: a taste of their own for "
            f"{taste_words(readings)} (departing on close pairs, rarely on clear ones) explains "
            "their departures from the consensus as well as lapses do, and the pool's votes "
            "show tastes that large"]


def _cue_words(name: str) -> str:
    if name == "longer":
        return "longer replies"
    return f"{name.split(':', 1)[-1]}'s replies"


def taste_words(readings: list[dict[str, object]]) -> str:
    """The tastes of ``readings`` in words ("longer replies or model_a's replies")."""
    return " or ".join(sorted({_cue_words(str(r["cue"])) for r in readings}))


def taste_reason(reading: dict[str, object]) -> str:
    """What a cleared reviewer's taste reading says, in words for the reviewer table."""
    evidence = float(reading["lapse_evidence"])  # type: ignore[arg-type]
    odds = (f"favour careful {1 / evidence:.1f} to 1" if evidence < 1 else
            f"favour lapses only {evidence:.1f} to 1, too little to flag")
    return (f"a taste for {taste_words([reading])} (about {float(reading['taste']):+.1f} on "  # type: ignore[arg-type]
            f"the logit scale) explains their departures: read with it, their votes {odds}")


def tie_taste_reason(threshold: float, pool: float) -> str:
    """The words for one reviewer read as having a tie taste."""
    return (f"says 'equal' unless a pair is clear: a tie taste of their own (tie threshold "
            f"{threshold:.2f} against the pool's {pool:.2f}), not lapses")

