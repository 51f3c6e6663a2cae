"""Reviewer-id pseudonymisation: one salt per warehouse, and no raw id kept anywhere.

With a salt, a reviewer id becomes ``r-`` and the first 16 hex digits of
``sha256(salt ':' id)`` before anything is stored. The salt itself is never stored; the
``settings`` table keeps a fingerprint of it so that a warehouse refuses a second salt (which
would split one reviewer in two). Quarantined rows are stored with the pseudonym too: their raw
text is rebuilt from the parsed fields with the hashed id, and a line that could not be parsed
(so its id cannot be found in it) keeps its file, line and reason but not its text.
"""

from __future__ import annotations

import hashlib

import duckdb

from dissensus.warehouse.errors import PseudonymisationError

#: What ``quarantine.raw`` holds for an unparsable line of a pseudonymised ingest.
WITHHELD_RAW = (
    "(withheld: --pseudonymise-salt was given and this line could not be parsed, so the raw "
    "reviewer id in it could not be replaced; the source file has the line)"
)


def salt_fingerprint(salt: str) -> str:
    """A short, salted digest that tells salts apart without storing one."""
    return hashlib.sha256(f"dissensus-salt-check:{salt}".encode()).hexdigest()[:16]


def salt_literal(salt: str | None) -> str | None:
    """The salt as a SQL string literal, or None."""
    return "'" + salt.replace("'", "''") + "'" if salt else None


def pseudonym_sql(reviewer: str, salt_sql: str) -> str:
    """SQL for the pseudonym of the (already trimmed, non-empty or NULL) id ``reviewer``."""
    return (
        f"CASE WHEN {reviewer} IS NOT NULL THEN "
        f"'r-' || left(sha256({salt_sql} || ':' || {reviewer}), 16) END"
    )


def check_pseudonymisation(con: duckdb.DuckDBPyConnection, salt: str | None) -> None:
    """Record the warehouse's salt setting on the first batch; refuse a different one later."""
    rows = con.execute("SELECT value FROM settings WHERE key = 'pseudonymisation'").fetchall()
    stored = rows[0][0] if rows else None
    has_rows = con.execute("SELECT count(*) FROM reviewers").fetchall()[0][0] > 0  # type: ignore[index]
    wanted = salt_fingerprint(salt) if salt else "off"
    if stored is None:
        if has_rows and wanted != "off":
            raise PseudonymisationError(
                "This warehouse already holds raw reviewer ids; pseudonymising new ones would "
                "split the same reviewer in two.",
                expected="the same pseudonymisation setting for every batch of a warehouse",
                fix="ingest without --pseudonymise-salt, or start a new warehouse (--db)",
            )
        con.execute("INSERT OR REPLACE INTO settings VALUES ('pseudonymisation', ?)", [wanted])
        return
    if stored != wanted:
        raise PseudonymisationError(
            "The reviewer-id pseudonymisation does not match this warehouse: it was built "
            + ("with raw ids" if stored == "off" else "with a salt")
            + (" and this ingest has no salt" if wanted == "off" else " and this ingest uses "
               + ("a salt" if stored == "off" else "a different salt")),
            expected="the same salt (or none) for every batch of a warehouse",
            fix="pass the salt used before (--pseudonymise-salt or DISSENSUS_SALT), "
            "or ingest into a new warehouse",
        )
