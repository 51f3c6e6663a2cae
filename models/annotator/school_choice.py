"""Choosing K and the pool's lapse model: what the grid EM settles before its final fit.

With ``n_schools='auto'`` K = 1, 2 (and 3 when 2 beat 1) are fitted with independent pair
margins and without response pooling or features, on a sample of pairs when the data are large
(:mod:`.selection`); the pool's lapse model (careful share, lapse ties), reversed reviewers and
a lapse lean toward a reply property are settled on the same fits. :func:`choose_schools`
returns all of it as a :class:`SchoolChoice`, from which :func:`.inference.fit_em` makes the
final fit of the chosen K on all data, with pooling and features.

Because none of it reads the response features, a fit that differs from an earlier one only in
its features (the content axis learnt from the earlier fit's votes,
:func:`dissensus.analytics.jobs.content.with_vote_axis`) can take the earlier choice as it is
(:meth:`SchoolChoice.fits`) and make only the final fit again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .config import AnnotatorConfig
from .grid_em import GridEM, GridState
from .judgments import Judgments
from .lapse_cues import lean_score_test
from .reversed import ReversedEvidence, without_reviewers
from .selection import (
    choose_k,
    choose_lapse_model,
    initial_schools,
    lapse_seeded_schools,
    loo_row,
    sample_pairs,
    school_support,
    selection_rule,
    shared_departure_schools,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass
class SchoolChoice:
    """What :func:`choose_schools` settled, and on which votes.

    ``config`` and ``select_config`` carry the chosen lapse model (and lapse cues);
    ``select_data`` is the data K was chosen on (a sample of pairs, or without reversed
    reviewers), ``reviewers`` maps its reviewers into the whole data (None: the whole data).
    ``timings`` and ``notes`` are the choice's rows of the fit's diagnostics."""

    config: AnnotatorConfig
    select_config: AnnotatorConfig
    select_data: Judgments
    reviewers: IntArray | None
    states: dict[int, GridState]
    chosen: int
    table: list[dict[str, Any]]
    notes: list[str]
    timings: list[dict[str, Any]]
    reversed_found: list[dict[str, Any]]
    sampled: bool
    asked: AnnotatorConfig
    """The settings the choice was asked to make with (before it chose the lapse model)."""
    votes: str
    """A fingerprint of everything in the data the choice reads (:func:`votes_of`)."""

    def fits(self, data: Judgments, config: AnnotatorConfig) -> bool:
        """Whether this choice holds for a fit of ``data`` with ``config``: the same votes
        and settings, whatever the response features. A fixed K (not 'auto') fits its
        features in the choice itself, so there the choice never holds for other features."""
        return (self.asked.n_schools == "auto" and self.asked == config
                and self.votes == votes_of(data))


def votes_of(data: Judgments) -> str:
    """A hash of the votes and what else the choice reads (the reply indices pooling uses, the
    lapse cues); the response features are left out."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (data.reviewer, data.pair, data.y, data.s, data.pair_responses,
                 data.lapse_cues):
        digest.update(b"-" if part is None else np.ascontiguousarray(part).tobytes())
    digest.update(f"{data.n_reviewers} {data.n_pairs} {data.n_responses}".encode())
    return digest.hexdigest()


