"""Scoring a method's reviewer verdicts on a drawn world of :mod:`.worlds` against its truth,
and the oracle that knows every margin, taste and lapse habit (the ceiling of the suite)."""

from __future__ import annotations

import numpy as np
import polars as pl

from .decomposition import Population, components
from .notes import PLACED_PROBABILITY
from .worlds import World


def oracle_reliability(world: World, grid_size: int = 400, lapse_from: float = 0.2,
                       flag_probability: float = 0.9) -> pl.DataFrame:
    """Each reviewer's exact lapse posterior, knowing every margin, taste and lapse habit.

    ``p(eps | y_r) ∝ p(eps) prod_n [(1 - eps) p_careful_n + eps p_lapse_n]`` with ``p(eps)`` the
    world's generating mixture (careful and rushed ranges mixed by the rushed share; a point mass
    at 0 where careful reviewers never lapse). No method reading only the votes can rank reviewers
    better. Returns ``reviewer_id, reliability, reliability_low, reliability_high`` (94%) and
    ``flagged``: ``P(eps > lapse_from) >= flag_probability``, the flags no method can beat at
    that threshold (the ceiling for flag precision and recall).
    """
    return _lapse_posterior(world, world.judgments["p_careful"].to_numpy(), grid_size,
                            lapse_from, flag_probability)


def margin_blind_oracle_reliability(world: World, n_candidates: int = 400, seed: int = 0,
                                    grid_size: int = 400, lapse_from: float = 0.2,
                                    flag_probability: float = 0.9) -> pl.DataFrame:
    """:func:`oracle_reliability` without the pair margins: what not knowing them costs.

    Knows every reviewer's school, lapse rate and habits, taste, sharpness and tie threshold,
    but not the pairs' margins: each judgment's careful-vote probability is the cavity
    predictive of :func:`margin_blind_careful_probs`. A method that reads only the votes must
    also learn every reviewer's parameters and the margins' distribution, so this is a ceiling
    for it too, a tighter one than the oracle's (the margin-blind oracle of :mod:`.oracle`, for
    any world of the suite). Same columns as :func:`oracle_reliability`.
    """
    return _lapse_posterior(world, margin_blind_careful_probs(world, n_candidates, seed),
                            grid_size, lapse_from, flag_probability)


def margin_blind_careful_probs(world: World, n_candidates: int = 400,
                               seed: int = 0) -> np.ndarray:
    """Each judgment's careful-vote probability with its pair's margins integrated out.

    The pair's margin vector is integrated over the true margin vectors of up to
    ``n_candidates`` *other* pairs (their empirical distribution), weighted by the *other*
    reviewers' votes on the pair, whose parameters are known (the cavity)::

        A_n = sum_c w_{j,-r}(c) P_c(y_n | sharp_r m_{c,k(r)} + offset_n),
        w_{j,-r}(c) ∝ prod_{n' on j, n' != n} [(1 - eps_r') P_c(y_n' | c) + eps_r' p_lapse_n']

    (each reviewer judges a pair once in these worlds, so the cavity drops one vote). In the
    world's judgment order.
    """
    from scipy.special import logsumexp

    from .likelihood import careful_probs

    j, spec, reviewers = world.judgments, world.spec, world.reviewers
    pair_index = {p: i for i, p in enumerate(world.pairs["pair_id"].to_list())}
    r_index = {r: i for i, r in enumerate(reviewers["reviewer_id"].to_list())}
    pair = np.array([pair_index[p] for p in j["pair_id"].to_list()])
    rev = np.array([r_index[r] for r in j["reviewer_id"].to_list()])
    margins = np.stack([world.pairs[f"margin_{k}"].to_numpy() for k in range(spec.n_schools)],
                       1)
    cand = np.random.default_rng(seed).permutation(margins.shape[0])[:n_candidates]
    school = reviewers["school_index"].to_numpy()[rev]
    eta = (reviewers["sharpness"].to_numpy()[rev][:, None] * margins[cand][:, school].T
           + j["eta_offset"].to_numpy()[:, None])  # (N, C)
    tau = reviewers["tie_threshold"].to_numpy()[rev][:, None]
    y = j["outcome"].to_numpy()[:, None]
    p_plus, p_tie, p_minus = careful_probs(eta, tau)  # type: ignore[arg-type]
    pc = np.where(y > 0, p_plus, np.where(y < 0, p_minus, p_tie))
    eps = reviewers["lapse_rate"].to_numpy()[rev][:, None]
    log_v = np.log(np.maximum((1 - eps) * pc + eps * j["p_lapse"].to_numpy()[:, None], 1e-300))
    per_pair = np.zeros((margins.shape[0], cand.size))
    np.add.at(per_pair, pair, log_v)
    log_w = per_pair[pair] - log_v
    log_w[pair[:, None] == cand[None, :]] = -np.inf  # the pair's own margins are not known
    log_w -= logsumexp(log_w, axis=1, keepdims=True)
    return np.sum(np.exp(log_w) * pc, axis=1)


