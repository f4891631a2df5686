"""Effects from posterior draws: lifts, P(beat control), P(best), expected loss, ROPE, sentences."""

from bayes_ab.effects.compute import OVERALL, ArmEffect, MetricEffects, compute_effects
from bayes_ab.effects.sentence import sentence

__all__ = ["OVERALL", "ArmEffect", "MetricEffects", "compute_effects", "sentence"]
