"""Set-based writes of one validated chunk into the warehouse tables.

Each statement reads the temp table ``final`` (valid rows with a ``_status``) and inserts only
what is not stored yet, so re-ingesting adds nothing twice. A large chunk leaves out stored keys
with an anti-join (``NOT EXISTS``), which reads every stored key once; a small one (a posted
batch) with ``INSERT OR IGNORE``, which looks each key up in the table's primary-key index
instead: on a warehouse of 570,000 comparisons the anti-joins cost a 10-row batch about 25 ms,
while for a 1M-row file the index lookups were about 9% slower in all.
"""

from __future__ import annotations

from typing import Final

import duckdb

from dissensus.warehouse.contract import CONTRACT_COLUMNS, REVIEWER_ATTRIBUTES_COLUMN
from dissensus.warehouse.salting import WITHHELD_RAW

_NEW: Final = "FROM final WHERE _status = 'new'"
#: Chunks of at most this many rows insert with ``INSERT OR IGNORE`` (see the module docstring).
SMALL_CHUNK_ROWS: Final = 5_000


def _tags(column: str) -> str:
    return (
        f"list_filter(list_transform(string_split(coalesce({column}, ''), ','), "
        f"lambda t: lower(trim(t))), lambda t: t <> '')"
    )


def store_new_rows(con: duckdb.DuckDBPyConnection, batch_id: int, rows: int) -> None:
    """Insert texts, aliases, prompts, responses, pairs, reviewers and comparisons of a chunk
    of ``rows`` rows."""
    small = rows <= SMALL_CHUNK_ROWS

    def insert(table: str) -> str:
        return f"INSERT {'OR IGNORE ' if small else ''}INTO {table}"

    def unless_stored(stored: str) -> str:
        return "" if small else f"WHERE NOT EXISTS ({stored})"

    # Texts repeat across rows: pick one line per new text id, then fetch only those bodies.
    con.execute(f"""
        {insert("texts")}
        SELECT n.text_id,
               CASE n.key % 4 WHEN 1 THEN f.prompt WHEN 2 THEN f.response_a
                    ELSE f.response_b END AS body,
               length(body), {batch_id}
        FROM (
            SELECT text_id, min(key) AS key FROM (
                SELECT _prompt_hash AS text_id, _line * 4 + 1 AS key
                {_NEW} AND _prompt_hash IS NOT NULL
                UNION ALL SELECT _a_hash, _line * 4 + 2 {_NEW} AND _a_hash IS NOT NULL
                UNION ALL SELECT _b_hash, _line * 4 + 3 {_NEW} AND _b_hash IS NOT NULL
            ) GROUP BY text_id
        ) n
        JOIN fields f ON f._line = n.key // 4
        {unless_stored("SELECT 1 FROM texts t WHERE t.text_id = n.text_id")}
    """)
    con.execute(f"""
        {insert("text_aliases")}
        SELECT kind, external_id, text_id FROM (
            SELECT DISTINCT ON (kind, external_id) kind, external_id, text_id FROM (
                SELECT 'prompt' AS kind, _prompt_ext AS external_id, _prompt_hash AS text_id, _line
                {_NEW} AND _prompt_ext IS NOT NULL AND _prompt_hash IS NOT NULL
                UNION ALL
                SELECT 'response', _a_ext, _a_hash, _line
                {_NEW} AND _a_ext IS NOT NULL AND _a_hash IS NOT NULL
                UNION ALL
                SELECT 'response', _b_ext, _b_hash, _line
                {_NEW} AND _b_ext IS NOT NULL AND _b_hash IS NOT NULL
            ) ORDER BY kind, external_id, _line
        ) n {unless_stored("SELECT 1 FROM text_aliases a WHERE a.kind = n.kind "
                           "AND a.external_id = n.external_id")}
    """)
    con.execute(f"""
        {insert("prompts")}
        SELECT prompt_id, category, {batch_id} FROM (
            SELECT _prompt_tid AS prompt_id, arg_min(category, _line) AS category
            {_NEW} GROUP BY 1
        ) n {unless_stored("SELECT 1 FROM prompts p WHERE p.prompt_id = n.prompt_id")}
    """)
    con.execute(f"""
        {insert("responses")}
        SELECT response_id, prompt_id, text_id, model, {_tags("tags")}, {batch_id} FROM (
            SELECT response_id, any_value(prompt_id) AS prompt_id,
                   any_value(text_id) AS text_id, arg_min(model, _line) AS model,
                   arg_min(tags, _line) AS tags
            FROM (
                SELECT _a_rid AS response_id, _prompt_tid AS prompt_id, _a_tid AS text_id,
                       response_a_model AS model, response_a_tags AS tags, _line
                {_NEW}
                UNION ALL
                SELECT _b_rid, _prompt_tid, _b_tid, response_b_model, response_b_tags, _line
                {_NEW}
            ) GROUP BY response_id
        ) n {unless_stored("SELECT 1 FROM responses r WHERE r.response_id = n.response_id")}
    """)
    con.execute(f"""
        {insert("pairs")}
        SELECT pair_id, prompt_id, r1, r2, {batch_id} FROM (
            SELECT _pair_id AS pair_id, any_value(_prompt_tid) AS prompt_id,
                   any_value(least(_a_rid, _b_rid)) AS r1, any_value(greatest(_a_rid, _b_rid)) AS r2
            {_NEW} GROUP BY 1
        ) n {unless_stored("SELECT 1 FROM pairs p WHERE p.pair_id = n.pair_id")}
    """)
    con.execute(f"""
        {insert("reviewers")}
        SELECT reviewer_id, pseudonymised, {batch_id} FROM (
            SELECT DISTINCT _reviewer AS reviewer_id, _pseudonymised AS pseudonymised
            {_NEW} AND _reviewer IS NOT NULL
        ) n {unless_stored("SELECT 1 FROM reviewers r WHERE r.reviewer_id = n.reviewer_id")}
    """)
    # Only values that differ from the stored ones are written: a reviewer's pool and locale
    # repeat on every row, and replacing an unchanged value cost as much as a new one (5.8 of
    # 35 s in a 1M-row file). The batch id stays that of the batch that set the value.
    con.execute(f"""
        INSERT INTO reviewer_attributes
        SELECT reviewer_id, attribute, scope, arg_max(value, _line) AS value, {batch_id}
        FROM (
            SELECT _line, _reviewer AS reviewer_id,
                   CASE WHEN contains(key, '@') THEN split_part(key, '@', 1) ELSE key END
                       AS attribute,
                   CASE WHEN contains(key, '@') THEN substr(key, strpos(key, '@') + 1)
                        ELSE '' END AS scope,
                   value
            FROM (
                SELECT _line, _reviewer, 'pool' AS key, reviewer_pool AS value
                {_NEW} AND _reviewer IS NOT NULL AND reviewer_pool IS NOT NULL
                UNION ALL
                SELECT _line, _reviewer, 'locale', reviewer_locale
                {_NEW} AND _reviewer IS NOT NULL AND reviewer_locale IS NOT NULL
                UNION ALL
                SELECT _line, _reviewer, key,
                       json_extract_string(_reviewer_attributes, '$."' || key || '"')
                FROM (
                    SELECT _line, _reviewer, _reviewer_attributes,
                           unnest(json_keys(_reviewer_attributes)) AS key
                    {_NEW} AND _reviewer IS NOT NULL AND _reviewer_attributes IS NOT NULL
                )
            ) WHERE value IS NOT NULL
        ) GROUP BY reviewer_id, attribute, scope
        ON CONFLICT (reviewer_id, attribute, scope) DO UPDATE
        SET value = excluded.value, batch_id = excluded.batch_id
        WHERE reviewer_attributes.value IS DISTINCT FROM excluded.value
    """)
    con.execute(f"""
        INSERT INTO comparisons
        SELECT _comparison_id, _id_given, _row_hash, {batch_id}, _line, _reviewer,
               _reviewer IS NOT NULL, _pair_id, _prompt_tid, _a_rid, _b_rid, _a_is_1, _choice,
               _outcome, _shown, _first_shown, _strength, _created_at, _seconds, category,
               guideline_version, batch, rationale, _gold, _gold_outcome
        {_NEW}
    """)