def _lapse_posterior(world: World, p_careful: np.ndarray, grid_size: int, lapse_from: float,
                     flag_probability: float) -> pl.DataFrame:
    """Each reviewer's lapse posterior on a grid under the world's generating prior, given each
    judgment's careful-vote probability ``p_careful`` (the world's row order)."""
    spec = world.spec
    grid = np.linspace(0.0, max(0.6, min(spec.rushed_lapse[1] + 0.05, 1.0)), grid_size)
    prior = np.zeros(grid_size)
    # a reviewer who tires halfway lapses at about half a rushed rate over all their votes
    tired = (spec.careful_lapse[0] + spec.rushed_lapse[0]) / 2, spec.rushed_lapse[1] / 2 + (
        spec.careful_lapse[1])
    for (lo, hi), mass in ((spec.careful_lapse, 1 - spec.rushed_share - spec.fatigue_share),
                           (spec.rushed_lapse, spec.rushed_share),
                           (tired, spec.fatigue_share)):
        if mass <= 0:
            continue
        inside = (grid >= lo) & (grid <= hi)
        if hi <= lo or not inside.any():
            prior[np.argmin(np.abs(grid - lo))] += mass
        else:
            prior[inside] += mass / inside.sum()
    j = world.judgments
    ids = world.reviewers["reviewer_id"].to_list()
    index = {r: i for i, r in enumerate(ids)}
    r = np.array([index[x] for x in j["reviewer_id"].to_list()])
    pc, pl_ = p_careful, j["p_lapse"].to_numpy()
    loglik = np.zeros((len(ids), grid_size))
    for g, e in enumerate(grid):
        loglik[:, g] = np.bincount(r, np.log(np.maximum((1 - e) * pc + e * pl_, 1e-300)),
                                   len(ids))
    with np.errstate(divide="ignore"):
        logpost = loglik + np.log(prior)[None, :]
    logpost -= logpost.max(axis=1, keepdims=True)
    post = np.exp(logpost)
    post /= post.sum(axis=1, keepdims=True)
    cdf = post.cumsum(axis=1)
    lapse_mean = post @ grid
    low_eps = grid[np.argmax(cdf >= 0.03, axis=1)]
    high_eps = grid[np.argmax(cdf >= 0.97, axis=1)]
    return pl.DataFrame({"reviewer_id": ids, "reliability": 1 - lapse_mean,
                         "reliability_low": 1 - high_eps, "reliability_high": 1 - low_eps,
                         "flagged": post[:, grid > lapse_from].sum(axis=1) >= flag_probability})


