"""The fast scoring and drift-report paths pinned to their straightforward computations.

The kNN search (one GEMM per block, prompt halves multiplied once, close pairs measured
directly), the block-wise scorer on worker threads and the vectorised permutations of the MMD
test must give the numbers a plain computation gives: brute-force float64 distances, one
forward pass over all rows, ``PCA.transform``, and permutations drawn one by one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.neighbors import NearestNeighbors

from dissensus.analytics.drift.knn import KnnIndex
from dissensus.analytics.drift.reference import (
    build_reference,
    joint_features,
    search_coordinates,
)
from dissensus.analytics.drift.twosample import mmd_permutation_test
from dissensus.analytics.drift.workers import map_on_workers
from dissensus.analytics.jobs.reward import standardised_scores
from dissensus.analytics.jobs.turn_scores import score_embedded
from dissensus.models.reward.checkpoint import Checkpoint
from dissensus.models.reward.config import make_config
from dissensus.models.reward.heads import RewardNet


@pytest.fixture
def two_threads() -> Iterator[None]:
    """Two torch threads, so the worker-thread paths run (other tests pin torch to one)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    out = rng.normal(size=(n, dim)).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _brute(points: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Every distance in float64, sorted: the ``k`` nearest (distances, indices)."""
    diff = queries[:, None, :].astype(np.float64) - points[None, :, :].astype(np.float64)
    dist = np.sqrt((diff**2).sum(axis=2))
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, axis=1), order


def test_knn_matches_brute_force_duplicates_included(two_threads: None) -> None:
    rng = np.random.default_rng(0)
    # 120 training turns of 40 prompts (three replies each): the prompt half repeats
    points = joint_features(_unit(rng, 40, 32)[np.repeat(np.arange(40), 3)], _unit(rng, 120, 32))
    near = points[25:50] + (1e-4 * rng.normal(size=(25, 64))).astype(np.float32)
    queries = np.concatenate([joint_features(_unit(rng, 300, 32), _unit(rng, 300, 32)),
                              points[:25], near])  # exact and near duplicates of the index
    want, want_idx = _brute(points, queries, 5)
    for blocks in (None, [(0, 32), (32, 64)]):
        dist, idx = KnnIndex(points, blocks=blocks).kneighbors(queries, 5, batch=64)
        # near pairs are measured directly: the identity alone would be off by ~1e-4 there
        np.testing.assert_allclose(dist, want, rtol=1e-5, atol=1e-6)
        assert (dist[300:325, 0] == 0).all() and (idx[300:325, 0] == np.arange(25)).all()
        assert (idx == want_idx).mean() > 0.99  # a near tie may swap two neighbours
    sklearn, _ = NearestNeighbors(n_neighbors=5).fit(points).kneighbors(queries)
    np.testing.assert_allclose(dist, sklearn, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="n_neighbors"):
        KnnIndex(points).kneighbors(queries, 121)


@pytest.mark.parametrize("exact_below", [5_000, 100])  # the full space; principal directions
def test_reference_distances_match_brute_force(exact_below: int) -> None:
    rng = np.random.default_rng(1)
    features = joint_features(_unit(rng, 900, 16), _unit(rng, 900, 16))
    groups = [f"p{i // 3}" for i in range(900)]
    reference, held, distances = build_reference(features, groups, n_components=4,
                                                 knn_components=8, exact_below=exact_below)
    assert (reference.space is None) == (exact_below > 900)
    indexed = search_coordinates(reference.space, features[~held])
    assert reference.index.n_samples_fit_ == len(indexed)
    queries = joint_features(_unit(rng, 400, 16), _unit(rng, 400, 16))
    want = _brute(indexed, search_coordinates(reference.space, queries), 5)[0].mean(axis=1)
    np.testing.assert_allclose(reference.distance(queries, batch=64), want, rtol=1e-5, atol=1e-6)
    # indexed items: the mean over their k nearest others (the nearest is the item itself)
    own = _brute(indexed, indexed, 6)[0][:, 1:].mean(axis=1)
    np.testing.assert_allclose(distances[~held], own, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reference.project(queries), reference.pca.transform(queries),
                               atol=1e-6)


def test_block_scoring_on_workers_matches_one_pass(two_threads: None) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    heads = ["school_0", "school_1", "consensus"]
    checkpoint = Checkpoint(RewardNet(32, 16, 3).eval(),
                            make_config("multihead", hidden=16, encoder="hashing"),
                            {"heads": heads, "reward_mean": [0.1, -0.2, 0.0],
                             "reward_std": [1.5, 0.7, 1.0]})
    reference, _, _ = build_reference(joint_features(_unit(rng, 300, 32), _unit(rng, 300, 32)),
                                      [f"p{i // 2}" for i in range(300)], n_components=6)
    prompts, replies = _unit(rng, 1000, 32), _unit(rng, 1000, 32)
    got = score_embedded(checkpoint, reference, prompts, replies, batch=128)  # 8 blocks
    with torch.inference_mode():
        raw = checkpoint.model(torch.as_tensor(prompts), torch.as_tensor(replies)).numpy()
    for head, want in standardised_scores(checkpoint, raw).items():
        np.testing.assert_allclose(got[head], want, rtol=1e-5, atol=1e-6)
    features = joint_features(prompts, replies)
    want = _brute(reference.index.points.numpy(), features, reference.k)[0].mean(axis=1)
    np.testing.assert_allclose(got["distance"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["percentile"], reference.percentile(got["distance"]))
    np.testing.assert_allclose(got["projection"], reference.pca.transform(features), atol=1e-6)
    matrix = np.stack([got["school_0"], got["school_1"]], axis=1)
    np.testing.assert_allclose(got["spread"], matrix.std(axis=1))
    whole = score_embedded(checkpoint, reference, prompts, replies, batch=100_000)  # one block
    for key, value in whole.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-6)
    empty = score_embedded(checkpoint, reference, prompts[:0], replies[:0])
    assert empty["consensus"].shape == (0,) and empty["projection"].shape == (0, 6)


def _mmd_one_by_one(x: np.ndarray, y: np.ndarray, permutations: int,
                    seed: int) -> tuple[float, float]:
    """The test as first written: one ``rng.permutation`` per relabelling."""
    pooled = np.concatenate([x, y])
    sq = euclidean_distances(pooled, squared=True)
    upper = sq[np.triu_indices(len(pooled), 1)]
    kernel = np.exp(-sq / (2.0 * float(np.median(upper[upper > 0]))))
    weights = np.concatenate([np.full(len(x), 1.0 / len(x)), np.full(len(y), -1.0 / len(y))])
    observed = float(weights @ kernel @ weights)
    rng = np.random.default_rng(seed)
    shuffled = np.stack([rng.permutation(weights) for _ in range(permutations)], axis=1)
    null = np.einsum("ip,ip->p", shuffled, kernel @ shuffled)
    return observed, (1.0 + float((null >= observed - 1e-12).sum())) / (1.0 + permutations)


def test_mmd_draws_the_same_permutations_as_one_by_one() -> None:
    rng = np.random.default_rng(3)
    for seed, (n, m, shift) in enumerate([(30, 30, 0.0), (17, 45, 0.3), (150, 150, 0.05)]):
        x, y = rng.normal(size=(n, 8)), rng.normal(size=(m, 8)) + shift
        assert mmd_permutation_test(x, y, permutations=500, seed=seed) == \
            _mmd_one_by_one(x, y, 500, seed)


def test_workers_keep_order_raise_errors_and_restore_threads(two_threads: None) -> None:
    assert map_on_workers(lambda i: (i, torch.get_num_threads()), range(6)) == \
        [(i, 1) for i in range(6)]  # each worker runs torch on one thread
    assert torch.get_num_threads() == 2
    with pytest.raises(ZeroDivisionError):
        map_on_workers(lambda i: 1 / (i - 3), range(6))
    assert torch.get_num_threads() == 2
