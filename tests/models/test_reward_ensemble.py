"""The deep ensemble of a run's main head (``ensemble``), with the real MiniLM encoder on CPU.

What is checked: the checkpoint holds the members and an old one without them still loads and
scores; the members differ from each other and from the run's head, which they leave
unchanged; the spread is the standard deviation of the members' standardised rewards, never
negative, and the same after saving and loading; the API returns it.

Not asserted: that the spread is larger on texts unlike the training data. Measured on the
demo world it is not (benchmarks/RESULTS.md, "Ensemble spread as an extrapolation signal":
the members agree *more* on unrelated texts, which get rewards near the middle, and disagree
most on how extreme a typical reply is), so the test checks only that such texts are scored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from dissensus.analytics.api.scoring import score_pairs
from dissensus.analytics.jobs.reward import embedding_cache, standardised_scores, train_run
from dissensus.analytics.jobs.traffic import load_scorer, score_rows
from dissensus.models.reward.checkpoint import load_checkpoint, save_checkpoint, state_equal
from dissensus.models.reward.config import PlainConfig, make_config
from dissensus.models.reward.ensemble import (
    FILE,
    Ensemble,
    bootstrap_counts,
    main_head,
    member_config,
)
from dissensus.models.reward.errors import CheckpointMismatchError
from dissensus.models.reward.pipeline import prepare, train_and_evaluate
from dissensus.models.reward.train import response_outputs
from dissensus.warehouse.db import connect
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.ingest import ingest_file

torch.set_num_threads(1)
FAST = {"encoder": "all-MiniLM-L6-v2", "max_seq_length": 32, "epochs": 10, "patience": 3,
        "hidden": 32, "architecture": "mlp"}
UNRELATED = [
    ("Write a haiku about the ocean at night.",
     "Silver waves whisper / the moon drowns in black water / gulls dream of the shore"),
    ("How do I reverse a linked list in Python?",
     "prev = None\nwhile head:\n    head.next, prev, head = prev, head, head.next"),
    ("Quelle est la capitale de l'Australie ?", "La capitale de l'Australie est Canberra."),
    ("What is the derivative of x^3 sin x?", "By the product rule: 3x^2 sin x + x^3 cos x."),
]


def _silent(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A warehouse file with a run of 3 members and the same run without; the world."""
    folder = tmp_path_factory.mktemp("ensemble")
    world = simulate_world(WorldConfig(n_comparisons=600, seed=11))
    world.comparisons.write_parquet(folder / "comparisons.parquet")
    con = connect(folder / "w.duckdb")
    ingest_file(con, folder / "comparisons.parquet")
    run = train_run(con, "plain", config={**FAST, "ensemble": 3}, log=_silent)
    single = train_run(con, "plain", config=dict(FAST), log=_silent)
    yield con, run, single, world
    con.close()


def _folder(con, run: str) -> Path:  # type: ignore[no-untyped-def]
    return Path(con.execute("SELECT checkpoint_path FROM reward_runs WHERE run_id = ?",
                            [run]).fetchall()[0][0])


def _texts(world) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    c = world.comparisons
    return pl.concat([c.select("prompt", response="response_a"),
                      c.select("prompt", response="response_b")]).unique(maintain_order=True)


def test_the_checkpoint_holds_three_members_that_differ(trained) -> None:  # type: ignore[no-untyped-def]
    con, run, single, _ = trained
    folder = _folder(con, run)
    meta = json.loads((folder / "reward_model.json").read_text())
    assert meta["ensemble"]["size"] == 3 and meta["ensemble"]["head"] == "reward"
    assert meta["ensemble"]["seeds"] == [1, 2] and "bootstrap" in meta["ensemble"]["resample"]
    assert (folder / FILE).exists()
    checkpoint = load_checkpoint(folder)
    assert checkpoint.ensemble is not None and checkpoint.ensemble.size == 3
    first, second = checkpoint.ensemble.networks
    assert not state_equal(first, second) and not state_equal(first, checkpoint.model)
    # the members are trained after the run's own head: it is the head of a run without them
    assert state_equal(checkpoint.model, load_checkpoint(_folder(con, single)).model)
    assert load_checkpoint(_folder(con, single)).ensemble is None
    metrics = json.loads(con.execute("SELECT metrics FROM reward_runs WHERE run_id = ?",
                                     [run]).fetchall()[0][0])
    assert metrics["ensemble"]["size"] == 3 and metrics["ensemble"]["seconds"] > 0


def test_the_spread_is_the_members_sd_and_never_negative(trained) -> None:  # type: ignore[no-untyped-def]
    con, run, single, world = trained
    scorer = load_scorer(con, run, log=_silent)
    rows = pl.concat([_texts(world), pl.DataFrame(
        {"prompt": [p for p, _ in UNRELATED], "response": [r for _, r in UNRELATED]})])
    scored = score_rows(scorer, rows)
    spread = scored["ensemble_spread"].to_numpy()
    assert np.isfinite(spread).all() and (spread >= 0).all()
    assert (spread > 1e-6).mean() > 0.9  # the members differ on (nearly) every reply
    # by hand: each member's output standardised by its own validation mean and sd
    from dissensus.warehouse.ids import text_id

    bodies = rows["prompt"].to_list() + rows["response"].to_list()
    embedded = torch.as_tensor(scorer.embed([text_id(b) for b in bodies], bodies))
    prompts, replies = embedded[: rows.height], embedded[rows.height:]
    ensemble = scorer.checkpoint.ensemble
    assert ensemble is not None
    columns = [scored["score_reward"].to_numpy()]
    for network, mean, std in zip(ensemble.networks, ensemble.reward_mean, ensemble.reward_std,
                                  strict=True):
        with torch.no_grad():
            columns.append((network(prompts, replies)[:, 0].numpy() - mean) / std)
    np.testing.assert_allclose(spread, np.column_stack(columns).std(axis=1), atol=1e-5)
    assert "ensemble_spread" not in score_rows(load_scorer(con, single, log=_silent),
                                               rows.head(3)).columns


