"""Where the artefacts kept beside a warehouse file live.

A warehouse ``path/name.duckdb`` keeps, next to it:

* ``name.duckdb.fits/``: saved annotator-model fits (``dissensus fit``);
* ``name.duckdb.reward_runs/``: reward-model checkpoints (``dissensus train``);
* ``name.duckdb.embeddings/``: the text-embedding cache of the reward models;
* ``name_truth/``: the demo world's data and ground truth (``dissensus demo``);
* ``name.duckdb.api/``: the HTTP API's token hashes and, while it runs, who holds the file and
  the read snapshot it keeps for the dashboards (:func:`snapshot_file`).

Every module that reads or writes one of them asks this module for its place;
:func:`artefact_folders` lists them all (``dissensus demo --fresh`` removes them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def fits_folder(db_path: str | Path) -> Path:
    """``<db>.fits``: one saved posterior (and its JSON) per annotator-model fit."""
    path = Path(db_path)
    return path.with_name(path.name + ".fits")


def reward_runs_folder(db_path: str | Path) -> Path:
    """``<db>.reward_runs``: one checkpoint folder per reward-model run."""
    path = Path(db_path)
    return path.with_name(path.name + ".reward_runs")


def embeddings_folder(db_path: str | Path) -> Path:
    """``<db>.embeddings``: cached text embeddings, one subfolder per encoder."""
    path = Path(db_path)
    return path.with_name(path.name + ".embeddings")


def demo_truth_folder(db_path: str | Path) -> Path:
    """``<stem>_truth``: the demo world's comparisons and its ground truth."""
    path = Path(db_path)
    return path.with_name(path.stem + "_truth")


def api_folder(db_path: str | Path) -> Path:
    """``<db>.api``: the API's token hashes (``tokens.json``) and, while ``dissensus api`` runs,
    ``server.json`` saying which URL and process hold the warehouse. Not in
    :data:`ARTEFACT_FOLDERS`: tokens outlive a ``demo --fresh`` rebuild of the data."""
    path = Path(db_path)
    return path.with_name(path.name + ".api")


def snapshot_file(db_path: str | Path) -> Path:
    """``<db>.api/snapshot.duckdb``: the read-only copy of the warehouse that a running
    ``dissensus api`` keeps fresh (:mod:`dissensus.warehouse.snapshot`), so the dashboards and
    read commands can read while the server holds the file. It lives in the API's folder since
    it exists only while a server runs (the server removes it when it stops)."""
    return api_folder(db_path) / "snapshot.duckdb"


ARTEFACT_FOLDERS: tuple[Callable[[str | Path], Path], ...] = (
    fits_folder,
    reward_runs_folder,
    embeddings_folder,
    demo_truth_folder,
)
"""Every artefact folder kept beside a warehouse, as the function that places it."""


def artefact_folders(db_path: str | Path) -> list[Path]:
    """Every artefact folder of the warehouse at ``db_path`` (whether it exists or not)."""
    return [folder(db_path) for folder in ARTEFACT_FOLDERS]


def warehouse_files(db_path: str | Path) -> list[Path]:
    """The warehouse file itself and its write-ahead log."""
    path = Path(db_path)
    return [path, path.with_name(path.name + ".wal")]
