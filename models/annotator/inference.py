"""Inference for the annotator model: the fast grid EM (default), NUTS and ADVI, and choosing K.

``method="auto"`` runs the grid EM of :mod:`.grid_em` unless the data are small enough for
exact NUTS (``nuts_max_comparisons``), and says which it chose. ``n_schools="auto"`` fits
K = 1, 2 (and 3 when 2 beat 1) and keeps the larger K only when its expected log predictive
density (elpd) beats the smaller by ``k_selection_se`` standard errors of the difference and by
``k_selection_min_gain`` (log units); with more than ``k_selection_max_comparisons``
comparisons, on a random sample of pairs, and only the chosen K on all data. With response
pooling on, K is compared on the model with independent pair margins (where the leave-one-out
comparison is calibrated: on a one-school world pooled fits of K = 2 split reviewers at random
and still gained a few log units), and pooling then refines the fit of the chosen K. The elpd is
leave-one-out (Vehtari, Gelman & Gabry 2017): for the EM the cavity approximation of BP (each
judgment predicted with its own message removed), for NUTS PSIS-LOO from arviz over
reviewer-level log-likelihoods.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .config import AnnotatorConfig
from .data import EncodedFrame
from .evidence import (
    flags_robust_to_placement,
    flags_robust_to_schools,
    one_school_won_narrowly,
)
from .grid_em import GridEM, GridState
from .judgments import Judgments
from .lapse_cues import lean_score_test
from .results import FitResult, Progress
from .reversed import ReversedEvidence, without_reviewers
from .selection import (
    choose_k,
    choose_lapse_model,
    expand_state,
    initial_schools,
    lapse_seeded_schools,
    loo_row,
    sample_pairs,
    school_support,
    selection_rule,
    shared_departure_schools,
)
from .summarise import summarise_grid
from .taste import flags_robust_to_taste

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


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


def fit_em(
    enc: EncodedFrame, config: AnnotatorConfig, progress: Progress | None = None
) -> FitResult:
    """Grid EM for a fixed K, or K = 1, 2, 3 compared by cavity LOO when ``n_schools='auto'``
    (on a sample of pairs when the data are large, see :mod:`.selection`)."""
    start = time.perf_counter()
    auto = config.n_schools == "auto"
    data = enc.judgments
    notes: list[str] = []
    limit = config.response_features_max_comparisons
    if config.response_features and data.pair_features is not None and 0 < limit < data.n:
        config = config.model_copy(update={"response_features": False})
        notes.append(f"response features skipped: {data.n:,} comparisons > "
                     f"response_features_max_comparisons={limit:,} (they double the EM's "
                     "iterations; raise the limit to use them)")
    sampled = auto and data.n > config.k_selection_max_comparisons
    reviewers = None
    if sampled:
        select_data, reviewers = sample_pairs(data, config.k_selection_max_comparisons,
                                              config.seed)
    else:
        select_data = data
    ks = [1, 2, 3] if auto else [int(config.n_schools)]
    pooled = config.pool_responses and data.pair_responses is not None
    featured = config.response_features and data.pair_features is not None
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
    final = states[chosen]
    featured = featured and chosen > 1
    subset = reviewers is not None  # chosen on a sample, or without reversed reviewers
    if subset or (auto and (pooled or featured)):
        seed_state = expand_state(final, reviewers, data.n_reviewers) if subset else final
        t_k = time.perf_counter()

        def cb_all(it: int, total: int) -> None:
            if progress is not None:
                what = "all data" if subset else "pooled responses and features"
                progress(f"EM on {what}, {chosen} school{'s' if chosen > 1 else ''}",
                         it / total)

        final = GridEM(data, chosen, config).run(
            school_init=initial_schools(seed_state) if chosen > 1 else None,
            warm=seed_state, callback=cb_all)
        timings.append({"n_schools": chosen, "seconds": round(time.perf_counter() - t_k, 2),
                        "iterations": final.n_iter,
                        "data": "all" + (", pooled responses" if pooled else "")
                        + (", response features" if featured else "")})
    result = summarise_grid(final, enc, config, time.perf_counter() - start)
    if chosen == 1 and not sampled and 2 in states:
        two_state = states[2]
        if config.lapse_cues and two_state.lean is None:
            # like for like: the one-school fit reads lapses that lean toward a reply property,
            # and a two-school fit without that lean would park the leaning reviewers in a
            # "school" of their own and clear them
            t_k = time.perf_counter()

            def check_cb(it: int, total: int) -> None:
                if progress is not None:
                    progress("EM on 2 schools with the lapse lean (checks the flags)", it / total)

            two_state = GridEM(select_data, 2, select_config.model_copy(
                update={"lapse_cues": True})).run(school_init=initial_schools(states[2]),
                                                  warm=states[2], callback=check_cb)
            timings.append({"n_schools": 2, "seconds": round(time.perf_counter() - t_k, 2),
                            "iterations": two_state.n_iter, "lapse_cues": True,
                            "purpose": "flag check"})
        # without reversed reviewers (the subset): they get the pool's prior there, and keep
        # their own flag
        two = expand_state(two_state, reviewers, data.n_reviewers) if subset else two_state
        if one_school_won_narrowly(states[1].loo, two_state.loo,
                                   config.one_school_flag_check_se):
            notes.extend(flags_robust_to_schools(result, two, config))
    if chosen > 1:
        notes.extend(flags_robust_to_placement(result, final, config))
    if not enc.cues.label_order:  # in a label task a lean toward one label is the bias term
        t_k = time.perf_counter()
        notes.extend(flags_robust_to_taste(result, final, data, config, enc.cues.names,
                                           progress))
        result.diagnostics["taste_check_seconds"] = round(time.perf_counter() - t_k, 2)
    warnings = list(enc.warnings) + notes
    if final.swinging:
        warnings.append(
            f"EM stopped after {final.n_iter} iterations with its predictions still swinging "
            "from sweep to sweep: the votes do not pin this fit down; read its schools and "
            "intervals with care")
    elif not final.converged:
        warnings.append(
            f"EM stopped after {final.n_iter} iterations before converging "
            f"(tol {config.tol}); raise max_iter"
        )
    result.diagnostics.update(
        {
            "loo_method": "cavity leave-one-out of belief propagation (per judgment)",
            "loo_table": table,
            "loo_model": ("independent pair margins; response pooling and features applied to "
                          "the chosen K" if auto and (pooled or featured) else None),
            "n_schools_chosen": chosen,
            "n_schools_mode": str(config.n_schools),
            "k_selection_sample": {"pairs": select_data.n_pairs, "comparisons": select_data.n,
                                   "reviewers": select_data.n_reviewers} if sampled else None,
            "fits": timings,
            "reversed_reviewers": reversed_found,
            "r_hat_max": None,
            "ess_min": None,
            "divergences": None,
            "warnings": warnings,
        }
    )
    return result


def fit(
    enc: EncodedFrame, config: AnnotatorConfig, progress: Progress | None = None
) -> FitResult:
    """Fit with the configured method; ``auto`` picks NUTS for small data, else EM.

    In a label task the lapse bound is chosen first (:func:`choose_label_lapse_bound`)."""
    em_result, bound_note, start = None, None, time.perf_counter()
    if enc.cues.label_order and config.label_lapse_max > enc.judgments.lapse_max:
        enc, em_result, bound_note = choose_label_lapse_bound(enc, config, progress)
    method = config.method
    reason = "requested"
    if method == "auto":
        small = enc.judgments.n <= config.nuts_max_comparisons
        method = "nuts" if small else "em"
        reason = (
            f"auto: {enc.judgments.n} comparisons "
            f"{'<=' if small else '>'} nuts_max_comparisons={config.nuts_max_comparisons}"
        )
    if method == "em":
        result = em_result if em_result is not None else fit_em(enc, config, progress)
    else:
        from .sampling import fit_sampled

        result = fit_sampled(enc, config, method, progress)
    result.diagnostics["method_reason"] = reason
    if bound_note is not None:
        result.seconds = time.perf_counter() - start  # the fits that chose the bound count too
        result.diagnostics["label_lapse_bound"] = bound_note
        result.diagnostics.setdefault("warnings", []).append(bound_note["note"])
    return result


def _lapse_model_chosen(result: FitResult) -> dict[str, Any]:
    """The pool's lapse model a fit chose (careful share, lapse ties), as settings that make
    another fit read the pool the same way without choosing again; none where it chose none."""
    chosen = [f for f in result.diagnostics.get("fits", []) if "careful_share" in f]
    if not chosen:
        return {}
    share = chosen[-1]["careful_share"]  # the last choice: made without reversed reviewers
    return {"careful_share": share, "careful_share_strict": share,
            "lapse_ties": chosen[-1]["lapse_ties"]}


def choose_label_lapse_bound(enc: EncodedFrame, config: AnnotatorConfig,
                             progress: Progress | None = None
                             ) -> tuple[EncodedFrame, FitResult, dict[str, Any]]:
    """The lapse bound of a label task: one half, or ``label_lapse_max`` where that predicts the
    votes clearly better.

    A worker who clicks one label whatever the item lapses on nearly every vote; held below one
    half, the other half of their votes pulls the consensus toward their label, and a few such
    workers form a "school" of their own (Snow et al.'s RTE and temporal sets). But a wide bound
    also lets a careful minority school's departures read as lapses at one school. So the
    narrow reading is fitted as asked (K chosen, where auto) and the wide one at one school, and
    the wide one is kept only where its leave-one-out predictive density beats the narrow one's
    by the K-selection rule of :func:`.selection.choose_k` (the simpler reading otherwise);
    kept, it is fitted again as asked (K chosen, flags checked against two schools). Returns the
    frame with the bound chosen, the EM fit made with it and a note for the summary.
    """
    narrow = fit_em(enc, config, progress)
    wide_enc = replace(enc, judgments=replace(enc.judgments, lapse_max=config.label_lapse_max))
    # the wide reading at one school (the number asked for, where one was): what it is for is
    # workers whose votes a school would otherwise absorb, and one fit instead of a second
    # choice of K keeps the cost down; so does reading the pool's lapses as the narrow fit
    # chose (careful share, lapse ties) rather than choosing again: kept, it is fitted again
    # in full below
    auto = config.n_schools == "auto"
    probe = config.model_copy(update={**_lapse_model_chosen(narrow),
                                      **({"n_schools": 1} if auto else {})})
    wide = fit_em(wide_enc, probe, progress)
    assert narrow.grid_state is not None and wide.grid_state is not None  # fit_em keeps them
    loo_narrow, loo_wide = narrow.grid_state.loo, wide.grid_state.loo
    diff = loo_wide - loo_narrow
    gain = float(diff.sum())
    se = float(np.sqrt(diff.size * np.var(diff)))
    kept = choose_k({1: loo_narrow, 2: loo_wide}, config)[0] == 2
    figures = f"elpd {gain:+,.1f} ± {se:,.1f}"
    if kept:  # the wide reading it is, with K and the lapse model chosen as asked
        wide = fit_em(wide_enc, config, progress)
    if kept:
        note = (f"label task: lapse rates read up to {config.label_lapse_max:.0%}, not one half "
                f"({figures}"
                + (f", at one school against {narrow.n_schools} chosen below one half"
                   if auto else "")
                + "): workers who click one label whatever the item are lapses on nearly "
                "every vote, not a school of their own")
        return wide_enc, wide, {"bound": config.label_lapse_max, "elpd_gain": gain, "se": se,
                                "note": note}
    note = (f"label task: lapse rates read below one half ({figures} for reading them up to "
            f"{config.label_lapse_max:.0%}: not clearly better)")
    return enc, narrow, {"bound": enc.judgments.lapse_max, "elpd_gain": gain, "se": se,
                         "note": note}
