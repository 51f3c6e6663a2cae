"""The embedding cache: progress over the missing texts, and chunked writes that survive a kill."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from dissensus.models.reward import encoder as encoder_module
from dissensus.models.reward.encoder import EmbeddingCache, HashingEncoder, Progress


class FailingEncoder(HashingEncoder):
    """The hashing encoder, killed on its ``fail_on``-th call (as a user's Ctrl-C would be)."""

    def __init__(self, fail_on: int) -> None:
        super().__init__(dim=16)
        self.calls = 0
        self.fail_on = fail_on

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt
        return super().encode(texts, progress)


def _texts(n: int) -> tuple[list[str], list[str]]:
    return [f"t{i}" for i in range(n)], [f"reply number {i} about a booking" for i in range(n)]


def test_progress_covers_only_missing_texts_and_ends_at_the_total(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoder_module, "STORE_EVERY", 5)
    ids, bodies = _texts(12)
    encoder = HashingEncoder(dim=16)
    EmbeddingCache(tmp_path).embed(encoder, ids[:4], bodies[:4])
    calls: list[tuple[int, int]] = []
    matrix, n_new = EmbeddingCache(tmp_path).embed(encoder, ids, bodies,
                                                  lambda d, t: calls.append((d, t)))
    assert n_new == 8 and matrix.shape == (12, 16)
    assert calls == [(5, 8), (8, 8)]  # one call per chunk of 5, counted over the 8 missing
    assert len(list((tmp_path / encoder.encoder_id).glob("part-*.parquet"))) == 1 + 2
    calls.clear()
    _, n_again = EmbeddingCache(tmp_path).embed(encoder, ids, bodies,
                                                lambda d, t: calls.append((d, t)))
    assert n_again == 0 and calls == []


def test_an_interrupted_run_keeps_the_chunks_it_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoder_module, "STORE_EVERY", 5)
    ids, bodies = _texts(12)
    with pytest.raises(KeyboardInterrupt):
        EmbeddingCache(tmp_path).embed(FailingEncoder(fail_on=3), ids, bodies)
    folder = tmp_path / HashingEncoder(dim=16).encoder_id
    assert sorted(p.name.startswith("part-") for p in folder.iterdir()) == [True, True]
    resumed, n_new = EmbeddingCache(tmp_path).embed(HashingEncoder(dim=16), ids, bodies)
    assert n_new == 2  # only the chunk that was interrupted is embedded again
    fresh, _ = EmbeddingCache(None).embed(HashingEncoder(dim=16), ids, bodies)
    np.testing.assert_allclose(resumed, fresh, rtol=1e-6)
