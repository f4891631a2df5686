"""Non-compliance: the effect of the treatment on users who actually received it (CACE), beside the effect of
assigning it.

:mod:`~bayes_ab.compliance.statistics` splits each metric's sufficient statistics by ``received_column``,
:mod:`~bayes_ab.compliance.strata` samples the principal-strata model (Imbens & Rubin 1997) on them, and
:mod:`~bayes_ab.compliance.effects` summarises it per treatment arm, overall and per segment.
"""
