"""Embedding throughput: the product's cached path against sentence-transformers' own ``encode``.

``python benchmarks/embedding.py [--n 6000] [--encoder all-MiniLM-L6-v2]`` embeds the distinct
replies of a demo world (``--n`` comparisons) in one process, on the CPU: sentence-transformers'
``SentenceTransformer.encode`` of all texts at once (batch 32, its default: the floor), then
:meth:`EmbeddingCache.embed` as training and the fit's content features call it (the encoder's
configured batch, chunks of ``STORE_EVERY`` texts, nothing cached), then the floor again. Prints
texts per second and the cached path's share of the floor (ratios: the machines are shared).
"""

from __future__ import annotations

import argparse
import random
import time

from dissensus.models.reward.encoder import EmbeddingCache, load_encoder
from dissensus.warehouse.demo import WorldConfig, simulate_world


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=6000, help="comparisons of the demo world")
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    args = parser.parse_args(argv)
    world = simulate_world(WorldConfig(n_comparisons=args.n, seed=0))
    texts = list(dict.fromkeys(world.responses["text"].to_list()))
    random.Random(0).shuffle(texts)  # the order a warehouse hands them over in is no help
    encoder = load_encoder(args.encoder)

    def floor() -> float:
        start = time.perf_counter()
        encoder.model.encode(texts, batch_size=32, normalize_embeddings=True,  # type: ignore[attr-defined]
                             show_progress_bar=False)
        return len(texts) / (time.perf_counter() - start)

    first = floor()
    start = time.perf_counter()
    EmbeddingCache(None).embed(encoder, [f"t{i}" for i in range(len(texts))], texts)
    cached = len(texts) / (time.perf_counter() - start)
    second = floor()
    out = {"texts": len(texts), "floor_texts_per_s": (first + second) / 2,
           "cached_texts_per_s": cached}
    out["cached_share_of_floor"] = cached / out["floor_texts_per_s"]
    print(f"{len(texts)} texts: floor {first:.0f} / {second:.0f} texts/s, cached path "
          f"{cached:.0f} texts/s = {out['cached_share_of_floor']:.0%} of the floor")
    return out


if __name__ == "__main__":
    main()
