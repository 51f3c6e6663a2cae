"""The input data contract: one pairwise comparison per row.

Every reader (JSONL, CSV, Parquet, and the adapters for public formats) turns its source into
*staged chunks*: Arrow tables with the columns below, every value a string or null, plus
``_line`` (1-based line or row number in the source) and ``_raw`` (the source row as text, kept
for quarantine). Validation, canonicalisation and storage then happen once, in
:mod:`dissensus.warehouse.ingest`, whatever the source format.
"""

from __future__ import annotations

from typing import Final

#: Columns a row must carry (texts may be replaced by ids of texts ingested before).
REQUIRED_COLUMNS: Final = ("reviewer_id", "choice")
TEXT_COLUMNS: Final = ("prompt", "response_a", "response_b")
TEXT_ID_COLUMNS: Final = ("prompt_id", "response_a_id", "response_b_id")

#: Optional columns of the contract, in the order they are staged.
OPTIONAL_COLUMNS: Final = (
    "comparison_id",
    "shown_first",
    "strength",
    "created_at",
    "seconds_spent",
    "category",
    "guideline_version",
    "batch",
    "rationale",
    "gold_choice",
    "response_a_model",
    "response_b_model",
    "response_a_tags",
    "response_b_tags",
    "reviewer_pool",
    "reviewer_locale",
)

#: Every named column of the contract; other ``reviewer_*`` columns are kept as reviewer attributes.
CONTRACT_COLUMNS: Final = (
    REQUIRED_COLUMNS + TEXT_COLUMNS + TEXT_ID_COLUMNS + OPTIONAL_COLUMNS
)

#: Bookkeeping columns every staged chunk carries.
LINE_COLUMN: Final = "_line"
RAW_COLUMN: Final = "_raw"
#: Staged column holding extra reviewer attributes as a JSON object string (or null).
REVIEWER_ATTRIBUTES_COLUMN: Final = "_reviewer_attributes"

CHOICES: Final = ("a", "b", "tie")
#: Spellings accepted for each choice (case-insensitive) and what they mean.
CHOICE_ALIASES: Final = {
    "a": "a",
    "b": "b",
    "tie": "tie",
    "equal": "tie",
    "draw": "tie",
    "same": "tie",
}
SHOWN_FIRST_VALUES: Final = ("a", "b")
#: Response tags are given as a list, or as one string separated by these characters.
TAG_SEPARATORS: Final = ",;|"

#: A ``reviewer_*`` attribute key must name something after the prefix, in characters that need
#: no quoting in a JSON path (letters, digits, ``_ - .`` and ``@`` for a scope).
_ATTRIBUTE_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.@"
)


def is_attribute_key(name: str) -> bool:
    """Whether ``name`` is a reviewer attribute the warehouse keeps (``reviewer_team``,
    ``reviewer_level@2026``); other ``reviewer_*`` names are reported as not stored."""
    rest = name.removeprefix("reviewer_")
    return (
        name.startswith("reviewer_") and name not in CONTRACT_COLUMNS and bool(rest)
        and set(rest) <= _ATTRIBUTE_CHARS
    )
