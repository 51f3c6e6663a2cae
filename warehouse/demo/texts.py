"""Text generation for the demo world: prompts, candidate replies and reviewer rationales.

Randomness comes in as pre-drawn non-negative integers ("slots", one row per text); each choice
is ``options[slot % len(options)]``. Rendering is plain Python string work, a few microseconds a
text, and is done once per pool text, never per comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from dissensus.warehouse.demo import phrases as ph
from dissensus.warehouse.demo import vocab as vo
from dissensus.warehouse.demo.schools import ESC, HAL, HED, LEN, OFF, REF, SLOT_CATEGORIES, WARM

#: Number of random slots a prompt context needs.
PROMPT_SLOTS: Final = 24
#: Number of random slots a reply needs.
REPLY_SLOTS: Final = 12

Context = dict[str, str]
_CLINICAL: Final = (vo.CATEGORIES.index("scheduling"), vo.URGENT)


def _pick(options: Sequence[str], slot: int) -> str:
    return options[slot % len(options)]


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def prompt_context(category: int, slots: Sequence[int]) -> Context:
    """Draw the entities of one prompt (names, clinic, symptom, amounts...) from ``slots``."""
    s = slots
    symptom = _pick(vo.URGENT_SYMPTOMS, s[6]) if category == vo.URGENT else ""
    problem = _pick(vo.ACCOUNT_PROBLEMS, s[11])
    ctx: Context = {
        "name": _pick(vo.FIRST_NAMES, s[0]),
        "doctor": _pick(vo.DOCTORS, s[1]),
        "clinic": _pick(vo.CLINICS, s[2]),
        "day": _pick(vo.DAYS, s[3]),
        "time": _pick(vo.TIMES, s[4]),
        "pref": _pick(vo.PREFERENCES, s[5]),
        "symptom": symptom,
        "Symptom": _capitalise(symptom),
        "duration": _pick(vo.DURATIONS, s[7]),
        "duration_short": _pick(vo.SHORT_ONSETS, s[8]),
        "relative": _pick(vo.RELATIVES, s[9]),
        "insurer": _pick(vo.INSURERS, s[10]),
        "problem": problem,
        "problem_cap": _capitalise(problem),
        "portal": _pick(vo.PORTALS, s[12]),
        "appt": _pick(vo.APPOINTMENT_TYPES, s[13]),
        "reason": _pick(vo.VISIT_REASONS, s[14]),
        "amount": f"${20 + s[15] % 480}.{s[16] % 100:02d}",
        "date": _pick(vo.VISIT_DATES, s[17]),
        "phone": f"(555) 01{s[18] % 10}-{1000 + s[19] % 9000}",
        "hday": _pick(vo.HALLUCINATED_DAYS, s[20]),
        "htime": _pick(vo.HALLUCINATED_TIMES, s[21]),
        "hdate": _pick(vo.HALLUCINATED_DATES, s[22]),
    }
    greeting = _pick(vo.GREETINGS, s[23])
    body = _pick(vo.PROMPT_TEMPLATES[category], s[23] // 16)
    sign_off = _pick(vo.SIGN_OFFS, s[23] // 512)
    ctx["prompt"] = (greeting + body + sign_off).format_map(ctx)
    ctx["comma_name"] = f", {ctx['name']}" if "{name}" in greeting else ""
    return ctx


def render_prompts(
    categories: npt.NDArray[np.integer], slots: npt.NDArray[np.integer]
) -> list[Context]:
    """One context (with its ``prompt`` text) per row of ``slots``."""
    return [
        prompt_context(c, row)
        for c, row in zip(np.asarray(categories).tolist(), slots.tolist(), strict=True)
    ]


def render_reply(
    ctx: Context, category: int, features: Sequence[float], slots: Sequence[int]
) -> str:
    """Compose one reply from its features (see :mod:`dissensus.warehouse.demo.schools`).

    Order: opener (by warmth), then escalation / hedge / core information / offer in one of three
    orders, then ``length`` extra detail sentences, then a closer (by warmth).
    """
    s = slots
    warmth, length = int(features[WARM]), int(features[LEN])
    urgent = category == vo.URGENT
    openers = ph.WARM_URGENT_OPENERS if warmth == 2 and urgent else ph.OPENERS[warmth]
    parts = [openers[s[0] % len(openers)]]
    if features[ESC]:
        escalations = ph.ESCALATIONS if urgent else ph.SAFETY_NETS
        escalation = escalations[s[1] % len(escalations)]
    else:
        escalation = ""
    if features[HED]:
        hedges = ph.CLINICAL_HEDGES if category in _CLINICAL else ph.ADMIN_HEDGES
        hedge = hedges[s[2] % len(hedges)]
    else:
        hedge = ""
    if features[REF]:
        parts += [_pick(ph.REFUSALS[category], s[3]), escalation, hedge]
    else:
        hallucination = bool(features[HAL])
        slot_hallucination = hallucination and category in SLOT_CATEGORIES
        if slot_hallucination:
            offer = _pick(ph.HALLUCINATIONS[category], s[4])
        elif features[OFF]:
            offer = _pick(ph.OFFERS[category], s[4])
        else:
            offer = ""
        if hallucination and not slot_hallucination:
            core = _pick(ph.HALLUCINATIONS[category], s[5])
        elif not offer or s[6] % 2:
            core = _pick(ph.CORE_INFO[category], s[5])
        else:
            core = ""
        order = s[7] % 3
        if order == 0:
            parts += [escalation, hedge, core, offer]
        elif order == 1:
            parts += [offer, core, escalation, hedge]
        else:
            parts += [core, offer, hedge, escalation]
    extras = ph.EXTRAS[category]
    start = s[8] % len(extras)
    parts += [extras[(start + i) % len(extras)] for i in range(length)]
    parts.append(_pick(ph.CLOSERS[warmth], s[9]))
    return " ".join([p for p in parts if p]).format_map(ctx)


def render_replies(
    contexts: Sequence[Context],
    categories: npt.NDArray[np.integer],
    prompt_index: npt.NDArray[np.integer],
    features: npt.NDArray[np.float64],
    slots: npt.NDArray[np.integer],
) -> list[str]:
    """Render replies; reply ``i`` answers prompt ``prompt_index[i]``."""
    category_list = np.asarray(categories).tolist()
    return [
        render_reply(contexts[p], category_list[p], f, s)
        for p, f, s in zip(prompt_index.tolist(), features.tolist(), slots.tolist(), strict=True)
    ]


def rationale_table() -> tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """All rationale strings with the winner letter filled in.

    Returns ``(texts, offsets, counts)``: the text for reason ``r``, variant ``v`` and winner
    letter ``w`` (0 for "A", 1 for "B") is ``texts[offsets[r] + 2 * (v % counts[r]) + w]``.
    """
    texts: list[str] = []
    offsets: list[int] = []
    counts: list[int] = []
    for templates in ph.RATIONALES:
        offsets.append(len(texts))
        counts.append(len(templates))
        for template in templates:
            texts.append(template.format(W="A", L="B"))
            texts.append(template.format(W="B", L="A"))
    return texts, np.array(offsets), np.array(counts)