def verdict_scores(world: World, estimates: pl.DataFrame, n_schools: int | None = None,
                   ranking: str = "reliability") -> dict[str, float]:
    """Score a method's reviewer verdicts against the world's truth.

    ``estimates`` has ``reviewer_id`` and a ``ranking`` column (higher = more reliable); where it
    also has ``flagged``, ``reliability_low`` / ``reliability_high`` and ``school``, the flags,
    interval coverage and school recovery are scored too. Careful reviewers are those neither
    rushed nor position-biased (a position-bias flag on a biased reviewer is right).
    """
    from sklearn.metrics import adjusted_rand_score

    truth = world.reviewers.filter(pl.col("n_comparisons") > 0)
    t = truth.join(estimates, on="reviewer_id", how="left")
    score = t[ranking].fill_null(t[ranking].median()).to_numpy()
    reversed_ = t["is_reversed"].to_numpy()
    rushed = t["is_rushed"].to_numpy() | reversed_  # careless: a reversed vote is no view
    careful = ~rushed & ~t["is_position_biased"].to_numpy()
    k = int(rushed.sum())
    out: dict[str, float] = {"n_reviewers": float(t.height), "n_rushed": float(k)}
    if k:
        bottom = np.zeros(t.height, bool)
        bottom[np.argsort(score, kind="stable")[:k]] = True
        out["bottom_k_precision"] = float(bottom[rushed].mean())
    if "flagged" in t.columns:
        flagged = t["flagged"].fill_null(False).to_numpy()
        if "flag_reason" in t.columns:  # lapse flags only: a position-bias flag is no lapse flag
            flagged &= t["flag_reason"].str.contains("lapse rate|votes reversed").fill_null(
                False).to_numpy()
            if reversed_.any():
                out["reversed_found"] = float(t["flag_reason"].str.contains("votes reversed")
                                              .fill_null(False).to_numpy()[reversed_].mean())
        out["careful_flagged_share"] = float(flagged[careful].mean()) if careful.any() else 0.0
        out["careful_flagged_n"] = float(flagged[careful].sum())
        if "flag_reason" in t.columns and careful.any():  # a bias flag on an unbiased reviewer
            bias = t["flag_reason"].str.contains("position bias").fill_null(False).to_numpy()
            out["careful_bias_flagged"] = float(bias[careful].mean())
        if k:
            out["rushed_recall"] = float(flagged[rushed].mean())
            out["rushed_precision"] = (float(flagged[rushed].sum() / flagged.sum())
                                       if flagged.any() else float("nan"))
            # counts, so that a suite can pool its draws: a per-draw precision from one or two
            # flags weighs as much as one from twenty
            out["flagged_n"] = float(flagged.sum())
            out["rushed_flagged_n"] = float(flagged[rushed].sum())
            # a position-biased reviewer is careless too (noise, in the product's terms), but
            # no lapse rate of theirs is high: their lapse flag is counted apart
            out["careless_flagged_n"] = float(flagged[~careful].sum())
        school = t["school_index"].to_numpy()
        if world.spec.n_schools > 1:
            majority = careful & (school == 0)
            minority = careful & (school > 0)
            if majority.any() and minority.any():
                out["minority_gap_pts"] = 100 * float(flagged[minority].mean()
                                                      - flagged[majority].mean())
        if "lapse_evidence" in t.columns and k:
            # the audit's "ok" (AuditConfig.settled_bayes_factor = 3): every reviewer not
            # flagged, before; only those whose votes favour careful 3 to 1, now
            settled = t["lapse_evidence"].fill_null(1.0).to_numpy() <= 1 / 3
            out["ok_rushed_before"] = float(rushed[~flagged].mean()) if (~flagged).any() else 0.0
            ok = ~flagged & settled
            out["ok_rushed"] = float(rushed[ok].mean()) if ok.any() else float("nan")
            out["unsettled"] = float((~flagged & ~settled).mean())
    if {"reliability_low", "reliability_high"} <= set(t.columns):
        true_rel = 1 - t["lapse_rate"].to_numpy()
        low, high = t["reliability_low"].to_numpy(), t["reliability_high"].to_numpy()
        # a grid method cannot put an interval's end exactly on 0 or 1: half a typical grid
        # cell (0.01) of slack
        covered = (true_rel >= low - 0.01) & (true_rel <= high + 0.01)
        out["coverage"] = float(np.mean(covered[~reversed_]))  # no true lapse rate to cover
    if n_schools is not None:
        out["k_chosen"] = float(n_schools)
        out["k_right"] = float(n_schools == world.true_k)
    if "school" in t.columns and world.spec.n_schools > 1:
        c = t.filter(~pl.col("is_rushed") & ~pl.col("is_reversed"))
        out["school_ari"] = float(adjusted_rand_score(c["school_index"], c["school"]))
    if "school_probability" in t.columns and (n_schools or 1) > 1:
        out |= _placement_scores(world, t)
    return out


