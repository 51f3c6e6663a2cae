"""Two-sample tests for drift, and false-discovery control across windows and categories.

**MMD permutation test** (Gretton et al. 2012). For samples ``X`` (n rows) and ``Y`` (m rows)
and the Gaussian kernel ``k(a, b) = exp(-|a - b|^2 / (2 s^2))`` with ``s`` the median pairwise
distance of the pooled sample, the (biased) squared maximum mean discrepancy is

    MMD^2 = w' K w,   w_i = 1/n for rows of X, -1/m for rows of Y,

with ``K`` the pooled kernel matrix. Under H0 (same distribution) the labels are exchangeable,
so the p-value is ``(1 + #{b : MMD^2_b >= MMD^2}) / (1 + B)`` over ``B`` random relabellings.
All relabellings are one matrix product ``W' K W`` (``W``: one weight vector per column), so a
test of 150 + 150 rows with 2,000 permutations takes a few milliseconds. Why MMD and not a
classifier two-sample test: a classifier test must be refitted for every permutation (or lean
on an asymptotic AUC null), while the kernel matrix is computed once and reused; scikit-learn's
pairwise kernels supply it.

**Out-of-support test.** Among ``n`` turns, ``x`` lie beyond a threshold ``t`` equal to the
``j``-th largest of ``m`` held-out training distances. If the turns and the held-out replies are
exchangeable, ``1 - F(t) ~ Beta(j, m - j + 1)`` and ``x | F(t) ~ Binomial(n, 1 - F(t))``, so
``x ~ BetaBinomial(n, j, m - j + 1)`` exactly; the p-value is ``P(X >= x)``. (Against a
baseline window instead: Fisher's exact test, one-sided.)

**Observability rates** (refusal, escalation on urgent symptoms, ...) against the baseline
window's: Fisher's exact test, two-sided, since a rate that falls (fewer escalations) matters as
much as one that rises.

**Benjamini-Hochberg** over every p-value of a report (windows x categories x tests) at level
``q``: when nothing drifted, the chance of any alarm is at most ``q`` (FDR = FWER under the
global null); when something drifted, at most a share ``q`` of the alarms are expected to be
false (for independent or positively dependent p-values).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn.metrics.pairwise import euclidean_distances

Floats = npt.NDArray[np.float64]


def mmd_permutation_test(
    x: npt.ArrayLike, y: npt.ArrayLike, *, permutations: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """``(MMD^2, permutation p-value)`` of samples ``x`` and ``y`` (rows are points)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        return float("nan"), 1.0
    pooled = np.concatenate([a, b])
    sq = euclidean_distances(pooled, squared=True)
    upper = sq[np.triu_indices(len(pooled), 1)]
    scale = float(np.median(upper[upper > 0])) if (upper > 0).any() else 1.0
    kernel = np.exp(-sq / (2.0 * scale))  # s^2 = median squared distance
    weights = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    observed = float(weights @ kernel @ weights)
    rng = np.random.default_rng(seed)
    # column b is rng.permutation(weights) of the b-th draw: permuted() shuffles each row in
    # turn with the same Fisher-Yates draws, in one call instead of a Python loop of 2,000
    # (laid out as the loop's np.stack(..., axis=1) was, so the sums run in the same order)
    shuffled = np.ascontiguousarray(
        rng.permuted(np.broadcast_to(weights, (permutations, n + m)), axis=1).T)
    null = np.einsum("ip,ip->p", shuffled, kernel @ shuffled)
    p = (1.0 + float((null >= observed - 1e-12).sum())) / (1.0 + permutations)
    return observed, p


def exceedance_p_value(beyond: int, n: int, calibration_size: int, above: int) -> float:
    """P(X >= ``beyond``) for X ~ BetaBinomial(n, j, m - j + 1), ``j`` = ``above`` held-out
    distances at or beyond the threshold out of ``m`` = ``calibration_size``."""
    if n == 0 or beyond == 0:
        return 1.0
    j = max(above, 1)
    return float(stats.betabinom.sf(beyond - 1, n, j, calibration_size - j + 1))


def fisher_greater(beyond: int, n: int, base_beyond: int, base_n: int) -> float:
    """One-sided Fisher exact p-value that the share beyond is larger than the baseline's."""
    if n == 0 or base_n == 0:
        return 1.0
    table = [[beyond, n - beyond], [base_beyond, base_n - base_beyond]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def fisher_two_sided(count: int, n: int, base_count: int, base_n: int) -> float:
    """Two-sided Fisher exact p-value that a rate (``count`` of ``n``) differs from the
    baseline's (``base_count`` of ``base_n``)."""
    if n == 0 or base_n == 0:
        return 1.0
    table = [[count, n - count], [base_count, base_n - base_count]]
    return float(stats.fisher_exact(table, alternative="two-sided").pvalue)


def simes(p_values: list[float]) -> float:
    """Simes' combined p-value of several tests of one cell: ``min_i k p_(i) / i`` (valid
    for independent or positively dependent tests; 1 for none)."""
    if not p_values:
        return 1.0
    p = np.sort(np.asarray(p_values, dtype=np.float64))
    return float(min(1.0, (p.size * p / np.arange(1, p.size + 1)).min()))


def benjamini_hochberg(p_values: npt.ArrayLike, q: float = 0.05) -> npt.NDArray[np.bool_]:
    """Which hypotheses Benjamini-Hochberg rejects at false-discovery rate ``q``."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return np.zeros(0, dtype=bool)
    adjusted = stats.false_discovery_control(np.clip(p, 0.0, 1.0), method="bh")
    return adjusted <= q
