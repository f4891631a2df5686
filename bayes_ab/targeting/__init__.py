"""Who should get the treatment: the incremental value of targeting policies.

A policy treats some users and not others by what is known about them before the decision. Its value is the
difference it makes per user, against treating nobody, in the metric's units. The pieces:

- :mod:`~bayes_ab.targeting.features` turns feature columns into a model's design matrix;
- :mod:`~bayes_ab.targeting.crossfit` fits each arm's outcome model (and, for logs, the sending model) on all
  folds but one and predicts the held-out fold, so no user is ranked or scored by a model that saw them;
- :mod:`~bayes_ab.targeting.value` turns the out-of-fold predictions into doubly-robust scores, the candidate
  policies, their values' posterior (Bayesian bootstrap), the uplift curve and its area;
- :mod:`~bayes_ab.targeting.experiment` runs it on a randomised experiment's per-user rows (``targeting`` in
  the spec), :mod:`~bayes_ab.targeting.logs` on logs of past sends that were not randomised.
"""
