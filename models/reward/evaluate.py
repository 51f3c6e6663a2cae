"""Held-out evaluation: accuracy against consensus and per school, calibration, proxy probes.

Labels come from the held-out votes. For pair j with comparisons n (targets y_n, weights w_n,
school weights s_{n,k}): consensus share c_j = sum w y / sum w and school share
c_{j,k} = sum w s_k y / sum w s_k; the label is c > 1/2 (pairs at exactly 1/2 are left out).
With a fit, w down-weights likely lapses, so the consensus is that of careful judgments.

* Accuracy: share of labelled pairs where the head's P(1 beats 2) > 1/2 agrees with the label;
  per school with the school's head (multi-head) or the one head (others); worst-school is the
  minimum over schools.
* Calibration (per held-out non-tie comparison): expected calibration error
  ECE = sum_b (n_b / n) |mean p_b - mean y_b| over 10 equal-width bins of p, with the table.
* Contested pairs: a held-out pair is contested when the annotator fit's verdict on it is
  ``pluralism``; for a fit without verdicts, when the schools' held-out vote shares point
  different ways (one above 1/2, another below: a noisier label). How well the model's own
  signal finds them is the ROC AUC of: the range of the school heads' reward differences
  (multi-head), the pair's spread sqrt(sigma_1^2 + sigma_2^2) (distributional; with the spread
  from schools, how far the replies lean apart |l_1 - l_2|), or low
  confidence -|p - 1/2| (plain, weighted). Needs a fit with two or more schools.
* Proxy probes: Pearson and Spearman correlation of reward with response length (characters);
  a length-only baseline (the longer reply wins) on the same pairs; mean standardised reward by
  response tag (refusal, escalation, hallucination, ...). A reward that tracks length or a tag
  more than the behaviour the reviewers judged learned the costume, not the behaviour.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from dissensus.models.reward.config import SCHOOL_HEAD_KINDS
from dissensus.models.reward.data import PreferenceData
from dissensus.models.reward.heads import RewardNet, head_names, win_probability
from dissensus.models.reward.train import response_outputs

Array = npt.NDArray[np.float64]
NDArrayF = npt.NDArray[np.float64]


def binary_metrics(p: Array, label: Array) -> dict[str, float]:
    """Accuracy, ROC AUC and cross-entropy of probabilities ``p`` for 0/1 ``label``."""
    p, label = np.asarray(p, float), np.asarray(label, float)
    if len(p) == 0:
        return {"n": 0, "accuracy": float("nan"), "roc_auc": float("nan"),
                "cross_entropy": float("nan")}
    q = np.clip(p, 1e-7, 1 - 1e-7)
    auc = float(roc_auc_score(label, p)) if 0 < label.sum() < len(label) else float("nan")
    return {
        "n": len(p),
        "accuracy": float(np.mean(np.where(p == 0.5, 0.5, (p > 0.5) == (label > 0.5)))),
        "roc_auc": auc,
        "cross_entropy": float(-np.mean(label * np.log(q) + (1 - label) * np.log(1 - q))),
    }


def reliability(p: Array, y: Array, bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error and the reliability table (equal-width bins)."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if not mask.any():
            continue
        mean_p, mean_y = float(p[mask].mean()), float(y[mask].mean())
        ece += mask.mean() * abs(mean_p - mean_y)
        table.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(mask.sum()),
                      "mean_predicted": mean_p, "observed": mean_y})
    return float(ece), table


def _corr(fn: object, a: Array, b: Array) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(fn(a, b)[0])  # type: ignore[operator]


def pair_table(data: PreferenceData, split: str = "test") -> pl.DataFrame:
    """Per held-out pair: text indices, consensus share and per-school shares of the votes."""
    c = data.comparisons.filter(pl.col("split") == split)
    k = max(data.n_schools, 1)
    sw = data.school_matrix()[data.comparisons["split"].to_numpy() == split]
    c = c.with_columns(*[pl.Series(f"s{i}", sw[:, i]) for i in range(k)])
    shares = [
        ((pl.col("weight") * pl.col(f"s{i}") * pl.col("y")).sum()
         / (pl.col("weight") * pl.col(f"s{i}")).sum()).alias(f"school_share_{i}")
        for i in range(k)
    ] if data.n_schools else []
    return c.group_by("pair_id", maintain_order=True).agg(
        pl.first("prompt_idx"), pl.first("r1_idx"), pl.first("r2_idx"),
        pl.first("response_1_id"), pl.first("response_2_id"),
        ((pl.col("weight") * pl.col("y")).sum() / pl.col("weight").sum()).alias("consensus_share"),
        pl.len().alias("n_votes"), *shares,
    )


def labelled_accuracy(p: Array, share: Array) -> tuple[float, int]:
    """Accuracy of ``p > 1/2`` against ``share > 1/2`` where ``share != 1/2``; and the count."""
    share = np.asarray(share, float)
    keep = np.isfinite(share) & (np.abs(share - 0.5) > 1e-9)
    if not keep.any():
        return float("nan"), 0
    hit = np.where(p[keep] == 0.5, 0.5, (p[keep] > 0.5) == (share[keep] > 0.5))
    return float(np.mean(hit)), int(keep.sum())


def pair_outputs(
    model: RewardNet, embeddings: torch.Tensor, pairs: pl.DataFrame,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw head outputs of each pair's response 1 and response 2."""
    prompt = torch.tensor(pairs["prompt_idx"].to_numpy(), device=embeddings.device)
    return tuple(  # type: ignore[return-value]
        response_outputs(model, embeddings, prompt, torch.tensor(
            pairs[col].to_numpy(), device=embeddings.device))
        for col in ("r1_idx", "r2_idx"))


