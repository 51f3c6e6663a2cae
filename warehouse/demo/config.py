"""Settings of a simulated world: :class:`WorldConfig`, kept apart from the simulator."""

from __future__ import annotations

from dataclasses import dataclass

from dissensus.warehouse.demo.schools import school_names


@dataclass(frozen=True)
class WorldConfig:
    """Settings of a simulated world; every share is a fraction in [0, 1]."""

    n_comparisons: int = 5_000
    """Number of comparison rows, deliberate repeats included."""
    n_reviewers: int | None = None
    """Number of reviewers; ``None`` means ``max(20, n_comparisons // 40)``."""
    n_schools: int = 2
    """Viewpoints: 1 (null world, access_first only), 2 (+ caution_first) or 3 (+ empathy_first)."""
    minority_share: float = 0.35
    """Share of reviewers outside the majority school (split evenly among minority schools)."""
    rushed_share: float = 0.15
    """Share of reviewers who are rushed (lapse rate 0.30-0.50 instead of 0-0.08)."""
    position_biased_share: float = 0.10
    """Share of reviewers, all careful, with a strong first-shown bias (beta 0.8-1.5)."""
    contested_share: float = 0.20
    """Share of pairs on which schools disagree (ignored when n_schools = 1)."""
    ambiguous_share: float = 0.15
    """Share of pairs that every school finds nearly even."""
    votes_per_pair: tuple[int, int] = (3, 8)
    """Inclusive range of distinct reviewers per pair (repeats come on top)."""
    tie_threshold: float = 0.5
    """tau of the ordered-logit tie model: P(tie) = 1 - s(eta - tau) - s(-eta - tau)."""
    gold_share: float = 0.03
    """Approximate share of rows carrying a gold answer (whole clear pairs are gold)."""
    repeat_share: float = 0.02
    """Share of rows that repeat an earlier (reviewer, pair) judgment."""
    seed: int = 0
    """Seed of every random draw; equal configs give identical worlds."""
    lapse_length_lean: float = 0.0
    """In [-1, 1]: this share of lapses picks the longer reply (or, when negative, the shorter)
    instead of the position-tilted coin; 0 in the demo world, where a lapse has no direction."""
    clear_margin: float = 1.0
    """A school's preference is clear when ``|m| >= clear_margin``."""
    ambiguous_margin: float = 0.3
    """A pair is ambiguous when ``|m_k| < ambiguous_margin`` for every school."""

    def __post_init__(self) -> None:
        """Reject settings the simulator cannot honour."""
        shares = (
            self.minority_share,
            self.rushed_share,
            self.position_biased_share,
            self.contested_share,
            self.ambiguous_share,
            self.gold_share,
            self.repeat_share,
        )
        if any(not 0.0 <= s <= 1.0 for s in shares):
            raise ValueError("every share must lie in [0, 1]")
        if not -1.0 <= self.lapse_length_lean <= 1.0:
            raise ValueError("lapse_length_lean must lie in [-1, 1]")
        if self.contested_share + self.ambiguous_share > 1.0:
            raise ValueError("contested_share + ambiguous_share must not exceed 1")
        if self.n_comparisons < 1:
            raise ValueError("n_comparisons must be at least 1")
        if self.n_reviewers is not None and self.n_reviewers < 1:
            raise ValueError("n_reviewers must be at least 1")
        low, high = self.votes_per_pair
        if not 1 <= low <= high:
            raise ValueError("votes_per_pair must be (low, high) with 1 <= low <= high")
        if self.tie_threshold < 0 or not 0 <= self.ambiguous_margin <= self.clear_margin:
            raise ValueError("need tie_threshold >= 0 and 0 <= ambiguous_margin <= clear_margin")
        school_names(self.n_schools)

    @property
    def reviewer_count(self) -> int:
        """The number of reviewers actually simulated."""
        return self.n_reviewers or max(20, self.n_comparisons // 40)
