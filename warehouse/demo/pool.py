"""The finite pool of prompts and candidate replies, and the choice of judged pairs.

Pool: each prompt has a category (shares :data:`~warehouse.demo.vocab.CATEGORY_SHARES`) and
4 to 6 candidate replies, each written by a model drawn uniformly from
:data:`~warehouse.demo.schools.MODELS` with that model's habits
(:func:`~warehouse.demo.schools.sample_features`). Every unordered pair of replies to the same
prompt is a *candidate pair* with margins ``m_k = u_k(x) - u_k(y)`` and a kind:

* contested: two schools disagree in sign with both ``|m| >= clear_margin``;
* ambiguous: ``|m_k| < ambiguous_margin`` for every school;
* clear: every school has the same sign and ``|m_k| >= clear_margin``;
* otherwise unused.

Pairs are then drawn uniformly without replacement within each kind to fill the quotas. The pool
grows in chunks until every quota can be met, so its size scales with the number of pairs
(a few hundred prompts for the default 5,000 comparisons, tens of thousands for a million).
Only the texts of prompts and replies that end up in a chosen pair are rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from itertools import combinations
from typing import Final

import numpy as np
import numpy.typing as npt

from dissensus.warehouse.demo.schools import MODELS, QUALITY_SD, sample_features, utilities
from dissensus.warehouse.demo.texts import PROMPT_SLOTS, REPLY_SLOTS, render_prompts, render_replies
from dissensus.warehouse.demo.vocab import CATEGORY_SHARES
from dissensus.warehouse.ids import pair_id, response_id, text_id

KINDS: Final = ("clear", "contested", "ambiguous")
CLEAR, CONTESTED, AMBIGUOUS = range(len(KINDS))
UNUSED: Final = -1
REPLIES_PER_PROMPT: Final = (4, 6)
SLOT_HIGH: Final = 2**31 - 1
#: Prior candidate-pair yield per prompt for each kind, used only to size the first chunk.
_PRIOR_YIELD: Final = (3.0, 0.75, 0.9)
_MAX_CHUNKS: Final = 200


@dataclass
class Pool:
    """Prompts, replies and candidate pairs (indices are positions in these arrays)."""

    prompt_category: npt.NDArray[np.int64]
    prompt_slots: npt.NDArray[np.int64]
    reply_prompt: npt.NDArray[np.int64]
    reply_model: npt.NDArray[np.int64]
    reply_features: npt.NDArray[np.float64]
    reply_quality: npt.NDArray[np.float64]
    reply_slots: npt.NDArray[np.int64]
    reply_utility: npt.NDArray[np.float64]  # (n_replies, K)
    cand_x: npt.NDArray[np.int64]
    cand_y: npt.NDArray[np.int64]
    cand_kind: npt.NDArray[np.int64]

    @property
    def n_prompts(self) -> int:
        """Number of prompts in the pool."""
        return len(self.prompt_category)


def classify(
    margins: npt.NDArray[np.float64], clear_margin: float, ambiguous_margin: float
) -> npt.NDArray[np.int64]:
    """Kind of each row of ``margins`` (shape (n, K)): CLEAR, CONTESTED, AMBIGUOUS or UNUSED."""
    positive = (margins >= clear_margin).any(axis=1)
    negative = (margins <= -clear_margin).any(axis=1)
    kind = np.full(len(margins), UNUSED, dtype=np.int64)
    kind[(margins >= clear_margin).all(axis=1) | (margins <= -clear_margin).all(axis=1)] = CLEAR
    kind[positive & negative] = CONTESTED
    kind[(np.abs(margins) < ambiguous_margin).all(axis=1)] = AMBIGUOUS
    return kind


def _pair_template(n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    first, second = zip(*combinations(range(n), 2), strict=True)
    return np.array(first), np.array(second)


def _chunk(
    rng: np.random.Generator, n_prompts: int, n_schools: int, reply_offset: int
) -> dict[str, npt.NDArray[np.int64] | npt.NDArray[np.float64]]:
    """Draw ``n_prompts`` prompts with their replies and candidate pairs."""
    category = rng.choice(len(CATEGORY_SHARES), size=n_prompts, p=np.array(CATEGORY_SHARES))
    prompt_slots = rng.integers(0, SLOT_HIGH, size=(n_prompts, PROMPT_SLOTS))
    lo, hi = REPLIES_PER_PROMPT
    n_replies = rng.integers(lo, hi + 1, size=n_prompts)
    starts = reply_offset + np.concatenate([[0], np.cumsum(n_replies)[:-1]])
    reply_prompt = np.repeat(np.arange(n_prompts), n_replies)
    reply_category = category[reply_prompt]
    model = rng.integers(0, len(MODELS), size=len(reply_prompt))
    features = sample_features(rng, model, reply_category)
    quality = rng.normal(0.0, QUALITY_SD, size=len(reply_prompt))
    reply_slots = rng.integers(0, SLOT_HIGH, size=(len(reply_prompt), REPLY_SLOTS))
    xs, ys = [], []
    for n in range(lo, hi + 1):
        first, second = _pair_template(n)
        base = starts[n_replies == n][:, None]
        xs.append((base + first[None, :]).ravel())
        ys.append((base + second[None, :]).ravel())
    return {
        "prompt_category": category,
        "prompt_slots": prompt_slots,
        "reply_prompt": reply_prompt,
        "reply_model": model,
        "reply_features": features,
        "reply_quality": quality,
        "reply_slots": reply_slots,
        "reply_utility": utilities(features, quality, reply_category, n_schools),
        "cand_x": np.concatenate(xs),
        "cand_y": np.concatenate(ys),
    }


def build_pool(
    rng: np.random.Generator,
    quotas: tuple[int, int, int],
    n_schools: int,
    clear_margin: float,
    ambiguous_margin: float,
) -> Pool:
    """Grow a pool in chunks until it holds at least ``quotas`` candidate pairs of each kind."""
    chunks: list[dict[str, npt.NDArray[np.int64] | npt.NDArray[np.float64]]] = []
    have = np.zeros(3, dtype=np.int64)
    n_prompts = n_replies = 0
    need = np.array(quotas, dtype=np.float64)
    yield_per_prompt = np.array(_PRIOR_YIELD)
    for _ in range(_MAX_CHUNKS):
        missing = np.maximum(need - have, 0)
        if not missing.any():
            break
        size = int(np.ceil(1.15 * np.max(missing / yield_per_prompt))) + 20
        size = max(size, 200 - n_prompts, 20)
        chunk = _chunk(rng, size, n_schools, n_replies)
        chunk["reply_prompt"] = chunk["reply_prompt"] + n_prompts
        utility = chunk["reply_utility"]
        margins = utility[chunk["cand_x"] - n_replies] - utility[chunk["cand_y"] - n_replies]
        kind = classify(margins, clear_margin, ambiguous_margin)
        chunk["cand_kind"] = kind
        chunks.append(chunk)
        counts = np.bincount(kind[kind >= 0], minlength=3)
        have += counts
        n_prompts += size
        n_replies += len(chunk["reply_prompt"])
        yield_per_prompt = np.maximum(have / n_prompts, 1e-3)
    else:
        raise ValueError(f"could not find enough candidate pairs of each kind for {quotas}")
    merged = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
    return Pool(**merged)


def choose_pairs(
    rng: np.random.Generator, pool: Pool, quotas: tuple[int, int, int]
) -> npt.NDArray[np.int64]:
    """Draw ``quotas[kind]`` candidate pairs uniformly within each kind; return them shuffled."""
    chosen = []
    for kind, quota in enumerate(quotas):
        candidates = np.flatnonzero(pool.cand_kind == kind)
        chosen.append(rng.choice(candidates, size=quota, replace=False))
    picked = np.concatenate(chosen).astype(np.int64)
    return picked[rng.permutation(len(picked))]


@dataclass
class ChosenPairs:
    """Chosen pairs with rendered texts and content ids.

    Prompts and replies are re-indexed compactly (only those in a chosen pair). ``r1``/``r2`` are
    the replies in canonical order (``response_1`` has the smaller response id) and
    ``margins[j, k] = u_k(response_1) - u_k(response_2)``.
    """

    prompt: npt.NDArray[np.int64]
    r1: npt.NDArray[np.int64]
    r2: npt.NDArray[np.int64]
    kind: npt.NDArray[np.int64]
    margins: npt.NDArray[np.float64]
    pair_ids: list[str]
    prompt_texts: list[str]
    prompt_ids: list[str]
    prompt_category: npt.NDArray[np.int64]
    reply_texts: list[str]
    reply_text_ids: list[str]
    reply_ids: list[str]
    reply_prompt: npt.NDArray[np.int64]
    reply_model: npt.NDArray[np.int64]
    reply_features: npt.NDArray[np.float64]
    reply_utility: npt.NDArray[np.float64]


def _deduplicate(
    keys: list[Hashable], redraw: Callable[[npt.NDArray[np.int64], int], list[Hashable]]
) -> None:
    """Make ``keys`` unique by redrawing later repeats.

    ``redraw(positions, attempt)`` re-renders the entries at ``positions`` and returns their new
    keys; it is called until no key collides. ``keys`` is updated in place.
    """
    seen: set[Hashable] = set()
    pending = []
    for i, key in enumerate(keys):
        if key in seen:
            pending.append(i)
        seen.add(key)
    for attempt in range(_MAX_CHUNKS):
        if not pending:
            return
        positions = np.array(pending, dtype=np.int64)
        pending = []
        for i, key in zip(positions.tolist(), redraw(positions, attempt), strict=True):
            keys[i] = key
            if key in seen:
                pending.append(i)
            seen.add(key)
    raise RuntimeError("could not make the demo texts unique")


def materialise(rng: np.random.Generator, pool: Pool, chosen: npt.NDArray[np.int64]) -> ChosenPairs:
    """Render the texts of the chosen pairs, make them unique, and compute their ids.

    Prompt texts are made globally unique and reply texts unique within their prompt by
    redrawing the random slots of repeats (so distinct pool entries never share an id).
    """
    x, y = pool.cand_x[chosen], pool.cand_y[chosen]
    replies = np.unique(np.concatenate([x, y]))
    prompts = np.unique(pool.reply_prompt[replies])
    categories = pool.prompt_category[prompts]
    prompt_slots = pool.prompt_slots[prompts].copy()
    contexts = render_prompts(categories, prompt_slots)

    def redraw_prompts(positions: npt.NDArray[np.int64], attempt: int) -> list[Hashable]:
        prompt_slots[positions] = rng.integers(0, SLOT_HIGH, size=(len(positions), PROMPT_SLOTS))
        fresh = render_prompts(categories[positions], prompt_slots[positions])
        for i, ctx in zip(positions.tolist(), fresh, strict=True):
            contexts[i] = ctx
        return [ctx["prompt"] for ctx in fresh]

    _deduplicate([c["prompt"] for c in contexts], redraw_prompts)
    reply_prompt = np.searchsorted(prompts, pool.reply_prompt[replies])
    features = pool.reply_features[replies]
    reply_slots = pool.reply_slots[replies].copy()
    texts = render_replies(contexts, categories, reply_prompt, features, reply_slots)

    def redraw_replies(positions: npt.NDArray[np.int64], attempt: int) -> list[Hashable]:
        reply_slots[positions] = rng.integers(0, SLOT_HIGH, size=(len(positions), REPLY_SLOTS))
        fresh = render_replies(
            contexts,
            categories,
            reply_prompt[positions],
            features[positions],
            reply_slots[positions],
        )
        if attempt >= 20:  # tiny replies with few possible wordings: add a case reference
            fresh = [
                f"{t} (Ref. {10000 + reply_slots[i, 0] % 90000})"
                for i, t in zip(positions.tolist(), fresh, strict=True)
            ]
        for i, text in zip(positions.tolist(), fresh, strict=True):
            texts[i] = text
        return [(int(reply_prompt[i]), t) for i, t in zip(positions.tolist(), fresh, strict=True)]

    _deduplicate(list(zip(reply_prompt.tolist(), texts, strict=True)), redraw_replies)
    prompt_texts = [c["prompt"] for c in contexts]
    prompt_ids = [text_id(t) for t in prompt_texts]
    reply_text_ids = [text_id(t) for t in texts]
    reply_ids = [
        response_id(prompt_ids[p], t)
        for p, t in zip(reply_prompt.tolist(), reply_text_ids, strict=True)
    ]
    xc, yc = np.searchsorted(replies, x), np.searchsorted(replies, y)
    ids = np.array(reply_ids)
    swap = ids[xc] > ids[yc]
    r1, r2 = np.where(swap, yc, xc), np.where(swap, xc, yc)
    utility = pool.reply_utility[replies]
    pair_prompt = reply_prompt[r1]
    pair_ids = [
        pair_id(prompt_ids[p], reply_ids[a], reply_ids[b])
        for p, a, b in zip(pair_prompt.tolist(), r1.tolist(), r2.tolist(), strict=True)
    ]
    return ChosenPairs(
        prompt=pair_prompt,
        r1=r1,
        r2=r2,
        kind=pool.cand_kind[chosen],
        margins=utility[r1] - utility[r2],
        pair_ids=pair_ids,
        prompt_texts=prompt_texts,
        prompt_ids=prompt_ids,
        prompt_category=categories,
        reply_texts=texts,
        reply_text_ids=reply_text_ids,
        reply_ids=reply_ids,
        reply_prompt=reply_prompt,
        reply_model=pool.reply_model[replies],
        reply_features=features,
        reply_utility=utility,
    )
