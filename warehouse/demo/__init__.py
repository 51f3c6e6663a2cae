"""Seeded demo world with ground truth.

A simulated healthcare-scheduling assistant judged by a crowd of reviewers; the truth (schools,
lapses, position bias, pair margins) is kept beside the input rows.
"""

from dissensus.warehouse.demo.config import WorldConfig
from dissensus.warehouse.demo.files import write_world
from dissensus.warehouse.demo.world import DemoWorld, iter_world_chunks, simulate_world

__all__ = ["DemoWorld", "WorldConfig", "iter_world_chunks", "simulate_world", "write_world"]
