"""Encoder fine-tuning with the real MiniLM encoder on CPU: trains, saves, reloads, refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dissensus.analytics.jobs.reward import score_run, train_run
from dissensus.models.reward.encoder import load_encoder
from dissensus.models.reward.errors import CheckpointMismatchError, RewardModelError
from dissensus.models.reward.finetune import parameter_digest
from dissensus.warehouse.db import connect
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.ingest import ingest_file

torch.set_num_threads(1)
FAST = {"encoder": "all-MiniLM-L6-v2", "max_seq_length": 32, "epochs": 4, "hidden": 32,
        "patience": 2, "finetune_encoder": True, "finetune_layers": 1, "finetune_epochs": 2,
        "finetune_lr": 3e-4, "finetune_batch_size": 16, "finetune_max_comparisons": 64}


def _silent(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def finetuned_run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("finetune")
    world = simulate_world(WorldConfig(n_comparisons=300, seed=11))
    path = folder / "comparisons.parquet"
    world.comparisons.write_parquet(path)
    con = connect(folder / "w.duckdb")
    ingest_file(con, path)
    run_id = train_run(con, "plain", config=dict(FAST), log=_silent)
    yield con, run_id
    con.close()


def _meta(con, run_id: str) -> tuple[Path, dict]:  # type: ignore[no-untyped-def]
    folder = Path(con.execute("SELECT checkpoint_path FROM reward_runs WHERE run_id = ?",
                              [run_id]).fetchall()[0][0])
    return folder, json.loads((folder / "reward_model.json").read_text())


def test_finetuning_trains_the_top_layer_only_and_records_it(finetuned_run) -> None:  # type: ignore[no-untyped-def]
    con, run_id = finetuned_run
    folder, meta = _meta(con, run_id)
    base = load_encoder("all-MiniLM-L6-v2", max_seq_length=32)
    assert meta["encoder_base"] == base.encoder_id
    assert meta["encoder_id"].startswith(base.encoder_id + "-ft-")
    names = meta["finetuned_parameters"]
    assert names and all(".layer.5." in n for n in names)  # MiniLM-L6: the top layer is 5
    tuned = load_encoder(str(folder / "encoder"), max_seq_length=32)
    before, after = dict(base.model.named_parameters()), dict(tuned.model.named_parameters())  # type: ignore[attr-defined]
    changed = [n for n in names if not torch.equal(before[n], after[n])]
    assert changed, "no fine-tuned tensor changed"
    frozen = [n for n in before if n not in names]
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    metrics = json.loads(con.execute("SELECT metrics FROM reward_runs WHERE run_id = ?",
                                     [run_id]).fetchall()[0][0])
    assert metrics["finetune"]["best_epoch"] >= 1
    assert metrics["finetune"]["pairs_per_second"] > 0
    assert metrics["n_labelled_pairs"] > 0


def test_scoring_reloads_the_finetuned_encoder(finetuned_run) -> None:  # type: ignore[no-untyped-def]
    con, run_id = finetuned_run
    rows = score_run(con, run_id, log=_silent)
    n_responses = con.execute("SELECT count(*) FROM responses").fetchall()[0][0]
    assert rows == n_responses
    spread = con.execute("SELECT stddev(score) FROM reward_scores WHERE run_id = ?",
                         [run_id]).fetchall()[0][0]
    assert spread > 0


def test_a_changed_encoder_is_refused(finetuned_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, run_id = finetuned_run
    folder, meta = _meta(con, run_id)
    tuned = load_encoder(str(folder / "encoder"), max_seq_length=32)
    params = dict(tuned.model.named_parameters())  # type: ignore[attr-defined]
    name = meta["finetuned_parameters"][0]
    digest = parameter_digest(tuned.model, meta["finetuned_parameters"])  # type: ignore[attr-defined]
    assert meta["encoder_id"].endswith(digest)
    with torch.no_grad():
        params[name].add_(0.01)
    tuned.model.save(str(folder / "encoder"))  # type: ignore[attr-defined]
    with pytest.raises(CheckpointMismatchError, match="encoder"):
        score_run(con, run_id, log=_silent)


def test_hashing_encoder_cannot_be_finetuned(finetuned_run) -> None:  # type: ignore[no-untyped-def]
    con, _ = finetuned_run
    with pytest.raises(RewardModelError, match="cannot be fine-tuned"):
        train_run(con, "plain", config={**FAST, "encoder": "hashing"}, log=_silent)
