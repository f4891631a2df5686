"""Exceptions raised by bayes-ab. The CLI turns each into a one-line message and exit code 2."""

from __future__ import annotations


MAX_MESSAGE_CHARS = 300


def cut(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` shortened to about ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit - 40]}... ({len(text) - limit + 40:,} more characters)"


class BayesAbError(Exception):
    """Base class of every error bayes-ab raises on purpose.

    Messages are one line for a person to read; a value quoted in one may come from hostile input of any size,
    so every message is cut to :data:`MAX_MESSAGE_CHARS`.
    """

    def __init__(self, message: str = "", *args):
        super().__init__(cut(" ".join(str(message).split())), *args)


class SpecError(BayesAbError):
    """The experiment spec is malformed; the message names the file and the field."""


class DataError(BayesAbError):
    """The input data are unusable; the message names the column, arm, segment or value at fault."""


class ModelError(BayesAbError):
    """A model could not be built or fitted."""


class LedgerError(BayesAbError):
    """The check-in ledger is missing, foreign, corrupted or would be written out of order."""
