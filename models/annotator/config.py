"""Settings of the annotator model; every field carries its help text.

Two hashes of the configuration guard saved fits. :meth:`AnnotatorConfig.config_hash` covers
every setting and is stored with every saved fit (the files' consistency check: the JSON's
configuration, its hash and the netCDF groups must agree). :meth:`AnnotatorConfig.posterior_hash`
covers the settings that change the posterior -- all but :data:`REPORT_SETTINGS`, the credible
interval mass and the thresholds of flags and verdicts -- and decides whether a saved fit may be
loaded under a given configuration: a fit is never loaded under settings that would have given
another posterior, while a changed report threshold does not refuse it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MODEL_TYPE = "dissensus.annotator"
MODEL_VERSION = "1.0"
SAMPLED_MODEL_REVISION = 5
"""Revision of the PyMC model behind NUTS / ADVI fits (the grid EM's model is unchanged): 5 =
NUTS samples a non-centred form (consensus margins and the deviations' residuals, whose
sparsity prior is now a normal-lognormal scale mixture); 4 =
school deviations as the features' prediction plus a residual, coefficients sampled in the
features' SVD basis; 3 = response features (tags) in the margins' priors; 2 = scale-mixture
school deviations and centred pair margins (1 = horseshoe, non-centred). Saved with every fit;
a sampled fit of another revision is refused on load, as its posterior is over
different parameters."""

Method = Literal["auto", "em", "nuts", "advi", "minibatch_advi"]


SETTINGS_ADDED_LATER: dict[str, object] = {
    "pool_responses": False,
    "response_features": False,
    "response_features_max_comparisons": 250_000,
    "minibatch_steps": 20_000,
    "minibatch_learning_rate": None,
    "minibatch_deviation_scale": None,
    "nuts_low_rank_mass_matrix": False,
    "careful_share": 0.0,
    "careful_lapse_limit": 0.1,
    "careful_share_strict": 0.0,
    "lapse_ties": False,
    "lapse_tie_concentration": 10.0,
    "lapse_tie_excess": None,
    "school_start": "random",
    "lapse_cues": False,
    "lapse_lean_sd": None,
    "flag_bayes_factor": 1.0,
    "min_reviewers_per_school": 0.0,
    "few_reviewers": 0,
    "few_reviewers_gain_factor": 4.0,
    "features": "auto",
    "content_dims": 32,
    "content_encoder": "all-MiniLM-L6-v2",
    "lapse_prior_reviewers": 0.0,
    "settle_elpd": None,
    "swing_elpd": None,
    "swing_after": 50,
    "label_order": False,
    "label_lapse_max": 0.5,
    "lapse_cue_score_p": None,
    "shared_departure_start": False,
    "lapse_ties_min_judgments": 0,
    "reversed_bayes_factor": None,
    "reversed_min_votes": 10,
    "interval_prior_mix": 0.0,
    "one_school_flag_check_se": None,
    "taste_check": False,
    "retry_swinging_start": False,
    "noise_probability": 0.0,
    "flag_school_floor": 0.0,
    "content_unit": "replies",
    "content_axis": False,
}
"""Settings added after fits were first saved, with the value that reproduces those fits."""

REPORT_SETTINGS: tuple[str, ...] = (
    "interval_mass",
    "flag_min_reliability",
    "flag_probability",
    "position_bias_flag",
    "pluralism_probability",
    "ambiguity_min_variance",
    "noise_min_lapses",
    "noise_probability",
    "flag_bayes_factor",
    "interval_prior_mix",
)
"""Settings that change only how a posterior is reported (credible intervals, reviewer flags,
pair verdicts), not the posterior itself; left out of :meth:`AnnotatorConfig.posterior_hash`."""


class AnnotatorConfig(BaseModel):
    """Everything that changes what :class:`~models.annotator.estimator.AnnotatorModel` fits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_schools: Literal["auto"] | int = Field(
        "auto",
        description="Number of latent schools (viewpoint classes): 1 (the plain noise model, the "
        "null), 2 or 3, or 'auto' to compare K = 1, 2, 3 by leave-one-out predictive density.",
    )
    method: Method = Field(
        "auto",
        description="Inference: 'em' (grid belief-propagation EM, the fast default), 'nuts' "
        "(exact posterior: nutpie, else PyMC's NUTS), 'advi' or 'minibatch_advi' (variational). "
        "'auto' picks NUTS for small data and EM otherwise, and says which.",
    )
    seed: int = Field(0, description="Random seed for initialisation and samplers.")
    school_start: Literal["lapse", "random"] = Field(
        "lapse", description="EM, auto K: how a fit with one more school starts. 'lapse': the "
        "fit with one school fewer, its most careless-looking reviewers moved to the new school "
        "(a careful minority looks careless until it has a school of its own); 'random': a "
        "seeded symmetric random split (the model before), which can settle in an even split "
        "that explains nothing."
    )
    retry_swinging_start: bool = Field(
        True, description="EM, auto K, school_start='lapse': where the lapse-seeded fit never "
        "settles but still predicts the votes better than one school fewer, fit the same K "
        "again from a cold, seeded random split and keep that fit if it does settle (a fit "
        "that keeps swinging is set aside when K is chosen)."
    )
    shared_departure_start: bool = Field(
        False, description="EM, auto K, school_start='lapse': when two schools do not beat "
        "one, also fit two schools from the careless-looking reviewers whose departures fall on "
        "the same pairs and keep the better fit. Finds a careful minority that rushed reviewers "
        "outnumber; off by default because it costs up to 1.9 times the fit time where one "
        "school wins (benchmarks/RESULTS.md)."
    )
    nuts_max_comparisons: int = Field(
        0,
        ge=0,
        description="With method='auto', use NUTS when there are at most this many comparisons "
        "(0: always EM; exact NUTS on this model costs minutes per 10k comparisons on 2 cores).",
    )
    nuts_sampler: Literal["auto", "nutpie", "numpyro", "pymc"] = Field(
        "auto",
        description="NUTS backend: nutpie (compiles with numba: slow to start, fast to sample), "
        "numpyro (JAX; runs on a GPU where one is present) or PyMC's own (C backend: quick to "
        "start); 'auto' uses nutpie when installed.",
    )
    nuts_init: Literal["em", "default"] = Field(
        "em",
        description="NUTS start: 'em' starts every chain at the grid EM's estimates (the school "
        "mixture is multimodal; random starts strand chains in poor modes), 'default' uses "
        "PyMC's initial point.",
    )
    nuts_low_rank_mass_matrix: bool = Field(
        True,
        description="NUTS (nutpie): adapt a low-rank-modified mass matrix, which follows "
        "directions where many parameters move together (a population scale and the pair "
        "deviations it governs); costs more per step.",
    )
    draws: int = Field(500, ge=10, description="NUTS: posterior draws per chain.")
    tune: int = Field(500, ge=10, description="NUTS: tuning (warm-up) steps per chain.")
    chains: int = Field(2, ge=1, description="NUTS: number of chains.")
    target_accept: float = Field(0.9, gt=0.5, lt=1.0, description="NUTS: target acceptance rate.")
    advi_iterations: int = Field(
        20_000, ge=100, description="ADVI on all the data: optimisation steps (minibatch ADVI: "
        "minibatch_steps)."
    )
    minibatch_reviewers: int = Field(
        1024, ge=8, description="Minibatch ADVI: reviewers per minibatch (whole reviewers, since "
        "the school is marginalised per reviewer). A step's cost is dominated by the per-pair "
        "parameters, not the batch, so large batches and fewer steps are the cheap way."
    )
    minibatch_steps: int = Field(
        5_000, ge=100, description="Minibatch ADVI: optimisation steps, each on one minibatch."
    )
    minibatch_learning_rate: float | None = Field(
        0.02, gt=0, description="Minibatch ADVI: Adam learning rate. A pair's parameters get a "
        "gradient only when one of its reviewers is in the batch, so PyMC's default (None: "
        "adagrad_window at 1e-3) barely moves them in a few thousand steps."
    )
    minibatch_deviation_scale: float | None = Field(
        None, gt=0, description="Minibatch ADVI: give the school deviations a zero-sum normal "
        "prior of this fixed scale instead of the model's scale mixture (None: the mixture). "
        "Kept for comparison: a fixed scale (1.5) separated the schools at 100k comparisons but "
        "collapsed at 1M (see benchmarks/RESULTS.md)."
    )
    max_iter: int = Field(150, ge=1, description="EM: maximum iterations.")
    tol: float = Field(1e-3, gt=0, description="EM: stop when reviewer marginals move less.")
    settle_elpd: float | None = Field(
        0.25, gt=0, description="EM: also stop once the cavity elpd (the fit's leave-one-out "
        "log predictive density) has moved less than this many nats, highest minus lowest, over "
        "the last 10 sweeps (after at least 20): the predictions have settled even where a few "
        "reviewers' tie thresholds still step back and forth (None: only tol)."
    )
    swing_elpd: float | None = Field(
        20.0, gt=0, description="EM: stop a fit whose elpd still goes back and forth by more "
        "than this many nats in all (its path's length beyond the net change) over the last 20 "
        "sweeps after swing_after sweeps. Its schools do not "
        "settle: reviewers hop from school to school each sweep because the votes do not pin "
        "the split down, so with n_schools='auto' such a K > 1 is not chosen (None: off)."
    )
    swing_after: int = Field(
        50, ge=20, description="EM: sweeps before a swinging fit is stopped (see swing_elpd)."
    )
    lapse_grid_size: int = Field(
        40, ge=10, le=400, description="EM: grid points for each reviewer's lapse rate in (0, 0.5)."
    )
    lapse_prior_reviewers: float = Field(
        2.0, ge=0.0, description="EM: the pool's lapse distribution is the posterior mean under a "
        "Dirichlet prior worth this many reviewers, centred on the starting shape (with few "
        "reviewers a plug-in makes every lapse interval too narrow; 0: the plain EM estimate)."
    )
    margin_step: float = Field(
        0.4, gt=0.05, le=1.0, description="EM: lattice step of pair margins (logit scale), K <= 2."
    )
    margin_step_k3: float = Field(0.8, gt=0.05, le=1.5, description="EM: lattice step for K = 3.")
    margin_limit: float = Field(6.4, gt=1.0, description="EM: largest |consensus margin| modelled.")
    deviation_limit: float = Field(
        4.0, gt=0.5, description="EM: largest |school deviation| from the consensus margin."
    )
    smoothing: float = Field(
        1.0, ge=0.0, description="EM: smoothing (grid steps) of the learned lapse and margin "
        "priors (smoothed EM, Silverman et al. 1990)."
    )
    position_bias_limit: float = Field(
        2.0, gt=0, description="EM: largest |position bias| on the grid (logit scale)."
    )
    tilt_concentration: float = Field(
        10.0, gt=0, description="Beta-prior strength pulling a reviewer's lapse tilt toward "
        "the population's."
    )
    tie_per_reviewer: bool = Field(
        False, description="EM: give each reviewer a tie threshold of their own (some reviewers "
        "say 'equal' far more often than others), shrunk toward the population's by a normal "
        "prior with sd tie_threshold_sd. Off by default: lapses never say 'equal', so a free "
        "threshold lets 'never ties' explain away part of the evidence for rushing (fewer "
        "rushed reviewers caught on the demo world). With lapse_ties='auto' it is also turned "
        "on where some reviewers' ties stand out and a threshold of their own explains them as "
        "well as lapses that tie (a tie taste, not carelessness; see "
        "models/annotator/selection.py)."
    )
    pool_responses: bool = Field(
        True, description="EM: pairs that share a response pool their consensus margins through "
        "a latent quality per response (margin prior N(q_a - q_b, sd_res^2)); needs the "
        "frame's response_1_id / response_2_id. Off: every pair's margin has its own prior."
    )
    response_features: bool = Field(
        True, description="EM: when the frame carries response tags (response_1_tags / "
        "response_2_tags, and optionally the prompt's category), model each school's margin "
        "as a weighted sum of tag differences (and tag-by-category differences): the school "
        "deviations of a pair get a prior centred on that prediction, mixed with the "
        "feature-free sparsity prior (the mixture share is learned, so tags that say nothing "
        "get no weight). K is still chosen without them. The consensus margins get the "
        "features too, through response pooling (NUTS and ADVI: a fixed part of the consensus "
        "margin)."
    )
    features: Literal["auto", "tags", "embeddings", "both", "none"] = Field(
        "auto", description="Which response features inform the school deviations (with "
        "response_features on): 'tags' (response_*_tags, by category), 'embeddings' (what the "
        "replies say: each reply's sentence embedding reduced to content_dims principal "
        "components), 'both', 'none', or 'auto': the tags where they tell replies apart, "
        "else the embeddings. `dissensus fit` embeds the replies (cached beside the warehouse) "
        "when the choice needs them and the encoder is installed."
    )
    content_dims: int = Field(
        32, ge=1, le=256, description="Embedding features: principal components kept of the "
        "replies' embeddings (standardised), fitted on the warehouse's replies. 8 found the "
        "demo world's schools no better than the votes alone; 32 did (see RESULTS)."
    )
    content_encoder: str = Field(
        "all-MiniLM-L6-v2", description="Embedding features: the sentence encoder (as "
        "`dissensus train --encoder`: the offline MiniLM, a local model folder, or 'hashing')."
    )
    content_unit: Literal["replies", "sentences"] = Field(
        "replies", description="Embedding features: embed each reply whole ('replies') or as "
        "the sum of its sentences' embeddings ('sentences': a taste for one statement is then "
        "one direction, whatever else the reply says; each distinct sentence is embedded once)."
    )
    content_axis: bool = Field(
        False, description="Embedding features, two schools: after the fit, learn one content "
        "axis on the full embedding from the votes of the reviewers it places (both schools' "
        "mean votes on the pairs they share, a ridge), add it to the components and make the "
        "final fit again (K and the lapse model, which read no content, stand). With "
        "content_unit='sentences' it raised the careful-reviewer ARI on the untagged demo "
        "world from 0.743 to 0.801 over twelve seeds of 10,000 comparisons, but lowered it on "
        "a world of 6,000 with a 35% minority (see RESULTS), so it is not the default."
    )
    response_features_max_comparisons: int = Field(
        250_000, ge=0, description="EM: skip the response features (and say so) above this many "
        "comparisons (0: never skip). With them the EM needs about twice the iterations (the "
        "features' residual scale settles slowly): 1M comparisons ran past 45 minutes on 2 "
        "cores, against 27 without."
    )
    lapse_ties: Literal["auto"] | bool = Field(
        "auto", description="EM: whether a lapse may be a tie, with a chance learned per "
        "reviewer (shrunk toward the pool's by lapse_tie_concentration), so careless reviewers "
        "who click 'equal' are seen. 'auto': only when that predicts the votes clearly better "
        "(careful reviewers on near-tie pairs say 'equal' too); False: lapses never tie (the "
        "model before this setting)."
    )
    lapse_tie_concentration: float = Field(
        10.0, gt=0, description="EM: Beta-prior strength pulling a reviewer's chance of a tied "
        "lapse toward the pool's."
    )
    lapse_tie_excess: float | None = Field(
        2.0, gt=1.0, description="EM, lapse_ties='auto': ties are also read as lapses when "
        "lapses that may tie predict the votes clearly better than lapses that never do and "
        "the fitted share of ties among lapses is at least this many times the share of ties "
        "among all votes, even where a tie threshold per reviewer predicts the votes as well. "
        "Careless 'equal' clicks land on clear pairs, a tie taste on close ones; the threshold "
        "per reviewer is a point estimate the leave-one-out comparison does not leave out, so "
        "on its own it wins too often. None: the LOO comparison alone (the model before)."
    )
    reversed_bayes_factor: float | None = Field(
        100.0, gt=1.0, description="EM: a reviewer whose votes go against a clear consensus "
        "more often than a coin flip would, by at least this Bayes factor (see "
        "models/annotator/reversed.py), has reversed votes (swapped buttons, instructions read "
        "backwards): flagged, left out while the schools are chosen, and given weight 0. "
        "Lapses cannot explain such votes, and a few reversed reviewers otherwise form a "
        "'school' of their own. None: no check (the model before)."
    )
    reversed_min_votes: int = Field(
        10, ge=1, description="EM: the fewest non-tie votes on clear pairs on which a reviewer "
        "can be found to vote reversed."
    )
    lapse_ties_min_judgments: int = Field(
        5, ge=0, description="EM, lapse_ties='auto': lapses that tie are considered only when "
        "reviewers have at least this many judgments each (the median). Whether a reviewer's "
        "'equal' clicks are careless is a fact about that reviewer; with one or two votes each "
        "the leave-one-out comparison still favours lapses that tie, and careful reviewers "
        "whose one vote was 'equal' on a close pair then rank as the least reliable (robustness "
        "world many_raters: rushed reviewers among the bottom k 0.09, below chance, against "
        "0.23 with lapses that never tie)."
    )
    lapse_cues: bool = Field(
        True, description="EM: lapses may lean toward the longer reply or one model's reply, "
        "learned per reviewer, when the data carry reply lengths or models (see "
        "models/annotator/lapse_cues.py); False: lapses lean only toward the reply shown first."
    )
    lapse_cue_score_p: float | None = Field(
        0.5, gt=0.0, le=1.0, description="EM: fit the model whose lapses lean toward reply "
        "properties (lapse_cues) only when a score test of the plain fit's lapses against those "
        "cues has a p-value below this; above it the lean cannot win the comparison and the "
        "costly fit is skipped (None: always fit it). On the robustness worlds every kept lean "
        "scored p <= 0.20, and no fit scoring above 0.35 kept one."
    )
    label_order: bool = Field(
        True, description="A label task (the replies are a few fixed labels, as in RTE or "
        "bluebirds) without display order: read each vote in label order, so position bias "
        "and lapse tilt measure a reviewer's lean toward one label, as Dawid & Skene's "
        "confusion matrices do (the warehouse's reply order is a coin flip per item and names "
        "no label). False: such votes carry no order."
    )
    label_lapse_max: float = Field(
        0.95, ge=0.5, lt=1.0, description="In a label task read in label order (label_order), "
        "the largest lapse rate a reviewer may have (elsewhere 0.5). A spammer who clicks one "
        "label whatever the item lapses on nearly every vote; held below 0.5, the other half "
        "of their votes pulls the consensus toward their label and a few of them form a "
        "'school' (as on Snow et al.'s RTE and temporal sets)."
    )
    lapse_lean_sd: float | None = Field(
        None, gt=0, description="EM: None (default): every reviewer's lapses lean as the pool's "
        "do; a number: each reviewer also gets a lean of their own, with this prior sd (logit "
        "scale) around the pool's. A point estimate used only by lapses, it makes lapses look "
        "likelier than they are where votes are near coin flips (see lapse_cues.py)."
    )
    tie_threshold_sd: float = Field(
        0.3, gt=0, description="EM: prior sd of a reviewer's tie threshold around the "
        "population's (logit scale)."
    )
    interval_mass: float = Field(0.94, gt=0.5, lt=1.0, description="Credible interval mass.")
    interval_prior_mix: float = Field(
        0.1, ge=0.0, lt=1.0, description="EM: each reviewer's reliability interval is read "
        "under the pool's lapse distribution mixed with this share of a flat one "
        "(epsilon-contamination): the pool's shape is an estimate, learned mostly from the "
        "reviewers with many votes, and a reviewer whose few votes say little is not held to it "
        "(0: the pool's distribution as fitted). Means and flags use the fitted one."
    )
    flag_min_reliability: float = Field(
        0.8, gt=0.5, lt=1.0, description="A reviewer is flagged when their reliability is "
        "credibly below this (lapse rate credibly above 1 - this)."
    )
    careful_share: float = Field(
        0.5, ge=0.0, lt=1.0, description="EM: the least share of the pool's lapse-rate "
        "distribution kept at careful rates (<= careful_lapse_limit). Lapses are measured "
        "relative to the pool: a lapse rate every reviewer shares cannot be told from near-tie "
        "pairs, so the majority is taken to be careful and what all reviewers show is put on the "
        "pairs (0 turns this off)."
    )
    careful_share_strict: float = Field(
        0.75, ge=0.0, lt=1.0, description="EM: also fit with this careful share and keep it "
        "unless careful_share predicts the votes clearly better (the K-selection rule on "
        "leave-one-out): with near-tie pairs and nobody careless, the strict reading wins "
        "(0 or <= careful_share: off)."
    )
    careful_lapse_limit: float = Field(
        0.1, gt=0.0, lt=0.5, description="Lapse rates up to this count as careful (for "
        "careful_share and for the evidence behind a flag)."
    )
    flag_bayes_factor: float = Field(
        10.0, ge=1.0, description="A lapse flag also needs this much evidence from the "
        "reviewer's own votes: the Bayes factor of 'lapses more than the pool's careful "
        "reviewers' against 'careful' (10: strong evidence, Kass & Raftery 1995). A reviewer "
        "whose votes look like everyone else's is never flagged, however noisy the pool."
    )
    flag_probability: float = Field(
        0.9, gt=0.5, lt=1.0, description="Posterior probability needed to call reliability "
        "credibly low."
    )
    position_bias_flag: float = Field(
        0.6, gt=0, description="Flag a reviewer whose |position bias| is credibly above this."
    )
    pluralism_probability: float = Field(
        0.5, gt=0.0, lt=1.0, description="Posterior probability that a pair's schools differ, "
        "needed for the 'pluralism' verdict."
    )
    ambiguity_min_variance: float = Field(
        0.13, gt=0.0, lt=0.25, description="Careful within-school vote variance (max 0.25) from "
        "which a pair counts as ambiguous (careful reviewers split)."
    )
    noise_min_lapses: float = Field(
        0.5, gt=0.0, description="Expected number of lapsed votes on a pair with disagreeing "
        "votes from which the pair's disagreement is read as lapses at all."
    )
    noise_probability: float = Field(
        0.8, ge=0.0, lt=1.0, description="Posterior probability that at least one vote against "
        "the pair's majority is a lapse, needed for the 'noise' verdict. Disagreement the model "
        "puts lapses on (noise_min_lapses) below this bar is 'unsettled': with a handful of "
        "votes a pair, a lapse, a careful close call and a split of views often explain the "
        "same votes (0 calls every such pair noise, as fits before this setting did)."
    )
    k_selection_se: float = Field(
        2.0, ge=0.0, description="Auto K: prefer more schools only when the LOO gain exceeds "
        "this many standard errors of the difference (and k_selection_min_gain)."
    )
    k_selection_min_gain: float = Field(
        4.0, ge=0.0, description="Auto K: minimum elpd gain (log units) for more schools."
    )
    one_school_flag_check_se: float | None = Field(
        2.0, ge=0.0, description="Auto K, one school chosen: a lapse flag must also stand under "
        "the two-school fit (the weaker evidence of the two counts) when that fit came within "
        "this many standard errors of the difference in LOO. Where two schools are clearly "
        "worse, their reading of a reviewer does not bear on a verdict. null: always weigh it."
    )
    flag_school_floor: float = Field(
        0.2, ge=0.0, lt=0.5, description="With schools: a lapse flag must also stand in every "
        "school a reviewer holds with at least this posterior probability (the weakest "
        "evidence of those readings counts). Where the fit is unsure which school a reviewer "
        "holds, the departures that make them look careless under one school may be their "
        "view under another; a verdict about a person should not hang on that. 0: off."
    )
    taste_check: bool = Field(
        True, description="A lapse flag must also stand when the reviewer may have a "
        "taste of their own for a reply property (the longer reply, one model's), as large as "
        "the pool's votes show tastes run: their votes are read again with that taste, each "
        "against its pair's consensus without it, and the flag needs flag_bayes_factor there "
        "too. A taste wins close pairs and rarely clear ones; lapses do not care. Sampled "
        "fits are read on the grid EM at the chosen K."
    )
    min_reviewers_per_school: float = Field(
        3.0, ge=0.0, description="Auto K: a number of schools is considered only when each "
        "school holds at least this many reviewers (sum of membership probabilities)."
    )
    few_reviewers: int = Field(
        8, ge=0, description="Auto K: with fewer reviewers than this, more than one school "
        "needs few_reviewers_gain_factor times the usual LOO evidence, and the summary says "
        "schools cannot be told with so few reviewers."
    )
    few_reviewers_gain_factor: float = Field(
        4.0, ge=1.0, description="Auto K: how much stronger the LOO evidence for more schools "
        "must be with fewer than few_reviewers reviewers."
    )
    k_selection_max_comparisons: int = Field(
        250_000, ge=1_000, description="Auto K with the EM on more comparisons than this: "
        "compare K = 1, 2, 3 on a random sample of pairs holding about this many comparisons, "
        "then fit only the chosen K on all of them, started from the sample's fit."
    )

    @field_validator("n_schools")
    @classmethod
    def _check_schools(cls, value: Literal["auto"] | int) -> Literal["auto"] | int:
        if value != "auto" and (not isinstance(value, int) or not 1 <= value <= 3):
            raise ValueError("n_schools must be 'auto', 1, 2 or 3")
        return value

    def _digest(self, scope: str, exclude: tuple[str, ...] = ()) -> str:
        settings = self.model_dump()
        for name in exclude:
            settings.pop(name)
        # settings added later are hashed only when they differ from the earlier behaviour, so
        # fits saved before they existed keep their hash
        for name, before in SETTINGS_ADDED_LATER.items():
            if settings.get(name) == before:
                settings.pop(name)
        payload = {"model_type": MODEL_TYPE, "version": MODEL_VERSION, **settings}
        if scope != "config":
            payload["hash_scope"] = scope
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def config_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of every setting, report thresholds included: the
        configuration a fit was made and reported with (stored with every saved fit)."""
        return self._digest("config")

    def posterior_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the settings that change the posterior (every
        setting but :data:`REPORT_SETTINGS`): a saved fit loads only under the same value."""
        return self._digest("posterior", exclude=REPORT_SETTINGS)

    def posterior_differences(self, other: AnnotatorConfig) -> dict[str, tuple[object, object]]:
        """``{setting: (self's value, other's value)}`` for the posterior settings that differ."""
        mine, theirs = self.model_dump(), other.model_dump()
        return {name: (mine[name], theirs[name]) for name in mine
                if name not in REPORT_SETTINGS and mine[name] != theirs[name]}
