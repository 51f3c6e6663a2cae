"""``dissensus serve``: the Streamlit dashboards (:mod:`dissensus.dashboards`) over the warehouse,
read-only."""

from __future__ import annotations

import os
import sys
import tomllib
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated

import typer

from dissensus.analytics.cli.common import State, console, errors_in_words, fail
from dissensus.warehouse.db import check_warehouse_path
from dissensus.warehouse.errors import DissensusError

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


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def secrets_files() -> list[Path]:
    """Where Streamlit reads secrets: the folder it is started in, then the user's home."""
    return [Path.cwd() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"]


def sign_in_configured() -> bool:
    """Whether a Streamlit secrets file has an ``[auth]`` section (the dashboards then make
    every visitor log in; see dashboards/app.py)."""
    for path in secrets_files():
        try:
            if "auth" in tomllib.loads(path.read_text(encoding="utf-8")):
                return True
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
    return False


def refuse_open_network(host: str, insecure_no_auth: bool) -> None:
    """Fail in words when ``host`` would serve the network with no sign-in, unless the user
    said so explicitly with ``--insecure-no-auth``."""
    if host in LOOPBACK or insecure_no_auth or sign_in_configured():
        return
    fail(DissensusError(
        f"Refusing to serve the dashboards on {host} without sign-in: anyone who can reach "
        "the port could read the warehouse (reviewer ids, texts, verdicts about people).",
        expected="sign-in configured (an auth section in .streamlit/secrets.toml), or "
        "--host 127.0.0.1",
        fix="configure sign-in (see dashboards/app.py), serve on 127.0.0.1 and tunnel to it "
        "(ssh -L), or pass --insecure-no-auth if the network is trusted",
    ))


def serve(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8501,
    host: Annotated[str, typer.Option(
        help="Address to bind. The default, 127.0.0.1, serves this machine only; another "
             "address needs sign-in configured, or --insecure-no-auth.")] = "127.0.0.1",
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth", help="Serve a non-loopback --host without sign-in (anyone who "
        "can reach the port reads the warehouse).")] = False,
) -> None:
    """Serve the dashboards: overview, reviewers, disagreements, rewards, trade-offs."""
    db = State.db.resolve()
    with errors_in_words():
        check_warehouse_path(db)
    refuse_open_network(host, insecure_no_auth)
    if not db.exists():
        console.print(f"[yellow]warning:[/] there is no warehouse at {db} yet; the "
                      "dashboards will say how to make one.")
    if host in LOOPBACK:
        console.print(f"binding to {host}: only this machine can open the dashboards "
                      "(to serve others, configure sign-in and pass --host 0.0.0.0)")
    elif sign_in_configured():
        console.print(f"binding to {host}: visitors must sign in (auth in secrets.toml)")
    else:
        console.print(f"[yellow]binding to {host} with --insecure-no-auth: anyone who can "
                      "reach this port can read the warehouse[/]")
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
