"""The real offline encoder with its cache, DDP with 2 CPU processes (gloo), and the GPU path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dissensus.models.reward.checkpoint import load_checkpoint
from dissensus.models.reward.config import PlainConfig
from dissensus.models.reward.ddp import save_tensors
from dissensus.models.reward.encoder import EmbeddingCache, load_encoder
from dissensus.models.reward.train import Tensors, train_model

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


def test_default_encoder_offline_and_cached(tmp_path: Path) -> None:
    encoder = load_encoder("all-MiniLM-L6-v2", max_seq_length=64)
    assert encoder.dim == 384 and encoder.encoder_id.startswith("all-MiniLM-L6-v2-")
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    texts = [f"Reply {i}: please call the clinic about appointment {i}." for i in range(24)]
    ids = [f"t{i}" for i in range(24)]
    cache = EmbeddingCache(tmp_path)
    first, n_new = cache.embed(encoder, ids, texts)
    assert n_new == 24 and first.shape == (24, 384)
    assert abs(float((first**2).sum(1).mean()) - 1.0) < 1e-3
    again, n_again = EmbeddingCache(tmp_path).embed(encoder, ids[:5], texts[:5])  # from parquet
    assert n_again == 0 and (again == first[:5]).all()
    assert list((tmp_path / encoder.encoder_id).glob("part-*.parquet"))


def _toy_tensors(n: int = 400) -> Tensors:
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(41, 16, generator=g), dim=1)
    quality = emb[:, 0]
    r1 = torch.randint(1, 41, (n,), generator=g)
    r2 = torch.randint(1, 41, (n,), generator=g)
    y = (quality[r1] > quality[r2]).float()
    return Tensors(emb, torch.zeros(n, dtype=torch.long), r1, r2, y,
                   torch.zeros(n, dtype=torch.bool), torch.ones(n), torch.ones(n, 1),
                   torch.tensor([0, 0, 0, 1] * (n // 4)))


def test_ddp_two_cpu_processes_gloo(tmp_path: Path) -> None:
    config = PlainConfig(encoder="hashing", epochs=6, patience=6, hidden=16, batch_size=50,
                         device="cpu")
    save_tensors(tmp_path / "t.pt", _toy_tensors(), 0, "toy")
    (tmp_path / "c.json").write_text(json.dumps(config.model_dump(mode="json")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "dissensus.models.reward.ddp", "--tensors", str(tmp_path / "t.pt"),
         "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "ck")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DDP x2" in proc.stdout + proc.stderr
    checkpoint = load_checkpoint(tmp_path / "ck", encoder_id="toy")
    assert checkpoint.meta["world_size"] == 2
    t = _toy_tensors()
    with torch.no_grad():
        d = (checkpoint.model(t.embeddings[t.prompt], t.embeddings[t.r1])
             - checkpoint.model(t.embeddings[t.prompt], t.embeddings[t.r2]))[:, 0]
    assert ((d > 0).float() == t.y).float().mean() > 0.7


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_training() -> None:
    config = PlainConfig(encoder="hashing", epochs=5, hidden=16, device="cuda")
    result = train_model(_toy_tensors(), config, 0, print)
    assert result.device.startswith("cuda")
    assert next(result.model.parameters()).is_cuda
