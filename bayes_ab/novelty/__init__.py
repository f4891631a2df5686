"""Novelty and primacy: the effect by week since exposure, from a daily panel, and the long-run effect.

:mod:`~bayes_ab.aggregation.panel` turns the panel into sufficient statistics, :mod:`~bayes_ab.novelty.model`
fits the effect's path and its asymptote, :mod:`~bayes_ab.novelty.effects` summarises it and gives the
decision the long-run posterior.
"""
