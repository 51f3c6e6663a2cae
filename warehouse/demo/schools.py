"""Schools (viewpoints) of the demo world, their utilities, and the assistants' reply habits.

Every reply ``x`` has a feature vector (order of :data:`FEATURES`)::

    x = (escalation, appointment_offer, hallucination, hedge, refusal, warmth, length)

with the first five in {0, 1}, ``warmth`` in {0, 1, 2} and ``length`` (extra detail sentences)
in {0, 1, 2, 3}, plus a shared quality term ``q ~ Normal(0, QUALITY_SD)`` (clarity, wording)
that every school sees alike. School ``k``'s utility of a reply to a prompt of category ``c`` is
linear::

    u_k(x) = sum_f W[k, urgent(c), f] * x_f + q,      urgent(c) = (c == "urgent_symptoms")

and the margin of a pair is ``m_k = u_k(response_1) - u_k(response_2)``.
Both main schools dislike hallucination and refusal; ``caution_first`` values escalation of
urgent symptoms (+3.0) and hedging; ``access_first`` values offering an appointment (+1.6) and
dislikes escalation and hedging that delay access. The optional third school ``empathy_first``
(only with ``n_schools=3``) values warmth and length.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from dissensus.warehouse.demo.vocab import CATEGORIES

SCHOOL_NAMES: Final = ("access_first", "caution_first", "empathy_first")
FEATURES: Final = (
    "escalation",
    "appointment_offer",
    "hallucination",
    "hedge",
    "refusal",
    "warmth",
    "length",
)
ESC, OFF, HAL, HED, REF, WARM, LEN = range(len(FEATURES))
#: Feature flags that become reply tags (the tag is the feature name).
TAG_FEATURES: Final = ("refusal", "escalation", "hallucination", "hedge", "appointment_offer")
MODELS: Final = ("assistant-v1", "assistant-v2", "assistant-v3")
#: Standard deviation of the quality term ``q`` shared by all schools.
QUALITY_SD: Final = 0.25

#: Utility weights ``W[school, urgent, feature]`` (see the module docstring).
UTILITY_WEIGHTS: Final = np.array(
    [
        [  # access_first
            [-0.6, 1.6, -2.5, -0.8, -2.0, 0.25, 0.0],
            [-1.2, 1.6, -2.5, -0.8, -2.0, 0.25, 0.0],
        ],
        [  # caution_first
            [0.6, 0.8, -2.5, 0.8, -2.0, 0.25, 0.05],
            [3.0, 0.4, -3.0, 1.0, -0.8, 0.25, 0.05],
        ],
        [  # empathy_first
            [0.4, 1.0, -2.5, 0.0, -2.5, 1.2, 0.15],
            [1.5, 1.0, -2.5, 0.0, -2.0, 1.2, 0.15],
        ],
    ]
)


def school_names(n_schools: int) -> list[str]:
    """Names of the first ``n_schools`` schools (1 to 3); the first is the majority school."""
    if not 1 <= n_schools <= len(SCHOOL_NAMES):
        raise ValueError(f"n_schools must be between 1 and {len(SCHOOL_NAMES)}, got {n_schools}")
    return list(SCHOOL_NAMES[:n_schools])


def school_shares(n_schools: int, minority_share: float) -> npt.NDArray[np.float64]:
    """Give population shares: ``1 - minority_share`` for the majority, the rest split evenly.

    With one school the share is 1 (the null world, no pluralism).
    """
    if n_schools == 1:
        return np.ones(1)
    rest = np.full(n_schools - 1, minority_share / (n_schools - 1))
    return np.concatenate([[1.0 - minority_share], rest])


def utilities(
    features: npt.NDArray[np.float64],
    quality: npt.NDArray[np.float64],
    category: npt.NDArray[np.integer],
    n_schools: int,
) -> npt.NDArray[np.float64]:
    """``u[reply, k] = W[k, urgent] . x + q`` for every reply and school (shape (n, K))."""
    urgent = (np.asarray(category) == CATEGORIES.index("urgent_symptoms")).astype(np.intp)
    weights = UTILITY_WEIGHTS[:n_schools]  # (K, 2, F)
    per_reply = weights[:, urgent, :]  # (K, n, F)
    return np.einsum("knf,nf->nk", per_reply, features) + quality[:, None]


# Reply habits: probabilities per model (rows) and category (columns, order of CATEGORIES).
#: P(refusal | model, category).
P_REFUSAL: Final = np.array(
    [
        [0.12, 0.10, 0.16, 0.16, 0.20],
        [0.07, 0.05, 0.09, 0.09, 0.11],
        [0.05, 0.04, 0.06, 0.06, 0.08],
    ]
)
#: P(some appointment/callback offer | model, category), before refusals remove it.
P_OFFER: Final = np.array(
    [
        [0.75, 0.60, 0.18, 0.12, 0.55],
        [0.80, 0.65, 0.22, 0.15, 0.60],
        [0.65, 0.55, 0.15, 0.10, 0.45],
    ]
)
#: P(hallucination | model, category); for scheduling, cancellation and urgent prompts this is
#: conditional on an offer (an invented slot), otherwise an invented account fact.
P_HALLUCINATION: Final = np.array(
    [
        [0.35, 0.30, 0.20, 0.20, 0.35],
        [0.15, 0.12, 0.10, 0.10, 0.15],
        [0.06, 0.05, 0.04, 0.04, 0.06],
    ]
)
#: P(escalation | model, category): emergency advice on urgent prompts, a safety net elsewhere.
P_ESCALATION: Final = np.array(
    [
        [0.18, 0.04, 0.0, 0.0, 0.35],
        [0.25, 0.06, 0.0, 0.0, 0.55],
        [0.40, 0.10, 0.0, 0.0, 0.80],
    ]
)
#: P(hedge | model, category).
P_HEDGE: Final = np.array(
    [
        [0.15, 0.12, 0.15, 0.12, 0.20],
        [0.25, 0.20, 0.25, 0.20, 0.30],
        [0.45, 0.35, 0.40, 0.35, 0.55],
    ]
)
#: P(warmth = 0, 1, 2 | model).
P_WARMTH: Final = np.array([[0.5, 0.4, 0.1], [0.25, 0.5, 0.25], [0.1, 0.4, 0.5]])
#: P(length = 0, 1, 2, 3 | model).
P_LENGTH: Final = np.array([[0.35, 0.35, 0.2, 0.1], [0.2, 0.35, 0.3, 0.15], [0.1, 0.3, 0.35, 0.25]])
#: Categories in which a hallucination is an invented appointment slot (needs an offer).
SLOT_CATEGORIES: Final = (
    CATEGORIES.index("scheduling"),
    CATEGORIES.index("cancellation"),
    CATEGORIES.index("urgent_symptoms"),
)


def sample_features(
    rng: np.random.Generator,
    model: npt.NDArray[np.integer],
    category: npt.NDArray[np.integer],
) -> npt.NDArray[np.float64]:
    """Draw the feature vectors of replies written by ``model`` to prompts of ``category``.

    Refusals carry no offer and no hallucination (and, outside urgent prompts, no escalation);
    a slot hallucination (scheduling, cancellation, urgent) always comes with an offer.
    """
    n = len(model)
    u = rng.random((n, 5))
    refusal = u[:, 0] < P_REFUSAL[model, category]
    offer = u[:, 1] < P_OFFER[model, category]
    slot = np.isin(category, SLOT_CATEGORIES)
    hallucination = (u[:, 2] < P_HALLUCINATION[model, category]) & (offer | ~slot)
    escalation = u[:, 3] < P_ESCALATION[model, category]
    hedge = u[:, 4] < P_HEDGE[model, category]
    urgent = category == CATEGORIES.index("urgent_symptoms")
    offer &= ~refusal
    hallucination &= ~refusal
    escalation &= ~refusal | urgent
    warmth = _categorical(rng, P_WARMTH[model])
    length = _categorical(rng, P_LENGTH[model])
    return np.column_stack(
        [escalation, offer, hallucination, hedge, refusal, warmth, length]
    ).astype(np.float64)


def _categorical(rng: np.random.Generator, probs: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """One draw per row from the categorical distribution in each row of ``probs``."""
    cumulative = np.cumsum(probs, axis=1)
    draws = rng.random(len(probs))[:, None]
    return np.minimum((draws > cumulative).sum(axis=1), probs.shape[1] - 1)
