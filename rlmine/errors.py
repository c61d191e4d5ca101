"""Domain errors. Library code raises these; the CLI turns them into one line.

Every error carries the problem and, where one exists, the fix. Errors are named
by who is at fault: :class:`UserError` (bad input or configuration: the user can
fix it) versus :class:`RlmineRuntimeError` (something failed while working).
"""

from __future__ import annotations


class RlmineError(Exception):
    """Base class: ``message`` says what is wrong, ``hint`` how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = f"{self.message} — try {self.hint}" if self.hint else self.message
        return " ".join(text.split())


class UserError(RlmineError):
    """Bad input: a path, an id, a file format, an option value."""


class RlmineRuntimeError(RlmineError):
    """A failure while doing valid work (a dead sandbox, a provider outage)."""


class StoreError(UserError):
    """The database cannot be opened or used as asked."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer rlmine."""


class DatabaseBusyError(RlmineRuntimeError):
    """Another process held the database for longer than we were willing to wait."""


class NotFoundError(UserError):
    """An id that names nothing in the database."""
