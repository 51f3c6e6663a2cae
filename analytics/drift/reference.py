"""The run's training data as a reference for "how far is this turn from what was judged".

A turn (prompt ``p``, reply ``r``) is the point ``x = [e(p), e(r)] / sqrt(2)`` in the joint
embedding space (``e`` L2-normalised, so ``|x| = 1``). Its extrapolation distance is the mean
Euclidean distance to its ``k`` nearest training replies,

    d(x) = (1/k) * sum_{i=1..k} |x - x_(i)|,

with the index built on the training split's replies (at most ``max_index`` of them, a random
subset beyond that). From ``exact_below`` indexed replies on, the search runs in the space of
their first ``knn_components`` principal directions (below it, in the full space): the
search then costs 65 instead of 768 multiply-adds per pair, which is what lets scoring keep
pace with live traffic. The 65th coordinate is the norm of the part the 64 directions leave
out, so a turn that is new along directions the training data never used still lies far
(:meth:`Reference._space`). Distances have no natural unit, so they
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
import torch
from sklearn.decomposition import PCA

from dissensus.analytics.drift.knn import KnnIndex

Floats = npt.NDArray[np.float32]


def joint_features(prompts: Floats, replies: Floats) -> Floats:
    """``[e(p), e(r)] / sqrt(2)``: one row per turn (unit length when both are unit length)."""
    out = np.concatenate([prompts, replies], axis=1, dtype=np.float32)
    out *= np.float32(1.0 / np.sqrt(2.0))  # in place, in float32: this runs on every turn
    return out


def holdout_mask(groups: list[str], share: float, seed: int) -> npt.NDArray[np.bool_]:
    """True for the items whose group (prompt) hashes below ``share`` (stable across runs)."""
    def u(group: str) -> float:
        digest = hashlib.blake2b(f"drift:{seed}:{group}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2**64

    draws = {g: u(g) for g in set(groups)}
    return np.array([draws[g] < share for g in groups], dtype=bool)


def search_coordinates(space: PCA | None, features: Floats) -> Floats:
    """The principal coordinates plus one more: the norm of what they leave out (``space``
    None: the features themselves).

    Novelty often lies exactly in the directions the training replies do not use (a new
    request type's words); without the residual coordinate such a turn would project near
    the training mean and look typical. With it, ``|x - y|^2 ~ |P(x - y)|^2 +
    (|r_x| - |r_y|)^2``, a lower bound of the full distance that keeps both parts.
    """
    if space is None:
        return features
    coords = space.transform(features).astype(np.float32)
    centred = features - space.mean_.astype(np.float32)
    total = np.einsum("ij,ij->i", centred, centred)
    residual = np.sqrt(np.maximum(total - np.einsum("ij,ij->i", coords, coords), 0.0))
    return np.concatenate([coords, residual[:, None].astype(np.float32)], axis=1)


@dataclass
class Reference:
    """A fitted reference: the kNN index, the sorted held-out distances and the projection."""

    index: KnnIndex
    calibration: npt.NDArray[np.float64]
    pca: PCA
    k: int
    space: PCA | None = None
    """The principal directions the kNN search runs in (None: the full features)."""

    def _space(self, features: Floats) -> Floats:
        """The coordinates the kNN search runs in (:func:`search_coordinates`)."""
        return search_coordinates(self.space, features)

    @property
    def variance_kept(self) -> float:
        """Share of the training replies' variance the kNN space keeps."""
        return 1.0 if self.space is None else float(self.space.explained_variance_ratio_.sum())

    @property
    def p99(self) -> float:
        """The 99th percentile of the held-out distances: beyond it a turn is extrapolated."""
        return float(np.quantile(self.calibration, 0.99))

    def distance(self, features: Floats, batch: int = 65_536) -> npt.NDArray[np.float64]:
        """Mean distance of each row of ``features`` to its ``k`` nearest training replies."""
        out = np.empty(len(features))
        for start in range(0, len(features), batch):
            dist, _ = self.index.kneighbors(self._space(features[start:start + batch]),
                                            n_neighbors=self.k)
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
        """The first principal components of ``features`` (float32): ``PCA.transform``'s
        ``x C' - mean C'``, as one torch product without its input checks and copies (this
        runs on every scored turn)."""
        components = torch.as_tensor(self.pca.components_, dtype=torch.float32)
        offset = torch.as_tensor(self.pca.mean_ @ self.pca.components_.T, dtype=torch.float32)
        x = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32))
        with torch.inference_mode():
            return (x @ components.T).sub_(offset).numpy()


def build_reference(
    features: Floats, groups: list[str], *, k: int = 5, holdout: float = 0.2, seed: int = 0,
    n_components: int = 64, knn_components: int = 64, max_index: int = 20_000,
    exact_below: int = 5_000,
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
    rng = np.random.default_rng(seed)
    indexed = ~held
    if indexed.sum() > max_index:  # a random subset keeps the search fast on huge training sets
        keep = rng.choice(np.flatnonzero(indexed), max_index, replace=False)
        indexed = np.zeros(len(features), bool)
        indexed[keep] = True
    dims = min(knn_components, features.shape[1], int(indexed.sum()) - 1)
    # below exact_below indexed replies the exact search is cheap and a PCA of so few points
    # would be a poor map of what is new: search the full space
    space = PCA(n_components=dims, random_state=seed).fit(features[indexed]) \
        if dims < features.shape[1] and indexed.sum() >= exact_below else None
    components = min(n_components, features.shape[1], int(indexed.sum()) - 1)
    pca = PCA(n_components=components, random_state=seed).fit(features[indexed])
    searched = search_coordinates(space, features[indexed])
    # in the full space the halves are the prompt's and the reply's embeddings: a prompt's
    # replies share its half, which the index multiplies once (:class:`KnnIndex`)
    half = features.shape[1] // 2
    halves = [(0, half), (half, features.shape[1])] if space is None and half else None
    reference = Reference(KnnIndex(searched, blocks=halves), np.array([]), pca, k, space)
    distances = np.empty(len(features))
    outside = ~indexed
    distances[outside] = reference.distance(features[outside])
    own, _ = reference.index.kneighbors(searched, n_neighbors=k + 1)
    distances[indexed] = own[:, 1:].mean(axis=1)  # the nearest is the item itself
    reference.calibration = np.sort(distances[held])
    return reference, held, distances
