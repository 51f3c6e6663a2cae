"""Output contract of AnnotatorModel, and the errors a person gets for unusable input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dissensus.models.annotator.config import SETTINGS_ADDED_LATER, AnnotatorConfig
from dissensus.models.annotator.decomposition import VERDICTS
from dissensus.models.annotator.errors import AnnotatorDataError
from dissensus.models.annotator.estimator import (
    PAIR_COLUMNS,
    REVIEWER_COLUMNS,
    WEIGHT_COLUMNS,
    AnnotatorModel,
)
from dissensus.models.annotator.synthetic import (
    SyntheticConfig,
    model_frame_from_judgments,
    simulate,
)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    world = simulate(SyntheticConfig(n_reviewers=40, n_pairs=160, seed=2))
    return model_frame_from_judgments(world.judgments)


@pytest.fixture(scope="module")
def model(frame: pl.DataFrame) -> AnnotatorModel:
    return AnnotatorModel(AnnotatorConfig(n_schools=2, seed=0)).fit(frame)


def test_tables_have_exactly_the_public_columns(model: AnnotatorModel) -> None:
    assert tuple(model.reviewer_estimates_.columns) == REVIEWER_COLUMNS
    assert tuple(model.pair_estimates_.columns) == PAIR_COLUMNS
    assert tuple(model.comparison_weights_.columns) == WEIGHT_COLUMNS
    assert set(model.fit_summary_) == {"method", "n_schools", "n_comparisons", "seconds",
                                       "diagnostics"}
    schema = model.reviewer_estimates_.schema
    assert schema["flagged"] == pl.Boolean and schema["flag_reason"] == pl.String
    assert model.comparison_weights_.schema["school_weights"] == pl.List(pl.Float64)


def test_values_are_well_formed(model: AnnotatorModel, frame: pl.DataFrame) -> None:
    pairs = model.pair_estimates_
    total = pairs["noise_share"] + pairs["pluralism_share"] + pairs["ambiguity_share"]
    assert np.allclose(total.to_numpy(), 1.0, atol=1e-12)
    assert set(pairs["verdict"].unique()) <= set(VERDICTS)
    assert pairs["n_votes"].sum() == frame.height
    assert pairs["p_first"].is_between(0, 1).all()
    rev = model.reviewer_estimates_
    assert rev["n_comparisons"].sum() == frame.height
    assert (rev["reliability_low"] <= rev["reliability_high"]).all()
    assert rev["reliability"].is_between(0.5, 1.0).all()  # lapse rates are kept below 0.5
    assert rev["school"].is_between(0, 1).all()
    assert (rev["flagged"] == rev["flag_reason"].is_not_null()).all()
    assert ((rev["agreement_low"] <= rev["agreement"] + 1e-9)
            & (rev["agreement"] <= rev["agreement_high"] + 1e-9)).all()
    evidence = rev["lapse_evidence"]
    assert evidence.is_finite().all() and (evidence > 0).all()
    lapse_flags = rev["flag_reason"].str.contains("lapse rate").fill_null(False)
    assert (evidence.filter(lapse_flags) >= model.config.flag_bayes_factor).all()
    w = model.comparison_weights_
    assert w.height == frame.height and w["weight"].is_between(0, 1).all()
    sums = w["school_weights"].list.sum().to_numpy()
    assert np.allclose(sums, 1.0)
    assert model.school_weights_[0] >= model.school_weights_[1]  # largest school first
    diag = model.fit_summary_["diagnostics"]
    assert model.fit_summary_["method"] == "em" and diag["converged"]
    for key in ("r_hat_max", "ess_min", "divergences", "loo_table", "warnings"):
        assert key in diag


def test_auto_method_says_what_it_chose(model: AnnotatorModel) -> None:
    assert "nuts_max_comparisons" in model.fit_summary_["diagnostics"]["method_reason"]


def test_flag_reasons_are_readable(frame: pl.DataFrame) -> None:
    # this world is too small for strong evidence against any one reviewer under the default
    # anchor; the pre-anchor settings flag its rushed reviewers, whose reasons are read here
    lenient = AnnotatorModel(careful_share=0.0, careful_share_strict=0.0,
                             flag_bayes_factor=1.0).fit(frame)
    reasons = lenient.reviewer_estimates_.filter("flagged")["flag_reason"].to_list()
    assert reasons, "the synthetic world has rushed reviewers"
    assert all("lapse rate ~" in r or "position bias" in r for r in reasons)
    assert any("% interval" in r for r in reasons)


def _frame(rows: list[tuple[str, str | None, str, int, int | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "comparison_id": [r[0] for r in rows],
            "reviewer_id": [r[1] for r in rows],
            "pair_id": [r[2] for r in rows],
            "prompt_id": [r[2] for r in rows],
            "outcome": [r[3] for r in rows],
            "first_shown": [r[4] for r in rows],
        },
        schema={"comparison_id": pl.String, "reviewer_id": pl.String, "pair_id": pl.String,
                "prompt_id": pl.String, "outcome": pl.Int8, "first_shown": pl.Int8},
    )


def test_no_comparisons_is_a_clear_error() -> None:
    with pytest.raises(AnnotatorDataError, match="no comparisons"):
        AnnotatorModel().fit(_frame([]))


def test_one_reviewer_is_a_clear_error() -> None:
    rows = [(f"c{i}", "ann", f"p{i}", 1, 1) for i in range(5)]
    with pytest.raises(AnnotatorDataError, match="only 1 reviewer") as err:
        AnnotatorModel().fit(_frame(rows))
    assert "fix:" in str(err.value)


def test_missing_reviewer_ids_are_rejected() -> None:
    rows = [("c1", "a", "p1", 1, 1), ("c2", None, "p1", -1, 2), ("c3", "b", "p1", 1, None)]
    with pytest.raises(AnnotatorDataError, match="no reviewer_id"):
        AnnotatorModel().fit(_frame(rows))


def test_all_single_judgment_reviewers_is_a_clear_error() -> None:
    rows = [(f"c{i}", f"r{i}", f"p{i % 3}", 1, 1) for i in range(6)]
    with pytest.raises(AnnotatorDataError, match="single judgment"):
        AnnotatorModel().fit(_frame(rows))


def test_single_judgment_reviewers_are_kept_with_wide_intervals(frame: pl.DataFrame) -> None:
    extra = _frame([("x1", "newcomer", frame["pair_id"][0], -1, 2)])
    model = AnnotatorModel(n_schools=1).fit(pl.concat([frame, extra]))
    table = model.reviewer_estimates_
    newcomer = table.filter(pl.col("reviewer_id") == "newcomer").row(0, named=True)
    widths = table["reliability_high"] - table["reliability_low"]
    assert newcomer["reliability_high"] - newcomer["reliability_low"] >= widths.median()
    assert not newcomer["flagged"]
    assert any("single judgment" in w for w in model.fit_summary_["diagnostics"]["warnings"])


def test_unknown_display_order_is_allowed(frame: pl.DataFrame) -> None:
    blind = frame.with_columns(pl.lit(None, dtype=pl.Int8).alias("first_shown"))
    model = AnnotatorModel(n_schools=1).fit(blind)
    assert model.reviewer_estimates_["position_bias"].abs().max() < 0.3  # prior only
    assert any("display order" in w for w in model.fit_summary_["diagnostics"]["warnings"])


def test_config_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        AnnotatorConfig(n_schools=5)
    with pytest.raises(ValueError):
        AnnotatorConfig(flag_min_reliability=1.5)
    assert AnnotatorConfig().config_hash() != AnnotatorConfig(seed=3).config_hash()
    for name, field in AnnotatorConfig.model_fields.items():
        assert field.description, f"{name} needs help text"


def test_fits_saved_before_the_minibatch_settings_keep_their_hash() -> None:
    # the default settings as saved before minibatch_steps / minibatch_learning_rate existed
    # (and minibatch_reviewers was 256); the hash was computed with that version of the config
    saved = {**SETTINGS_ADDED_LATER, "pool_responses": True, "minibatch_reviewers": 256}
    assert AnnotatorConfig(**saved).config_hash() == "6230ba70caec2da0"
    assert AnnotatorConfig().config_hash() != "6230ba70caec2da0"


def test_two_votes_cannot_settle_a_verdict_and_dozens_can(frame: pl.DataFrame) -> None:
    """lapse_evidence is what the reviewer's own votes say: about nothing with two votes."""
    counts = frame.group_by("reviewer_id").len().sort("len", "reviewer_id")
    few = counts["reviewer_id"][-1]  # the busiest reviewer, cut to two votes
    cut = pl.concat([frame.filter(pl.col("reviewer_id") != few),
                     frame.filter(pl.col("reviewer_id") == few).head(2)])
    rev = AnnotatorModel(AnnotatorConfig(n_schools=2, seed=0)).fit(cut).reviewer_estimates_
    two = rev.filter(pl.col("reviewer_id") == few)
    assert two["n_comparisons"][0] == 2
    assert 1 / 3 < two["lapse_evidence"][0] < 3
    busy = rev.filter(pl.col("n_comparisons") >= 40)
    assert busy.height and (busy["lapse_evidence"] <= 1 / 3).any()
