"""The run's training data as a reference for "how far is this turn from what was judged".

A turn (prompt ``p``, reply ``r``) is the point ``x = [e(p), e(r)] / sqrt(2)`` in the joint
embedding space (``e`` L2-normalised, so ``|x| = 1``). Its extrapolation distance is the mean
Euclidean distance to its ``k`` nearest training replies,

    d(x) = (1/k) * sum_{i=1..k} |x - x_(i)|,

with the index built on the training split's replies. Distances have no natural unit, so they
are reported as a percentile of *held-out* training distances: the replies of a random
``holdout`` share of training prompts are left out of the index and their distances form the
calibration set ``c_1 <= ... <= c_m``; a turn's percentile is ``100 * #{c_j <= d(x)} / m``.
Holding out whole prompts (not replies) matters: a reply whose prompt is in the index lies
near its siblings, which would make every new prompt look extrapolated.

The same reference carries a PCA projection (``n_components`` directions), in which windows of
traffic are compared by a kernel two-sample test (:mod:`.twosample`): 64 components keep the
test cheap and the stored signals small at any traffic volume. Scoring traffic refits the
directions on training replies and traffic together (:meth:`Reference.refit_projection`), so
directions along which only the traffic varies (a new phrase, a new request type) are kept; the
projection is a symmetric function of the pooled data, so the permutation test stays exact.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

Floats = npt.NDArray[np.float32]


def joint_features(prompts: Floats, replies: Floats) -> Floats:
    """``[e(p), e(r)] / sqrt(2)``: one row per turn (unit length when both are unit length)."""
    return (np.concatenate([prompts, replies], axis=1) / np.sqrt(2.0)).astype(np.float32)


def holdout_mask(groups: list[str], share: float, seed: int) -> npt.NDArray[np.bool_]:
    """True for the items whose group (prompt) hashes below ``share`` (stable across runs)."""
    def u(group: str) -> float:
        digest = hashlib.blake2b(f"drift:{seed}:{group}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2**64

    draws = {g: u(g) for g in set(groups)}
    return np.array([draws[g] < share for g in groups], dtype=bool)


@dataclass
class Reference:
    """A fitted reference: the kNN index, the sorted held-out distances and the projection."""

    index: NearestNeighbors
    calibration: npt.NDArray[np.float64]
    pca: PCA
    k: int

    @property
    def p99(self) -> float:
        """The 99th percentile of the held-out distances: beyond it a turn is extrapolated."""
        return float(np.quantile(self.calibration, 0.99))

    def distance(self, features: Floats, batch: int = 65_536) -> npt.NDArray[np.float64]:
        """Mean distance of each row of ``features`` to its ``k`` nearest training replies."""
        out = np.empty(len(features))
        for start in range(0, len(features), batch):
            dist, _ = self.index.kneighbors(features[start:start + batch], n_neighbors=self.k)
            out[start:start + batch] = dist.mean(axis=1)
        return out

    def percentile(self, distances: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Percentile (0-100) of each distance among the held-out training distances."""
        ranks = np.searchsorted(self.calibration, distances, side="right")
        return 100.0 * ranks / len(self.calibration)

    def refit_projection(self, features: Floats, seed: int = 0) -> None:
        """Fit the principal directions again on ``features`` (training and traffic rows)."""
        components = min(self.pca.n_components_, features.shape[1], len(features) - 1)
        self.pca = PCA(n_components=components, random_state=seed).fit(features)

    def project(self, features: Floats) -> Floats:
        """The first principal components of ``features`` (float32)."""
        return self.pca.transform(features).astype(np.float32)


def build_reference(
    features: Floats, groups: list[str], *, k: int = 5, holdout: float = 0.2, seed: int = 0,
    n_components: int = 64,
) -> tuple[Reference, npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """Fit the reference on training replies ``features`` grouped by prompt ``groups``.

    Returns the reference, the held-out mask and every item's distance (index items measured
    without themselves: the ``k`` nearest among the others).
    """
    if len(features) < 4 * (k + 1):
        raise ValueError(f"need at least {4 * (k + 1)} training replies, got {len(features)}")
    held = holdout_mask(groups, holdout, seed)
    if held.sum() < 20 or (~held).sum() < k + 1:
        # very few prompts: hold out every fifth reply instead of whole prompts
        held = np.arange(len(features)) % 5 == 0
    index = NearestNeighbors(n_neighbors=k).fit(features[~held])
    components = min(n_components, features.shape[1], int((~held).sum()) - 1)
    pca = PCA(n_components=components, random_state=seed).fit(features[~held])
    reference = Reference(index, np.array([]), pca, k)
    distances = np.empty(len(features))
    distances[held] = reference.distance(features[held])
    own, _ = index.kneighbors(features[~held], n_neighbors=k + 1)
    distances[~held] = own[:, 1:].mean(axis=1)  # the nearest is the item itself
    reference.calibration = np.sort(distances[held])
    return reference, held, distances
