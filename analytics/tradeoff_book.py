"""The trade-off inputs coded as arrays, and the trade-off computations on them.

:class:`TradeoffBook` codes responses, pairs, schools and sources once: responses are ordered by
(prompt id, response id), so every prompt is a contiguous segment and "the smallest response id
among the top scores" is the first top score of the segment; a source is a float array over the
responses (NaN: not scored); the votes are two (school x pair) arrays. After that, a source's
picks are one ``maximum.reduceat`` and every rate or satisfaction is a ``bincount`` over
categories, so a what-if with new weights costs milliseconds, not a pass over a million rows.
The definitions are in :mod:`dissensus.analytics.tradeoffs`, which builds books from frames.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import polars as pl

URGENT_CATEGORIES: tuple[str, ...] = ("urgent_symptoms",)
FLAGS: tuple[str, ...] = ("refusal", "escalation", "hallucination", "hedge", "appointment_offer")
ALL = "all"
REVIEWERS = "reviewers: "
OVERALL = "(all)"
RATES: tuple[str, ...] = ("refusal_rate", "escalation_rate", "false_refusal_rate",
                          "hallucination_rate")
RESPONSE_COLUMNS: tuple[str, ...] = ("response_id", "prompt_id", "category", "tags", *FLAGS)
VOTE_ID_COLUMNS: tuple[str, ...] = ("pair_id", "prompt_id", "response_1_id", "response_2_id")


def vote_schools(votes: pl.DataFrame) -> list[str]:
    """The schools of a wide votes frame (columns ``w:<school>``), in column order."""
    return [c[2:] for c in votes.columns if c.startswith("w:")]


def school_sources_of(names: list[str] | set[str]) -> dict[str, str]:
    """School -> source among source ``names``: a multi-head run's ``reward: school_k`` heads
    when present, else the reviewers' own per-school scores."""
    heads = {f"school {s.split('_')[-1]}": s for s in names if s.startswith("reward: school_")}
    if heads:
        return dict(sorted(heads.items()))
    return {s[len(REVIEWERS):]: s for s in sorted(names)
            if s.startswith(REVIEWERS) and s != REVIEWERS + ALL}


