"""Stopping rules under repeated looks: simulated false-ship rate, power and stopping times."""

from bayes_ab.stopping.operating import (OperatingCharacteristics, ScenarioResult, load_operating_characteristics,
                                           simulate, stored_operating_characteristics)

__all__ = ["OperatingCharacteristics", "ScenarioResult", "load_operating_characteristics", "simulate",
           "stored_operating_characteristics"]
