"""What a fit produces, whichever inference made it: :class:`FitResult`, and the progress
callback the fits report through.

The grid EM (:func:`.summarise.summarise_grid`) and the samplers
(:func:`.sampling.summarise_draws`) both fill a :class:`FitResult`; the estimator turns it into
the public tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .decomposition import PairDecomposition, Population
from .grid_em import GridState

if TYPE_CHECKING:
    from .school_choice import SchoolChoice

FloatArray = NDArray[np.float64]
Progress = Callable[[str, float], None]
"""``progress(label, fraction)``: what is running and how far it is (0 to 1)."""


@dataclass
class FitResult:
    """Everything the estimator turns into the public tables (reviewer, pair, judgment order)."""

    method: str
    n_schools: int
    seconds: float
    school_weights: FloatArray
    reliability: FloatArray
    reliability_low: FloatArray
    reliability_high: FloatArray
    p_unreliable: FloatArray  # P(reliability < flag_min_reliability)
    lapse_evidence: FloatArray  # Bayes factor: lapses more than the pool's careful reviewers
    bias_mean: FloatArray
    bias_low: FloatArray
    bias_high: FloatArray
    p_strong_bias: FloatArray  # P(|beta - bias_centre| > position_bias_flag)
    school_probs: FloatArray  # (R, K), schools ordered largest first
    careful_prob: FloatArray  # (N,) in model order
    pairs: PairDecomposition
    expected_lapses: FloatArray  # (J,)
    population: Population
    diagnostics: dict[str, Any] = field(default_factory=dict)
    grid_state: GridState | None = None
    idata: Any = None  # arviz.InferenceData for NUTS / ADVI
    bias_centre: float = 0.0  # the pool's typical position bias (flags are read against it)
    school_choice: SchoolChoice | None = None  # grid EM: K and the lapse model, as chosen
