"""Saving and loading fits: a faithful round trip, and loud failures on any mismatch."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import arviz as az
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dissensus.models.annotator.config import REPORT_SETTINGS, AnnotatorConfig
from dissensus.models.annotator.errors import (
    AnnotatorDataError,
    FitMismatchError,
    NotFittedError,
    PredictionUnavailableError,
)
from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.synthetic import (
    SyntheticConfig,
    model_frame_from_judgments,
    simulate,
)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    world = simulate(SyntheticConfig(n_reviewers=25, n_pairs=80, seed=4))
    return model_frame_from_judgments(world.judgments)


@pytest.fixture(scope="module")
def saved(frame: pl.DataFrame,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[AnnotatorModel, Path]:
    model = AnnotatorModel(AnnotatorConfig(n_schools=2)).fit(frame)
    path = tmp_path_factory.mktemp("fits") / "demo"
    nc, js = model.save(path)
    assert nc.suffix == ".nc" and js.suffix == ".json" and nc.exists() and js.exists()
    return model, path


def test_round_trip_restores_every_table(saved: tuple[AnnotatorModel, Path]) -> None:
    model, path = saved
    loaded = AnnotatorModel.load(path, AnnotatorConfig(n_schools=2))
    for name in ("reviewer_estimates_", "pair_estimates_", "pair_intervals_",
                 "comparison_weights_"):
        assert_frame_equal(getattr(loaded, name), getattr(model, name), check_dtypes=True)
    assert loaded.fit_summary_["n_schools"] == model.fit_summary_["n_schools"]
    assert loaded.config == model.config
    assert "grid_posterior" in loaded.idata_.groups()
    post = loaded.idata_.grid_posterior
    assert post["reviewer_post"].shape[0] == model.reviewer_estimates_.height


def test_loading_under_other_settings_fails(saved: tuple[AnnotatorModel, Path]) -> None:
    _, path = saved
    with pytest.raises(FitMismatchError, match="configuration"):
        AnnotatorModel.load(path, AnnotatorConfig(n_schools=3))


def test_loading_another_version_fails(saved: tuple[AnnotatorModel, Path], tmp_path: Path) -> None:
    _, path = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["version"] = "0.0"
    (tmp_path / "old.json").write_text(json.dumps(meta))
    (tmp_path / "old.nc").write_bytes(path.with_suffix(".nc").read_bytes())
    with pytest.raises(FitMismatchError, match="version"):
        AnnotatorModel.load(tmp_path / "old")


def test_mixed_up_files_fail(saved: tuple[AnnotatorModel, Path], tmp_path: Path) -> None:
    model, path = saved
    other = AnnotatorModel(AnnotatorConfig(n_schools=2, seed=9))
    other.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    other.save(tmp_path / "other")
    (tmp_path / "mixed.json").write_text(path.with_suffix(".json").read_text())
    (tmp_path / "mixed.nc").write_bytes((tmp_path / "other.nc").read_bytes())
    with pytest.raises(FitMismatchError, match="different fits"):
        AnnotatorModel.load(tmp_path / "mixed")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="saved fit not found"):
        AnnotatorModel.load(tmp_path / "nothing")


def test_flag_reason_nulls_survive(saved: tuple[AnnotatorModel, Path]) -> None:
    model, path = saved
    loaded = AnnotatorModel.load(path)
    assert loaded.reviewer_estimates_["flag_reason"].null_count() == (
        model.reviewer_estimates_["flag_reason"].null_count()
    )
    assert loaded.reviewer_estimates_.schema["flag_reason"] == pl.String


def test_sampled_fit_of_an_older_pymc_model_fails(saved: tuple[AnnotatorModel, Path],
                                                   tmp_path: Path) -> None:
    """A NUTS / ADVI fit of an older PyMC model revision is refused; a grid EM fit saved before
    revisions were recorded still loads (the EM's model did not change)."""
    _, path = saved
    meta = json.loads(path.with_suffix(".json").read_text())
    del meta["sampled_model_revision"]
    for method, loads in (("em", True), ("nuts", False)):
        meta["fit_summary"]["method"] = method
        (tmp_path / f"{method}.json").write_text(json.dumps(meta))
        (tmp_path / f"{method}.nc").write_bytes(path.with_suffix(".nc").read_bytes())
        if loads:
            AnnotatorModel.load(tmp_path / method)
        else:
            with pytest.raises(FitMismatchError, match="revision 1"):
                AnnotatorModel.load(tmp_path / method)


def _with_unseen_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame plus rows with a reviewer and a pair the fit has not seen."""
    unseen = frame.head(3).with_columns(
        reviewer_id=pl.Series(["nobody", frame["reviewer_id"][1], "nobody"]),
        pair_id=pl.Series([frame["pair_id"][0], "nowhere", "nowhere"]))
    return pl.concat([frame, unseen])


def test_a_loaded_fit_predicts_as_the_fitted_model(saved: tuple[AnnotatorModel, Path],
                                                   frame: pl.DataFrame, tmp_path: Path) -> None:
    model, path = saved
    rows = _with_unseen_rows(frame)
    expected = model.predict_proba(rows)
    loaded = AnnotatorModel.load(path, AnnotatorConfig(n_schools=2))
    np.testing.assert_array_equal(loaded.predict_proba(rows), expected)
    # and a loaded fit saves again, with what it predicts from
    loaded.save(tmp_path / "again")
    again = AnnotatorModel.load(tmp_path / "again")
    np.testing.assert_array_equal(again.predict_proba(rows), expected)


def test_fits_saved_without_their_lattice_still_predict(saved: tuple[AnnotatorModel, Path],
                                                        frame: pl.DataFrame,
                                                        tmp_path: Path) -> None:
    """Fits saved before the lattice was recorded rebuild it from their configuration."""
    model, path = saved
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_netcdf(str(path.with_suffix(".nc")))
        for name in ("lattice_step", "lattice_mu_limit", "lattice_dev_limit"):
            del idata.grid_posterior.attrs[name]
        idata.to_netcdf(str(tmp_path / "old.nc"))
    (tmp_path / "old.json").write_text(path.with_suffix(".json").read_text())
    loaded = AnnotatorModel.load(tmp_path / "old")
    np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


def test_predicting_before_fitting_is_a_clear_error(frame: pl.DataFrame) -> None:
    with pytest.raises(NotFittedError, match="fit"):
        AnnotatorModel().predict_proba(frame)
    with pytest.raises(NotFittedError, match="fit"):
        AnnotatorModel().save("nowhere")


def test_report_thresholds_may_differ_on_load(saved: tuple[AnnotatorModel, Path]) -> None:
    """Thresholds that only change the report do not refuse a saved posterior; the loaded
    tables are those saved, made under the saved thresholds (the loaded model's config)."""
    model, path = saved
    report = AnnotatorConfig(n_schools=2, flag_probability=0.95, flag_min_reliability=0.7,
                             interval_mass=0.9, pluralism_probability=0.6)
    loaded = AnnotatorModel.load(path, report)
    assert loaded.config == model.config
    assert_frame_equal(loaded.reviewer_estimates_, model.reviewer_estimates_)


@pytest.mark.parametrize("change", [{"n_schools": 3}, {"tilt_concentration": 5.0},
                                   {"tie_threshold_sd": 0.5}, {"seed": 1}])
def test_settings_of_the_posterior_must_match_on_load(saved: tuple[AnnotatorModel, Path],
                                                      change: dict[str, object]) -> None:
    _, path = saved
    (name,) = change
    with pytest.raises(FitMismatchError, match=f"configuration .*{name}"):
        AnnotatorModel.load(path, AnnotatorConfig(**{"n_schools": 2, **change}))


def test_the_posterior_hash_leaves_out_only_report_settings() -> None:
    base = AnnotatorConfig()
    assert set(REPORT_SETTINGS) <= set(AnnotatorConfig.model_fields)
    assert AnnotatorConfig(noise_min_lapses=2.0).posterior_hash() == base.posterior_hash()
    assert AnnotatorConfig(noise_min_lapses=2.0).config_hash() != base.config_hash()
    assert AnnotatorConfig(margin_step=0.3).posterior_hash() != base.posterior_hash()


def test_prediction_errors_say_what_to_do(saved: tuple[AnnotatorModel, Path],
                                          frame: pl.DataFrame) -> None:
    model, _ = saved
    with pytest.raises(AnnotatorDataError, match="first_shown"):
        model.predict_proba(frame.drop("first_shown"))
    sampled = copy.copy(model)
    sampled.predictive_ = None  # what a NUTS / ADVI fit carries
    with pytest.raises(PredictionUnavailableError, match="method='em'"):
        sampled.predict_proba(frame)
