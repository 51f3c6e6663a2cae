"""The HTTP API (``dissensus api``): the service's network front door.

* :mod:`.app`: the FastAPI application, its settings, the body-size limit and :func:`serve`;
* :mod:`.service`: the warehouse as the server holds it (one write queue, read cursors);
* :mod:`.snapshot_keeper`: the read snapshot the dashboards open meanwhile, refreshed after
  writes;
* :mod:`.access` and :mod:`.tokens`: bearer tokens with scopes, stored as hashes;
* :mod:`.reads`, :mod:`.writes`: the ``/v1`` endpoints; :mod:`.comparisons` (posting rows through
  the ingest library), :mod:`.scoring` (rewards from a saved run), :mod:`.jobs` (fit and train);
* :mod:`.errors`: every error as JSON in words;
* :mod:`.client`: a small standard-library client and a local server launcher (tests,
  benchmarks, scripts).

Only :mod:`.tokens` is imported without FastAPI (the command line makes tokens with it).
"""
