"""``AnnotatorModel``: a crowd-kit-style estimator for the annotator model.

    model = AnnotatorModel(AnnotatorConfig(n_schools="auto")).fit(frame)
    model.reviewer_estimates_   # polars, the public reviewer_estimates columns (no fit_id)
    model.pair_estimates_       # public pair_estimates columns (no fit_id, no prompt text)
    model.comparison_weights_   # comparison_id, weight, school_weights (list[float])
    model.fit_summary_          # method, n_schools, n_comparisons, seconds, diagnostics
    model.predict_proba(frame)  # (n, 3) predictive probabilities of judgments (grid EM fits)
    model.save("fits/demo")     # fits/demo.nc (arviz netCDF) + fits/demo.json (metadata)
    AnnotatorModel.load("fits/demo", config)   # raises if a setting of the posterior differs

``frame`` is the warehouse's model frame (see :mod:`.data`). Schools are numbered 0, 1, ...
from the largest to the smallest. ``reliability`` is the posterior mean probability that a
judgment of the reviewer is careful (1 - lapse rate) with a credible interval of mass
``interval_mass``; a reviewer is flagged only when their reliability is credibly below
``flag_min_reliability`` or their position bias credibly exceeds ``position_bias_flag`` -- never
for belonging to a minority school.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from .config import AnnotatorConfig
from .data import EncodedFrame, encode_frame
from .decomposition import verdicts
from .departures import departure_leans
from .errors import NotFittedError, PredictionUnavailableError
from .evidence import lapse_flagged
from .inference import fit
from .lapse_cues import LONGER_LABEL, NO_CUES, SHORTER_LABEL
from .notes import pair_notes, reversed_reviewers, schools_unseen, verdict_notes
from .predict import (
    PredictiveState,
    beta_interval,
    consensus_record,
    expected_agreement,
    posterior_agreement,
    predict_frame,
)
from .results import FitResult, Progress
from .summarise import departing_lapse_probability, vote_disagreement, vote_kappa
from .taste import taste_reason, tie_taste_reason


def _top_labels(enc: EncodedFrame) -> tuple[list[str] | None, NDArray[np.int64],
                                            NDArray[np.int64]]:
    """In a label task read in label order: per reviewer, the label they pick most (its generic
    name), how often, and how many of their votes name a label (not ties). ``None`` and empty
    counts elsewhere."""
    if not enc.cues.label_order:
        empty = np.zeros(0, dtype=np.int64)
        return None, empty, empty
    d = enc.judgments
    named = d.y != 0
    # label order: a vote whose sign matches the vote's order names the longer label text
    longer = np.bincount(d.reviewer, named & (np.sign(d.y) == np.sign(d.s)),
                         d.n_reviewers).astype(np.int64)
    labelled = np.bincount(d.reviewer, named, d.n_reviewers).astype(np.int64)
    more_longer = 2 * longer >= labelled
    names = [LONGER_LABEL if m else SHORTER_LABEL for m in more_longer]
    return names, np.where(more_longer, longer, labelled - longer), labelled


def _evidence(bayes_factor: float) -> str:
    return "over 1000 to 1" if bayes_factor > 1000 else f"{bayes_factor:.0f} to 1"


REVIEWER_COLUMNS = (
    "reviewer_id", "n_comparisons", "reliability", "reliability_low", "reliability_high",
    "position_bias", "school", "school_probability", "flagged", "flag_reason", "lean",
    "agreement", "agreement_low", "agreement_high", "lapse_evidence", "flag_kinds",
    "top_label_share", "tie_taste",
)
FLAG_KINDS = ("reversed", "lapses", "lean")
"""What a reviewer is flagged for, in ``flag_kinds`` (joined by ", "): votes against a clear
consensus, a lapse rate credibly above the careful pool's, a strong lean (toward the reply shown
first, or in a label task toward one label). The audit's verdicts read these, not the reason's
words."""
PAIR_COLUMNS = (
    "pair_id", "prompt_id", "n_votes", "p_first", "noise_share", "pluralism_share",
    "ambiguity_share", "verdict",
)
WEIGHT_COLUMNS = ("comparison_id", "weight", "school_weights")


class AnnotatorModel:
    """Hierarchical Bayesian model of reviewers, schools and pairs (see :mod:`.model`)."""

    def __init__(self, config: AnnotatorConfig | None = None, **overrides: Any) -> None:
        base = config or AnnotatorConfig()
        self.config = AnnotatorConfig(**{**base.model_dump(), **overrides}) if overrides else base

    # ------------------------------------------------------------------ fitting
    def fit(self, frame: pl.DataFrame, progress: Progress | None = None,
            same_votes_as: AnnotatorModel | None = None) -> AnnotatorModel:
        """Fit to the model frame; sets the ``*_`` attributes and returns ``self``.

        ``same_votes_as``: an earlier grid-EM fit of the same votes with the same settings,
        whose frame differed at most in the response features (the content axis adds one):
        its choice of K and of the lapse model, which reads no features, is taken as it is
        and only the final fit is made (:mod:`.school_choice`). Where the votes or settings
        differ, everything is chosen again."""
        enc = encode_frame(frame, None if self.config.lapse_cues else NO_CUES,
                           self.config.features, label_order=self.config.label_order)
        self.cues_ = enc.cues
        earlier = getattr(same_votes_as, "result_", None)
        result = fit(enc, self.config, progress,
                     None if earlier is None else earlier.school_choice)
        self._set_outputs(enc, result)
        return self

    def _set_outputs(self, enc: EncodedFrame, res: FitResult) -> None:
        cfg = self.config
        self.result_ = res
        self.predictive_ = (None if res.grid_state is None
                            else PredictiveState.of(res.grid_state, enc.cues))
        self.n_schools_ = res.n_schools
        self.school_weights_ = res.school_weights
        self.reviewer_estimates_ = self._reviewer_table(enc, res)
        self.pair_estimates_, self.pair_intervals_ = self._pair_tables(enc, res)
        d = enc.judgments
        reversed_votes = np.isin(d.reviewer, [r["reviewer"] for r in reversed_reviewers(res)])
        self.comparison_weights_ = pl.DataFrame(
            {
                "comparison_id": enc.comparison_ids,
                # a reversed vote names the worse reply: read as it stands it would teach the
                # reward model the opposite, so it carries no weight
                "weight": np.where(reversed_votes, 0.0, res.careful_prob.astype(float)),
                "school_weights": res.school_probs[d.reviewer].astype(float).tolist(),
            },
            schema={"comparison_id": pl.String, "weight": pl.Float64,
                    "school_weights": pl.List(pl.Float64)},
        )
        diagnostics = dict(res.diagnostics)
        diagnostics["school_weights"] = [float(x) for x in res.school_weights]
        diagnostics["n_flagged"] = int(self.reviewer_estimates_["flagged"].sum())
        diagnostics["verdicts"] = {
            v: int(n) for v, n in self.pair_estimates_["verdict"].value_counts().iter_rows()
        }
        diagnostics["schools_unseen"] = schools_unseen(res.n_schools,
                                                       self.pair_estimates_["verdict"])
        diagnostics["config_hash"] = cfg.config_hash()
        diagnostics["vote_kappa"] = vote_kappa(d)
        diagnostics["verdict_notes"] = verdict_notes(self.reviewer_estimates_,
                                                     self.pair_estimates_, res, diagnostics, cfg)
        diagnostics["pair_notes"] = pair_notes(self.pair_estimates_, cfg)
        self.fit_summary_ = {
            "method": res.method,
            "n_schools": int(res.n_schools),
            "n_comparisons": int(d.n),
            "seconds": float(res.seconds),
            "diagnostics": diagnostics,
        }

    def _reviewer_table(self, enc: EncodedFrame, res: FitResult) -> pl.DataFrame:
        cfg = self.config
        mass = f"{round(cfg.interval_mass * 100)}%"
        counts = enc.reviewer_counts
        lapse_flag = lapse_flagged(res, cfg) & (counts >= 2)
        bias_flag = (res.p_strong_bias >= cfg.flag_probability) & (counts >= 2)
        reversed_by = {r["reviewer"]: r for r in reversed_reviewers(res)}
        top_label, top_count, labelled = _top_labels(enc)
        reasons: list[str | None] = []
        kinds: list[str | None] = []
        for i in range(len(enc.reviewer_ids)):
            parts = []
            kind = [k for k, on in zip(FLAG_KINDS, (i in reversed_by, lapse_flag[i],
                                                    bias_flag[i]), strict=True) if on]
            kinds.append(", ".join(kind) if kind else None)
            if i in reversed_by:
                r = reversed_by[i]
                parts.append(
                    f"votes reversed: against a clear consensus on {r['against']} of "
                    f"{r['clear']} votes, where even a careless coin flip would be on about half "
                    f"(the votes favour reversal {_evidence(r['bayes_factor'])}); check their "
                    "button mapping or instructions (weight 0)")
            if lapse_flag[i] and top_label is not None:
                # in a label task a worker who picks one label on nearly every item reads as
                # lapses tilted toward it: the counts are the fact a lead can check
                parts.append(
                    f"picks {top_label[i]} on {top_count[i]} of {labelled[i]} items "
                    f"({top_count[i] / max(labelled[i], 1):.0%})")
            if lapse_flag[i]:
                # an interval opened at the model's bound (summarise.piled_at_bound) says so
                bound = (f", open above the model's bound of {enc.judgments.lapse_max:.0%}"
                         if res.reliability_low[i] <= 0.0 < 1.0 - enc.judgments.lapse_max else "")
                parts.append(
                    f"lapse rate ~{1 - res.reliability[i]:.0%} ({mass} interval "
                    f"{1 - res.reliability_high[i]:.0%}–{1 - res.reliability_low[i]:.0%}{bound}; "
                    f"the votes favour it {_evidence(res.lapse_evidence[i])} over careful)"
                )
            if bias_flag[i]:
                ahead = res.bias_mean[i] > 0
                what, favoured = (
                    ("lean toward one label", LONGER_LABEL if ahead else SHORTER_LABEL)
                    if enc.cues.label_order else
                    ("position bias", f"the reply shown {'first' if ahead else 'second'}"))
                pool = (f"; the pool's β ≈ {res.bias_centre:+.2f}"
                        if abs(res.bias_centre) >= 0.05 else "")
                parts.append(
                    f"strong {what} (β ≈ {res.bias_mean[i]:+.2f}, {mass} interval "
                    f"{res.bias_low[i]:+.2f} to {res.bias_high[i]:+.2f}{pool}): favours "
                    f"{favoured}"
                )
            reasons.append("; ".join(parts) if parts else None)
        school = res.school_probs.argmax(axis=1)
        agreement, agreement_low, agreement_high = self._agreement(enc, res, reversed_by)
        return pl.DataFrame(
            {
                "reviewer_id": enc.reviewer_ids,
                "n_comparisons": counts.astype(np.int64),
                "reliability": res.reliability,
                "reliability_low": res.reliability_low,
                "reliability_high": res.reliability_high,
                "position_bias": res.bias_mean,
                "school": school.astype(np.int32),
                "school_probability": res.school_probs.max(axis=1),
                "flagged": lapse_flag | bias_flag | np.isin(np.arange(counts.size),
                                                            list(reversed_by)),
                "flag_reason": reasons,
                "lean": _with_tastes(departure_leans(enc, res.pairs.p_first,
                                                     cfg.flag_bayes_factor), res),
                # null, not NaN, where the fit cannot give it (no grid EM beliefs: sampled)
                "agreement": pl.Series(agreement).fill_nan(None),
                "agreement_low": pl.Series(agreement_low).fill_nan(None),
                "agreement_high": pl.Series(agreement_high).fill_nan(None),
                # how far the reviewer's own votes move the odds "lapses" : "careful" from the
                # pool's (near 1: their votes cannot tell, whatever the reliability shown)
                "lapse_evidence": np.asarray(res.lapse_evidence, dtype=float),
                "flag_kinds": kinds,
                # a label task only: the share of the reviewer's label votes on the label they
                # pick most (null elsewhere, and for a reviewer with only ties)
                "top_label_share": (None if top_label is None else
                                    pl.Series(top_count / np.maximum(labelled, 1))
                                    .set(pl.Series(labelled == 0), None)),
                # 'equal' votes read as a taste of their own, not lapses (GridState.tie_tastes)
                "tie_taste": _tie_taste_column(res, counts.size),
            },
            schema_overrides={"flag_reason": pl.String, "lean": pl.String,
                              "flag_kinds": pl.String, "top_label_share": pl.Float64,
                              "tie_taste": pl.Boolean},
        ).select(REVIEWER_COLUMNS)

    def _agreement(self, enc: EncodedFrame, res: FitResult,
                   reversed_by: dict[int, dict[str, Any]]
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Each reviewer's chance of naming the consensus side, with its interval: the fit's
        prediction (:func:`expected_agreement`) updated by their own record
        (:func:`posterior_agreement`).

        The fit's predictive has no place for a reviewer whose votes are reversed (it reads
        them as lapses, a coin flip, so about one half), so it is no prior for them: theirs is
        read from their clear votes alone, ``Beta(n - k + 1, k + 1)`` for ``k`` of ``n`` against
        the consensus (a uniform prior), and they take no part in weighing the prior.
        """
        if self.predictive_ is None:
            empty = np.full(len(enc.reviewer_ids), np.nan)
            return empty, empty.copy(), empty.copy()
        predicted = expected_agreement(self.predictive_, enc, res.pairs.p_first)
        predicted[list(reversed_by)] = np.nan
        mass = self.config.interval_mass
        mean, low, high = posterior_agreement(
            predicted, *consensus_record(enc, res.pairs.p_first), mass=mass)
        for i, r in reversed_by.items():
            a, b = r["clear"] - r["against"] + 1.0, r["against"] + 1.0
            mean[i] = a / (a + b)
            low[i], high[i] = beta_interval(a, b, mass)
        return mean, low, high

    def _pair_tables(self, enc: EncodedFrame, res: FitResult) -> tuple[pl.DataFrame, pl.DataFrame]:
        cfg = self.config
        dec = res.pairs
        departing = departing_lapse_probability(enc, res.careful_prob)
        verdict = verdicts(
            dec, vote_disagreement(enc), res.expected_lapses, departing,
            n_schools=res.n_schools,
            pluralism_probability=cfg.pluralism_probability,
            ambiguity_min_variance=cfg.ambiguity_min_variance,
            noise_min_lapses=cfg.noise_min_lapses,
            noise_probability=cfg.noise_probability,
        )
        shares = np.stack([dec.noise_share, dec.pluralism_share, dec.ambiguity_share], axis=1)
        shares = shares / shares.sum(axis=1, keepdims=True)  # exact sum to 1 after float noise
        table = pl.DataFrame(
            {
                "pair_id": enc.pair_ids,
                "prompt_id": enc.prompt_ids,
                "n_votes": enc.pair_counts.astype(np.int64),
                "p_first": dec.p_first,
                "noise_share": shares[:, 0],
                "pluralism_share": shares[:, 1],
                "ambiguity_share": shares[:, 2],
                "verdict": verdict,
            }
        ).select(PAIR_COLUMNS)
        intervals = pl.DataFrame(
            {
                "pair_id": enc.pair_ids,
                "noise_low": dec.share_low[:, 0], "noise_high": dec.share_high[:, 0],
                "pluralism_low": dec.share_low[:, 1], "pluralism_high": dec.share_high[:, 1],
                "ambiguity_low": dec.share_low[:, 2], "ambiguity_high": dec.share_high[:, 2],
                "p_pluralism": dec.p_pluralism,
                "p_ambiguous": dec.p_ambiguous,
                "ambiguity_variance": dec.ambiguity,
                "expected_lapses": res.expected_lapses,
                "p_departing_lapse": departing,
            }
        )
        return table, intervals

    # ------------------------------------------------------------------ prediction
    def predict_proba(self, frame: pl.DataFrame) -> np.ndarray:
        """``(n, 3)`` predictive probabilities (response 1 wins, tie, response 2 wins) of the
        judgments in ``frame``; see :mod:`.predict` (unknown reviewers / pairs: the prior).
        Works on a fitted model and on one loaded from a saved grid-EM fit."""
        self._check_fitted("predict_proba")
        state = self.predictive_
        if state is None:
            method = self.fit_summary_.get("method")
            raise PredictionUnavailableError(
                f"predict_proba needs the grid-EM beliefs; this fit used method={method!r}",
                where="AnnotatorModel.predict_proba", expected="a fit with method='em'",
                fix="fit with method='em' (the default for all but small data) to predict",
            )
        return predict_frame(state, self.reviewer_estimates_["reviewer_id"].to_list(),
                             self.pair_estimates_["pair_id"].to_list(), frame)

    def _check_fitted(self, what: str) -> None:
        if not hasattr(self, "fit_summary_"):
            raise NotFittedError(
                f"{what} needs a fitted model", where=f"AnnotatorModel.{what}",
                fix="call .fit(frame) first, or load a saved fit with AnnotatorModel.load(path)",
            )

    # ------------------------------------------------------------------ persistence
    def _tables(self) -> dict[str, pl.DataFrame]:
        return {"reviewer_estimates": self.reviewer_estimates_,
                "pair_estimates": self.pair_estimates_, "pair_intervals": self.pair_intervals_,
                "comparison_weights": self.comparison_weights_}

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write ``<path>.nc`` (arviz netCDF) and ``<path>.json``; returns both paths."""
        from .persistence import fit_posterior, save_fit, saved_posterior

        self._check_fitted("save")
        if hasattr(self, "result_"):
            posterior = fit_posterior(self.result_.idata, self.result_.grid_state, self.cues_)
        else:  # loaded from a file: its posterior groups as read
            posterior = saved_posterior(self.idata_)
        return save_fit(path, self.config, self._tables(), self.fit_summary_, posterior)

    @classmethod
    def load(cls, path: str | Path, config: AnnotatorConfig | None = None) -> AnnotatorModel:
        """Load a saved fit; with ``config``, its hash must match the saved one. The loaded
        model has the fitted tables, ``fit_summary_``, ``idata_`` (the netCDF groups) and, for
        a grid-EM fit, predicts (:meth:`predict_proba`); ``result_`` exists only after a fit."""
        from .persistence import load_fit

        saved = load_fit(path, config)
        model = cls(saved.config)
        model.reviewer_estimates_ = saved.tables["reviewer_estimates"]
        model.pair_estimates_ = saved.tables["pair_estimates"]
        model.pair_intervals_ = saved.tables["pair_intervals"]
        model.comparison_weights_ = saved.tables["comparison_weights"]
        model.fit_summary_ = saved.fit_summary
        model.n_schools_ = int(saved.fit_summary["n_schools"])
        model.school_weights_ = np.asarray(saved.fit_summary["diagnostics"]["school_weights"])
        model.idata_ = saved.idata
        model.predictive_ = saved.predictive
        model.cues_ = saved.predictive.cues if saved.predictive is not None else NO_CUES
        return model


def _with_tastes(leans: list[str | None], res: FitResult) -> list[str | None]:
    """Each reviewer's departure lean, with the taste reading that withdrew their lapse flag
    (see :mod:`.taste`) where there is one, and a tie taste of their own."""
    out = list(leans)
    for reading in res.diagnostics.get("taste_readings") or []:
        i = int(reading["reviewer"])
        out[i] = "; ".join(p for p in (out[i], taste_reason(reading)) if p)
    state = res.grid_state
    if state is not None:
        tau_r = state.reviewer_tau()
        for i in np.flatnonzero(state.tie_tastes()):
            out[i] = "; ".join(p for p in (out[i], tie_taste_reason(tau_r[i], state.tau)) if p)
    return out


def _tie_taste_column(res: FitResult, n_reviewers: int) -> pl.Series:
    """Whether the fit reads each reviewer's 'equal' votes as a taste of their own (null where
    the fit has no per-reviewer thresholds to read: sampled fits)."""
    if res.grid_state is None:
        return pl.Series([None] * n_reviewers, dtype=pl.Boolean)
    return pl.Series(res.grid_state.tie_tastes())
