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
from .grid_em import GridEM
from .results import FitResult, Progress
from .school_choice import SchoolChoice, choose_schools
from .selection import choose_k, expand_state, initial_schools
from .summarise import summarise_grid
from .taste import flags_robust_to_taste

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def fit_em(
    enc: EncodedFrame, config: AnnotatorConfig, progress: Progress | None = None,
    choice: SchoolChoice | None = None,
) -> FitResult:
    """Grid EM for a fixed K, or K = 1, 2, 3 compared by cavity LOO when ``n_schools='auto'``
    (on a sample of pairs when the data are large, see :mod:`.selection`).

    ``choice``: an earlier fit's :class:`~.school_choice.SchoolChoice`, taken as it is where it
    holds for these votes and settings (:meth:`~.school_choice.SchoolChoice.fits`; it reads
    no response features), so that only the final fit is made again."""
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
    pooled = config.pool_responses and data.pair_responses is not None
    featured = config.response_features and data.pair_features is not None
    reused = choice is not None and choice.fits(data, config)
    if not reused:
        choice = choose_schools(data, config, progress)
    assert choice is not None
    notes.extend(choice.notes)
    config, select_config = choice.config, choice.select_config
    select_data, reviewers, sampled = choice.select_data, choice.reviewers, choice.sampled
    states, chosen, table = dict(choice.states), choice.chosen, choice.table
    timings = [dict(row, reused=True) for row in choice.timings] if reused else list(
        choice.timings)
    reversed_found = choice.reversed_found
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
    result.school_choice = choice
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
    enc: EncodedFrame, config: AnnotatorConfig, progress: Progress | None = None,
    choice: SchoolChoice | None = None,
) -> FitResult:
    """Fit with the configured method; ``auto`` picks NUTS for small data, else EM.

    In a label task the lapse bound is chosen first (:func:`choose_label_lapse_bound`).
    ``choice``: see :func:`fit_em` (the samplers choose nothing that could be reused)."""
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
        result = em_result if em_result is not None else fit_em(enc, config, progress, choice)
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
