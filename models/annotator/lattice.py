"""The lattice of pair states ``(mu, Delta)`` the grid EM integrates over.

A pair's consensus margin ``mu`` and its zero-sum school deviations ``Delta`` take values on a
regular lattice of step ``h``; school ``k``'s margin is ``mu + Delta_k``. A plain data type and
its constructor, used by the grid EM, its priors, the predictions and the saved fits.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from dissensus.warehouse.errors import DissensusError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Lattice:
    """Pair states ``(mu, Delta)``: school ``k`` margin ``h * midx[state, k]`` (shifted index)."""

    step: float
    n_mu: int
    deviations: IntArray  # (n_delta, K) zero-sum integer offsets, row 0 = no deviation
    mu_values: FloatArray  # (n_mu,)
    m_values: FloatArray  # (M,) margin values on the lattice
    midx: IntArray  # (S, K) index into m_values
    state_mu: IntArray  # (S,)
    state_delta: IntArray  # (S,)
    mirror: IntArray  # (S,) the state with response 1 and 2 swapped: (mu, Delta) -> (-mu, -Delta)

    @property
    def n_states(self) -> int:
        return int(self.midx.shape[0])

    @property
    def n_schools(self) -> int:
        return int(self.deviations.shape[1])

    @property
    def mu_limit(self) -> float:
        """The largest consensus margin on the lattice (``make_lattice``'s ``mu_limit``)."""
        return float(self.mu_values[-1])

    @property
    def dev_limit(self) -> float:
        """The largest school deviation on the lattice (``make_lattice``'s ``dev_limit``)."""
        return float(self.step * np.abs(self.deviations).max())

    def margins(self) -> FloatArray:
        """``(S, K)`` school margins of every state."""
        return self.m_values[self.midx]



def make_lattice(n_schools: int, step: float, mu_limit: float, dev_limit: float) -> Lattice:
    """Build the pair-state lattice; deviations are zero-sum integer vectors (times ``step``)."""
    n_half = round(mu_limit / step)
    mu_int = np.arange(-n_half, n_half + 1)
    c_max = max(round(dev_limit / step), 1)
    if n_schools == 1:
        devs = [(0,)]
    elif n_schools == 2:
        devs = [(0, 0)] + [(c, -c) for c in range(-c_max, c_max + 1) if c != 0]
    elif n_schools == 3:
        devs = [(0, 0, 0)] + [
            (a, b, -a - b)
            for a, b in itertools.product(range(-c_max, c_max + 1), repeat=2)
            if (a, b) != (0, 0) and abs(a + b) <= c_max
        ]
    else:
        raise DissensusError(
            f"the pair-state lattice cannot hold {n_schools} schools",
            where="annotator model, grid EM", expected="1, 2 or 3 schools",
            fix="set n_schools to 'auto', 1, 2 or 3",
        )
    deviations = np.asarray(devs, dtype=np.int64)
    n_delta = deviations.shape[0]
    state_mu = np.repeat(np.arange(mu_int.size), n_delta)
    state_delta = np.tile(np.arange(n_delta), mu_int.size)
    m_int = mu_int[state_mu][:, None] + deviations[state_delta]
    lo, hi = int(m_int.min()), int(m_int.max())
    dev_index = {tuple(row): t for t, row in enumerate(deviations.tolist())}
    neg_delta = np.array([dev_index[tuple((-deviations[t]).tolist())] for t in range(n_delta)])
    mirror = (mu_int.size - 1 - state_mu) * n_delta + neg_delta[state_delta]
    return Lattice(
        step=step,
        n_mu=mu_int.size,
        deviations=deviations,
        mu_values=step * mu_int.astype(float),
        m_values=step * np.arange(lo, hi + 1, dtype=float),
        midx=(m_int - lo).astype(np.int64),
        state_mu=state_mu,
        state_delta=state_delta,
        mirror=mirror.astype(np.int64),
    )
