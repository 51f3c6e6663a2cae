"""Errors a person can act on: what happened, where, what was expected, what to do."""

from __future__ import annotations


class DissensusError(Exception):
    """Base error. The message names what went wrong, where, what was expected and the fix."""

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        expected: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.what = what
        self.where = where
        self.expected = expected
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.what]
        if self.where:
            lines.append(f"  where:    {self.where}")
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.fix:
            lines.append(f"  fix:      {self.fix}")
        return "\n".join(lines)


class UnknownFormatError(DissensusError):
    """The input file's format could not be recognised."""


class InputFileError(DissensusError):
    """An input file is missing, unreadable or not what it claims to be."""


class DatabaseBusyError(DissensusError):
    """Another process holds the write lock on the warehouse file."""


class SchemaVersionError(DissensusError):
    """The warehouse file was written by a newer dissensus than this one."""


class WarehouseWriteError(DissensusError):
    """The warehouse could not be written (read-only target, disk full, ...)."""


class StrictModeError(DissensusError):
    """``--strict`` was given and a batch had rows that would be quarantined."""


class PseudonymisationError(DissensusError):
    """Reviewer ids would mix pseudonymised and raw ids, or two different salts."""


class EmptyDataError(DissensusError):
    """An analysis was asked for on data that cannot support it."""
