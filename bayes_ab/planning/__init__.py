"""Planning: how many users and days the decision rule needs, before and during an experiment."""

from bayes_ab.planning.assurance import ExperimentPlan, plan_experiment, plan_settings
from bayes_ab.planning.calibration import Calibration, calibrate
from bayes_ab.planning.fixed_horizon import FixedHorizon, fixed_horizon_sample_size
from bayes_ab.planning.predictive import DecisionOutlook, decision_outlook

__all__ = ["Calibration", "DecisionOutlook", "ExperimentPlan", "FixedHorizon", "calibrate", "decision_outlook",
           "fixed_horizon_sample_size", "plan_experiment", "plan_settings"]
