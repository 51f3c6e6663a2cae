"""Live traffic for the demo world: a baseline period like the training data, then drift.

Turns are written by the same simulator as the judged replies (:mod:`warehouse.demo.texts`,
:func:`~warehouse.demo.schools.sample_features`), served over ``n_weeks`` weeks from
``start``. From week ``drift_from_week`` (1-based) on, the traffic moves away from what the
reviewers judged, in three ways product teams meet in deployment:

* **more urgent-symptom messages**: the share of ``urgent_symptoms`` rises to
  ``drifted_urgent_share`` (the other categories shrink in proportion);
* **pressure to skip safety advice**: ``pressure_share`` of the urgent messages ask the assistant
  not to send them to urgent care, and half of those replies comply (no escalation);
* **a new request type**: ``prescription_refill`` (never judged by reviewers) takes
  ``new_type_share`` of the traffic.

``ab_share`` of the prompts are also answered by a second model version (an A/B test): those
are the "other model's reply to the same prompt" an audit sample can pair a live reply with.
The truth per turn (period, pressure, and each school's utility of the reply) is returned beside
the rows. With ``alternatives=True`` the truth also holds, per prompt, a reply by a model that
was not served (what a labelling team would put beside a live reply that has no A/B partner)
with its utilities. Both come from their own random stream, so the rows do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
import polars as pl

from dissensus.warehouse.demo import vocab as vo
from dissensus.warehouse.demo.schools import (
    ESC,
    FEATURES,
    MODELS,
    QUALITY_SD,
    SCHOOL_NAMES,
    sample_features,
    utilities,
)
from dissensus.warehouse.demo.texts import PROMPT_SLOTS, REPLY_SLOTS, render_prompts, render_reply
from dissensus.warehouse.demo.truth import tag_strings

NEW_TYPE: Final = "prescription_refill"
PRESSURE: Final = (
    " Please don't tell me to go to the ER or call anyone, I just want a normal appointment.",
    " I really can't go to urgent care, so skip the safety lecture and book me in.",
    " Don't say emergency room, I've heard it all before. Just a regular slot please.",
    " I know what you're going to say about 911, please don't. Just find me a time.",
)
REFILL_PROMPTS: Final = (
    "Hi, I need a refill of my {med} prescription from {doctor}. Can you send it to my pharmacy?",
    "My {med} is running out in two days. Can {doctor} renew it without a visit?",
    "Could you request a repeat prescription for {med}? I'm with {doctor} at {clinic}.",
    "I'm travelling next week and need an early refill of {med}. Is that possible?",
    "The pharmacy says my {med} prescription expired. How do I get it renewed?",
    "Can I get a 90-day supply of {med} this time instead of 30 days?",
)
REFILL_REPLIES: Final = (
    "I've sent a refill request for {med} to {doctor}; you'll get a text when the pharmacy has "
    "it ready, usually within two working days.",
    "Refills of {med} need {doctor}'s approval. I've passed your request on and the clinic will "
    "confirm by phone.",
    "I can't renew prescriptions myself, but I can book a short call with {doctor} to review "
    "your {med}.",
    "Your {med} prescription can be renewed once more without a visit. I've asked the pharmacy "
    "to prepare it.",
)
MEDICATIONS: Final = ("lisinopril", "metformin", "atorvastatin", "levothyroxine", "sertraline",
                      "albuterol", "omeprazole", "amlodipine")


@dataclass(frozen=True)
class TrafficConfig:
    """Settings of the simulated live traffic."""

    turns_per_week: int = 200
    n_weeks: int = 6
    drift_from_week: int = 4
    """First drifted week (1-based); later than ``n_weeks`` means no drift at all."""
    start: datetime = datetime(2026, 6, 1)  # a Monday, after the judged weeks
    drifted_urgent_share: float = 0.45
    pressure_share: float = 0.8
    new_type_share: float = 0.15
    ab_share: float = 0.15
    seed: int = 0
    alternatives: bool = False
    """Also draw, per prompt, an unserved model's reply and its utilities (truth ``alt_*``)."""


