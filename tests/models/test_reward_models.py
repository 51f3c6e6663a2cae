"""Reward models: training, weights, checkpoints, errors and the run jobs (hashing encoder)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dissensus.analytics.jobs.reward import evaluate_run, score_run, train_run
from dissensus.models.reward.checkpoint import load_checkpoint, save_checkpoint, state_equal
from dissensus.models.reward.config import PlainConfig, WeightedConfig, make_config
from dissensus.models.reward.data import load_preferences
from dissensus.models.reward.errors import (
    CheckpointMismatchError,
    DeviceUnavailableError,
    EncoderNotFoundError,
    MissingFitError,
    RewardInputError,
)
from dissensus.models.reward.evaluate import (
    contested_detection,
    contested_signal,
    pair_probabilities,
    pair_table,
)
from dissensus.models.reward.heads import (
    RewardNet,
    head_names,
    n_outputs,
    preference_loss,
    school_lean_offsets,
    win_probability,
)
from dissensus.models.reward.oracle import write_oracle_fit
from dissensus.models.reward.pipeline import prepare, train_and_evaluate
from dissensus.models.reward.train import Tensors, resolve_device, train_model
from dissensus.warehouse.db import connect_memory
from dissensus.warehouse.demo import WorldConfig, simulate_world
from dissensus.warehouse.errors import DissensusError
from dissensus.warehouse.ingest import ingest_file

torch.set_num_threads(1)
QUICK = {"encoder": "hashing", "epochs": 12, "patience": 4, "hidden": 64, "batch_size": 256,
         "architecture": "mlp"}


@pytest.fixture(scope="module")
def world_db(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("reward")
    world = simulate_world(WorldConfig(n_comparisons=1500, seed=3))
    path = folder / "comparisons.parquet"
    world.comparisons.write_parquet(path)
    con = connect_memory()
    ingest_file(con, path)
    write_oracle_fit(con, world.judgments, world.reviewers, len(world.schools))
    yield con, world, folder
    con.close()


def _silent(_: str) -> None:
    pass


def test_training_changes_every_parameter_and_beats_chance(world_db) -> None:  # type: ignore[no-untyped-def]
    con, _, folder = world_db
    config = PlainConfig(**QUICK)
    prepared = prepare(con, config, None, folder / "cache", _silent)
    torch.manual_seed(config.seed)
    initial = RewardNet(prepared.embeddings.shape[1], config.hidden, 1, config.dropout)
    result, metrics = train_and_evaluate(prepared, config, log=_silent)
    before = dict(initial.named_parameters())
    for name, param in result.model.named_parameters():
        assert param.requires_grad
        assert not torch.equal(param.detach(), before[name].detach()), f"{name} did not change"
    assert metrics["n_labelled_pairs"] > 30
    assert metrics["accuracy_consensus"] > 0.65
    assert 0 <= metrics["ece"] <= 1 and metrics["reliability"]


def _two_response_tensors(weight_a: float, weight_b: float) -> Tensors:
    """One prompt, responses 1 and 2: 10 votes for 1 (weight_a), 20 votes for 2 (weight_b)."""
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(3, 16, generator=g), dim=1)
    n = 30
    y = torch.tensor([1.0] * 10 + [0.0] * 20)
    return Tensors(
        embeddings=emb, prompt=torch.zeros(n, dtype=torch.long), r1=torch.ones(n, dtype=torch.long),
        r2=torch.full((n,), 2, dtype=torch.long), y=y, tie=torch.zeros(n, dtype=torch.bool),
        weight=torch.tensor([weight_a] * 10 + [weight_b] * 20), schools=torch.ones(n, 1),
        split=torch.zeros(n, dtype=torch.long),
    )


@pytest.mark.parametrize("kind", ["weighted", "plain"])
def test_weights_flip_the_outcome(kind: str) -> None:
    config = make_config(kind, encoder="hashing", epochs=40, patience=40, hidden=8, dropout=0.0,
                         batch_size=30, lr=0.05)
    tensors = _two_response_tensors(1.0, 0.05)
    if kind == "plain":
        tensors.weight = torch.ones(30)
    result = train_model(tensors, config, 0, _silent)
    out = result.model(tensors.embeddings[[0, 0]], tensors.embeddings[[1, 2]]).detach()
    if kind == "weighted":  # 10 x 1.0 for response 1 beats 20 x 0.05 for response 2
        assert out[0, 0] > out[1, 0]
    else:  # unweighted, 20 votes beat 10
        assert out[0, 0] < out[1, 0]


def test_losses_use_weights_ties_and_heads() -> None:
    o1, o2 = torch.tensor([[1.0, 0.0, 0.5]]), torch.tensor([[0.0, 1.0, 0.5]])
    y, tie = torch.tensor([1.0]), torch.tensor([False])
    schools = torch.tensor([[1.0, 0.0]])
    # A comparison counted only for school 0: school 1's head gets no gradient from it.
    o1.requires_grad_(True)
    loss = preference_loss("multihead", o1, o2, y, tie, torch.ones(1), schools)
    loss.backward()
    assert o1.grad is not None and o1.grad[0, 1] == 0 and o1.grad[0, 0] != 0
    log_nu = torch.tensor(0.0)
    half = preference_loss("plain", o1[:, :1], o2[:, :1], torch.tensor([0.5]),
                           torch.tensor([True]), torch.ones(1), schools)
    davidson = preference_loss("plain", o1[:, :1], o2[:, :1], torch.tensor([0.5]),
                               torch.tensor([True]), torch.ones(1), schools, log_nu=log_nu)
    assert torch.isfinite(half) and torch.isfinite(davidson) and half != davidson
    dist = preference_loss("distributional", torch.tensor([[1.0, 3.0]]),
                           torch.tensor([[0.0, 3.0]]), y, tie, torch.ones(1), schools)
    sharp = preference_loss("distributional", torch.tensor([[1.0, -3.0]]),
                            torch.tensor([[0.0, -3.0]]), y, tie, torch.ones(1), schools)
    assert sharp < dist  # a large variance makes a right call less sure
    assert head_names("multihead", 2) == ["school_0", "school_1", "consensus"]
    assert n_outputs("distributional", 0) == 2


def test_checkpoint_round_trip_and_mismatch(tmp_path: Path) -> None:
    config = PlainConfig(encoder="hashing", hidden=8)
    model = RewardNet(16, 8, 1, davidson=True)
    save_checkpoint(tmp_path / "ck", model, config, encoder_id="hashing-512", heads=["reward"],
                    reward_mean=[0.1], reward_std=[2.0])
    loaded = load_checkpoint(tmp_path / "ck", encoder_id="hashing-512",
                             config_hash=config.config_hash())
    assert state_equal(model, loaded.model) and loaded.config == config
    x = torch.randn(4, 16)
    assert torch.equal(model.eval()(x, x), loaded.model(x, x))
    with pytest.raises(CheckpointMismatchError, match="encoder"):
        load_checkpoint(tmp_path / "ck", encoder_id="all-MiniLM-L6-v2-abc")
    with pytest.raises(CheckpointMismatchError, match="config"):
        load_checkpoint(tmp_path / "ck", config_hash="0" * 16)
    meta_path = tmp_path / "ck" / "reward_model.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["hidden"] = 9
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointMismatchError, match="hash"):
        load_checkpoint(tmp_path / "ck")
    meta["config"]["hidden"] = 8
    meta["version"] = "0.1"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointMismatchError, match="version"):
        load_checkpoint(tmp_path / "ck")


def test_weighted_kind_without_fit_fails_in_words(tmp_path: Path) -> None:
    world = simulate_world(WorldConfig(n_comparisons=200, seed=1))
    path = tmp_path / "c.parquet"
    world.comparisons.write_parquet(path)
    con = connect_memory()
    ingest_file(con, path)
    with pytest.raises(MissingFitError, match="dissensus fit"):
        train_run(con, "weighted", None, WeightedConfig(**QUICK), log=_silent)
    with pytest.raises(MissingFitError, match="no comparison weights for fit 'nope'"):
        train_run(con, "multihead", "nope", make_config("multihead", **QUICK), log=_silent)


def test_unknown_encoder_and_missing_cuda_fail_in_words(world_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, _, _ = world_db
    with pytest.raises(EncoderNotFoundError, match="Unknown encoder") as info:
        train_run(con, "plain", None, {"encoder": str(tmp_path / "no-such-model")}, log=_silent)
    assert "never downloaded" in str(info.value)
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceUnavailableError, match="no usable CUDA"):
        resolve_device("cuda")
    with pytest.raises(DeviceUnavailableError):
        train_run(con, "plain", None, {**QUICK, "device": "cuda"}, log=_silent)


def test_multihead_run_evaluate_and_score(world_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, _, folder = world_db
    run_id = train_run(con, "multihead", "oracle", make_config("multihead", **QUICK),
                       log=_silent, cache_folder=folder / "cache", checkpoint_folder=tmp_path)
    metrics = json.loads(con.execute(
        "SELECT metrics FROM reward_runs WHERE run_id = ?", [run_id]).fetchall()[0][0])
    assert set(metrics["accuracy_per_school"]) == {"school_0", "school_1"}
    assert metrics["worst_school_accuracy"] <= metrics["accuracy_per_school"]["school_0"]
    assert "length_baseline_accuracy" in metrics and "reward_by_tag" in metrics
    detection = metrics["contested_detection"]
    assert 0 < detection["n_contested"] < detection["n_pairs"]
    assert 0.0 <= metrics["contested_auc"] <= 1.0
    again = evaluate_run(con, run_id, log=_silent, cache_folder=folder / "cache")
    assert again["accuracy_consensus"] == pytest.approx(metrics["accuracy_consensus"])
    n = score_run(con, run_id, log=_silent, cache_folder=folder / "cache")
    responses = con.execute("SELECT count(*) FROM responses").fetchall()[0][0]
    assert n == 3 * responses
    heads = {r[0] for r in con.execute(
        "SELECT DISTINCT head FROM reward_scores WHERE run_id = ?", [run_id]).fetchall()}
    assert heads == {"school_0", "school_1", "consensus"}


def test_split_by_prompt_keeps_prompts_apart(world_db) -> None:  # type: ignore[no-untyped-def]
    con, _, _ = world_db
    data = load_preferences(con, None, split_by="prompt", seed=1)
    per_prompt = data.comparisons.group_by("prompt_id").agg(pl.col("split").n_unique().alias("n"))
    assert per_prompt["n"].max() == 1
    assert set(data.comparisons["split"].unique()) == {"train", "validation", "test"}


def test_distributional_davidson_train_quickly(world_db) -> None:  # type: ignore[no-untyped-def]
    con, _, folder = world_db
    for config in (make_config("distributional", **{**QUICK, "epochs": 4}),
                   make_config("plain", **{**QUICK, "epochs": 4, "ties": "davidson"})):
        prepared = prepare(con, config, None, folder / "cache", _silent)
        result, metrics = train_and_evaluate(prepared, config, log=_silent)
        assert metrics["accuracy_consensus"] > 0.5
        assert (result.model.log_nu is not None) == (config.ties == "davidson"
                                                     and config.kind != "distributional")


def test_linear_head_with_length_features_runs_end_to_end(world_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, _, folder = world_db
    fields = {**QUICK, "architecture": "linear", "length_features": True, "l2": 1e-3, "lr": 1e-2}
    run_id = train_run(con, "plain", None, fields, log=_silent, cache_folder=folder / "cache",
                       checkpoint_folder=tmp_path)
    row = con.execute("SELECT checkpoint_path, metrics FROM reward_runs WHERE run_id = ?",
                      [run_id]).fetchall()[0]
    checkpoint = load_checkpoint(Path(row[0]))
    weight = checkpoint.model.head.weight
    # the hashing encoder's 512 dimensions plus log characters and log words
    assert weight.shape == (1, 514)
    assert checkpoint.config.architecture == "linear" and checkpoint.config.length_features
    assert torch.all(weight[0, -2:] != 0)
    metrics = json.loads(row[1])
    assert metrics["accuracy_consensus"] > 0.6
    again = evaluate_run(con, run_id, log=_silent, cache_folder=folder / "cache")
    assert again["accuracy_consensus"] == pytest.approx(metrics["accuracy_consensus"])
    assert score_run(con, run_id, log=_silent, cache_folder=folder / "cache") > 0


def test_ridge_penalty_shrinks_the_head() -> None:
    def norm(l2: float) -> float:
        config = PlainConfig(encoder="hashing", architecture="linear", l2=l2, lr=5e-2,
                             epochs=40, patience=40, weight_decay=0.0)
        return float(train_model(_two_response_tensors(1.0, 1.0), config, 0,
                                 _silent).model.head.weight.detach().norm())

    assert norm(1.0) < 0.5 * norm(0.0)


def test_new_fields_keep_earlier_hashes_and_refuse_bad_combinations() -> None:
    # hashes of configs written before architecture / length_features / l2 existed
    # (the MLP was the only head then; the default is now 'auto', resolved before saving)
    assert PlainConfig(architecture="mlp").config_hash() == "59f696fa4df91a50"
    assert make_config("multihead", encoder="hashing",
                       architecture="mlp").config_hash() == "937332def9ccb6de"
    assert PlainConfig(architecture="linear").config_hash() != \
        PlainConfig(architecture="mlp").config_hash()
    with pytest.raises(ValueError, match="length_features and finetune_encoder"):
        PlainConfig(length_features=True, finetune_encoder=True)


def test_contested_detection_labels_pairs_by_the_schools_held_out_majorities() -> None:
    pairs = pl.DataFrame({
        "school_share_0": [0.9, 0.8, 0.2, 0.7, 0.5, float("nan")],
        "school_share_1": [0.1, 0.7, 0.3, 0.2, 0.9, 0.4],
    })
    # contested: rows 0 and 3 (majorities disagree); rows 4 (a school at 1/2) and 5 (a school
    # without votes) are left out
    perfect = contested_detection(np.array([5.0, 1.0, 2.0, 4.0, 9.0, 9.0]), pairs, 2)
    assert perfect == {"roc_auc": 1.0, "n_pairs": 4, "n_contested": 2,
                       "label": "held-out school majorities disagree"}
    backwards = contested_detection(np.array([0.0, 1.0, 2.0, 0.5, 0.0, 0.0]), pairs, 2)
    assert backwards["roc_auc"] == 0.0
    agreeing = pairs.with_columns(pl.col("school_share_0").alias("school_share_1"))
    assert np.isnan(contested_detection(np.zeros(6), agreeing, 2)["roc_auc"])


def test_contested_detection_prefers_the_fit_verdicts() -> None:
    pairs = pl.DataFrame({"pair_id": ["a", "b", "c", "d"], "school_share_0": [0.9] * 4,
                          "school_share_1": [0.1] * 4})
    verdicts = pl.DataFrame({"pair_id": ["d", "a", "b"],
                             "verdict": ["pluralism", "clear", "ambiguous"]})
    found = contested_detection(np.array([0.1, 0.2, 7.0, 0.9]), pairs, 2, verdicts)
    # pair c has no verdict and is left out; d, the one pluralism pair, scores highest
    assert found == {"roc_auc": 1.0, "n_pairs": 3, "n_contested": 1,
                     "label": "fit verdict 'pluralism'"}


def test_school_lean_offsets_are_standardised_over_the_shares() -> None:
    shares = torch.tensor([0.65, 0.35])
    c = school_lean_offsets(shares * 10)  # any scale: the shares are normalised
    assert float((shares * c).sum()) == pytest.approx(0.0, abs=1e-6)
    assert float((shares * c.square()).sum()) == pytest.approx(1.0, abs=1e-6)
    assert c[0] > 0 > c[1]
    with pytest.raises(ValueError, match="two schools"):
        school_lean_offsets(torch.tensor([0.5, 0.3, 0.2]))


def test_spread_from_schools_fits_each_school_with_its_own_lean() -> None:
    # reply 1 leans toward school 0 (d_mean 0, d_lean 2): school 0 prefers it, school 1 does not
    out_1, out_2 = torch.tensor([[0.0, 2.0]]), torch.zeros(1, 2)
    c = school_lean_offsets(torch.tensor([0.5, 0.5]))
    def loss(y: float, school: list[float]) -> float:
        return float(preference_loss(
            "distributional", out_1, out_2, torch.tensor([y]), torch.tensor([False]),
            torch.ones(1), torch.tensor([school]), spread_from="schools", school_offsets=c))
    assert loss(1.0, [1.0, 0.0]) < loss(1.0, [0.0, 1.0])
    assert loss(0.0, [0.0, 1.0]) < loss(0.0, [1.0, 0.0])
    # the population is split evenly: P(1 beats 2) is 1/2 though the schools are sure
    p = win_probability("distributional", out_1, out_2, spread_from="schools")
    assert float(p) == pytest.approx(0.5)


def test_distributional_spread_from_schools_end_to_end(world_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    con, world, folder = world_db
    config = make_config("distributional", **QUICK, spread_from="schools")
    bare = connect_memory()  # no fit: the spread from schools has nothing to learn from
    small = simulate_world(WorldConfig(n_comparisons=200, seed=1))
    small.comparisons.write_parquet(tmp_path / "c.parquet")
    ingest_file(bare, tmp_path / "c.parquet")
    with pytest.raises(MissingFitError, match="dissensus fit"):
        prepare(bare, config, None, folder / "cache", _silent)
    bare.close()
    run_id = train_run(con, "distributional", "oracle", config, log=_silent,
                       cache_folder=folder / "cache", checkpoint_folder=tmp_path)
    metrics = json.loads(con.execute(
        "SELECT metrics FROM reward_runs WHERE run_id = ?", [run_id]).fetchall()[0][0])
    assert metrics["training"]["heads"] == ["mean", "lean"]
    assert metrics["accuracy_consensus"] > 0.5
    again = evaluate_run(con, run_id, log=_silent, cache_folder=folder / "cache")
    assert again["accuracy_consensus"] == pytest.approx(metrics["accuracy_consensus"])
    assert score_run(con, run_id, log=_silent, cache_folder=folder / "cache") > 0
    sd = con.execute("SELECT min(score), max(score) FROM reward_scores "
                     "WHERE run_id = ? AND head = 'sd'", [run_id]).fetchall()[0]
    assert 0.0 <= sd[0] < sd[1]
    # the replies of truly contested pairs lean apart more than those of clear or near-tie pairs
    # (on the training pairs: the hashing encoder generalises little to 16 held-out ones)
    prepared = prepare(con, config, "oracle", folder / "cache", _silent)
    checkpoint_model = load_checkpoint(tmp_path / run_id).model
    pairs = pair_table(prepared.data, "train").join(world.pairs, on="pair_id")
    emb = torch.as_tensor(prepared.embeddings)
    probs = pair_probabilities(checkpoint_model, "distributional", emb, pairs)
    lean_apart = contested_signal(checkpoint_model, "distributional", emb, pairs, probs)
    kinds = pairs["kind"].to_numpy()
    for other in ("clear", "ambiguous"):  # 0.73 against 0.26 and 0.24 when written
        assert lean_apart[kinds == "contested"].mean() > 2 * lean_apart[kinds == other].mean()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1),
                          st.floats(-5, 5, allow_subnormal=False)),
                min_size=2, max_size=40))
def test_contested_detection_is_a_rank_statistic(rows: list[tuple[float, float, float]]) -> None:
    pairs = pl.DataFrame({"school_share_0": [r[0] for r in rows],
                          "school_share_1": [r[1] for r in rows]})
    signal = np.array([r[2] for r in rows])
    found = contested_detection(signal, pairs, 2)
    assert 0 <= found["n_contested"] <= found["n_pairs"] <= len(rows)
    if np.isnan(found["roc_auc"]):
        return
    # depends on the signal's order only, and reversing the order mirrors it around 1/2
    assert contested_detection(3 * signal, pairs, 2)["roc_auc"] == pytest.approx(found["roc_auc"])
    assert contested_detection(-signal, pairs, 2)["roc_auc"] == pytest.approx(
        1 - found["roc_auc"])


def test_training_is_seeded_and_reproducible(world_db) -> None:  # type: ignore[no-untyped-def]
    con, _, folder = world_db
    runs = []
    for seed in (0, 0, 1):
        config = make_config("weighted", **{**QUICK, "epochs": 4, "seed": seed})
        prepared = prepare(con, config, "oracle", folder / "cache", _silent)
        result, metrics = train_and_evaluate(prepared, config, log=_silent)
        runs.append((prepared.data.comparisons["split"], result, metrics))
    (split_a, a, metrics_a), (split_b, b, metrics_b), (split_c, c, _) = runs
    assert split_a.equals(split_b) and not split_a.equals(split_c)
    assert state_equal(a.model, b.model) and not state_equal(a.model, c.model)
    assert a.best_epoch == b.best_epoch and a.history == b.history
    assert metrics_a["accuracy_consensus"] == metrics_b["accuracy_consensus"]


def test_settings_and_data_errors_are_dissensus_errors() -> None:
    with pytest.raises(RewardInputError, match="unknown reward model kind") as bad_kind:
        make_config("nonsense")
    with pytest.raises(RewardInputError, match="two schools") as bad_shares:
        school_lean_offsets(torch.tensor([1.0, 0.0]))
    for error in (bad_kind.value, bad_shares.value):
        assert isinstance(error, DissensusError) and error.fix


def test_school_heads_on_a_split_no_pair_shows_are_trained_with_a_warning(warehouse, vote,
                                                                           fake_fit) -> None:
    from dissensus.analytics.jobs.reward import warn_if_schools_unseen

    con = warehouse([vote("r1", 0, "a"), vote("r2", 0, "b")])
    fake_fit(con, "fit-unseen", diagnostics=json.dumps({"schools_unseen": True}))
    fake_fit(con, "fit-seen", diagnostics=json.dumps({"schools_unseen": False}))
    said: list[str] = []
    warn_if_schools_unseen(con, "multihead", "fit-unseen", 2, said.append)
    assert len(said) == 1 and "calls no pair pluralism" in said[0]
    for kind, fit_id in (("plain", "fit-unseen"), ("multihead", "fit-seen"),
                         ("multihead", None)):
        warn_if_schools_unseen(con, kind, fit_id, 2, said.append)
    assert len(said) == 1
