"""Deployment drift: where the reward model extrapolates on live traffic, and when it moved.

* :mod:`.reference`: the run's training replies as a k-nearest-neighbour reference, held-out
  distances as the yardstick, and a low-dimensional projection for two-sample tests;
* :mod:`.knn`: the exact nearest-neighbour search behind it (matrix products in torch);
* :mod:`.workers`: independent pieces of work (blocks of turns, a report's cells) on worker
  threads, each running torch and BLAS on one thread;
* per-turn signals from the heads (school disagreement, distributional spread) are computed
  with the scores, in :mod:`dissensus.analytics.jobs.turn_scores`;
* :mod:`.twosample`: the MMD permutation test, the out-of-support test and Benjamini-Hochberg;
* :mod:`.report`: ``dissensus drift``: per window and category, with alarms in words;
* :mod:`.audit`: ``dissensus audit-sample``: live turns for human review, with reasons.
"""
