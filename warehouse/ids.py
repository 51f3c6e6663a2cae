"""Content-derived identifiers, identical in Python and in DuckDB SQL.

A text is stored once under the MD5 hash of its UTF-8 bytes. A response is a text given as a
reply to one prompt; a pair is a prompt with an *unordered* pair of responses, so the two
responses are put in canonical order (``response_1_id < response_2_id``) before hashing. The SQL
expressions below are what ingest uses on whole columns; the Python functions are for
simulators, tests and adapters that need the same ids without a database.
"""

from __future__ import annotations

import hashlib
from typing import Final

ID_HEX_CHARS: Final = 20


def _digest(value: str) -> str:
    return hashlib.md5(value.encode("utf-8"), usedforsecurity=False).hexdigest()[:ID_HEX_CHARS]


def text_id(body: str) -> str:
    """Id of a text: the first 20 hex digits of the MD5 of its UTF-8 bytes.

    MD5 serves as a content address here, not as a security measure: it is twice as fast as
    SHA-256 in DuckDB, and ingest hashes every text of every row.
    """
    return _digest(body)


def response_id(prompt_id: str, response_text_id: str, external_id: str | None = None) -> str:
    """Id of a response: its text given as a reply to one prompt.

    When the source names its responses (``response_a_id``), two responses with the same text but
    different source ids stay two responses (their text is still stored once).
    """
    if external_id is None:
        return _digest(f"{prompt_id}:{response_text_id}")
    return _digest(f"{prompt_id}:{response_text_id}:{external_id}")


def pair_id(prompt_id: str, response_x_id: str, response_y_id: str) -> str:
    """Id of the unordered pair of two responses to one prompt."""
    first, second = sorted((response_x_id, response_y_id))
    return _digest(f"{prompt_id}:{first}:{second}")


def pair_id_for_texts(prompt: str, response_x: str, response_y: str) -> str:
    """Pair id straight from the three texts (what a simulator knows)."""
    prompt_key = text_id(prompt)
    return pair_id(
        prompt_key,
        response_id(prompt_key, text_id(response_x)),
        response_id(prompt_key, text_id(response_y)),
    )


def sql_text_id(expression: str) -> str:
    """SQL for :func:`text_id` of a VARCHAR expression."""
    return f"left(md5({expression}), {ID_HEX_CHARS})"


def sql_response_id(prompt_id: str, text_id_expression: str, external_id: str) -> str:
    """SQL for :func:`response_id` (``external_id`` may be null)."""
    return (
        f"left(md5({prompt_id} || ':' || {text_id_expression} || "
        f"coalesce(':' || {external_id}, '')), {ID_HEX_CHARS})"
    )


def sql_pair_id(prompt_id: str, response_x: str, response_y: str) -> str:
    """SQL for :func:`pair_id`."""
    return (
        f"left(md5({prompt_id} || ':' || least({response_x}, {response_y}) || ':' || "
        f"greatest({response_x}, {response_y})), {ID_HEX_CHARS})"
    )