def choose_schools(data: Judgments, config: AnnotatorConfig,
                   progress: Callable[[str, float], None] | None = None) -> SchoolChoice:
    """K (when 'auto'), the pool's lapse model and the fits they were read from.
    ``progress`` as :data:`.results.Progress` (which holds a :class:`SchoolChoice`)."""
    asked = config
    auto = config.n_schools == "auto"
    notes: list[str] = []
    sampled = auto and data.n > config.k_selection_max_comparisons
    reviewers = None
    if sampled:
        select_data, reviewers = sample_pairs(data, config.k_selection_max_comparisons,
                                              config.seed)
    else:
        select_data = data
    ks = [1, 2, 3] if auto else [int(config.n_schools)]
    select_config = (config.model_copy(update={"pool_responses": False,
                                               "response_features": False})
                     if auto else config)
    # K and the lapse model are chosen with lapses that lean on nothing but the display order;
    # a lean toward a reply property is weighed at the chosen K (see _choose_lapse_cues)
    select_config = select_config.model_copy(update={"lapse_cues": False})
    states: dict[int, GridState] = {}
    timings: list[dict[str, Any]] = []
    reversed_found: list[dict[str, Any]] = []
    warm: GridState | None = None
    on = "a sample, " if sampled else ""
    if config.careful_share_strict > config.careful_share:
        t_k = time.perf_counter()
        undecided = config, select_config
        chosen, one_school, lapse_notes = choose_lapse_model(select_data, select_config)
        notes.extend(lapse_notes)
        config = config.model_copy(update=chosen)
        select_config = select_config.model_copy(update=chosen)
        timings.append({"n_schools": 1, "seconds": round(time.perf_counter() - t_k, 2),
                        "iterations": one_school.n_iter, "data": "sample" if sampled else "all",
                        **chosen})
        if 1 in ks:  # the chosen one-school fit is the K = 1 fit
            states[1] = warm = one_school
        found = _reversed_reviewers(one_school, select_data, config, reviewers, reversed_found)
        if found is not None and auto:
            # their votes agree with each other on every pair: left in, they form a "school";
            # the schools (and the lapse model) are chosen without them, the final fit has all
            select_data, kept = without_reviewers(select_data, found)
            reviewers = kept if reviewers is None else reviewers[kept]
            t_k = time.perf_counter()
            chosen, one_school, again = choose_lapse_model(select_data, undecided[1])
            notes[:] = [n for n in notes if n not in lapse_notes] + again
            config = undecided[0].model_copy(update=chosen)
            select_config = undecided[1].model_copy(update=chosen)
            timings.append({"n_schools": 1, "seconds": round(time.perf_counter() - t_k, 2),
                            "iterations": one_school.n_iter, "data": "without reversed",
                            **chosen})
            states = {1: one_school} if 1 in ks else {}
            warm = one_school
    for k in ks:
        if k in states:
            continue
        if k == 3 and auto and 2 in states and not _two_beat_one(states, config,
                                                                 data.n_reviewers):
            break  # two schools did not beat one: three will not be needed

        def cb(it: int, total: int, label: str = f"EM on {on}{k} school{'s' if k > 1 else ''}"
               ) -> None:
            if progress is not None:
                progress(label, it / total)

        t_k = time.perf_counter()
        seeded = (lapse_seeded_schools(states[k - 1], k)
                  if config.school_start == "lapse" and k - 1 in states else None)
        states[k] = GridEM(select_data, k, select_config).run(school_init=seeded, warm=warm,
                                                              callback=cb)
        timings.append({"n_schools": k, "seconds": round(time.perf_counter() - t_k, 2),
                        "iterations": states[k].n_iter, "data": "sample" if sampled else "all",
                        "start": "random" if seeded is None else "lapse-seeded"})
        # a lapse seed needs the fit with a school fewer, so states[k - 1] is there
        gain = float(states[k].loo.sum() - states[k - 1].loo.sum()) if seeded is not None else 0.0
        if seeded is not None and states[k].swinging and config.retry_swinging_start and gain > 0:
            # a split the votes show (the swinging fit still beats one school fewer) that the
            # warm start cannot settle: its lapse prior, from the fit with a school fewer, reads
            # a minority's departures as lapses; a cold start has no such pull
            t_k = time.perf_counter()
            other = GridEM(select_data, k, select_config).run(callback=cb)
            kept = not other.swinging
            timings.append({"n_schools": k, "seconds": round(time.perf_counter() - t_k, 2),
                            "iterations": other.n_iter, "start": "cold random (the lapse-seeded "
                            "fit never settled)", "kept": kept,
                            "swing_gain": round(gain, 1),
                            "cold_gain": round(float(other.loo.sum()
                                                     - states[k - 1].loo.sum()), 1)})
            if kept:
                states[k] = other
        if k == 1:
            warm = states[1]
        if (k == 2 and config.shared_departure_start and seeded is not None
                and not _two_beat_one(states, config, data.n_reviewers)):
            t_k = time.perf_counter()
            shared = shared_departure_schools(states[1], select_data)
            if shared is not None:  # a second start: a minority whose departures are shared
                # a cold start: warm from the one-school fit, its lapse prior holds the
                # minority's departures as lapses and the split does not form
                other = GridEM(select_data, 2, select_config).run(school_init=shared,
                                                                  callback=cb)
                kept = bool(other.loo.sum() > states[2].loo.sum())
                timings.append({"n_schools": 2, "seconds": round(time.perf_counter() - t_k, 2),
                                "iterations": other.n_iter, "start": "shared departures",
                                "kept": kept})
                if kept:
                    states[2] = other
    if len(states) > 1:
        supported, support_notes = school_support(settled_states(states, notes), config,
                                                  data.n_reviewers)
        notes.extend(support_notes)
        chosen, table = choose_k({k: s.loo for k, s in supported.items()},
                                 selection_rule(config, data.n_reviewers))
    else:
        chosen = ks[0]
        table = [loo_row(states[chosen].loo, chosen, None)]
    if config.lapse_cues and data.lapse_cues is not None:
        t_k = time.perf_counter()
        states[chosen], use_cues = _choose_lapse_cues(select_data, chosen, states[chosen],
                                                      select_config, config, notes)
        config = config.model_copy(update={"lapse_cues": use_cues})
        timings.append({"n_schools": chosen, "seconds": round(time.perf_counter() - t_k, 2),
                        "data": "sample" if sampled else "all", "lapse_cues": use_cues})
        if use_cues and chosen > 1 and auto and 1 in states:
            t_k = time.perf_counter()
            one_cued = _schools_beyond_the_lean(select_data, states, chosen, select_config,
                                                config, notes)
            timings.append({"n_schools": 1, "seconds": round(time.perf_counter() - t_k, 2),
                            "lapse_cues": True, "purpose": "K with the lapse lean",
                            "kept": one_cued is not None})
            if one_cued is not None:
                states[1], table = one_cued
                chosen = 1
    return SchoolChoice(config, select_config, select_data, reviewers, states, chosen, table,
                        notes, timings, reversed_found, sampled, asked, votes_of(data))