def test_saved_and_loaded_members_give_identical_spreads(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con = trained[0]
    config = make_config("plain", **FAST, ensemble=3)
    prepared = prepare(con, config, None, embedding_cache(con), _silent)  # cached texts
    result, _ = train_and_evaluate(prepared, config, log=_silent)
    assert prepared.ensemble is not None and prepared.ensemble.size == 3
    save_checkpoint(tmp_path / "ck", result.model, result.config or config,
                    encoder_id=prepared.encoder_id, heads=["reward"],
                    reward_mean=result.reward_mean, reward_std=result.reward_std,
                    ensemble=prepared.ensemble)
    loaded = load_checkpoint(tmp_path / "ck", encoder_id=prepared.encoder_id)
    embeddings = torch.as_tensor(prepared.embeddings)
    c = prepared.data.comparisons
    prompt = torch.as_tensor(c["prompt_idx"].to_numpy().copy())
    reply = torch.as_tensor(c["r1_idx"].to_numpy().copy())

    def spreads(model, ensemble: Ensemble) -> np.ndarray:  # type: ignore[no-untyped-def]
        out = response_outputs(model, embeddings, prompt, reply).numpy()
        main = (out[:, 0] - loaded.meta["reward_mean"][0]) / loaded.meta["reward_std"][0]  # type: ignore[index]
        return ensemble.spread(main, embeddings[prompt], embeddings[reply])

    assert loaded.ensemble is not None
    before = spreads(result.model, prepared.ensemble)
    after = spreads(loaded.model, loaded.ensemble)
    assert np.array_equal(before, after) and (before > 0).any()
    # standardised as the heads are (one column, 'reward'): the ensemble's head names it
    assert main_head("plain") in standardised_scores(loaded, np.zeros((1, 1)))


def test_old_checkpoints_without_members_load_and_score(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, run, _, _ = trained
    checkpoint = load_checkpoint(_folder(con, run))
    # a checkpoint written before ensembles existed: no file, no entry, no field in the config
    old = tmp_path / "old"
    config = checkpoint.config.model_copy(update={"ensemble": 1})
    save_checkpoint(old, checkpoint.model, config, encoder_id=str(checkpoint.meta["encoder_id"]),
                    heads=checkpoint.heads, reward_mean=list(checkpoint.meta["reward_mean"]),  # type: ignore[call-overload]
                    reward_std=list(checkpoint.meta["reward_std"]))  # type: ignore[call-overload]
    meta = json.loads((old / "reward_model.json").read_text())
    del meta["config"]["ensemble"]
    (old / "reward_model.json").write_text(json.dumps(meta))
    loaded = load_checkpoint(old)
    assert loaded.ensemble is None and state_equal(loaded.model, checkpoint.model)
    # a checkpoint that names members whose file is gone fails in words
    broken = _folder(con, run)
    (broken / FILE).rename(tmp_path / FILE)
    try:
        with pytest.raises(CheckpointMismatchError, match="ensemble members") as info:
            load_checkpoint(broken)
        assert info.value.fix
    finally:
        (tmp_path / FILE).rename(broken / FILE)


def test_the_api_returns_the_spread_when_the_run_has_members(trained) -> None:  # type: ignore[no-untyped-def]
    con, run, single, _ = trained
    pairs = [UNRELATED[0], ("I need to move my appointment to Friday.", "Sure, done.")]
    answer = score_pairs(con, run, pairs)
    assert len(answer["ensemble_spread"]) == 2 and min(answer["ensemble_spread"]) >= 0
    assert "ensemble_spread" not in answer["heads"]
    assert "ensemble_spread" not in score_pairs(con, single, pairs)


def test_members_are_seeded_bootstrap_copies_of_the_main_head() -> None:
    counts = bootstrap_counts(1000, 1)
    assert counts.sum() == 1000 and np.array_equal(counts, bootstrap_counts(1000, 1))
    assert not np.array_equal(counts, bootstrap_counts(1000, 2))
    assert 0.3 < (counts == 0).mean() < 0.44  # about 1/e of the comparisons left out
    assert [main_head(k) for k in ("plain", "weighted", "multihead", "mixture",
                                   "distributional")] == \
        ["reward", "reward", "consensus", "consensus", "mean"]
    member = member_config(make_config("multihead", architecture="linear", l2=1e-3, seed=4,
                                       ensemble=5, hidden=16), 6)
    assert isinstance(member, PlainConfig) and member.seed == 6 and member.ensemble == 1
    assert (member.architecture, member.l2, member.hidden) == ("linear", 1e-3, 16)


def test_ensemble_setting_keeps_earlier_hashes_and_is_bounded() -> None:
    assert PlainConfig(architecture="mlp", ensemble=1).config_hash() == "59f696fa4df91a50"
    assert PlainConfig(architecture="mlp", ensemble=3).config_hash() != "59f696fa4df91a50"
    for bad in (0, 17):
        with pytest.raises(ValueError, match="ensemble"):
            PlainConfig(ensemble=bad)