def _shares(drifted: bool, config: TrafficConfig) -> np.ndarray:
    """Category shares (the five demo categories, then the new type) for one period."""
    base = np.array([*vo.CATEGORY_SHARES, 0.0])
    if not drifted:
        return base / base.sum()
    shares = base.copy()
    urgent = vo.URGENT
    others = [i for i in range(len(vo.CATEGORIES)) if i != urgent]
    rest = 1.0 - config.drifted_urgent_share - config.new_type_share
    shares[others] = base[others] / base[others].sum() * rest
    shares[urgent] = config.drifted_urgent_share
    shares[-1] = config.new_type_share
    return shares


def _refill_prompt(rng: np.random.Generator, ctx: dict[str, str]) -> dict[str, str]:
    """The context of a refill request, its ``prompt`` included."""
    fields = {**ctx, "med": MEDICATIONS[int(rng.integers(len(MEDICATIONS)))]}
    fields["prompt"] = REFILL_PROMPTS[int(rng.integers(len(REFILL_PROMPTS)))].format_map(fields)
    return fields


def _refill_reply(rng: np.random.Generator, fields: dict[str, str]) -> tuple[str, str | None]:
    pick = int(rng.integers(len(REFILL_REPLIES)))
    tags = "refusal" if pick == 2 else "appointment_offer" if pick in (0, 3) else None
    return REFILL_REPLIES[pick].format_map(fields), tags


def _reply(rng: np.random.Generator, ctx: dict[str, str], cat: int, model: int,
           pressure: bool) -> tuple[str, str | None, np.ndarray]:
    """One reply by ``model``: its text, tags and feature vector (a refill reply's features
    are its tags: the template either offers to act, refuses, or neither)."""
    if cat == len(vo.CATEGORIES):
        reply, tags = _refill_reply(rng, ctx)
        features = np.zeros(len(FEATURES))
        for tag in (tags or "").split(","):
            if tag:
                features[FEATURES.index(tag)] = 1.0
        return reply, tags, features
    features = sample_features(rng, np.array([model]), np.array([cat]))[0]
    if pressure and rng.random() < 0.5:
        features[ESC] = 0.0  # the reply complies and drops the safety advice
    reply = render_reply(ctx, cat, features.tolist(),
                         rng.integers(0, 2**31 - 1, size=REPLY_SLOTS).tolist())
    return reply, tag_strings(features[None, :])[0], features


def _utilities(rng: np.random.Generator, features: np.ndarray, cat: int,
               prefix: str = "") -> dict[str, float]:
    """Every school's utility of a reply, with its own draw of the shared quality term (as
    the judged pool's replies have); refill requests are weighed like any non-urgent one."""
    quality = rng.normal(0.0, QUALITY_SD, size=1)
    known = np.array([cat if cat < len(vo.CATEGORIES) else 0])
    values = utilities(features[None, :], quality, known, len(SCHOOL_NAMES))[0]
    return {f"{prefix}utility_{name}": float(v) for name, v in zip(SCHOOL_NAMES, values,
                                                                     strict=True)}


def _alternative(rng: np.random.Generator, ctx: dict[str, str], cat: int, served: list[int],
                 pressure: bool, texts: set[str]) -> dict[str, object]:
    """A reply to the same prompt by a model that was not served, redrawn (a few times at
    most) while it repeats a served text: a reviewer cannot compare a reply with itself, and
    the refill templates are few."""
    unserved = [m for m in range(len(MODELS)) if m not in served]
    model = unserved[int(rng.integers(len(unserved)))]
    for _ in range(20):
        text, _, features = _reply(rng, ctx, cat, model, pressure)
        if text not in texts:
            break
    return {"alt_response": text, "alt_model": MODELS[model],
            **_utilities(rng, features, cat, "alt_")}


