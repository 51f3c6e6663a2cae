"""Compiled inner loops of the grid EM (numba, which PyMC's pytensor already depends on).

Both sweeps work in the probability domain with per-step rescaling (products of many messages
never underflow; states that fall below 1e-300 of the best are negligible), and run in parallel
over pairs or reviewers.

Notation (see :mod:`.grid_em`): a judgment ``v`` has outcome ``y``, presentation ``s``; a pair
state ``st`` gives school ``k`` the margin ``m_values[midx[st, k]]``; a reviewer state is
``(k, g, b)``: school, lapse rate ``e_grid[g]`` and position bias ``b``. Careful probabilities
``P_c(y | m + b s)`` are read from a table on the half-step lattice ``x_lo + i * step / 2``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _expit(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    ex = math.exp(x)
    return ex / (1.0 + ex)


@njit(cache=True)
def careful_table(x: np.ndarray, tau: float) -> np.ndarray:
    """``out[y + 1, i, c]`` for ``c`` = (P, dlogP/dtau, d2logP/dtau2) at margin ``x[i]``."""
    out = np.empty((3, x.shape[0], 3))
    for i in range(x.shape[0]):
        eta = x[i]
        a = tau - eta
        b = tau + eta
        sa = _expit(a)
        sb = _expit(b)
        smb = _expit(-b)
        va = sa * (1.0 - sa)
        vb = sb * (1.0 - sb)
        out[2, i, 0] = _expit(-a)
        out[2, i, 1] = -sa
        out[2, i, 2] = -va
        out[0, i, 0] = _expit(-b)
        out[0, i, 1] = -sb
        out[0, i, 2] = -vb
        p0 = max(sa - smb, 1e-12)
        d1b = smb * (1.0 - smb)
        d2a = va * (1.0 - 2.0 * sa)
        d2b = d1b * (1.0 - 2.0 * smb)
        dt = (va + d1b) / p0
        out[1, i, 0] = p0
        out[1, i, 1] = dt
        out[1, i, 2] = (d2a - d2b) / p0 - dt * dt
    return out


@njit(cache=True, parallel=True)
def pair_pass(
    starts: np.ndarray,
    y: np.ndarray,
    s: np.ndarray,
    a_msg: np.ndarray,
    b_msg: np.ndarray,
    tables: np.ndarray,
    lev: np.ndarray,
    m2: np.ndarray,
    b_half: int,
    midx: np.ndarray,
    log_prior: np.ndarray,
    mu_lp: np.ndarray,
    state_mu: np.ndarray,
    delta_lp: np.ndarray,
    state_delta: np.ndarray,
    mu_lik: np.ndarray,
    post: np.ndarray,
    ec: np.ndarray,
    z: np.ndarray,
    stats: np.ndarray,
) -> None:
    """Sweep over pairs: messages judgment -> pair, beliefs, cavities, messages back.

    ``a_msg[v, k, b]`` and ``b_msg[v]`` carry the reviewer's cavity (careful weight per school
    and bias; lapse term). ``m2[m]`` is the table index of lattice margin ``m`` (half steps);
    ``tables[lev[v]]`` is the careful table at the tie threshold of judgment ``v``'s reviewer.
    Fills ``post[j]``, ``ec[v, k, b] = E_cavity P_c(y_v | m_k + b s_v)``, the leave-one-out
    predictive ``z[v]`` and ``stats[v] = (d/dtau, d2/dtau2)`` of the expected careful log-lik.
    The prior of pair ``j``'s state ``st`` is ``log_prior[st] + mu_lp[j, state_mu[st]]`` (one
    row ``mu_lp[0]`` shared by every pair when ``mu_lp`` has a single row)
    ``+ delta_lp[j, state_delta[st]]`` (likewise). When ``mu_lik`` has a row per pair, it
    receives the pair's votes' likelihood of each consensus margin with the deviations summed
    out under their prior, ``sum_Delta h_j(Delta) prod_v msg_v(mu, Delta)`` (normalised to sum
    1): what response pooling needs to refit its prior.
    """
    n_pairs = starts.shape[0] - 1
    n_states, n_k = midx.shape
    n_m = m2.shape[0]
    n_b = a_msg.shape[2]
    for j in prange(n_pairs):
        v0 = starts[j]
        nv = starts[j + 1] - v0
        bel = np.empty(n_states)
        row = min(np.int64(j), np.int64(mu_lp.shape[0] - 1))
        d_row = min(np.int64(j), np.int64(delta_lp.shape[0] - 1))
        mx = -np.inf
        for st in range(n_states):
            bel[st] = log_prior[st] + mu_lp[row, state_mu[st]] + delta_lp[d_row, state_delta[st]]
            if bel[st] > mx:
                mx = bel[st]
        for st in range(n_states):
            bel[st] = math.exp(bel[st] - mx)
        f = np.empty((nv, n_k, n_m))
        msg = np.empty((nv, n_states))
        for i in range(nv):
            v = v0 + i
            yy = y[v] + 1
            table = tables[lev[v]]
            for k in range(n_k):
                for m in range(n_m):
                    acc = 0.0
                    for bb in range(n_b):
                        acc += a_msg[v, k, bb] * table[yy, m2[m] + s[v] * (bb - b_half), 0]
                    f[i, k, m] = acc
            bmx = 0.0
            for st in range(n_states):
                acc = b_msg[v]
                for k in range(n_k):
                    acc += f[i, k, midx[st, k]]
                acc = max(acc, 1e-300)
                msg[i, st] = acc
                val = bel[st] * acc
                bel[st] = val
                if val > bmx:
                    bmx = val
            for st in range(n_states):
                bel[st] /= bmx
        tot = 0.0
        for st in range(n_states):
            tot += bel[st]
        for st in range(n_states):
            bel[st] /= tot
            post[j, st] = bel[st]
        if mu_lik.shape[0] > 1:
            lik = np.empty(n_states)
            for st in range(n_states):
                acc = log_prior[st] + delta_lp[d_row, state_delta[st]]
                for i in range(nv):
                    acc += math.log(msg[i, st])
                lik[st] = acc
            lmx = lik.max()
            for mu in range(mu_lik.shape[1]):
                mu_lik[j, mu] = 0.0
            for st in range(n_states):
                mu_lik[j, state_mu[st]] += math.exp(lik[st] - lmx)
            ltot = 0.0
            for mu in range(mu_lik.shape[1]):
                ltot += mu_lik[j, mu]
            for mu in range(mu_lik.shape[1]):
                mu_lik[j, mu] /= ltot
        q = np.empty((n_k, n_m))
        for i in range(nv):
            v = v0 + i
            yy = y[v] + 1
            table = tables[lev[v]]
            q[:, :] = 0.0
            ctot = 0.0
            for st in range(n_states):
                ctot += bel[st] / msg[i, st]
            for st in range(n_states):
                c = bel[st] / msg[i, st] / ctot
                for k in range(n_k):
                    q[k, midx[st, k]] += c
            zz = b_msg[v]
            for k in range(n_k):
                for bb in range(n_b):
                    acc = 0.0
                    for m in range(n_m):
                        acc += q[k, m] * table[yy, m2[m] + s[v] * (bb - b_half), 0]
                    ec[v, k, bb] = acc
                    zz += a_msg[v, k, bb] * acc
            z[v] = zz
            g_t = 0.0
            h_t = 0.0
            inv = 1.0 / max(zz, 1e-300)
            for k in range(n_k):
                for m in range(n_m):
                    if q[k, m] < 1e-10:
                        continue
                    for bb in range(n_b):
                        w = a_msg[v, k, bb] * q[k, m] * inv
                        if w < 1e-12:
                            continue
                        t = m2[m] + s[v] * (bb - b_half)
                        w *= table[yy, t, 0]
                        g_t += w * table[yy, t, 1]
                        h_t += w * table[yy, t, 2]
            stats[v, 0] = g_t
            stats[v, 1] = h_t


@njit(cache=True, parallel=True)
def reviewer_pass(
    r_starts: np.ndarray,
    r_order: np.ndarray,
    ec: np.ndarray,
    pl: np.ndarray,
    e_grid: np.ndarray,
    log_prior: np.ndarray,
    post: np.ndarray,
    a_msg: np.ndarray,
    b_msg: np.ndarray,
) -> None:
    """Sweep over reviewers: beliefs over (school, lapse, bias) and messages to the pairs.

    Judgment ``v``'s factor for reviewer state ``(k, g, b)`` is
    ``(1 - e_g) ec[v, k, b] + e_g pl[v]``. Fills ``post[r]`` and, from each judgment's
    cavity, ``a_msg[v, k, b] = sum_g cav (1 - e_g)`` and ``b_msg[v] = pl[v] sum cav e_g``.
    """
    n_rev = r_starts.shape[0] - 1
    n_k, n_g, n_b = log_prior.shape
    for r in prange(n_rev):
        v0 = r_starts[r]
        nv = r_starts[r + 1] - v0
        bel = np.empty((n_k, n_g, n_b))
        mx = log_prior.max()
        for k in range(n_k):
            for g in range(n_g):
                for bb in range(n_b):
                    bel[k, g, bb] = math.exp(log_prior[k, g, bb] - mx)
        for i in range(nv):
            v = r_order[v0 + i]
            bmx = 0.0
            for k in range(n_k):
                for g in range(n_g):
                    eg = e_grid[g]
                    for bb in range(n_b):
                        val = bel[k, g, bb] * max((1 - eg) * ec[v, k, bb] + eg * pl[v], 1e-300)
                        bel[k, g, bb] = val
                        if val > bmx:
                            bmx = val
            for k in range(n_k):
                for g in range(n_g):
                    for bb in range(n_b):
                        bel[k, g, bb] /= bmx
        tot = bel.sum()
        for k in range(n_k):
            for g in range(n_g):
                for bb in range(n_b):
                    bel[k, g, bb] /= tot
                    post[r, k, g, bb] = bel[k, g, bb]
        for i in range(nv):
            v = r_order[v0 + i]
            ctot = 0.0
            lap = 0.0
            for k in range(n_k):
                for bb in range(n_b):
                    a_msg[v, k, bb] = 0.0
            for k in range(n_k):
                for g in range(n_g):
                    eg = e_grid[g]
                    for bb in range(n_b):
                        c = bel[k, g, bb] / max((1 - eg) * ec[v, k, bb] + eg * pl[v], 1e-300)
                        ctot += c
                        a_msg[v, k, bb] += c * (1 - eg)
                        lap += c * eg
            for k in range(n_k):
                for bb in range(n_b):
                    a_msg[v, k, bb] /= ctot
            b_msg[v] = pl[v] * lap / ctot
