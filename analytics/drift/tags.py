"""A tag classifier for traffic that carries no tags: what the observability rates read then.

Per tag (refusal, escalation, hallucination, ...; those with at least ``min_each`` tagged and
untagged training replies), a logistic regression on the turn's joint embedding
(:func:`~dissensus.analytics.drift.reference.joint_features`) is fitted on the run's training
replies whose prompts are *in* the kNN index and scored on the held-out prompts' replies, so the
accuracy shown beside the rates is measured on prompts the classifier never saw. A turn gets a
tag when its predicted probability reaches the tag's threshold, chosen on the training rows so
that as many are tagged as truly carry the tag (at 1/2, a rare tag would almost never be
predicted and its rate would read as zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

#: The tags the product leads' rates read.
RATE_TAGS = ("refusal", "escalation", "hallucination", "false_refusal")


@dataclass
class TagModel:
    """Fitted classifiers by tag and their held-out accuracy (and the base rate beside it)."""

    models: dict[str, LogisticRegression] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)

    def predict(self, features: npt.NDArray[np.float32]) -> list[list[str] | None]:
        """The predicted tags of each row (None when no classifier could be fitted)."""
        if not self.models:
            return [None] * len(features)
        hits = {tag: model.predict_proba(features)[:, 1] >= self.thresholds[tag]
                for tag, model in self.models.items()}
        return [[tag for tag in hits if hits[tag][i]] for i in range(len(features))]


def fit_tag_model(features: npt.NDArray[np.float32], tags: list[list[str] | None],
                  held: npt.NDArray[np.bool_], min_each: int = 10, seed: int = 0) -> TagModel:
    """Fit one classifier per tag on the rows not ``held`` out; accuracy on the held-out rows."""
    result = TagModel()
    for tag in RATE_TAGS:
        y = np.array([bool(t) and tag in t for t in tags])
        train, test = ~held, held
        if min(y[train].sum(), (~y[train]).sum()) < min_each or test.sum() < min_each:
            continue
        model = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
        model.fit(features[train], y[train])
        fitted = model.predict_proba(features[train])[:, 1]
        threshold = float(np.quantile(fitted, 1.0 - y[train].mean()))
        predicted = model.predict_proba(features[test])[:, 1] >= threshold
        result.models[tag] = model
        result.thresholds[tag] = threshold
        result.accuracy[tag] = {
            "held_out_accuracy": float((predicted == y[test]).mean()),
            "held_out_base_rate": float(y[test].mean()), "n_held_out": int(test.sum())}
    return result
