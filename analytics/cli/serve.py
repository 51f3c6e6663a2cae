"""``dissensus serve``: the Streamlit dashboards (:mod:`dissensus.dashboards`) over the warehouse,
read-only."""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated

import typer

from dissensus.analytics.cli.common import State, console

# found, not imported: the dashboards run as a program of their own (Streamlit's)
APP = Path(str(find_spec("dissensus.dashboards").origin)).resolve().parent / "app.py"  # type: ignore[union-attr]


def streamlit_command(db: Path, port: int, host: str) -> list[str]:
    """The command line that serves the dashboards (headless, no telemetry, no file watcher)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.headless", "true", "--server.address", host, "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--", "--db", str(db),
    ]


def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8501,
    host: Annotated[str, typer.Option(
        help="Address to bind. The default, 127.0.0.1, serves this machine only; use "
             "0.0.0.0 to serve others (configure sign-in first).")] = "127.0.0.1",
) -> None:
    """Serve the dashboards: overview, reviewers, disagreements, rewards, trade-offs."""
    db = State.db.resolve()
    if not db.exists():
        console.print(f"[yellow]warning:[/] there is no warehouse at {db} yet; the "
                      "dashboards will say how to make one.")
    if host in ("127.0.0.1", "localhost", "::1"):
        console.print(f"binding to {host}: only this machine can open the dashboards "
                      "(pass --host 0.0.0.0 to serve others; set up sign-in first)")
    else:
        console.print(f"[yellow]binding to {host}: anyone who can reach this port can read "
                      "the warehouse unless sign-in is configured[/]")
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
    console.print(f"dashboards for {db} at [bold]http://{shown}:{port}[/]  (Ctrl-C stops)")
    env = dict(os.environ, DISSENSUS_DB=str(db))
    command = streamlit_command(db, port, host)
    sys.stdout.flush()
    # Become the Streamlit server (no child process): a signal to this process reaches the
    # server itself, so stopping `dissensus serve` never leaves an orphan behind.
    os.execve(command[0], command, env)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""
    app.command()(serve)
