"""Check-ins: looks at a running experiment recorded in an append-only ledger, and their trajectory."""

from bayes_ab.checkins.checkin import CheckIn, checkin, ledger_for, record_look
from bayes_ab.checkins.history import History, history
from bayes_ab.checkins.ledger import Ledger, LookRecord

__all__ = ["CheckIn", "History", "Ledger", "LookRecord", "checkin", "history", "ledger_for", "record_look"]
