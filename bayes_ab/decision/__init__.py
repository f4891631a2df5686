"""Decisions: posteriors + guardrails + ramp plan + data-quality gates -> Recommendation (pure)."""

from bayes_ab.decision.checks import RuleCheck
from bayes_ab.decision.rules import ACTIONS, TERMINAL_ACTIONS, Action, Recommendation, decide, recommend

__all__ = ["ACTIONS", "TERMINAL_ACTIONS", "Action", "Recommendation", "RuleCheck", "decide", "recommend"]
