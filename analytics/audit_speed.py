"""How much a reviewer's speed says about lapses, read from the pool it comes from.

Speed is evidence only where it goes with lapses. In a pool whose careless reviewers rush and
whose careful ones take their time, "fast" nearly settles it; where practised experts are as
fast as the careless (the robustness world ``fast_experts``), it says much less, and the rule
"fast and below the pool's median reliability" flagged 6.5% of that world's careful reviewers.

With a fit, each reviewer's votes already carry a Bayes factor, lapses : careful, against the
pool's odds (``lapse_evidence``). Speed joins it as a second, conditionally independent witness
in a two-class latent model over the reviewers (the Dawid & Skene 1979 construction, with the
votes and the speed check as the two "annotators" of each reviewer's class)::

    P(careless_r | votes, fast_r) ∝ pi * BF_r * a^f_r (1 - a)^(1 - f_r)
    P(careful_r  | votes, fast_r) ∝ (1 - pi) * b^f_r (1 - b)^(1 - f_r)

``pi`` the careless share, ``a`` and ``b`` the share of fast reviewers among the careless and
the careful, learned by EM over every reviewer with a speed reading and a Bayes factor (each
share smoothed by one fast and one slow reviewer). A fast reviewer is flagged where the
posterior reaches ``AuditConfig.flag_probability``, the bar the fit's own lapse flag uses, or
where "fast" is ``AuditConfig.strong_speed_ratio`` times likelier from the careless in this
pool and their votes lean toward lapses at all (Bayes factor above 1).

Without a fit there is no Bayes factor, so the same two-class model reads each reviewer's
model-free reliability as about ``reliability * n_votes`` agreements in ``n_votes`` (one-coin
binomials, a careless and a careful agreement rate learned with the speed shares): the votes'
Bayes factor is then ``(p_careless / p_careful)^A ((1 - p_careless) / (1 - p_careful))^(n - A)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from dissensus.analytics.audit_config import AuditConfig
from dissensus.analytics.audit_words import number as _f


@dataclass(frozen=True)
class SpeedEvidence:
    """What "fast" says in this pool: the share of fast reviewers among the careless
    (``fast_careless``) and the careful (``fast_careful``) and the careless share ``pi``;
    without a fit also the two classes' agreement rates, which give the votes' Bayes factor."""

    fast_careless: float
    fast_careful: float
    pi: float
    reviewers: int
    agreement: tuple[float, float] | None = None  # (careless, careful) rates, without a fit

    @property
    def ratio(self) -> float:
        """The likelihood ratio of "fast", careless : careful."""
        return self.fast_careless / self.fast_careful

    def votes_factor(self, reliability: float, n_votes: int) -> float:
        """Without a fit: the Bayes factor, careless : careful, of about ``reliability *
        n_votes`` agreements in ``n_votes`` under the two classes' agreement rates."""
        assert self.agreement is not None
        return float(np.exp(_log_factor(np.array([reliability * n_votes]),
                                        np.array([float(n_votes)]), *self.agreement)[0]))

    def posterior(self, evidence: float, fast: bool) -> float:
        """P(careless) of a reviewer whose votes' Bayes factor is ``evidence``."""
        a, b = ((self.fast_careless, self.fast_careful) if fast else
                (1 - self.fast_careless, 1 - self.fast_careful))
        careless = self.pi * evidence * a
        return careless / (careless + (1 - self.pi) * b)

    def words(self) -> str:
        """What speed says here, as a lead can check it."""
        return (f"in this pool about {self.fast_careless:.0%} of the reviewers that votes and "
                f"speed together read as careless are fast, against {self.fast_careful:.0%} of "
                f"the rest ({self.reviewers} reviewers): fast is {self.ratio:.1f}x as likely "
                "from the first")