def require(frame: pl.DataFrame, columns: tuple[str, ...] | list[str], what: str) -> None:
    """Fail in words when ``frame`` lacks a column this computation needs."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs the columns {', '.join(columns)}; missing: "
                         f"{', '.join(missing)} (got {', '.join(frame.columns) or 'none'}). Build "
                         "it with the loaders of analytics.tradeoffs.")


def _first_per_segment(segment_of_hit: np.ndarray) -> np.ndarray:
    """Positions of the first hit of each segment in a non-decreasing array of segment codes."""
    if segment_of_hit.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, segment_of_hit[1:] != segment_of_hit[:-1]])


def _zscore(s: np.ndarray) -> np.ndarray:
    """Standardised over the scored responses (sample sd, as polars' ``std``; 1 when zero)."""
    scored = s[~np.isnan(s)]
    if scored.size == 0:
        return s.copy()
    sd = float(scored.std(ddof=1)) if scored.size > 1 else 0.0
    return (s - scored.mean()) / (sd if sd > 0 else 1.0)


@dataclass(frozen=True, eq=False)
class TradeoffBook:
    """Responses, pairs, votes and sources coded as arrays; see the module docstring.

    R responses, P prompts, N pairs, S schools (``all`` first when present).
    """

    response_ids: np.ndarray      # (R,) str, ordered by prompt id then response id
    prompt_ids: np.ndarray        # (P,) str
    prompt_of: np.ndarray         # (R,) prompt index of each response
    prompt_start: np.ndarray      # (P,) first response of each prompt
    categories: list[str]
    prompt_category: np.ndarray   # (P,) category index
    flags: dict[str, np.ndarray]  # flag -> (R,) bool
    tags: np.ndarray              # (R,) str, the tags joined with ", "
    has_alternative: np.ndarray   # (P,) some reply neither refuses nor hallucinates
    pair_r1: np.ndarray           # (N,) response index of response 1
    pair_r2: np.ndarray           # (N,)
    schools: list[str]
    w: np.ndarray                 # (S, N) careful-weighted vote weight (0: no vote)
    share_1: np.ndarray           # (S, N) share for response 1 (NaN where w = 0)
    sources: dict[str, np.ndarray]  # name -> (R,) score (NaN: not scored)

    # ---- building -----------------------------------------------------------------------

    @classmethod
    def build(cls, responses: pl.DataFrame, votes: pl.DataFrame,
              scores: pl.DataFrame | None = None, *, reviewer_sources: bool = True
              ) -> TradeoffBook:
        """Code ``responses`` (:func:`analytics.tradeoffs.responses_frame`), the wide ``votes``
        (:func:`analytics.tradeoffs.school_votes`) and the long ``scores`` (response_id, source,
        score); with ``reviewer_sources`` each school's own scores become sources too."""
        require(responses, RESPONSE_COLUMNS, "The trade-offs' responses frame")
        require(votes, VOTE_ID_COLUMNS, "The trade-offs' votes frame")
        ordered = responses.select(RESPONSE_COLUMNS).sort("prompt_id", "response_id")
        prompt_of = ordered["prompt_id"].rle_id().to_numpy().astype(np.int64)
        starts = _first_per_segment(prompt_of)
        firsts = ordered[starts]
        categories = sorted(set(firsts["category"].to_list()))
        cat_index = {c: i for i, c in enumerate(categories)}
        flags = {f: ordered[f].fill_null(False).to_numpy().astype(bool) for f in FLAGS}
        usable = ~flags["refusal"] & ~flags["hallucination"]
        has_alternative = np.maximum.reduceat(usable, starts) if starts.size else usable[:0]
        codes = ordered.select("response_id", i=pl.int_range(pl.len(), dtype=pl.Int64))
        schools = vote_schools(votes)
        pairs = (votes.join(codes.rename({"response_id": "response_1_id", "i": "i1"}),
                            on="response_1_id")
                 .join(codes.rename({"response_id": "response_2_id", "i": "i2"}),
                       on="response_2_id"))
        w = np.stack([pairs[f"w:{s}"].fill_null(0.0).to_numpy() for s in schools]) \
            if schools else np.zeros((0, pairs.height))
        share = np.stack([pairs[f"share_1:{s}"].fill_null(np.nan).to_numpy() for s in schools]) \
            if schools else np.zeros((0, pairs.height))
        share = np.where(w > 0, share, np.nan)
        book = cls(
            response_ids=ordered["response_id"].to_numpy(),
            prompt_ids=firsts["prompt_id"].to_numpy(),
            prompt_of=prompt_of, prompt_start=starts, categories=categories,
            prompt_category=np.array([cat_index[c] for c in firsts["category"].to_list()],
                                     dtype=np.int64),
            flags=flags,
            tags=ordered["tags"].list.join(", ").fill_null("").to_numpy(),
            has_alternative=np.asarray(has_alternative, dtype=bool),
            pair_r1=pairs["i1"].to_numpy(), pair_r2=pairs["i2"].to_numpy(),
            schools=schools, w=w, share_1=share, sources={},
        )
        if reviewer_sources:
            book = book.with_sources(book.reviewer_sources())
        if scores is not None:
            book = book.with_scores(scores)
        return book

    def with_sources(self, sources: dict[str, np.ndarray]) -> TradeoffBook:
        """A book with ``sources`` added (arrays over this book's responses)."""
        return replace(self, sources={**self.sources, **sources})

    def with_scores(self, scores: pl.DataFrame) -> TradeoffBook:
        """A book with the sources of a long frame (response_id, source, score) added; scores of
        responses this book does not know are left out."""
        require(scores, ("response_id", "source", "score"), "Trade-off scores")
        codes = pl.DataFrame({"response_id": self.response_ids,
                              "i": np.arange(self.response_ids.size, dtype=np.int64)})
        coded = scores.select("response_id", "source", "score").join(codes, on="response_id")
        added = {}
        for (name,), part in coded.partition_by("source", as_dict=True).items():
            arr = np.full(self.response_ids.size, np.nan)
            arr[part["i"].to_numpy()] = part["score"].cast(pl.Float64).to_numpy()
            added[str(name)] = arr
        return self.with_sources(added)

    def reviewer_sources(self) -> dict[str, np.ndarray]:
        """``reviewers: <school>``: a response's mean (oriented) vote share over its pairs."""
        n = self.response_ids.size
        out = {}
        for k, school in enumerate(self.schools):
            voted = self.w[k] > 0
            r1, r2, s = self.pair_r1[voted], self.pair_r2[voted], self.share_1[k][voted]
            total = np.bincount(r1, s, n) + np.bincount(r2, 1 - s, n)
            count = np.bincount(r1, minlength=n) + np.bincount(r2, minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[REVIEWERS + school] = np.where(count > 0, total / count, np.nan)
        return out

    # ---- picks and rates ------------------------------------------------------------------

    def picks(self, score: np.ndarray) -> np.ndarray:
        """(P,) the response index each prompt's top score picks (smallest id on ties); -1 when
        no response of the prompt is scored."""
        picks = np.full(self.prompt_ids.size, -1, dtype=np.int64)
        if score.size == 0:
            return picks
        scored = ~np.isnan(score)
        filled = np.where(scored, score, -np.inf)
        top = np.maximum.reduceat(filled, self.prompt_start)
        hits = np.flatnonzero(scored & (filled == top[self.prompt_of]))
        first = hits[_first_per_segment(self.prompt_of[hits])]
        picks[self.prompt_of[first]] = first
        return picks

    @cached_property
    def _urgent(self) -> np.ndarray:
        return np.array([c in URGENT_CATEGORIES for c in self.categories], dtype=bool)

    def _rate_counts(self, picks: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per measure: (sum, count) per category."""
        c = len(self.categories)
        has = picks >= 0
        cat = self.prompt_category[has]
        chosen = picks[has]
        n = np.bincount(cat, minlength=c).astype(float)
        urgent = self._urgent[cat]
        refusal = self.flags["refusal"][chosen]
        return {
            "n_prompts": (n, n),
            "refusal_rate": (np.bincount(cat, refusal, c), n),
            "escalation_rate": (np.bincount(cat[urgent], self.flags["escalation"][chosen][urgent],
                                            c),
                                np.bincount(cat[urgent], minlength=c).astype(float)),
            "false_refusal_rate": (np.bincount(
                cat, refusal & self.has_alternative[np.flatnonzero(has)], c), n),
            "hallucination_rate": (np.bincount(cat, self.flags["hallucination"][chosen], c), n),
        }

    def _satisfaction(self, score: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per school: (sum of agreeing weight, sum of weight) per category."""
        c = len(self.categories)
        s1, s2 = score[self.pair_r1], score[self.pair_r2]
        both = ~np.isnan(s1) & ~np.isnan(s2)
        cat = self.prompt_category[self.prompt_of[self.pair_r1]]
        out = []
        for k in range(len(self.schools)):
            m = both & (self.w[k] > 0)
            share, w = self.share_1[k][m], self.w[k][m]
            agree = np.where(s1[m] > s2[m], share, np.where(s1[m] < s2[m], 1 - share, 0.5))
            out.append((np.bincount(cat[m], agree * w, c), np.bincount(cat[m], w, c)))
        return out

    def category_tradeoffs(self, sources: list[str] | None = None) -> pl.DataFrame:
        """Per source and category (plus ``(all)``): n_prompts, the four rates and
        ``satisfaction_<school>``; see :mod:`dissensus.analytics.tradeoffs` for the definitions."""
        names = sorted(self.sources) if sources is None else sources
        rows: dict[str, list] = {"source": [], "category": [], "n_prompts": []}
        rows |= {r: [] for r in RATES} | {f"satisfaction_{s}": [] for s in self.schools}
        labels = [*self.categories, OVERALL]
        for name in names:
            score = self.sources[name]
            counts = self._rate_counts(self.picks(score))
            sat = self._satisfaction(score)
            n = counts["n_prompts"][0]
            for j, label in enumerate(labels):
                overall = label == OVERALL
                if not (n.sum() if overall else n[j]):
                    continue
                rows["source"].append(name)
                rows["category"].append(label)
                rows["n_prompts"].append(int(n.sum() if overall else n[j]))
                for rate in RATES:
                    total, count = counts[rate]
                    t, m = (total.sum(), count.sum()) if overall else (total[j], count[j])
                    rows[rate].append(float(t / m) if m else None)
                for school, (agree, weight) in zip(self.schools, sat, strict=True):
                    a, m = (agree.sum(), weight.sum()) if overall else (agree[j], weight[j])
                    rows[f"satisfaction_{school}"].append(float(a / m) if m else None)
        schema = {"source": pl.String, "category": pl.String, "n_prompts": pl.UInt32}
        schema |= {c: pl.Float64 for c in rows if c not in schema}
        return pl.DataFrame(rows, schema=schema)

    # ---- what each school prefers ---------------------------------------------------------

    def tag_preferences(self) -> pl.DataFrame:
        """Per category, school and flag, on pairs where exactly one reply carries the flag:
        n_pairs, weight, share_for_flagged (the school's weighted share for the flagged reply)."""
        c = len(self.categories)
        cat = self.prompt_category[self.prompt_of[self.pair_r1]]
        rows: dict[str, list] = {k: [] for k in ("category", "school", "flag", "n_pairs",
                                                 "weight", "share_for_flagged")}
        for flag in FLAGS:
            one, two = self.flags[flag][self.pair_r1], self.flags[flag][self.pair_r2]
            for k, school in enumerate(self.schools):
                m = (one != two) & (self.w[k] > 0)
                share = np.where(one[m], self.share_1[k][m], 1 - self.share_1[k][m])
                w = self.w[k][m]
                n = np.bincount(cat[m], minlength=c)
                weight = np.bincount(cat[m], w, c)
                num = np.bincount(cat[m], share * w, c)
                for j in np.flatnonzero(n):
                    rows["category"].append(self.categories[j])
                    rows["school"].append(school)
                    rows["flag"].append(flag)
                    rows["n_pairs"].append(int(n[j]))
                    rows["weight"].append(float(weight[j]))
                    rows["share_for_flagged"].append(float(num[j] / weight[j]))
        return pl.DataFrame(rows, schema={"category": pl.String, "school": pl.String,
                                          "flag": pl.String, "n_pairs": pl.UInt32,
                                          "weight": pl.Float64,
                                          "share_for_flagged": pl.Float64}
                            ).sort("category", "flag", "school")

    def school_prevalence(self) -> dict[str, float]:
        """Each school's share of the careful-weighted votes; ``{}`` without schools."""
        per = {s: float(self.w[k].sum()) for k, s in enumerate(self.schools) if s != ALL}
        total = sum(per.values())
        return {s: w / total for s, w in sorted(per.items())} if total else {}

    # ---- what-if ----------------------------------------------------------------------------

    def school_sources(self) -> dict[str, str]:
        """School -> source (see :func:`school_sources_of`)."""
        return school_sources_of(set(self.sources))

    @cached_property
    def _standardised(self) -> dict[str, np.ndarray]:
        return {school: _zscore(self.sources[source])
                for school, source in self.school_sources().items()}

    def combined(self, weights: dict[str, float]) -> np.ndarray:
        """``sum_k w_k z_k / sum_k w_k`` over the school sources (missing z's left out)."""
        z = self._standardised
        total = sum(max(weights.get(k, 0.0), 0.0) for k in z)
        if total <= 0:
            raise ValueError("at least one school needs a positive weight")
        stack = np.stack([max(weights.get(k, 0.0), 0.0) / total * v for k, v in z.items()])
        present = (~np.isnan(stack)).any(axis=0)
        return np.where(present, np.nansum(stack, axis=0), np.nan)

    def what_if(self, weights: dict[str, float],
                baseline: dict[str, float] | None = None) -> WhatIf:
        """What the combined score prefers under ``weights`` and what changes against
        ``baseline`` (default: each school's share of the votes)."""
        mapping = self.school_sources()
        if not mapping:
            raise ValueError("what-if needs per-school scores: a fit with schools, or a "
                             "multi-head run")
        base_w = baseline if baseline is not None else (
            self.school_prevalence() or {k: 1.0 for k in mapping})
        both = replace(self, sources={"baseline": self.combined(base_w),
                                      "what-if": self.combined(weights)})
        summary = both.category_tradeoffs(["baseline", "what-if"])
        before, after = both.picks(both.sources["baseline"]), both.picks(both.sources["what-if"])
        kept = np.flatnonzero((before >= 0) & (after >= 0))
        changed = kept[before[kept] != after[kept]]
        changes = pl.DataFrame({
            "prompt_id": self.prompt_ids[changed],
            "category": [self.categories[c] for c in self.prompt_category[changed]],
            "before_id": self.response_ids[before[changed]],
            "after_id": self.response_ids[after[changed]],
            "before_tags": self.tags[before[changed]],
            "after_tags": self.tags[after[changed]],
        }, schema={"prompt_id": pl.String, "category": pl.String, "before_id": pl.String,
                   "after_id": pl.String, "before_tags": pl.String, "after_tags": pl.String}
        ).sort("category", "prompt_id")
        return WhatIf(dict(weights), dict(base_w), int(kept.size), int(changed.size), summary,
                      changes)


@dataclass(frozen=True)
class WhatIf:
    """Result of :meth:`TradeoffBook.what_if`."""

    weights: dict[str, float]
    baseline_weights: dict[str, float]
    n_prompts: int
    n_changed: int
    summary: pl.DataFrame   # category_tradeoffs of 'baseline' and 'what-if'
    changes: pl.DataFrame   # prompt_id, category, before_id, after_id, before_tags, after_tags
