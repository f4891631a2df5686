"""Exceptions raised by bayes-ab. The CLI turns each into a one-line message and exit code 2."""

from __future__ import annotations


class BayesAbError(Exception):
    """Base class of every error bayes-ab raises on purpose."""


class SpecError(BayesAbError):
    """The experiment spec is malformed; the message names the file and the field."""


class DataError(BayesAbError):
    """The input data are unusable; the message names the column, arm, segment or value at fault."""


class ModelError(BayesAbError):
    """A model could not be built or fitted."""


class LedgerError(BayesAbError):
    """The check-in ledger is missing, foreign, corrupted or would be written out of order."""