def pair_probabilities(
    model: RewardNet, kind: str, embeddings: torch.Tensor, pairs: pl.DataFrame,
    link: str = "probit", min_log_var: float = -6.0,
) -> Array:
    """(pairs, heads) P(response 1 beats response 2)."""
    o1, o2 = pair_outputs(model, embeddings, pairs)
    return win_probability(kind, o1, o2, link, min_log_var,
                           getattr(model, "spread_from", "votes")).cpu().numpy().astype(float)


def contested_signal(
    model: RewardNet, kind: str, embeddings: torch.Tensor, pairs: pl.DataFrame, probs: Array,
    min_log_var: float = -6.0,
) -> Array:
    """Per pair, how contested the model says it is (higher: more; see the module doc)."""
    if kind in SCHOOL_HEAD_KINDS:
        school_p = np.clip(probs[:, :-1], 1e-9, 1 - 1e-9)
        return np.ptp(np.log(school_p / (1 - school_p)), axis=1)
    if kind != "distributional":
        return -np.abs(probs[:, 0] - 0.5)
    second_1, second_2 = (o[:, 1] for o in pair_outputs(model, embeddings, pairs))
    if getattr(model, "spread_from", "votes") == "schools":  # how far the replies lean apart
        return np.abs((second_1 - second_2).cpu().numpy()).astype(float)
    var = second_1.clamp_min(min_log_var).exp() + second_2.clamp_min(min_log_var).exp()
    return np.sqrt(var.cpu().numpy().astype(float))


def disagreement_probability(school_p: Array, shares: Array) -> Array:
    """Per pair, P(a reviewer of one school and a reviewer of another school pick different
    replies): with school heads' win probabilities p_k and school shares pi_k,

        sum_{k != l} pi_k pi_l [p_k (1 - p_l) + p_l (1 - p_k)] / 2  /  sum_{k < l} pi_k pi_l.

    Two schools: p_0 (1 - p_1) + p_1 (1 - p_0). Near 0 on a clear pair, near 1 on a pair the
    schools firmly split on, about 1/2 where each school is itself split (ambiguous)."""
    p = np.clip(np.asarray(school_p, float), 0.0, 1.0)
    pi = np.asarray(shares, float) / np.sum(shares)
    k = p.shape[1]
    num, den = np.zeros(p.shape[0]), 0.0
    for a in range(k):
        for b in range(a + 1, k):
            w = pi[a] * pi[b]
            num += w * (p[:, a] * (1 - p[:, b]) + p[:, b] * (1 - p[:, a]))
            den += w
    return num / max(den, 1e-12)