def raw_row_sql(salted: bool = False) -> str:
    """The source row as text: the original line (``chunk r``), or a JSON object of its fields
    (``fields f``) for sources that have no line text.

    ``salted``: the row was pseudonymised, so no raw reviewer id may be stored. The text is then
    rebuilt from the parsed fields with the pseudonym (``c._reviewer``) as ``reviewer_id``; a row
    that could not be parsed into fields (its ``_error`` names no field) is withheld.
    """
    if salted:
        pairs = ", ".join(
            f"'{name}', {'c._reviewer' if name == 'reviewer_id' else 'f.' + name}"
            for name in CONTRACT_COLUMNS
        )
        rebuilt = (
            f"CAST(json_object({pairs}, 'reviewer_attributes', "
            f"CAST(f.{REVIEWER_ATTRIBUTES_COLUMN} AS JSON)) AS VARCHAR)"
        )
        parsed = "(f._error IS NULL OR regexp_matches(f._error, '^[a-z_]+: '))"
        return f"CASE WHEN {parsed} THEN {rebuilt} ELSE {_quote(WITHHELD_RAW)} END"
    pairs = ", ".join(f"'{name}', f.{name}" for name in CONTRACT_COLUMNS)
    return f"coalesce(rtrim(r._raw, chr(13) || chr(10)), CAST(json_object({pairs}) AS VARCHAR))"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def store_quarantine(
    con: duckdb.DuckDBPyConnection, batch_id: int, file_path: str, now: str,
    *, salted: bool = False,
) -> None:
    """Insert the rows that failed validation and the comparison-id conflicts (``salted``: see
    :func:`raw_row_sql`)."""
    field = "nullif(regexp_extract(_reason, '^([a-z_, ]+):', 1), '')"
    raw = raw_row_sql(salted)
    con.execute(
        f"""
        INSERT INTO quarantine
        SELECT {batch_id}, ?, c._line, {field}, _reason, {raw}, CAST(? AS TIMESTAMP)
        FROM checked c JOIN fields f ON f._line = c._line JOIN chunk r ON r._line = c._line
        WHERE _reason IS NOT NULL
        UNION ALL
        SELECT {batch_id}, ?, c._line, 'comparison_id', _conflict, {raw},
               CAST(? AS TIMESTAMP)
        FROM final c JOIN fields f ON f._line = c._line JOIN chunk r ON r._line = c._line
        WHERE _status = 'conflict'
        """,
        [file_path, now, file_path, now],
    )
