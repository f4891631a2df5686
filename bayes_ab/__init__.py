"""bayes-ab: a Bayesian experimentation engine (import package ``bayes_ab``, command ``bayes-ab``)."""

from bayes_ab import _moved

DISTRIBUTION = "bayes-ab-engine"
"""The name to ``pip install``: ``bayes-ab`` on PyPI is an unrelated package."""

__version__ = "0.2.0"

_moved.install()    # the 0.1 import paths, for one release (see bayes_ab._moved)
