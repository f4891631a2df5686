"""Stopping rules under repeated looks: simulated error rates, stopping times and exposure, rules compared."""

from bayes_ab.stopping.operating import (SCENARIOS, OperatingCharacteristics, RuleComparison, ScenarioResult,
                                         compare_rules, load_operating_characteristics, simulate,
                                         stored_operating_characteristics)
from bayes_ab.stopping.rules import RULES

__all__ = ["RULES", "SCENARIOS", "OperatingCharacteristics", "RuleComparison", "ScenarioResult", "compare_rules",
           "load_operating_characteristics", "simulate", "stored_operating_characteristics"]
