"""Errors of the annotator model, each a :class:`~dissensus.warehouse.errors.DissensusError`
that says what went wrong, where, what was expected and what to do."""

from __future__ import annotations

from dissensus.warehouse.errors import DissensusError


class AnnotatorDataError(DissensusError, ValueError):
    """The comparisons cannot be fitted (or predicted) as given."""


class FitMismatchError(DissensusError):
    """A saved fit does not match the model type, version or configuration asked for."""


class NotFittedError(DissensusError, ValueError):
    """The model was asked for results before it was fitted or loaded."""


class PredictionUnavailableError(DissensusError, NotImplementedError):
    """The fit does not carry what a prediction needs (only grid-EM fits do)."""
