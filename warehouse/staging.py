"""Vectorised validation of one staged chunk, in DuckDB SQL.

The chunk arrives as an Arrow table, copied into the temp table ``chunk`` (:func:`load_chunk`).
:func:`extract_sql` turns JSON lines into the contract's string columns with one parse per
line; :func:`checked_sql` normalises every field, resolves texts to content-hash ids and gives
each row either ``_reason`` = null (valid) or a reason a person can act on, naming the field;
:func:`final_sql` orients valid rows canonically and tells new rows from duplicates and id
conflicts.

Speed matters here (ingest is benchmarked against DuckDB's own ``read_json``), so: JSON is parsed
once into a struct, the expensive type probe runs only on values that look like objects or
arrays, the text-id lookups run only when a chunk uses ids, and the wide text columns stay in
``fields`` while later steps carry only narrow columns and join back by line when needed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Final

import duckdb
import pyarrow as pa

from dissensus.warehouse.contract import CONTRACT_COLUMNS, REVIEWER_ATTRIBUTES_COLUMN
from dissensus.warehouse.ids import sql_pair_id, sql_response_id, sql_text_id
from dissensus.warehouse.salting import pseudonym_sql

#: Fields whose JSON value may be an array (joined with commas).
LIST_FIELDS: Final = ("response_a_tags", "response_b_tags")
TEXT_FIELDS: Final = ("prompt", "response_a", "response_b")
#: White space a text may not consist of only: ASCII white space, the Unicode space separators
#: (non-breaking, em, ideographic, ...), line and paragraph separators, zero-width space and BOM.
WHITE_SPACE: Final = r"[\s\x{0b}\pZ\x{85}\x{200b}\x{feff}]"


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _path(key: str) -> str:
    return _quote('$."' + key + '"')


def load_chunk(con: duckdb.DuckDBPyConnection, table: pa.Table, *, append: bool = False) -> None:
    """Copy one chunk into the temp table ``chunk`` through a one-shot Arrow stream (``append``:
    add its rows to those already there, which must have the same columns).

    Not ``con.register("chunk", table)``: DuckDB keeps every Python object that a query of the
    open transaction scanned alive until the transaction ends, so registering each chunk of a
    one-transaction batch kept all of the file's Arrow chunks in memory (64 MB per 51,000
    demo rows, 1.3 GB for a 1M-row file), outside DuckDB's memory limit where nothing can
    spill. A stream hands its batches over as they are read, and the temp table's blocks are
    DuckDB's to spill.
    """
    batches = table.to_batches()

    def handed_over() -> Iterator[pa.RecordBatch]:
        while batches:
            yield batches.pop(0)

    con.register("chunk_stream", pa.RecordBatchReader.from_batches(table.schema, handed_over()))
    try:
        con.execute("INSERT INTO chunk SELECT * FROM chunk_stream" if append
                    else "CREATE OR REPLACE TEMP TABLE chunk AS SELECT * FROM chunk_stream")
    finally:
        con.unregister("chunk_stream")


#: What DuckDB's ``json_type`` calls a value, in the words of JSON (a line holding a string is
#: "a JSON string", not "a JSON varchar").
_JSON_KIND: Final = """CASE {value} WHEN 'VARCHAR' THEN 'string' WHEN 'BOOLEAN' THEN 'boolean'
        WHEN 'NULL' THEN 'null' WHEN 'ARRAY' THEN 'array' WHEN 'OBJECT' THEN 'object'
        ELSE 'number' END"""


def key_templates_sql() -> str:
    """``keys, lines``: each distinct list of top-level keys among the JSON objects of ``chunk``
    (a key given twice listed twice, :mod:`dissensus.warehouse.json_checks` reports those) and how
    many lines have it.

    Grouped, not one list per line: the lines of one file share a handful of key lists, and
    materialising a list per line and checking each for repeats cost more than parsing the JSON
    (1.6 of 12 s for 300,000 demo rows, against 0.5 s grouped). Lines that are not valid JSON
    give a NULL list here and are reported by :func:`extract_sql`.
    """
    return """
    SELECT try(json_keys(_raw)) AS keys, count(*) AS lines FROM chunk
    WHERE _error IS NULL AND left(ltrim(_raw), 1) = '{'
    GROUP BY 1
    """


def extract_sql(
    extra_reviewer_keys: list[str],
    contract: tuple[str, ...] = CONTRACT_COLUMNS,
    list_fields: tuple[str, ...] = LIST_FIELDS,
) -> str:
    """SELECT over ``chunk`` (json_lines) giving ``_line, _error``, the contract columns and
    ``_reviewer_attributes`` (a JSON object of the extra ``reviewer_*`` keys, which the caller
    finds first with :func:`key_templates_sql`).

    ``contract`` and ``list_fields`` name another contract's columns (traffic) when given.
    Each line is parsed once, into a struct of strings (objects and arrays come back as compact
    JSON text, numbers as their digits), so a prefix test finds the values that need a type probe.
    """
    columns = []
    type_checks = []
    for name in contract:
        value = f"_s.{name}"
        looks_nested = f"(starts_with({value}, '{{') OR starts_with({value}, '['))"
        if name in list_fields:
            columns.append(
                f"CASE WHEN {looks_nested} AND json_type(_raw, {_path(name)}) = 'ARRAY' THEN "
                f"array_to_string(from_json({value}, '[\"VARCHAR\"]'), ',') "
                f"ELSE {value} END AS {name}"
            )
        else:
            columns.append(f"{value} AS {name}")
            type_checks.append(
                f"WHEN {looks_nested} AND json_type(_raw, {_path(name)}) IN ('OBJECT', 'ARRAY') "
                f"THEN '{name}: expected a string or number, found a JSON ' "
                f"|| lower(json_type(_raw, {_path(name)}))"
            )
    # Extra reviewer keys ride in the same struct, so each line is still parsed once.
    struct = json.dumps({name: "VARCHAR" for name in (*contract, *extra_reviewer_keys)})
    if extra_reviewer_keys:
        attributes = "CASE WHEN _s IS NOT NULL THEN json_object(" + ", ".join(
            f"{_quote(key.removeprefix('reviewer_'))}, struct_extract(_s, {_quote(key)})"
            for key in extra_reviewer_keys
        ) + ") END"
    else:
        attributes = "CAST(NULL AS VARCHAR)"
    return f"""
    WITH parsed AS (
        SELECT _line, _raw, _error,
               CASE WHEN _error IS NULL AND left(ltrim(_raw), 1) = '{{'
                    THEN try(from_json(_raw, {_quote(struct)})) END AS _s
        FROM chunk
    )
    SELECT _line,
           CASE WHEN _error IS NOT NULL THEN _error
                WHEN _s IS NULL THEN
                    CASE WHEN json_valid(_raw) THEN
                        'expected one JSON object per line, found a JSON '
                        || {_JSON_KIND.format(value="json_type(_raw)")}
                    ELSE 'not valid JSON' END
                {" ".join(type_checks)}
           END AS _error,
           {", ".join(columns)},
           {attributes} AS {REVIEWER_ATTRIBUTES_COLUMN}
    FROM parsed
    """


_CHOICE_SQL: Final = """CASE lower(trim({col}))
        WHEN 'a' THEN 'a' WHEN 'b' THEN 'b' WHEN 'tie' THEN 'tie' WHEN 'equal' THEN 'tie'
        WHEN 'draw' THEN 'tie' WHEN 'same' THEN 'tie' END"""


def _lookup(external: str, kind: str, uses_ids: bool) -> str:
    """Text id named by a source id: an alias defined before, or a text id itself."""
    if not uses_ids:
        return "CAST(NULL AS VARCHAR)"
    return (
        f"coalesce((SELECT a.text_id FROM chunk_aliases a WHERE a.kind = '{kind}' "
        f"AND a.external_id = {external}), "
        f"(SELECT t.text_id FROM texts t WHERE t.text_id = {external}))"
    )


def checked_sql(salt_sql: str | None, uses_ids: bool) -> str:
    """Normalise and validate the rows of ``fields``; narrow output (no raw text, no bodies).

    ``salt_sql`` is a SQL string literal holding the pseudonymisation salt, or None. With
    ``uses_ids`` the temp table ``chunk_aliases(kind, external_id, text_id)`` must exist.
    """
    reviewer = (f"CASE WHEN regexp_full_match(reviewer_id, '{WHITE_SPACE}*') THEN NULL "
                "ELSE trim(reviewer_id) END")
    if salt_sql is not None:
        reviewer = pseudonym_sql(f"({reviewer})", salt_sql)

    def has_text(text: str) -> str:
        # The full match runs only on texts that start with white space (few); trim() alone
        # would keep tabs, newlines and non-breaking spaces.
        return (
            f"CASE WHEN {text} IS NULL OR {text} = '' THEN false "
            f"WHEN NOT regexp_matches(left({text}, 1), '{WHITE_SPACE}') THEN true "
            f"ELSE NOT regexp_full_match({text}, '{WHITE_SPACE}*') END"
        )

    def hashed(text: str) -> str:
        return f"CASE WHEN {has_text(text)} THEN {sql_text_id(text)} END"

    def missing(text: str, external: str) -> str:
        return f"(NOT {has_text(text)} AND {external} IS NULL)"

    def given_bad(column: str, parsed: str) -> str:
        return f"({column} IS NOT NULL AND trim({column}) <> '' AND {parsed} IS NULL)"

    return f"""
    WITH normal AS (
        SELECT _line, _error, comparison_id, choice, gold_choice, shown_first, strength,
            seconds_spent, created_at, category, guideline_version, batch, rationale,
            response_a_model, response_b_model, response_a_tags, response_b_tags,
            reviewer_pool, reviewer_locale, {REVIEWER_ATTRIBUTES_COLUMN},
            prompt IS NOT NULL AS _prompt_given,
            response_a IS NOT NULL AS _a_given, response_b IS NOT NULL AS _b_given,
            {missing("prompt", "_prompt_ext")} AS _prompt_missing,
            {missing("response_a", "_a_ext")} AS _a_missing,
            {missing("response_b", "_b_ext")} AS _b_missing,
            {reviewer} AS _reviewer,
            {_CHOICE_SQL.format(col="choice")} AS _choice,
            {_CHOICE_SQL.format(col="gold_choice")} AS _gold,
            nullif(lower(trim(shown_first)), '') AS _shown,
            TRY_CAST(strength AS DOUBLE) AS _strength,
            TRY_CAST(seconds_spent AS DOUBLE) AS _seconds,
            (TRY_CAST(created_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC') AS _created_at,
            _prompt_ext, _a_ext, _b_ext,
            {hashed("prompt")} AS _prompt_hash,
            {hashed("response_a")} AS _a_hash,
            {hashed("response_b")} AS _b_hash
        FROM (
            SELECT *, nullif(trim(prompt_id), '') AS _prompt_ext,
                   nullif(trim(response_a_id), '') AS _a_ext,
                   nullif(trim(response_b_id), '') AS _b_ext
            FROM fields
        )
    ), aliased AS (
        SELECT *,
            {_lookup("_prompt_ext", "prompt", uses_ids)} AS _prompt_alias,
            {_lookup("_a_ext", "response", uses_ids)} AS _a_alias,
            {_lookup("_b_ext", "response", uses_ids)} AS _b_alias
        FROM normal
    ), keyed AS (
        SELECT *,
            coalesce(_prompt_hash, _prompt_alias) AS _prompt_tid,
            coalesce(_a_hash, _a_alias) AS _a_tid,
            coalesce(_b_hash, _b_alias) AS _b_tid
        FROM aliased
    ), identified AS (
        SELECT *,
            {sql_response_id("_prompt_tid", "_a_tid", "_a_ext")} AS _a_rid,
            {sql_response_id("_prompt_tid", "_b_tid", "_b_ext")} AS _b_rid
        FROM keyed
    )
    SELECT *,
        CASE
            WHEN _error IS NOT NULL THEN _error
            WHEN choice IS NULL OR trim(choice) = '' THEN 'choice: missing; expected a, b or tie'
            WHEN _choice IS NULL THEN
                'choice: expected a, b or tie (also accepted: equal, draw), got '''
                || left(choice, 40) || ''''
            WHEN _prompt_missing THEN
                CASE WHEN _prompt_given THEN 'prompt: the text is empty or only white space'
                ELSE 'prompt: missing; give the prompt text (or prompt_id of a text '
                     || 'ingested before)' END
            WHEN _prompt_tid IS NULL THEN
                'prompt_id: ''' || _prompt_ext || ''' is not a text ingested before; '
                || 'include the prompt text, or ingest the file that defines it first'
            WHEN _a_missing THEN
                CASE WHEN _a_given THEN 'response_a: the text is empty or only white space'
                ELSE 'response_a: missing; give the reply text (or response_a_id)' END
            WHEN _a_tid IS NULL THEN
                'response_a_id: ''' || _a_ext || ''' is not a text ingested before'
            WHEN _b_missing THEN
                CASE WHEN _b_given THEN 'response_b: the text is empty or only white space'
                ELSE 'response_b: missing; give the reply text (or response_b_id)' END
            WHEN _b_tid IS NULL THEN
                'response_b_id: ''' || _b_ext || ''' is not a text ingested before'
            WHEN _prompt_hash <> _prompt_alias THEN
                'prompt_id: ''' || _prompt_ext || ''' already names a different prompt '
                || 'text; an id must name one text'
            WHEN _a_hash <> _a_alias THEN
                'response_a_id: ''' || _a_ext || ''' already names a different reply text'
            WHEN _b_hash <> _b_alias THEN
                'response_b_id: ''' || _b_ext || ''' already names a different reply text'
            WHEN _a_rid = _b_rid THEN
                'response_a, response_b: the two replies are the same text; a comparison '
                || 'needs two different replies (or two different response ids)'
            WHEN _shown IS NOT NULL AND _shown NOT IN ('a', 'b') THEN
                'shown_first: expected a or b (which reply was displayed first), got '''
                || left(shown_first, 40) || ''''
            WHEN {given_bad("strength", "_strength")} THEN
                'strength: expected a number, got ''' || left(strength, 40) || ''''
            WHEN NOT isfinite(_strength) THEN
                'strength: expected a finite number, got ''' || left(strength, 40)
                || ''' (NaN and infinity are not strengths; leave the field out if unknown)'
            WHEN {given_bad("seconds_spent", "_seconds")} OR _seconds < 0 THEN
                'seconds_spent: expected a number >= 0, got ''' || left(seconds_spent, 40) || ''''
            WHEN NOT isfinite(_seconds) THEN
                'seconds_spent: expected a finite number >= 0, got ''' || left(seconds_spent, 40)
                || ''' (NaN and infinity are not durations; leave the field out if unknown)'
            WHEN {given_bad("created_at", "_created_at")} THEN
                'created_at: expected an ISO-8601 timestamp such as 2026-03-01T14:05:00Z, '
                || 'got ''' || left(created_at, 40) || ''''
            WHEN {given_bad("gold_choice", "_gold")} THEN
                'gold_choice: expected a, b or tie, got ''' || left(gold_choice, 40) || ''''
        END AS _reason
    FROM identified
    """


#: Columns of ``checked`` that nothing after validation reads: the raw strings that were parsed
#: into typed columns, and the validation's own flags (``final`` is the widest table of a batch).
_CHECKED_ONLY: Final = (
    "choice, gold_choice, shown_first, strength, seconds_spent, created_at, comparison_id, "
    "_error, _reason, _prompt_given, _a_given, _b_given, _prompt_missing, _a_missing, "
    "_b_missing, _prompt_alias, _a_alias, _b_alias")


def final_sql() -> str:
    """Valid rows, canonically oriented, each with ``_status`` new / duplicate / conflict.

    A duplicate has the ``comparison_id`` and content of a row stored before (or earlier in this
    chunk); a conflict has the id with different content and carries ``_conflict``, the reason.
    """
    row_hash = """md5(concat_ws(chr(31), coalesce(_reviewer, chr(8709)), _a_rid, _b_rid,
        _choice, coalesce(_shown, ''), coalesce(CAST(_strength AS VARCHAR), ''),
        coalesce(CAST(_created_at AS VARCHAR), ''), coalesce(CAST(_seconds AS VARCHAR), ''),
        coalesce(category, ''), coalesce(guideline_version, ''), coalesce(batch, ''),
        coalesce(rationale, ''), coalesce(_gold, '')))"""
    return f"""
    WITH oriented AS (
        SELECT *,
            {sql_pair_id("_prompt_tid", "_a_rid", "_b_rid")} AS _pair_id,
            _a_rid < _b_rid AS _a_is_1,
            {row_hash} AS _row_hash
        FROM checked WHERE _reason IS NULL
    ), identified AS (
        SELECT *,
            coalesce(nullif(trim(comparison_id), ''), 'h-' || left(_row_hash, 24))
                AS _comparison_id,
            nullif(trim(comparison_id), '') IS NOT NULL AS _id_given
        FROM oriented
    ), repeated AS (
        SELECT _comparison_id AS id, arg_min(_row_hash, _line) AS first_hash,
               min(_line) AS first_line
        FROM identified GROUP BY 1 HAVING count(*) > 1
    )
    SELECT i.* EXCLUDE ({_CHECKED_ONLY}),
        CASE _choice WHEN 'tie' THEN 0
             WHEN 'a' THEN CASE WHEN _a_is_1 THEN 1 ELSE -1 END
             ELSE CASE WHEN _a_is_1 THEN -1 ELSE 1 END END AS _outcome,
        CASE _gold WHEN 'tie' THEN 0
             WHEN 'a' THEN CASE WHEN _a_is_1 THEN 1 ELSE -1 END
             WHEN 'b' THEN CASE WHEN _a_is_1 THEN -1 ELSE 1 END END AS _gold_outcome,
        CASE _shown WHEN 'a' THEN CASE WHEN _a_is_1 THEN 1 ELSE 2 END
             WHEN 'b' THEN CASE WHEN _a_is_1 THEN 2 ELSE 1 END END AS _first_shown,
        {status_sql("c", "comparison_id")},
        {conflict_sql("c", "comparison_id", "judgment", ", or correct this row")}
    FROM identified i
    LEFT JOIN repeated r ON r.id = i._comparison_id
    LEFT JOIN comparisons c ON c.comparison_id = i._comparison_id
    """


def status_sql(stored: str, id_column: str) -> str:
    """``_status`` of a checked row ``i``: 'duplicate' or 'conflict' against the stored row
    ``stored`` with the same id (joined) or an earlier line of the file with it (``r``, the
    ``repeated`` CTE), else 'new'. Same content is a duplicate; other content a conflict."""
    return f"""CASE WHEN {stored}.{id_column} IS NOT NULL AND {stored}.row_hash = i._row_hash
                 THEN 'duplicate'
             WHEN {stored}.{id_column} IS NOT NULL THEN 'conflict'
             WHEN r.id IS NOT NULL AND i._line > r.first_line AND i._row_hash = r.first_hash
                 THEN 'duplicate'
             WHEN r.id IS NOT NULL AND i._line > r.first_line THEN 'conflict'
             ELSE 'new' END AS _status"""


def conflict_sql(stored: str, id_column: str, thing: str, earlier_fix: str = "") -> str:
    """``_conflict``: the quarantine reason of a row :func:`status_sql` calls a conflict
    (``thing``: what one row is, e.g. 'judgment')."""
    new_id = f"i._{id_column}"
    return f"""CASE WHEN {stored}.{id_column} IS NOT NULL AND {stored}.row_hash <> i._row_hash THEN
                '{id_column}: ''' || {new_id} || ''' is already stored (batch '
                || {stored}.batch_id || ', line ' || {stored}.source_line || ') with different '
                || 'content; give each {thing} its own id, or correct this row'
             WHEN {stored}.{id_column} IS NULL AND r.id IS NOT NULL AND i._line > r.first_line
                  AND i._row_hash <> r.first_hash THEN
                '{id_column}: ''' || {new_id} || ''' appears earlier in this file (line '
                || r.first_line || ') with different content; give each {thing} its own '
                || 'id{earlier_fix}'
        END AS _conflict"""
