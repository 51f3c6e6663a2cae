"""Vectorised validation of one staged chunk, in DuckDB SQL.

The chunk arrives as an Arrow table registered under the name ``chunk``. :func:`extract_sql`
turns JSON lines into the contract's string columns; :func:`checked_sql` normalises every field,
resolves texts to content-hash ids and gives each row either ``_reason`` = null (valid) or a
reason a person can act on, naming the field. Everything happens in a few set-based statements:
no Python loop over rows.
"""

from __future__ import annotations

from typing import Final

from warehouse.contract import CONTRACT_COLUMNS, REVIEWER_ATTRIBUTES_COLUMN
from warehouse.ids import sql_pair_id, sql_response_id, sql_text_id

#: Fields whose JSON value may be an array (joined with commas).
LIST_FIELDS: Final = ("response_a_tags", "response_b_tags")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def extract_sql(extra_reviewer_keys: list[str]) -> str:
    """SELECT over ``chunk`` (json_lines) giving ``_line, _raw, _error``, the contract columns
    and ``_reviewer_attributes``: a JSON object of the extra ``reviewer_*`` keys, which the caller
    finds once per chunk with :func:`keys_sql` (a per-row key scan would cost more)."""
    paths = ", ".join(_quote(f'$."{name}"') for name in CONTRACT_COLUMNS)
    columns = []
    for index, name in enumerate(CONTRACT_COLUMNS, start=1):
        if name in LIST_FIELDS:
            columns.append(
                f"CASE WHEN _t[{index}] = 'ARRAY' THEN "
                f"array_to_string(from_json(_v[{index}], '[\"VARCHAR\"]'), ',') "
                f"ELSE _v[{index}] END AS {name}"
            )
        else:
            columns.append(f"_v[{index}] AS {name}")
    type_checks = " ".join(
        f"WHEN _t[{index}] IN ('OBJECT', 'ARRAY') THEN "
        f"'{name}: expected a string or number, found a JSON ' || lower(_t[{index}])"
        for index, name in enumerate(CONTRACT_COLUMNS, start=1)
        if name not in LIST_FIELDS
    )
    if extra_reviewer_keys:
        attributes = "json_object(" + ", ".join(
            f"{_quote(key.removeprefix('reviewer_'))}, "
            f"json_extract_string(_j, {_quote(chr(36) + '.' + chr(34) + key + chr(34))})"
            for key in extra_reviewer_keys
        ) + ")"
    else:
        attributes = "CAST(NULL AS VARCHAR)"
    return f"""
    WITH parsed AS (
        SELECT _line, _raw, _error,
               CASE WHEN _error IS NULL AND json_valid(_raw) THEN _raw END AS _j
        FROM chunk
    ), extracted AS (
        SELECT _line, _raw, _error, _j,
               json_extract_string(_j, [{paths}]) AS _v,
               json_type(_j, [{paths}]) AS _t,
               json_type(_j) AS _root
        FROM parsed
    )
    SELECT _line, _raw,
           CASE WHEN _error IS NOT NULL THEN _error
                WHEN _j IS NULL THEN 'not valid JSON'
                WHEN _root <> 'OBJECT' THEN
                    'expected one JSON object per line, found a JSON ' || lower(_root)
                {type_checks}
           END AS _error,
           {", ".join(columns)},
           {attributes} AS {REVIEWER_ATTRIBUTES_COLUMN}
    FROM extracted
    """


def keys_sql() -> str:
    """Distinct top-level keys of the valid JSON objects in ``chunk``."""
    return """
    SELECT DISTINCT unnest(json_keys(_raw)) AS key FROM chunk
    WHERE _error IS NULL AND json_valid(_raw) AND json_type(_raw) = 'OBJECT'
    """


_CHOICE_SQL: Final = """CASE lower(trim({col}))
        WHEN 'a' THEN 'a' WHEN 'b' THEN 'b' WHEN 'tie' THEN 'tie' WHEN 'equal' THEN 'tie'
        WHEN 'draw' THEN 'tie' WHEN 'same' THEN 'tie' END"""


