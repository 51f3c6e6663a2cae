"""Tokens, scopes, the loopback rule and the server note, without a server."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dissensus.analytics.api.access import check_bind, is_loopback
from dissensus.analytics.api.reads import VersionCache
from dissensus.analytics.api.tokens import TokenStore, scope_allows
from dissensus.warehouse.errors import DatabaseBusyError, DissensusError
from dissensus.warehouse.server_info import (
    clear_server_info,
    held_by_server_error,
    server_info,
    write_server_info,
)


def test_tokens_are_stored_as_hashes_and_verified(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "w.duckdb")
    record, token = store.create("write", note="label studio")
    text = store.path.read_text()
    assert token not in text and token.split("_", 2)[2] not in text
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert store.verify(token) == record
    assert store.verify(token + "x") is None
    assert store.verify("dsn_" + record.token_id) is None
    assert store.verify("Bearer " + token) is None
    # another process's store (the server) sees a revocation on its next read
    server_side = TokenStore(tmp_path / "w.duckdb")
    assert server_side.verify(token) is not None
    assert store.revoke(record.token_id) and not store.revoke(record.token_id)
    assert server_side.verify(token) is None
    with pytest.raises(DissensusError, match="scope"):
        store.create("root")


def test_scopes_nest() -> None:
    assert scope_allows("admin", "write") and scope_allows("write", "read")
    assert not scope_allows("read", "write") and not scope_allows("write", "admin")


def test_non_loopback_needs_a_token(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "w.duckdb")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_bind("127.0.0.1", store)
    with pytest.raises(DissensusError, match="no API token exists"):
        check_bind("0.0.0.0", store)
    store.create("admin")
    check_bind("0.0.0.0", store)


def test_server_note_names_the_holder_while_its_process_lives(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    assert held_by_server_error(db) is None
    write_server_info(db, "http://127.0.0.1:9999")
    error = held_by_server_error(db)
    assert isinstance(error, DatabaseBusyError)
    assert "http://127.0.0.1:9999" in error.render() and str(os.getpid()) in error.render()
    note = tmp_path / "w.duckdb.api" / "server.json"
    # a note left by a killed server (its process gone) is ignored
    note.write_text(json.dumps({"url": "http://x", "pid": 2**22 + 12345, "started_at": "t"}))
    assert server_info(db) is None and held_by_server_error(db) is None
    note.write_text("{broken")
    assert server_info(db) is None
    write_server_info(db, "http://127.0.0.1:9999")
    clear_server_info(db)
    assert not note.exists()


def test_version_cache_computes_once_for_concurrent_first_requests() -> None:
    cache = VersionCache(2)
    calls = []
    lock = threading.Lock()

    def compute() -> int:
        with lock:
            calls.append(1)
        time.sleep(0.2)
        return 42

    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda _: cache.get(("audit", 1), compute), range(8)))
    assert values == [42] * 8 and len(calls) == 1
    assert cache.get(("audit", 2), lambda: 7) == 7 and cache.get(("audit", 3), lambda: 8) == 8
    assert cache.get(("audit", 1), lambda: 0) == 0  # the oldest was dropped (size 2)
