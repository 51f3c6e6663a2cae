"""Errors of the reward models, each a :class:`~warehouse.errors.DissensusError` in words."""

from __future__ import annotations

from dissensus.warehouse.errors import DissensusError


class RewardModelError(DissensusError):
    """A reward-model run cannot go on; the message says why and what to do."""


class RewardInputError(RewardModelError, ValueError):
    """Settings or data the reward models cannot use as given (also a ``ValueError``)."""


class EncoderNotFoundError(RewardModelError):
    """The text encoder named is neither a known offline model nor a local model folder."""


class DeviceUnavailableError(RewardModelError):
    """The device asked for (e.g. CUDA) is not present on this machine."""


class MissingFitError(RewardModelError):
    """A weighted kind was asked for but there is no annotator-model fit to take weights from."""


class CheckpointMismatchError(RewardModelError):
    """A checkpoint does not match what it is loaded for (type, version, encoder, config)."""