def checked_sql(fields_relation: str, salt_sql: str | None) -> str:
    """Normalise and validate the rows of ``fields_relation`` (one row per source row).

    ``salt_sql`` is a SQL string literal holding the pseudonymisation salt, or None.
    Needs the temp table ``chunk_aliases(kind, external_id, text_id)`` (stored aliases plus
    those this chunk defines) to resolve rows that give a text id instead of a text.
    """
    reviewer = "nullif(trim(reviewer_id), '')"
    if salt_sql is not None:
        reviewer = (
            f"CASE WHEN {reviewer} IS NOT NULL THEN "
            f"'r-' || left(sha256({salt_sql} || ':' || {reviewer}), 16) END"
        )

    def hashed(text: str) -> str:
        return f"CASE WHEN trim({text}) <> '' THEN {sql_text_id(text)} END"

    def alias(external: str, kind: str) -> str:
        return (
            f"(SELECT a.text_id FROM chunk_aliases a WHERE a.kind = '{kind}' "
            f"AND a.external_id = {external})"
        )

    def direct(external: str) -> str:
        return f"(SELECT t.text_id FROM texts t WHERE t.text_id = {external})"

    return f"""
    WITH normal AS (
        SELECT *,
            {reviewer} AS _reviewer,
            {_CHOICE_SQL.format(col="choice")} AS _choice,
            {_CHOICE_SQL.format(col="gold_choice")} AS _gold,
            lower(trim(shown_first)) AS _shown_first,
            TRY_CAST(strength AS DOUBLE) AS _strength,
            TRY_CAST(seconds_spent AS DOUBLE) AS _seconds,
            (TRY_CAST(created_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC') AS _created_at,
            nullif(trim(prompt_id), '') AS _prompt_ext,
            nullif(trim(response_a_id), '') AS _a_ext,
            nullif(trim(response_b_id), '') AS _b_ext,
            {hashed("prompt")} AS _prompt_hash,
            {hashed("response_a")} AS _a_hash,
            {hashed("response_b")} AS _b_hash
        FROM {fields_relation}
    ), aliased AS (
        SELECT *,
            {alias("_prompt_ext", "prompt")} AS _prompt_alias,
            {alias("_a_ext", "response")} AS _a_alias,
            {alias("_b_ext", "response")} AS _b_alias
        FROM normal
    ), keyed AS (
        SELECT *,
            coalesce(_prompt_hash, _prompt_alias, {direct("_prompt_ext")}) AS _prompt_tid,
            coalesce(_a_hash, _a_alias, {direct("_a_ext")}) AS _a_tid,
            coalesce(_b_hash, _b_alias, {direct("_b_ext")}) AS _b_tid
        FROM aliased
    ), identified AS (
        SELECT *,
            {sql_response_id("_prompt_tid", "_a_tid", "_a_ext")} AS _a_rid,
            {sql_response_id("_prompt_tid", "_b_tid", "_b_ext")} AS _b_rid
        FROM keyed
    ), reasoned AS (
        SELECT *,
            CASE
                WHEN _error IS NOT NULL THEN _error
                WHEN choice IS NULL OR trim(choice) = '' THEN
                    'choice: missing; expected a, b or tie'
                WHEN _choice IS NULL THEN
                    'choice: expected a, b or tie (also accepted: equal, draw), got '''
                    || left(choice, 40) || ''''
                WHEN (prompt IS NULL OR trim(prompt) = '') AND _prompt_ext IS NULL THEN
                    CASE WHEN prompt IS NOT NULL THEN 'prompt: the text is empty'
                    ELSE 'prompt: missing; give the prompt text (or prompt_id of a text '
                         || 'ingested before)' END
                WHEN _prompt_tid IS NULL THEN
                    'prompt_id: ''' || _prompt_ext || ''' is not a text ingested before; '
                    || 'include the prompt text, or ingest the file that defines it first'
                WHEN (response_a IS NULL OR trim(response_a) = '') AND _a_ext IS NULL THEN
                    CASE WHEN response_a IS NOT NULL THEN 'response_a: the text is empty'
                    ELSE 'response_a: missing; give the reply text (or response_a_id)' END
                WHEN _a_tid IS NULL THEN
                    'response_a_id: ''' || _a_ext || ''' is not a text ingested before'
                WHEN (response_b IS NULL OR trim(response_b) = '') AND _b_ext IS NULL THEN
                    CASE WHEN response_b IS NOT NULL THEN 'response_b: the text is empty'
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
                WHEN _shown_first IS NOT NULL AND _shown_first <> ''
                     AND _shown_first NOT IN ('a', 'b') THEN
                    'shown_first: expected a or b (which reply was displayed first), got '''
                    || left(shown_first, 40) || ''''
                WHEN strength IS NOT NULL AND trim(strength) <> '' AND _strength IS NULL THEN
                    'strength: expected a number, got ''' || left(strength, 40) || ''''
                WHEN seconds_spent IS NOT NULL AND trim(seconds_spent) <> ''
                     AND (_seconds IS NULL OR _seconds < 0) THEN
                    'seconds_spent: expected a number >= 0, got ''' || left(seconds_spent, 40)
                    || ''''
                WHEN created_at IS NOT NULL AND trim(created_at) <> ''
                     AND _created_at IS NULL THEN
                    'created_at: expected an ISO-8601 timestamp such as 2026-03-01T14:05:00Z, '
                    || 'got ''' || left(created_at, 40) || ''''
                WHEN gold_choice IS NOT NULL AND trim(gold_choice) <> '' AND _gold IS NULL THEN
                    'gold_choice: expected a, b or tie, got ''' || left(gold_choice, 40) || ''''
            END AS _reason
        FROM identified
    )
    SELECT * FROM reasoned
    """


