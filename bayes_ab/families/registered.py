"""The registered families, one line each: adding a family is its module plus one line here."""

from __future__ import annotations

from bayes_ab.families.base import Family
from bayes_ab.families.conversion import Conversion
from bayes_ab.families.count import Count
from bayes_ab.families.mean import Mean
from bayes_ab.families.quantile import Quantile
from bayes_ab.families.ratio import Ratio
from bayes_ab.families.retention import Retention
from bayes_ab.families.switchback import Switchback

FAMILIES: dict[str, Family] = {family.name: family for family in (
    Conversion(),
    Count(),
    Retention(),
    Mean(),
    Ratio(),
    Quantile(),
    Switchback(),
)}
