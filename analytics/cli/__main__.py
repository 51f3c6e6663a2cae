"""``python -m dissensus.analytics.cli``: the ``dissensus`` command."""

from dissensus.analytics.cli import app

app(prog_name="dissensus")