def finalised_sql() -> str:
    """Canonical orientation, outcome, row hash and comparison id of the valid rows."""
    return f"""
    WITH oriented AS (
        SELECT *,
            {sql_pair_id("_prompt_tid", "_a_rid", "_b_rid")} AS _pair_id,
            _a_rid < _b_rid AS _a_is_1,
            nullif(_shown_first, '') AS _shown
        FROM checked WHERE _reason IS NULL
    ), hashed AS (
        SELECT *,
            sha256(concat_ws(chr(31), coalesce(_reviewer, '\u2205'), _a_rid, _b_rid, _choice,
                coalesce(_shown, ''), coalesce(CAST(_strength AS VARCHAR), ''),
                coalesce(CAST(_created_at AS VARCHAR), ''), coalesce(CAST(_seconds AS VARCHAR), ''),
                coalesce(category, ''), coalesce(guideline_version, ''), coalesce(batch, ''),
                coalesce(rationale, ''), coalesce(_gold, ''))) AS _row_hash
        FROM oriented
    )
    SELECT *,
        coalesce(nullif(trim(comparison_id), ''), 'h-' || left(_row_hash, 24)) AS _comparison_id,
        nullif(trim(comparison_id), '') IS NOT NULL AS _id_given,
        CASE _choice WHEN 'tie' THEN 0
             WHEN 'a' THEN CASE WHEN _a_is_1 THEN 1 ELSE -1 END
             ELSE CASE WHEN _a_is_1 THEN -1 ELSE 1 END END AS _outcome,
        CASE _gold WHEN 'tie' THEN 0
             WHEN 'a' THEN CASE WHEN _a_is_1 THEN 1 ELSE -1 END
             WHEN 'b' THEN CASE WHEN _a_is_1 THEN -1 ELSE 1 END END AS _gold_outcome,
        CASE _shown WHEN 'a' THEN CASE WHEN _a_is_1 THEN 1 ELSE 2 END
             WHEN 'b' THEN CASE WHEN _a_is_1 THEN 2 ELSE 1 END END AS _first_shown
    FROM hashed
    """