LEAN_PENALTY = 2.0
"""Nats charged per lean coefficient when lapse cues are weighed (see _choose_lapse_cues)."""


def _choose_lapse_cues(data: Judgments, k: int, plain: GridState, select_config: AnnotatorConfig,
                       config: AnnotatorConfig, notes: list[str]) -> tuple[GridState, bool]:
    """Lapses that lean toward the longer reply or one model's (:mod:`.lapse_cues`) at the
    chosen K, kept only when they predict the votes clearly better (the K-selection rule): a
    school or a taste that favours longer replies must not be read as lapses leaning that way."""
    cues = data.lapse_cues
    if config.lapse_cue_score_p is not None and cues is not None and cues.shape[1]:
        _, p_value = lean_score_test(cues, data.y, data.s, plain.lapse_post,
                                     plain.gamma[data.reviewer])
        if p_value > config.lapse_cue_score_p:
            return plain, False  # the plain fit's lapses show no lean worth a fit
    cued = GridEM(data, k, select_config.model_copy(update={"lapse_cues": True})).run(
        school_init=initial_schools(plain) if k > 1 else None, warm=plain)
    # the pool's lean is a point estimate fitted on these votes, which the cavity LOO does not
    # leave out: each coefficient is charged LEAN_PENALTY nats (AIC charges 1) before comparing
    n_c = 0 if data.lapse_cues is None else data.lapse_cues.shape[1]
    charged = cued.loo - LEAN_PENALTY * n_c / max(cued.loo.size, 1)
    if choose_k({1: plain.loo, 2: charged}, config)[0] != 2:
        return plain, False
    notes.append("lapses lean toward a reply property (see lapse_lean): reading them so "
                 "predicts the votes clearly better")
    return cued, True


def _schools_beyond_the_lean(data: Judgments, states: dict[int, GridState], chosen: int,
                             select_config: AnnotatorConfig, config: AnnotatorConfig,
                             notes: list[str]) -> tuple[GridState, list[dict]] | None:
    """K was chosen with lapses that lean on the display order alone; where lapses are then
    found to lean toward a reply property, what the extra schools held may be that lean (many
    careless reviewers who pick the longer reply read as a school that prefers it: robustness
    world ``rushed_majority``). The one-school fit is made again with the lean, and the schools
    stand only where they still win by the K-selection rule; returns that one-school fit and
    the LOO table of the comparison where they do not (None where they do)."""
    one = GridEM(data, 1, select_config.model_copy(update={"lapse_cues": True})).run(
        warm=states[1])
    k, table = choose_k({1: one.loo, chosen: states[chosen].loo},
                        selection_rule(config, data.n_reviewers))
    if k == chosen:
        return None
    notes.append(f"{chosen} schools not kept: with lapses that lean toward a reply property, "
                 "one school predicts the votes as well, so what the schools held apart was that "
                 "lean, not a view")
    return one, table


def settled_states(states: dict[int, GridState], notes: list[str]) -> dict[int, GridState]:
    """The fits a K may be chosen from: a fit with schools whose predictions never settled
    (reviewers hopping between schools each sweep, see ``AnnotatorConfig.swing_elpd``) has a
    split the votes do not pin down, and where it stopped would decide K by chance."""
    kept = {k: s for k, s in states.items() if k == 1 or not s.swinging}
    for k in sorted(set(states) - set(kept)):
        notes.append(f"{k} schools not considered: that fit never settled (its reviewers kept "
                     "moving between schools from one sweep to the next), so the votes do not "
                     "support a split into that many schools")
    return kept


def _two_beat_one(states: dict[int, GridState], config: AnnotatorConfig,
                  n_reviewers: int) -> bool:
    """Whether the two-school fit would be chosen over the one-school fit."""
    two, _ = school_support({2: states[2]}, config, n_reviewers)
    return bool(two) and not states[2].swinging and choose_k(
        {1: states[1].loo, 2: states[2].loo}, selection_rule(config, n_reviewers))[0] == 2


def _reversed_reviewers(one: GridState, data: Judgments, config: AnnotatorConfig,
                        reviewers: IntArray | None, found_out: list[dict[str, Any]]
                        ) -> IntArray | None:
    """The reviewers of ``data`` whose votes are reversed under the one-school fit ``one``
    (:mod:`.reversed`), or None. Their evidence goes to ``found_out``, by index in the whole
    data (``reviewers`` maps a sample's reviewers there); the estimator's verdict notes say
    it in words."""
    if config.reversed_bayes_factor is None:
        return None
    evidence = ReversedEvidence.of(one, data)
    found = evidence.reversed(config.reversed_bayes_factor, config.reversed_min_votes)
    if found.size == 0 or found.size >= data.n_reviewers / 2:
        return None  # reversed is relative to the pool: a majority cannot be reversed
    index = found if reviewers is None else reviewers[found]
    found_out.extend(
        {"reviewer": int(i), "against": int(evidence.against[f]),
         "clear": int(evidence.clear[f]), "bayes_factor": float(evidence.bayes_factor[f])}
        for i, f in zip(index, found, strict=True))
    return found
