"""Render an analysis to one self-contained HTML file (inline CSS and PNG figures, no scripts)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from bayes_ab.analysis import Analysis
from bayes_ab.checkins.history import History
from bayes_ab.decision import Recommendation
from bayes_ab import format as fmt
from bayes_ab.intervals import interval_name
from bayes_ab.files import write_atomically
from bayes_ab.report.sections import build_content
from bayes_ab.stopping import OperatingCharacteristics, stored_operating_characteristics

_ENV = Environment(loader=PackageLoader("bayes_ab.report", "templates"),
                   autoescape=select_autoescape(default=True, default_for_string=True))
_ENV.filters["prob"] = fmt.probability
_ENV.filters["rel"] = fmt.relative
_ENV.filters["amount"] = fmt.amount
_ENV.filters["interval_name"] = interval_name


def render_report(
    result: Analysis,
    recommendation: Recommendation | None = None,
    history: History | None = None,
    operating: tuple[OperatingCharacteristics, ...] = (),
    outlook: str | None = None,
) -> str:
    """The report as an HTML string; every name that comes from data is escaped by the template.

    Parameters
    ----------
    result
        The analysis.
    recommendation
        The decision (trace and headline), when one was made.
    history, operating
        The experiment's recorded looks and simulated stopping-rule error rates, when they exist.
    outlook
        The predictive outlook beside a ``hold`` (what would change the decision), when computed.
    """
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    content = build_content(result, recommendation, history, operating, generated, outlook)
    return _ENV.get_template("report.html.j2").render(c=content)


def write_report(result: Analysis, reports_dir: Path, recommendation: Recommendation | None = None,
                 models_dir: str | Path | None = None, outlook: str | None = None) -> Path:
    """Write ``reports_dir/<experiment>.html`` atomically and return its path.

    With ``models_dir``, the experiment's ledger (check-in trajectory) and stored error rates are
    included when they exist there.
    """
    history, operating = None, ()
    if models_dir is not None:
        history, operating = stored_context(result.spec.name, models_dir)
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    html = render_report(result, recommendation, history, operating, outlook)
    path = reports_dir / f"{result.spec.name}.html"
    return write_atomically(path, lambda tmp: tmp.write_text(html, encoding="utf-8"))


def stored_context(experiment: str, models_dir: str | Path) -> tuple[History | None, tuple[OperatingCharacteristics, ...]]:
    """The recorded looks (``None`` without a ledger) and the stored error rates of an experiment."""
    from bayes_ab.checkins import history as load_history
    from bayes_ab.checkins.checkin import ledger_for

    looks = load_history(experiment, models_dir) if ledger_for(experiment, models_dir).path.exists() else None
    return looks, stored_operating_characteristics(experiment, models_dir)
