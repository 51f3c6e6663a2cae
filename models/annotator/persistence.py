"""Saving and loading fits: an arviz netCDF file plus a JSON metadata file.

``<path>.nc`` holds an :class:`arviz.InferenceData`: the posterior (NUTS / ADVI draws, or for
the grid EM the grid posteriors in a ``grid_posterior`` group) and the fitted tables
(``reviewer_estimates``, ``pair_estimates``, ``pair_intervals``, ``comparison_weights``).
``<path>.json`` holds the model type, version, configuration and its hash, and the fit summary.
Both carry the hash; loading refuses a file whose type, version or hash does not match (the
fit was made by other code), or whose posterior was made under other settings
(:meth:`~.config.AnnotatorConfig.posterior_hash`), rather than mixing them silently.

A grid-EM fit's ``grid_posterior`` holds what predictions need (:class:`~.predict.PredictiveState`),
so a loaded fit predicts as the fitted model did. Its lattice is recorded in the group's
attributes (``lattice_step``, ``lattice_mu_limit``, ``lattice_dev_limit``); fits saved before
that rebuild it from their configuration, checked against the saved ``state_margins``.

This module knows files, not estimators: :class:`~.estimator.AnnotatorModel` hands it the
tables and posterior to write (:func:`save_fit`) and builds itself from what :func:`load_fit`
returns.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import polars as pl
import xarray as xr

from dissensus.warehouse.errors import DissensusError

from .config import (
    MODEL_TYPE,
    MODEL_VERSION,
    SAMPLED_MODEL_REVISION,
    SETTINGS_ADDED_LATER,
    AnnotatorConfig,
)
from .errors import FitMismatchError
from .grid_em import GridState, lattice_for
from .lapse_cues import NO_CUES, CueSpec
from .lattice import make_lattice
from .predict import PredictiveState

TABLES = ("reviewer_estimates", "pair_estimates", "pair_intervals", "comparison_weights")
GRID_GROUP = "grid_posterior"

__all__ = [
    "FitMismatchError", "SavedFit", "fit_posterior", "load_fit", "save_fit", "saved_posterior",
]


@dataclass
class SavedFit:
    """A fit as read back from disk."""

    config: AnnotatorConfig  # the settings the fit was made (and its tables reported) with
    tables: dict[str, pl.DataFrame]  # TABLES by name
    fit_summary: dict[str, Any]
    idata: az.InferenceData  # every group of the netCDF file
    predictive: PredictiveState | None  # grid-EM fits only


def _paths(path: str | Path) -> tuple[Path, Path]:
    base = Path(path)
    if base.suffix in (".nc", ".json"):
        base = base.with_suffix("")
    return base.with_suffix(".nc"), base.with_suffix(".json")


def _table_to_dataset(frame: pl.DataFrame, dim: str) -> xr.Dataset:
    data: dict[str, Any] = {}
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pl.List):
            data[name] = ((dim, f"{name}_k"), np.asarray(col.to_list(), dtype=float))
        elif col.dtype == pl.String:
            data[name] = (dim, np.asarray(col.fill_null("").to_list(), dtype=str))
            data[f"{name}__null"] = (dim, col.is_null().to_numpy().astype(np.int8))
        else:
            if col.null_count():  # a null number is not a NaN: keep which were null
                data[f"{name}__null"] = (dim, col.is_null().to_numpy().astype(np.int8))
            data[name] = (dim, col.to_numpy())
    return xr.Dataset(data)


def _dataset_to_table(ds: xr.Dataset, columns: list[str]) -> pl.DataFrame:
    out: dict[str, Any] = {}
    for name in columns:
        arr = ds[name].values
        if arr.ndim == 2:
            out[name] = pl.Series(name, arr.tolist(), dtype=pl.List(pl.Float64))
        elif arr.dtype.kind in "USO":
            nulls = ds[f"{name}__null"].values.astype(bool)
            out[name] = pl.Series(
                name, [None if n else str(v) for v, n in zip(arr, nulls, strict=True)],
                dtype=pl.String,
            )
        else:
            series = pl.Series(name, arr)
            if f"{name}__null" in ds:
                nulls = pl.Series(ds[f"{name}__null"].values.astype(bool))
                series = pl.select(pl.when(nulls).then(None).otherwise(series)).to_series()
            out[name] = series.alias(name)
    return pl.DataFrame(out)


def _grid_dataset(state: GridState, cues: CueSpec) -> xr.Dataset:
    lat = state.lattice
    lean: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    if state.lean is not None and state.lean_mean is not None:
        lean = {"lapse_lean": (("reviewer", "lapse_cue"), state.lean),
                "lapse_lean_mean": (("lapse_cue",), state.lean_mean)}
    return xr.Dataset(
        {
            "reviewer_post": (("reviewer", "school_fit", "lapse", "bias"), state.reviewer_post),
            "pair_post": (("pair", "state"), state.pair_post),
            "lapse_post": (("judgment",), state.lapse_post),
            "loo": (("judgment",), state.loo),
            "lapse_grid": (("lapse",), state.lapse_grid),
            "bias_grid": (("bias",), state.bias_grid),
            "lapse_prior": (("lapse",), state.lapse_prior),
            "bias_prior": (("bias",), state.bias_prior),
            "pair_prior": (("state",), state.pair_prior.state_prior()),
            "state_margins": (("state", "school_fit"), lat.margins()),
            "school_weights": (("school_fit",), state.school_weights),
            "gamma": (("reviewer",), state.gamma),
            "lapse_tie": (("reviewer",), state.reviewer_lapse_tie()),
            "tie_threshold": (("reviewer",), state.reviewer_tau()),
            **lean,
        },
        attrs={"tau": state.tau, "tilt_mean": state.tilt_mean, "n_iter": state.n_iter,
               # without leans only the vote order is kept: a loaded fit reads new votes the
               # way it was fitted (display order, or label order in a label task)
               "lapse_cues": json.dumps((cues if lean else
                                         CueSpec(label_order=cues.label_order)).to_json()),
               "lapse_tie_mean": state.lapse_tie_mean,
               "lattice_step": lat.step, "lattice_mu_limit": lat.mu_limit,
               "lattice_dev_limit": lat.dev_limit},
    )


def fit_posterior(idata: az.InferenceData | None, state: GridState | None,
                  cues: CueSpec = NO_CUES) -> dict[str, xr.Dataset]:
    """The posterior groups of a fresh fit: the samplers' draws and / or the grid EM's state
    (``cues``: what the state's lapse leans refer to)."""
    groups: dict[str, xr.Dataset] = {}
    if idata is not None:
        for name in idata.groups():
            groups[name] = getattr(idata, name)
    if state is not None:
        groups[GRID_GROUP] = _grid_dataset(state, cues)
    return groups


def saved_posterior(idata: az.InferenceData) -> dict[str, xr.Dataset]:
    """The posterior groups of a loaded fit (everything but the tables), to save it again."""
    return {name: getattr(idata, name) for name in idata.groups() if name not in TABLES}


def save_fit(
    path: str | Path, config: AnnotatorConfig, tables: dict[str, pl.DataFrame],
    fit_summary: dict[str, Any], posterior: dict[str, xr.Dataset],
) -> tuple[Path, Path]:
    """Write a fit to ``<path>.nc`` and ``<path>.json``: ``tables`` (every name of TABLES),
    the summary and the ``posterior`` groups (see :func:`fit_posterior`)."""
    nc_path, json_path = _paths(path)
    nc_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"model_type": MODEL_TYPE, "version": MODEL_VERSION,
            "config_hash": config.config_hash(),
            "sampled_model_revision": SAMPLED_MODEL_REVISION}
    dims = {"reviewer_estimates": "reviewer", "pair_estimates": "pair",
            "pair_intervals": "pair", "comparison_weights": "comparison"}
    groups = dict(posterior)
    for name in TABLES:
        groups[name] = _table_to_dataset(tables[name], dims[name])
    for name, ds in groups.items():
        groups[name] = ds.copy()
        groups[name].attrs.update(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # custom groups are outside arviz's schema
        az.InferenceData(**groups).to_netcdf(str(nc_path))
    payload = {
        **meta,
        "config": config.model_dump(mode="json"),
        "fit_summary": fit_summary,
        "netcdf": nc_path.name,
        "columns": {name: tables[name].columns for name in TABLES},
    }
    json_path.write_text(json.dumps(payload, indent=2, default=float))
    return nc_path, json_path


def _predictive_state(idata: az.InferenceData, config: AnnotatorConfig,
                      where: str) -> PredictiveState | None:
    """What predictions need, from the ``grid_posterior`` group (None without one)."""
    if GRID_GROUP not in idata.groups():
        return None
    grid = getattr(idata, GRID_GROUP)
    attrs = grid.attrs
    k = int(grid.sizes["school_fit"])
    if "lattice_step" in attrs:
        lattice = make_lattice(k, float(attrs["lattice_step"]), float(attrs["lattice_mu_limit"]),
                               float(attrs["lattice_dev_limit"]))
    else:  # saved before the lattice was recorded: the configuration's lattice
        lattice = lattice_for(config, k)
    saved = grid["state_margins"].values
    if saved.shape != lattice.margins().shape or not np.array_equal(saved, lattice.margins()):
        raise FitMismatchError(
            "the saved grid posterior is not on the lattice its settings describe",
            where=where, expected=f"{saved.shape[0]} pair states matching state_margins",
            fix="refit with this version of dissensus and save again",
        )
    return PredictiveState(
        lattice=lattice,
        lapse_grid=grid["lapse_grid"].values,
        bias_grid=grid["bias_grid"].values,
        school_weights=grid["school_weights"].values,
        lapse_prior=grid["lapse_prior"].values,
        bias_prior=grid["bias_prior"].values,
        reviewer_post=grid["reviewer_post"].values,
        gamma=grid["gamma"].values,
        # files saved before lapse ties existed: lapses never tie
        lapse_tie=(grid["lapse_tie"].values if "lapse_tie" in grid
                   else np.zeros(grid["gamma"].shape[0])),
        lapse_tie_mean=float(attrs.get("lapse_tie_mean", 0.0)),
        reviewer_tau=grid["tie_threshold"].values,
        tau=float(attrs["tau"]),
        tilt_mean=float(attrs["tilt_mean"]),
        pair_post=grid["pair_post"].values,
        pair_prior=grid["pair_prior"].values,
        # files saved before lapse leans existed: lapses lean only toward the first-shown reply
        lean=grid["lapse_lean"].values if "lapse_lean" in grid else None,
        lean_mean=grid["lapse_lean_mean"].values if "lapse_lean_mean" in grid else None,
        cues=CueSpec.from_json(json.loads(str(attrs.get("lapse_cues", "{}")))),
    )


def load_fit(path: str | Path, config: AnnotatorConfig | None = None) -> SavedFit:
    """Read a fit saved by :func:`save_fit`; raises :class:`FitMismatchError` on mismatch."""
    nc_path, json_path = _paths(path)
    if not json_path.exists() or not nc_path.exists():
        raise DissensusError(
            "saved fit not found", where=f"{nc_path} / {json_path}",
            fix="check the path, or fit and save again",
        )
    meta = json.loads(json_path.read_text())
    where = str(json_path)
    if meta.get("model_type") != MODEL_TYPE or meta.get("version") != MODEL_VERSION:
        raise FitMismatchError(
            f"saved fit is {meta.get('model_type')} version {meta.get('version')}",
            where=where, expected=f"{MODEL_TYPE} version {MODEL_VERSION}",
            fix="refit with this version of dissensus",
        )
    sampled = meta.get("fit_summary", {}).get("method", "em") != "em"
    revision = meta.get("sampled_model_revision", 1)  # fits saved before revisions: 1
    if sampled and revision != SAMPLED_MODEL_REVISION:
        raise FitMismatchError(
            f"saved fit sampled PyMC model revision {revision}",
            where=where, expected=f"revision {SAMPLED_MODEL_REVISION} (see SAMPLED_MODEL_REVISION)",
            fix="refit with this version of dissensus; grid EM fits are not affected",
        )
    saved_cfg = AnnotatorConfig(**{**SETTINGS_ADDED_LATER, **meta["config"]})
    if saved_cfg.config_hash() != meta.get("config_hash"):
        raise FitMismatchError("saved configuration does not match its recorded hash",
                               where=where, fix="the file was edited or corrupted: refit")
    # only settings that change the posterior must match; report thresholds may differ (the
    # loaded tables keep those they were saved with: the loaded model's config)
    if config is not None and config.posterior_hash() != saved_cfg.posterior_hash():
        differ = saved_cfg.posterior_differences(config)
        listed = ", ".join(f"{name} {saved!r} (asked: {asked!r})"
                           for name, (saved, asked) in sorted(differ.items()))
        raise FitMismatchError(
            f"saved fit was made with configuration {saved_cfg.posterior_hash()}, not "
            f"{config.posterior_hash()}: {listed}",
            where=where, expected="the same settings of the posterior as the fit being loaded "
            "(report thresholds may differ)",
            fix="load without a config, or refit with the new settings",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_netcdf(str(nc_path))
    for group in TABLES:
        attrs = getattr(idata, group).attrs
        if attrs.get("config_hash") != meta["config_hash"]:
            raise FitMismatchError(
                f"netCDF group {group} carries hash {attrs.get('config_hash')}, the JSON "
                f"{meta['config_hash']}", where=str(nc_path),
                fix="the two files come from different fits: save them together again",
            )
    cols = meta["columns"]
    tables = {name: _dataset_to_table(getattr(idata, name), cols[name]) for name in TABLES}
    return SavedFit(config=saved_cfg, tables=tables, fit_summary=meta["fit_summary"],
                    idata=idata, predictive=_predictive_state(idata, saved_cfg, str(nc_path)))
