"""Saving and loading fits: an arviz netCDF file plus a JSON metadata file.

``<path>.nc`` holds an :class:`arviz.InferenceData`: the posterior (NUTS / ADVI draws, or for
the grid EM the grid posteriors in a ``grid_posterior`` group) and the fitted tables
(``reviewer_estimates``, ``pair_estimates``, ``pair_intervals``, ``comparison_weights``).
``<path>.json`` holds the model type, version, configuration and its hash, and the fit summary.
Both carry the hash; loading refuses a file whose type, version or hash does not match (the
fit was made by other code or under other settings), rather than mixing them silently.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .estimator import AnnotatorModel

TABLES = ("reviewer_estimates", "pair_estimates", "pair_intervals", "comparison_weights")


class FitMismatchError(DissensusError):
    """A saved fit does not match the model type, version or configuration asked for."""


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
            out[name] = pl.Series(name, arr)
    return pl.DataFrame(out)


def _grid_dataset(model: AnnotatorModel) -> xr.Dataset | None:
    state = model.result_.grid_state
    if state is None:
        return None
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
            "state_margins": (("state", "school_fit"), state.lattice.margins()),
            "school_weights": (("school_fit",), state.school_weights),
            "gamma": (("reviewer",), state.gamma),
            "tie_threshold": (("reviewer",), state.reviewer_tau()),
        },
        attrs={"tau": state.tau, "tilt_mean": state.tilt_mean, "n_iter": state.n_iter},
    )


def save_fit(model: AnnotatorModel, path: str | Path) -> tuple[Path, Path]:
    """Write the fit of ``model`` to ``<path>.nc`` and ``<path>.json``."""
    if not hasattr(model, "result_"):
        raise DissensusError("this model has not been fitted", fix="call .fit(frame) first")
    nc_path, json_path = _paths(path)
    nc_path.parent.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    meta = {"model_type": MODEL_TYPE, "version": MODEL_VERSION, "config_hash": cfg.config_hash(),
            "sampled_model_revision": SAMPLED_MODEL_REVISION}
    groups: dict[str, xr.Dataset] = {}
    idata = model.result_.idata
    if idata is not None:
        for name in idata.groups():
            groups[name] = getattr(idata, name)
    grid = _grid_dataset(model)
    if grid is not None:
        groups["grid_posterior"] = grid
    groups["reviewer_estimates"] = _table_to_dataset(model.reviewer_estimates_, "reviewer")
    groups["pair_estimates"] = _table_to_dataset(model.pair_estimates_, "pair")
    groups["pair_intervals"] = _table_to_dataset(model.pair_intervals_, "pair")
    groups["comparison_weights"] = _table_to_dataset(model.comparison_weights_, "comparison")
    for ds in groups.values():
        ds.attrs.update(meta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # custom groups are outside arviz's schema
        az.InferenceData(**groups).to_netcdf(str(nc_path))
    payload = {
        **meta,
        "config": cfg.model_dump(mode="json"),
        "fit_summary": model.fit_summary_,
        "netcdf": nc_path.name,
        "columns": {
            "reviewer_estimates": model.reviewer_estimates_.columns,
            "pair_estimates": model.pair_estimates_.columns,
            "pair_intervals": model.pair_intervals_.columns,
            "comparison_weights": model.comparison_weights_.columns,
        },
    }
    json_path.write_text(json.dumps(payload, indent=2, default=float))
    return nc_path, json_path


def load_fit(path: str | Path, config: AnnotatorConfig | None = None) -> AnnotatorModel:
    """Load a fit saved by :func:`save_fit`; raises :class:`FitMismatchError` on mismatch."""
    from .estimator import AnnotatorModel

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
    if config is not None and config.config_hash() != meta["config_hash"]:
        raise FitMismatchError(
            f"saved fit was made with configuration {meta['config_hash']}, "
            f"not {config.config_hash()}",
            where=where, expected="the same settings as the fit being loaded",
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
    model = AnnotatorModel(saved_cfg)
    cols = meta["columns"]
    model.reviewer_estimates_ = _dataset_to_table(idata.reviewer_estimates,
                                                  cols["reviewer_estimates"])
    model.pair_estimates_ = _dataset_to_table(idata.pair_estimates, cols["pair_estimates"])
    model.pair_intervals_ = _dataset_to_table(idata.pair_intervals, cols["pair_intervals"])
    model.comparison_weights_ = _dataset_to_table(idata.comparison_weights,
                                                  cols["comparison_weights"])
    model.fit_summary_ = meta["fit_summary"]
    model.n_schools_ = int(meta["fit_summary"]["n_schools"])
    model.school_weights_ = np.asarray(meta["fit_summary"]["diagnostics"]["school_weights"])
    model.idata_ = idata
    return model