def disagreement_calibration(predicted: Array, pairs: pl.DataFrame, data: PreferenceData,
                             split: str = "test", min_cross: float = 0.5) -> dict[str, object]:
    """How often held-out votes from different schools really disagree, against
    :func:`disagreement_probability`. For each held-out pair, every two decisive votes by
    different reviewers count with the chance that they come from different schools (from the
    memberships, times both votes' P(careful)); a pair enters with its observed rate when those
    chances sum to at least ``min_cross``. Returns the ECE and reliability table over pairs."""
    mask = data.comparisons["split"].to_numpy() == split
    c = data.comparisons.filter(pl.col("split") == split)
    member = data.school_matrix()[mask].astype(float)
    index = {j: i for i, j in enumerate(pairs["pair_id"].to_list())}
    votes: dict[int, list[tuple[str, float, NDArrayF, float]]] = {}
    for n, (pair, reviewer, y, tie, w) in enumerate(c.select(
            "pair_id", "reviewer_id", "y", "tie", "weight").iter_rows()):
        if not tie:
            votes.setdefault(index[pair], []).append((str(reviewer), float(y), member[n],
                                                      float(w)))
    predicted_kept, observed = [], []
    for j, vs in votes.items():
        cross = differ = 0.0
        for a in range(len(vs)):
            for b in range(a + 1, len(vs)):
                if vs[a][0] == vs[b][0]:
                    continue
                chance = (1.0 - float(vs[a][2] @ vs[b][2])) * vs[a][3] * vs[b][3]
                cross += chance
                differ += chance * (vs[a][1] != vs[b][1])
        if cross >= min_cross:
            predicted_kept.append(predicted[j])
            observed.append(differ / cross)
    if not observed:
        return {"n_pairs": 0, "ece": float("nan"), "reliability": []}
    ece, table = reliability(np.array(predicted_kept), np.array(observed))
    return {"n_pairs": len(observed), "ece": ece, "reliability": table,
            "mean_predicted": float(np.mean(predicted_kept)),
            "mean_observed": float(np.mean(observed))}


def contested_detection(
    signal: Array, pairs: pl.DataFrame, n_schools: int, verdicts: pl.DataFrame | None = None,
) -> dict[str, object]:
    """ROC AUC of ``signal`` for the contested pairs among ``pairs``.

    With ``verdicts`` (pair_id, verdict) a pair is contested when its verdict is ``pluralism``
    and pairs without a verdict are left out. Without, a pair is contested when its schools'
    held-out majorities disagree; pairs where some school has no held-out vote, or sits at
    exactly 1/2, are left out."""
    if verdicts is not None:
        verdict = pairs.select("pair_id").join(
            verdicts, on="pair_id", how="left", maintain_order="left")["verdict"]
        known = verdict.is_not_null().to_numpy()
        contested = (verdict == "pluralism").fill_null(False).to_numpy()
        source = "fit verdict 'pluralism'"
    else:
        shares = np.column_stack([pairs[f"school_share_{k}"].to_numpy()
                                  for k in range(n_schools)])
        known = np.isfinite(shares).all(axis=1) & (np.abs(shares - 0.5) > 1e-9).all(axis=1)
        contested = (shares > 0.5).any(axis=1) & (shares < 0.5).any(axis=1)
        source = "held-out school majorities disagree"
    label, score = contested[known], np.asarray(signal, float)[known]
    auc = (float(roc_auc_score(label, score)) if 0 < label.sum() < len(label)
           else float("nan"))
    return {"roc_auc": auc, "n_pairs": int(known.sum()), "n_contested": int(label.sum()),
            "label": source}


