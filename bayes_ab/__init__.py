"""bayes-ab: a Bayesian experimentation engine (import package ``bayes_ab``, command ``bayes-ab``)."""

DISTRIBUTION = "bayes-ab-engine"
"""The name to ``pip install``: ``bayes-ab`` on PyPI is an unrelated package."""
