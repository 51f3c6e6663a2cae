"""API tokens with scopes, stored only as hashes beside the warehouse.

A token is ``dsn_<id>_<secret>``: the id names it in listings and revocations, the secret is 32
random bytes. Only ``sha256(secret)`` is kept, in ``<db>.api/tokens.json`` (mode 0600), so a copy
of that file cannot be replayed. The file, not the warehouse, holds them so that a token can be
made or revoked while the API holds the warehouse; the server re-reads the file when it changes.

Scopes nest: ``admin`` can do what ``write`` can, ``write`` what ``read`` can. This module has no
web imports: the CLI uses it without FastAPI.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from dissensus.warehouse.artefacts import api_folder
from dissensus.warehouse.errors import DissensusError

SCOPES: tuple[str, ...] = ("read", "write", "admin")
"""From least to most: each scope includes the ones before it."""
TOKEN_FILE = "tokens.json"
PREFIX = "dsn_"


@dataclass(frozen=True)
class TokenRecord:
    """One stored token: never the token itself, only the hash of its secret."""

    token_id: str
    scope: str
    sha256: str
    created_at: str
    note: str = ""


def scope_allows(granted: str, needed: str) -> bool:
    """Whether a token of scope ``granted`` may do what needs ``needed``."""
    return SCOPES.index(granted) >= SCOPES.index(needed)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenStore:
    """The token hashes of one warehouse (``<db>.api/tokens.json``)."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = api_folder(db_path) / TOKEN_FILE
        self._cache: tuple[tuple[int, int], list[TokenRecord]] | None = None

    def records(self) -> list[TokenRecord]:
        """Every stored token, re-read only when the file changed."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        try:
            rows = json.loads(self.path.read_text())
            records = [TokenRecord(**row) for row in rows]
        except (ValueError, TypeError) as error:
            raise DissensusError(
                f"The token file cannot be read: {error}.", where=str(self.path),
                expected="the JSON list written by `dissensus api token create`",
                fix="restore it from a backup, or delete it and create the tokens again",
            ) from error
        self._cache = (stamp, records)
        return records

    def _save(self, records: list[TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        # created 0600 before anything is written: the hashes are not for other users either
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump([asdict(r) for r in records], handle, indent=1)
        os.replace(tmp, self.path)

    def create(self, scope: str, note: str = "") -> tuple[TokenRecord, str]:
        """A new token of ``scope``: its record and the token, which is shown once, never kept."""
        if scope not in SCOPES:
            raise DissensusError(
                f"Unknown token scope '{scope}'.", expected="read, write or admin",
                fix="pass --scope read, --scope write or --scope admin",
            )
        token_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        record = TokenRecord(token_id=token_id, scope=scope, sha256=_digest(secret),
                             created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                             note=note)
        self._save([*self.records(), record])
        return record, f"{PREFIX}{token_id}_{secret}"

    def revoke(self, token_id: str) -> bool:
        """Remove a token by id; whether it existed."""
        records = self.records()
        kept = [r for r in records if r.token_id != token_id]
        if len(kept) == len(records):
            return False
        self._save(kept)
        return True

    def verify(self, token: str) -> TokenRecord | None:
        """The record of a valid ``token``; ``None`` for an unknown or malformed one."""
        if not token.startswith(PREFIX):
            return None
        token_id, sep, secret = token[len(PREFIX):].partition("_")
        if not sep:
            return None
        digest = _digest(secret)
        for record in self.records():
            # constant-time comparison: response timing says nothing about the hash
            if record.token_id == token_id and hmac.compare_digest(record.sha256, digest):
                return record
        return None
