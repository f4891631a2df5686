"""Render an :class:`~bayes_ab.analysis.Analysis` to one self-contained HTML file."""

from __future__ import annotations

import datetime as dt
from importlib.metadata import version
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from bayes_ab.analysis import Analysis
from bayes_ab.effects import format as fmt
from bayes_ab.effects import sentence
from bayes_ab.models.families import FAMILIES
from bayes_ab.files import write_atomically

_ENV = Environment(loader=PackageLoader("bayes_ab.report", "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True))
_ENV.filters["prob"] = fmt.probability
_ENV.filters["rel"] = fmt.relative


def render_report(result: Analysis) -> str:
    """The report as an HTML string; every name that comes from data is escaped by the template."""
    metrics = []
    for effects in result.effects.values():
        family = FAMILIES[effects.metric.family]
        metrics.append({
            "effects": effects,
            "sentences": [sentence(effects, arm) for arm in effects.treatments],
            "unit": family.unit,
            "unit_scale": family.unit_scale,
        })
    first = next(iter(result.stats.values()))
    return _ENV.get_template("report.html.j2").render(
        spec=result.spec,
        metrics=metrics,
        users=int(first["n"].sum()),
        segments=first.sizes["segment"],
        fingerprint=result.fingerprint,
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        version=version("bayes-ab"),
    )


def write_report(result: Analysis, reports_dir: Path) -> Path:
    """Write ``reports_dir/<experiment>.html`` atomically and return its path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{result.spec.name}.html"
    return write_atomically(path, lambda tmp: tmp.write_text(render_report(result), encoding="utf-8"))