def _placement_scores(world: World, t: pl.DataFrame) -> dict[str, float]:
    """What the fit asserts about careful reviewers' schools, where it found more than one:
    the share it places (school probability >= the fit summary's bar), the ARI among them
    where the world has schools, and where it has none the share placed in a school other
    than the largest (school 0): a minority view the votes do not hold."""
    c = t.filter(~pl.col("is_rushed") & ~pl.col("is_reversed") & pl.col("school").is_not_null())
    placed = c.filter(pl.col("school_probability") >= PLACED_PROBABILITY)
    out = {"placed_share": placed.height / max(c.height, 1)}
    if world.spec.n_schools > 1 and placed.height > 1:
        from sklearn.metrics import adjusted_rand_score

        out["placed_ari"] = float(adjusted_rand_score(placed["school_index"], placed["school"]))
    elif world.spec.n_schools == 1:
        out["false_school_placed"] = float((placed["school"] != 0).sum()) / max(c.height, 1)
    return out


def audit_scores(world: World, audit: pl.DataFrame,
                 minority_view: str | None = None) -> dict[str, float]:
    """Score the reviewer audit's verdicts (``reviewer_id, verdict, flagged, reasons``, as
    ``dissensus reviewers`` gives them) against the world's truth: what a lead reads.

    Careful reviewers are those neither rushed, tired (``is_fatigued``), reversed nor
    position-biased, with enough votes for a verdict. ``audit_careful_flagged``: their share
    flagged; ``audit_rushed_prec`` / ``audit_rushed_rec``: the flags against the careless
    (rushed, tired or reversed); ``audit_tired_flagged`` and ``audit_tired_drifting``: the tired
    reviewers flagged at all, and those whose reasons name the drop in agreement;
    ``audit_careful_drifting``: careful reviewers said to drift; ``audit_minority_view_prec``:
    careful members of a minority school among those whose verdict is ``minority_view`` (the
    audit's verdict name, passed in: the models do not import the analytics).
    """
    t = world.reviewers.join(audit.select("reviewer_id", "verdict", "flagged", "reasons"),
                             on="reviewer_id").filter(pl.col("verdict") != "too few votes")
    tired = t["is_fatigued"].to_numpy() if "is_fatigued" in t.columns else np.zeros(t.height,
                                                                                     bool)
    careless = t["is_rushed"].to_numpy() | t["is_reversed"].to_numpy() | tired
    careful = ~careless & ~t["is_position_biased"].to_numpy()
    flagged = t["flagged"].to_numpy()
    drifting = t["reasons"].str.contains("agreement fell").fill_null(False).to_numpy()
    out: dict[str, float] = {"audit_reviewers": float(t.height)}
    out["audit_careful_flagged"] = float(flagged[careful].mean()) if careful.any() else 0.0
    out["audit_careful_drifting"] = float(drifting[careful].mean()) if careful.any() else 0.0
    if careless.any():
        out["audit_rushed_rec"] = float(flagged[careless].mean())
        # a position-biased reviewer flagged as such is right, and neither careless nor careful
        judged = flagged & ~(t["is_position_biased"].to_numpy() & ~careless)
        out["audit_rushed_prec"] = (float(careless[judged].mean()) if judged.any()
                                    else float("nan"))
    if tired.any():
        out["audit_tired_flagged"] = float(flagged[tired].mean())
        out["audit_tired_drifting"] = float(drifting[tired].mean())
    held = (t["verdict"] == minority_view).to_numpy() if minority_view else np.zeros(t.height,
                                                                                     bool)
    if world.spec.n_schools > 1 and held.any():
        truly = careful & (t["school_index"].to_numpy() > 0)
        out["audit_minority_view_prec"] = float(truly[held].mean())
    return out