def speed_evidence(df: pl.DataFrame, min_votes: int, model: bool,
                   sweeps: int = 300) -> SpeedEvidence | None:
    """:class:`SpeedEvidence` from the audit's joined checks ``df`` (``fast``, ``n_votes`` and
    ``model_lapse_evidence`` with a fit, ``reliability`` without), over reviewers with
    ``min_votes`` votes and a speed reading; None where there are none or none of them is fast."""
    if "fast" not in df.columns or (model and "model_lapse_evidence" not in df.columns):
        return None
    votes = pl.col("model_lapse_evidence").fill_nan(None) if model else pl.col("reliability")
    read = df.filter((pl.col("n_votes") >= min_votes) & pl.col("fast").is_not_null()
                     & votes.is_not_null())
    if read.height == 0:
        return None
    fast = read["fast"].to_numpy().astype(float)
    if not fast.any():  # nobody's speed is weighed: spare the EM
        return None
    n = read["n_votes"].to_numpy().astype(float)
    agree = None if model else read["reliability"].to_numpy().astype(float) * n
    rates = None if agree is None else (float(np.quantile(agree / n, 0.25)),
                                         float(np.quantile(agree / n, 0.75)))
    log_bf = (np.log(np.clip(read["model_lapse_evidence"].to_numpy().astype(float),
                             1e-12, 1e12)) if model else np.zeros(n.size))
    pi, a, b = 0.2, 0.5, 0.2
    for _ in range(sweeps):  # EM: the classes' posteriors, then what they imply
        if agree is not None and rates is not None:
            log_bf = _log_factor(agree, n, *rates)
        log_careless = np.log(pi) + log_bf + np.log(np.where(fast > 0, a, 1 - a))
        log_careful = np.log(1 - pi) + np.log(np.where(fast > 0, b, 1 - b))
        w = 1.0 / (1.0 + np.exp(np.clip(log_careful - log_careless, -700, 700)))
        new = (float(np.clip(w.mean(), 0.01, 0.99)), _share(fast, w), _share(fast, 1 - w))
        if agree is not None:
            low = float((w @ agree + 1) / (w @ n + 2))
            high = float(((1 - w) @ agree + 1) / ((1 - w) @ n + 2))
            rates = (min(low, high), max(low, high))  # the careless agree less, by definition
        if max(abs(x - y) for x, y in zip(new, (pi, a, b), strict=True)) < 1e-9:
            break
        pi, a, b = new
    return SpeedEvidence(a, b, pi, read.height, rates)


def what_speed_says(row: dict, pool_rel: float, model: bool, speed: SpeedEvidence | None,
                     cfg: AuditConfig) -> tuple[str, str]:
    """The reason a fast reviewer's speed adds, and what it says with their votes: "lapses"
    (a flag), "unsettled" or "careful". Lapses: the posterior of "careless" from their votes'
    Bayes factor (the fit's ``lapse_evidence``; without a fit, their agreement under the pool's
    two agreement rates) and their speed reaches ``flag_probability`` (:class:`SpeedEvidence`).
    Careful: that factor times speed's favours careful ``settled_bayes_factor`` to 1, as "ok"
    asks of the votes alone. With nothing to weigh speed by, a reliability interval wholly
    below the pool median ``pool_rel`` flags."""
    evidence = row.get("model_lapse_evidence")
    rel, high = row.get("reliability"), row.get("reliability_high")
    if speed is None or (model and (evidence is None or evidence != evidence)) or (
            not model and rel is None):
        # nothing to weigh speed with (a fit stored before lapse_evidence, or too few timed
        # reviewers): an interval wholly below the pool median still speaks
        if high is not None and high < pool_rel:
            return (f"reliability {_f(rel)} ({_f(row.get('reliability_low'))}–{_f(high)}) "
                    f"wholly below the pool median {_f(pool_rel)}", "lapses")
        return ("speed alone is not evidence of lapses, and nothing here tells what it says "
                "in this pool", "unsettled")
    if model:
        votes = f"their votes favour lapses {float(evidence):.2g} to 1"
    else:
        assert speed.agreement is not None
        evidence = speed.votes_factor(float(rel), int(row["n_votes"]))
        careless, careful = speed.agreement
        votes = (f"their agreement {_f(rel)} over {row['n_votes']} votes favours lapses "
                 f"{evidence:.2g} to 1 (the pool's careless agree about {careless:.2f}, its "
                 f"careful {careful:.2f})")
    bar = cfg.flag_probability
    p = speed.posterior(float(evidence), fast=True)
    strong = speed.ratio >= cfg.strong_speed_ratio and float(evidence) > 1.0
    # careful as "ok" is careful: the votes, with speed's factor, favour it settled_bayes_factor
    # to 1
    settled = float(evidence) * speed.ratio <= 1.0 / cfg.settled_bayes_factor
    says = "lapses" if p >= bar or strong else "careful" if settled else "unsettled"
    why = ("" if p >= bar else
           "; speed is strong evidence in this pool and their votes lean the same way"
           if strong else f", short of the {bar:g} a flag needs")
    return f"{votes}, and {speed.words()}: P(careless) {p:.2f} from both{why}", says


def _log_factor(agree: np.ndarray, n: np.ndarray, careless: float,
                careful: float) -> np.ndarray:
    """log Bayes factor, careless : careful, of ``agree`` agreements in ``n`` votes."""
    careless, careful = (min(max(r, 1e-6), 1 - 1e-6) for r in (careless, careful))
    return (agree * np.log(careless / careful)
            + (n - agree) * np.log((1 - careless) / (1 - careful)))


def _share(fast: np.ndarray, weight: np.ndarray) -> float:
    """The weighted share of fast reviewers, smoothed by one fast and one slow (Laplace)."""
    return float((weight @ fast + 1.0) / (weight.sum() + 2.0))