def evaluate_model(
    model: RewardNet, kind: str, data: PreferenceData, embeddings: torch.Tensor,
    responses: pl.DataFrame | None = None, *, split: str = "test", link: str = "probit",
    min_log_var: float = -6.0, reward_mean: list[float] | None = None,
    reward_std: list[float] | None = None,
) -> dict[str, object]:
    """Every metric of the module docstring on ``split``, as a JSON-ready dict."""
    pairs = pair_table(data, split)
    if pairs.height == 0:
        return {"split": split, "n_pairs": 0}
    names = head_names(kind, data.n_schools, getattr(model, "spread_from", "votes"))
    probs = pair_probabilities(model, kind, embeddings, pairs, link, min_log_var)
    main = probs[:, -1] if kind in SCHOOL_HEAD_KINDS else probs[:, 0]
    acc, n_labelled = labelled_accuracy(main, pairs["consensus_share"].to_numpy())
    metrics: dict[str, object] = {"split": split, "n_pairs": pairs.height,
                                  "n_labelled_pairs": n_labelled, "accuracy_consensus": acc}
    per_school: dict[str, float] = {}
    for k in range(data.n_schools):
        p_k = probs[:, k] if kind in SCHOOL_HEAD_KINDS else main
        per_school[f"school_{k}"] = labelled_accuracy(p_k, pairs[f"school_share_{k}"].to_numpy())[0]
    if per_school:
        metrics["accuracy_per_school"] = per_school
        metrics["worst_school_accuracy"] = float(np.nanmin(list(per_school.values())))

    if data.n_schools >= 2:
        signal = contested_signal(model, kind, embeddings, pairs, probs, min_log_var)
        metrics["contested_detection"] = contested_detection(signal, pairs, data.n_schools,
                                                             data.pair_verdicts)
        metrics["contested_auc"] = metrics["contested_detection"]["roc_auc"]  # type: ignore[index]
    if kind in SCHOOL_HEAD_KINDS and data.n_schools >= 2:
        train = data.comparisons["split"].to_numpy() == "train"
        weight = data.comparisons["weight"].to_numpy()[train, None]
        shares = (data.school_matrix()[train] * weight).sum(axis=0) + 1e-9
        p_dis = disagreement_probability(probs[:, :-1], shares)
        metrics["disagreement"] = {
            "school_shares": (shares / shares.sum()).tolist(),
            "calibration": disagreement_calibration(p_dis, pairs, data, split),
        }

    # Calibration on individual held-out decisive comparisons.
    c = data.comparisons.filter((pl.col("split") == split) & ~pl.col("tie"))
    p_pair = dict(zip(pairs["pair_id"].to_list(), main.tolist(), strict=True))
    p_cmp = np.array([p_pair[j] for j in c["pair_id"].to_list()])
    y_cmp = c["y"].to_numpy().astype(float)
    ece, table = reliability(p_cmp, y_cmp)
    metrics["comparisons"] = binary_metrics(p_cmp, y_cmp)
    metrics["ece"], metrics["reliability"] = ece, table

    # Proxy probes over the responses in the held-out pairs.
    n_chars = data.texts["n_chars"].to_numpy().astype(float)
    len_1, len_2 = n_chars[pairs["r1_idx"].to_numpy()], n_chars[pairs["r2_idx"].to_numpy()]
    length_p = np.where(len_1 == len_2, 0.5, (len_1 > len_2).astype(float))
    metrics["length_baseline_accuracy"] = labelled_accuracy(
        length_p, pairs["consensus_share"].to_numpy())[0]
    resp = pl.concat([
        pairs.select(pl.col("response_1_id").alias("response_id"), "prompt_idx",
                     pl.col("r1_idx").alias("idx")),
        pairs.select(pl.col("response_2_id").alias("response_id"), "prompt_idx",
                     pl.col("r2_idx").alias("idx")),
    ]).unique("response_id", maintain_order=True)
    out = response_outputs(
        model, embeddings, torch.tensor(resp["prompt_idx"].to_numpy(), device=embeddings.device),
        torch.tensor(resp["idx"].to_numpy(), device=embeddings.device)).cpu().numpy()
    col = names.index("consensus") if kind in SCHOOL_HEAD_KINDS else 0
    mean = (reward_mean or [0.0] * len(names))[col]
    std = (reward_std or [1.0] * len(names))[col]
    reward = (out[:, col] - mean) / std
    lengths = n_chars[resp["idx"].to_numpy()]
    metrics["reward_length_pearson"] = _corr(pearsonr, reward, lengths)
    metrics["reward_length_spearman"] = _corr(spearmanr, reward, lengths)
    if responses is not None and responses.height:
        tagged = resp.with_columns(pl.Series("reward", reward)).join(
            responses.select("response_id", "tags"), on="response_id", how="left")
        by_tag = (tagged.explode("tags").filter(pl.col("tags").is_not_null())
                  .group_by("tags").agg(pl.col("reward").mean(), pl.len().alias("n"))
                  .sort("tags"))
        metrics["reward_by_tag"] = {
            row["tags"]: {"mean_reward": row["reward"], "n": row["n"]}
            for row in by_tag.iter_rows(named=True)
        }
        untagged = tagged.filter(pl.col("tags").list.len().fill_null(0) == 0)["reward"]
        metrics["reward_untagged_mean"] = float(untagged.mean()) if untagged.len() else None
    return metrics
