"""The report's figures: matplotlib plots (:mod:`~bayes_ab.figures.plots`) placed in the page as inline SVG with
hover titles (:mod:`~bayes_ab.figures.svg`)."""

from bayes_ab.figures.plots import (GREY, LINES, MARKERS, OKABE_ITO, best_arm, count_distribution, decision_checks,
                                    exposure, forest, guardrail_bars, learned_prior, lift_by_week, lift_density,
                                    prior_posterior, retention_curves, trajectory, uplift_curve)

__all__ = ["GREY", "LINES", "MARKERS", "OKABE_ITO", "best_arm", "count_distribution", "decision_checks", "exposure",
           "forest", "guardrail_bars", "learned_prior", "lift_by_week", "lift_density", "prior_posterior",
           "retention_curves", "trajectory", "uplift_curve"]
