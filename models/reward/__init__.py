"""Reward models that respect disagreement: plain, weighted, multi-head and distributional.

Encoder (offline all-MiniLM-L6-v2 by default) -> frozen embeddings (cached by text hash) -> a
small trunk with heads trained with Bradley-Terry-family losses. See ``heads`` for the math.
"""

from dissensus.models.reward.config import (
    DistributionalConfig,
    MultiHeadConfig,
    PlainConfig,
    RewardConfig,
    WeightedConfig,
    make_config,
)
from dissensus.models.reward.errors import (
    CheckpointMismatchError,
    DeviceUnavailableError,
    EncoderNotFoundError,
    MissingFitError,
    RewardInputError,
    RewardModelError,
)

__all__ = [
    "CheckpointMismatchError",
    "DeviceUnavailableError",
    "DistributionalConfig",
    "EncoderNotFoundError",
    "MissingFitError",
    "MultiHeadConfig",
    "PlainConfig",
    "RewardConfig",
    "RewardInputError",
    "RewardModelError",
    "WeightedConfig",
    "make_config",
]