def pair_truth(world: World, ambiguous_bar: float = 0.13) -> pl.DataFrame:
    """What is true of each pair's disagreement, read from the world's margins and lapses.

    Not exclusive: ``is_pluralism`` (the schools' careful vote means differ more than careful
    reviewers of one school do, the decomposition's own test on the true margins),
    ``is_ambiguous`` (careful within-school vote variance ``>= ambiguous_bar``), ``is_noise`` (at
    least one lapse, or one reversed reviewer's vote, went against its reviewer's school), and
    ``is_clear`` (none of them)."""
    spec = world.spec
    shares = np.asarray(spec.school_shares, float) / np.sum(spec.school_shares)
    margins = np.stack([world.pairs[f"margin_{k}"].to_numpy() for k in range(spec.n_schools)], 1)
    # the decomposition's careful parts, on the true margins (lapses and biases play no part)
    _, pluralism, ambiguity = components(margins, Population(
        shares, spec.tau, lapse_mean=0.0, bias_values=np.zeros(1), bias_weights=np.ones(1)))
    votes = (world.judgments.select("pair_id", "reviewer_id", "careful", "outcome")
             .join(world.pairs.select("pair_id", pl.int_range(pl.len()).alias("pair_index")),
                   on="pair_id", how="left", maintain_order="left")
             .join(world.reviewers.select("reviewer_id", "school_index", "is_reversed"),
                   on="reviewer_id", how="left", maintain_order="left"))
    pair_index = votes["pair_index"].to_numpy()
    own = margins[pair_index, votes["school_index"].to_numpy()]
    # a vote that does not carry its reviewer's view: a lapse, or a reversed reviewer's vote
    # (swapped buttons), against the reviewer's school
    astray = ~votes["careful"].to_numpy() | votes["is_reversed"].to_numpy()
    against = astray & (votes["outcome"].to_numpy() != np.sign(own))
    lapsed = np.bincount(pair_index, against, margins.shape[0]) > 0
    truth = pl.DataFrame({"pair_id": world.pairs["pair_id"], "is_pluralism": pluralism > ambiguity,
                          "is_ambiguous": ambiguity >= ambiguous_bar, "is_noise": lapsed})
    return truth.with_columns(is_clear=~(pl.col("is_pluralism") | pl.col("is_ambiguous")
                                         | pl.col("is_noise")))


def pair_verdict_scores(world: World, pair_estimates: pl.DataFrame,
                        ambiguous_bar: float = 0.13) -> dict[str, float]:
    """How often each pair verdict is true of its pair (:func:`pair_truth`), and the share of
    pairs left ``unsettled``: ``pair_<verdict>_prec`` (NaN where the verdict was never given)
    and ``pair_unsettled``."""
    t = pair_estimates.select("pair_id", "verdict").join(pair_truth(world, ambiguous_bar),
                                                         on="pair_id")
    out: dict[str, float] = {"pair_unsettled": float((t["verdict"] == "unsettled").mean())}
    # the rule before ``noise_probability`` called every unsettled pair noise
    before = t.filter(pl.col("verdict").is_in(["noise", "unsettled"]))
    out["pair_noise_before_prec"] = (float(before["is_noise"].mean())  # type: ignore[arg-type]
                                     if before.height else float("nan"))
    for verdict, truth in (("noise", "is_noise"), ("pluralism", "is_pluralism"),
                           ("ambiguous", "is_ambiguous"), ("clear", "is_clear")):
        given = t.filter(pl.col("verdict") == verdict)
        out[f"pair_{verdict}_prec"] = (float(given[truth].mean()) if given.height  # type: ignore[arg-type]
                                       else float("nan"))
        out[f"pair_{verdict}_n"] = float(given.height)
    return out
