"""Multi-process training under ``torchrun`` (DistributedDataParallel).

Prepare the tensors once (``save_tensors``), then::

    torchrun --standalone --nproc_per_node 2 -m models.reward.ddp \\
        --tensors data.pt --config config.json --out checkpoint_dir

The process group uses NCCL when the config's device resolves to CUDA, gloo otherwise (several
CPU processes, as in the tests). Rank 0 writes the checkpoint; see :mod:`models.reward.train`
for how ranks share the work and stay in step.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist

from dissensus.models.reward.checkpoint import save_checkpoint
from dissensus.models.reward.config import config_from_json
from dissensus.models.reward.ensemble import train_ensemble
from dissensus.models.reward.heads import head_names
from dissensus.models.reward.train import Tensors, resolve_device, train_model


def save_tensors(path: Path, tensors: Tensors, n_schools: int, encoder_id: str) -> None:
    """Write the training tensors and their context for :func:`main`."""
    torch.save({"tensors": asdict(tensors), "n_schools": n_schools, "encoder_id": encoder_id},
               path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    config = config_from_json(json.loads(args.config.read_text()))
    backend = "nccl" if resolve_device(config.device).type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    try:
        payload = torch.load(args.tensors, weights_only=True)
        tensors = Tensors(**payload["tensors"])
        n_schools = int(payload["n_schools"])
        result = train_model(tensors, config, n_schools)
        # every rank trains each member (under DDP, as the main model); rank 0 says so
        ensemble = train_ensemble(tensors, config,
                                  print if dist.get_rank() == 0 else lambda _m: None)
        if dist.get_rank() == 0:
            save_checkpoint(
                args.out, result.model, config, encoder_id=str(payload["encoder_id"]),
                heads=head_names(config.kind, n_schools, getattr(config, "spread_from", "votes")),
                reward_mean=result.reward_mean, reward_std=result.reward_std,
                extra={"world_size": dist.get_world_size(), "epochs": len(result.history)},
                ensemble=ensemble,
            )
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
    # the DDP wrappers still hold the process group, so its gloo threads would be destroyed
    # during interpreter teardown, where a still-joinable one aborts the rank now and then
    # ("terminate called without an active exception") after its work is done and saved
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