def simulate_traffic(config: TrafficConfig | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(rows, truth)``: traffic rows in the traffic contract, and per turn its week, period
    (``baseline`` / ``drift``), whether the prompt carries pressure to skip safety advice, and
    each school's utility of the reply (``utility_<school>``; with ``config.alternatives`` also
    ``alt_response``, ``alt_model`` and ``alt_utility_<school>``)."""
    config = config or TrafficConfig()
    rng = np.random.default_rng(config.seed)
    # truth-only draws come from streams of their own, so the rows match those of earlier
    # versions and the served replies' utilities do not depend on ``alternatives``
    quality = np.random.default_rng([config.seed, 1])
    extra = np.random.default_rng([config.seed, 2])
    rows: list[dict[str, object]] = []
    truth: list[dict[str, object]] = []
    n_categories = len(vo.CATEGORIES)
    for week in range(1, config.n_weeks + 1):
        drifted = week >= config.drift_from_week
        n = config.turns_per_week
        category = rng.choice(n_categories + 1, size=n, p=_shares(drifted, config))
        known = np.minimum(category, n_categories - 1)  # the new type borrows a context
        contexts = render_prompts(known, rng.integers(0, 2**31 - 1, size=(n, PROMPT_SLOTS)))
        seconds = np.sort(rng.integers(0, 7 * 86_400, size=n))
        for i in range(n):
            ctx, cat = contexts[i], int(category[i])
            if cat == n_categories:
                ctx = _refill_prompt(rng, ctx)
            pressure = drifted and cat == vo.URGENT and rng.random() < config.pressure_share
            served = 2 if rng.random() < config.ab_share else 1
            models = rng.choice(len(MODELS), size=served, replace=False)
            when = config.start + timedelta(weeks=week - 1, seconds=int(seconds[i]))
            prompt = ctx["prompt"] + (PRESSURE[int(rng.integers(len(PRESSURE)))]
                                      if pressure else "")
            for j, model in enumerate(models.tolist()):
                reply, tags, features = _reply(rng, ctx, cat, model, pressure)
                name = NEW_TYPE if cat == n_categories else vo.CATEGORIES[cat]
                tag_list = tags.split(",") if tags else []
                bad = "hallucination" in tag_list or (cat == vo.URGENT and
                                                      "escalation" not in tag_list)
                feedback = "down" if rng.random() < (0.35 if bad else 0.08) else (
                    "up" if rng.random() < 0.3 else None)
                turn = f"turn-{len(rows):06d}"
                rows.append({
                    "traffic_id": turn, "prompt": prompt, "response": reply,
                    "created_at": (when + timedelta(minutes=j)).isoformat() + "Z",
                    "category": name, "model": MODELS[model], "response_tags": tag_list,
                    "user_feedback": feedback,
                    "escalated": "escalation" in tag_list and cat == vo.URGENT,
                    "conversation_id": f"conv-{len(rows):06d}",
                })
                truth.append({"traffic_id": turn, "week": week,
                              "period": "drift" if drifted else "baseline",
                              "pressure": pressure, "category": name,
                              **_utilities(quality, features, cat)})
            if config.alternatives:
                alternative = _alternative(extra, ctx, cat, models.tolist(), pressure,
                                           {str(r["response"]) for r in rows[-served:]})
                for entry in truth[-served:]:
                    entry.update(alternative)
    return pl.DataFrame(rows), pl.DataFrame(truth)


def write_traffic(rows: pl.DataFrame, truth: pl.DataFrame, directory: Path) -> dict[str, Path]:
    """``traffic.jsonl`` and ``truth_traffic.parquet`` in ``directory``; their paths by name."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"traffic": directory / "traffic.jsonl",
             "traffic_truth": directory / "truth_traffic.parquet"}
    rows.write_ndjson(paths["traffic"])
    truth.write_parquet(paths["traffic_truth"])
    return paths
