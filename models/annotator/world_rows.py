"""A drawn world as the rows a warehouse ingests (the data contract's columns), so the
robustness suite can run each world through the product path: ingest, the fit job and the
reviewer audit (``benchmarks/robustness.py --audit``)."""

from __future__ import annotations

import numpy as np
import polars as pl

from .worlds import World, work_sequence


def comparison_rows(world: World, days: int = 30,
                    gold_share: float = 0.0) -> list[dict[str, object]]:
    """The world's judgments as rows a warehouse ingests (the data contract's columns): each
    pair a prompt with replies "reply A/B to <pair>", the reply shown first, the choice, and a
    time that puts each reviewer's judgments in their order of work over ``days`` days (the
    world's own order where it has one, as ``fatigue`` does; else a random one). Each reply is
    as long as the world drew it (its text padded) and names its model, so a lapse that leans
    toward the longer reply or one model leans the same way in the warehouse. No truth or tags;
    seconds per judgment only where the world is timed (``fast_experts``); with
    ``gold_share``, about that share of the pairs are gold questions: clear, uncontested pairs
    whose answer (the consensus side) every row of the pair carries as ``gold_choice``."""
    j = world.judgments
    gold: dict[str, str] = {}
    if gold_share:
        p = world.pairs
        clear = (~p["ambiguous"] & ~p["contested"] & (p["consensus_margin"].abs() > 1.0)
                 ).to_numpy()
        rng = np.random.default_rng(world.spec.seed + 104729)
        chosen = clear & (rng.random(p.height) < gold_share / max(clear.mean(), 1e-9))
        side = np.where(p["consensus_margin"].to_numpy() > 0, "a", "b")
        gold = dict(zip(p["pair_id"].filter(pl.Series(chosen)).to_list(),
                        side[chosen].tolist(), strict=True))
    r_idx = np.unique(j["reviewer_id"].to_numpy(), return_inverse=True)[1]
    sequence = j["sequence"].to_numpy()
    if not world.spec.fatigue_share:
        sequence = work_sequence(r_idx, np.random.default_rng(world.spec.seed + 7919))
    n_r = np.bincount(r_idx)[r_idx]
    seconds = ((sequence + 0.5) / n_r * days * 86400).astype(np.int64)
    start = np.datetime64("2026-01-01T00:00:00")
    stamps = (start + seconds.astype("timedelta64[s]")).astype(str).tolist()
    choice = {1: "a", 0: "tie", -1: "b"}
    first = j["first_shown_is_response_1"].to_list()
    timed = [None if t != t else round(float(t), 1) for t in j["seconds_spent"].to_list()]
    replies = {row["pair_id"]: _replies(row, world.spec.label_task)
               for row in world.pairs.iter_rows(named=True)}
    return [{"comparison_id": cid, "reviewer_id": rid, "prompt": f"prompt {pair}",
             **replies[pair],
             "choice": choice[int(y)], "created_at": ts,
             **({} if f is None else {"shown_first": "a" if f else "b"}),
             **({"gold_choice": gold[pair]} if pair in gold else {}),
             **({} if sec is None else {"seconds_spent": sec})}
            for cid, rid, pair, y, ts, f, sec in zip(
                j["comparison_id"], j["reviewer_id"], j["pair_id"], j["outcome"], stamps,
                first, timed, strict=True)]


def _replies(pair: dict[str, object], label_task: bool) -> dict[str, object]:
    """The two replies' columns of a pair's rows: text (``reply A to <pair>``, padded to the
    reply's drawn length in characters) and model; a label task keeps short texts and no
    models."""
    out: dict[str, object] = {}
    for side, n in (("a", 1), ("b", 2)):
        text = f"reply {side.upper()} to {pair['pair_id']}"
        if not label_task:
            pad = max(int(pair[f"response_{n}_length"]) - len(text), 0)
            text += ("" if not pad else " " + "and so on " * (pad // 10 + 1))[:pad]
            out[f"response_{side}_model"] = pair[f"response_{n}_model"]
        out[f"response_{side}"] = text
    return out
