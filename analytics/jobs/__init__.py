"""The jobs behind the commands: each runs one piece of work on an open warehouse and stores its
outputs, with no printing of its own (callers pass ``log`` / ``progress``).

* :mod:`.ingest`: ingest files, then refresh the vote index once (``dissensus ingest``);
* :mod:`.fit`: fit the annotator model and write ``fits``, ``reviewer_estimates``,
  ``pair_estimates``, ``comparison_weights`` (``dissensus fit``);
* :mod:`.reward`: train, evaluate and score reward models (``dissensus train / evaluate /
  score``).

The CLI modules and the demo call these; so can a notebook or a scheduler.
"""
