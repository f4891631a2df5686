"""The experiment portfolio: one self-contained page listing every experiment under ``models/``.

Why: a team runs many experiments at once; the portfolio answers "what is running, what was decided, and
what does the evidence say" without opening each report, and shows what the organisation's history says
about how large effects usually are (the learned priors). Each row comes from the experiment's ledger (its
last look) when it has check-ins, else from its last ``analyze``; an experiment whose stored state cannot be
read is listed with the reason instead of breaking the page.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

from bayes_ab.decision import Action
from bayes_ab.documents import document, number
from bayes_ab.errors import BayesAbError
from bayes_ab.files import write_atomically

STATUS = {Action.SHIP: "shipped", Action.ROLLBACK: "rolled back", Action.STOP_NO_EFFECT: "stopped"}
"""Status of an experiment whose last recorded look's decision ended it (one of ``TERMINAL_ACTIONS``); any other
decision means it is still running."""
RECOMMENDED = {Action.SHIP: "recommended: ship", Action.ROLLBACK: "recommended: roll back",
               Action.STOP_NO_EFFECT: "recommended: stop"}
"""Status of an experiment whose last ``analyze --stage`` recommended ending it: no check-in recorded the decision,
so the portfolio does not say it was taken."""


@dataclass(frozen=True)
class PortfolioRow:
    """One experiment as the portfolio shows it."""

    experiment: str
    status: str
    last_look: str
    metric: str | None = None
    arm: str | None = None
    rel_lift: float = math.nan
    rel_low: float = math.nan
    rel_high: float = math.nan
    p_beat_control: float = math.nan
    recommendation: str = ""
    report: str | None = None
    problem: str | None = None
    owner: str | None = None
    description: str | None = None


def portfolio_rows(models_dir: str | Path, reports_dir: str | Path | None = None) -> tuple[PortfolioRow, ...]:
    """Every experiment folder under ``models_dir``, one row per treatment arm of its first primary metric."""
    root = Path(models_dir)
    rows: list[PortfolioRow] = []
    if not root.is_dir():
        return ()
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        report = Path(reports_dir) / f"{folder.name}.html" if reports_dir is not None else None
        link = report.name if report is not None and report.exists() else None
        try:
            found = _experiment_rows(folder)
        except (BayesAbError, OSError, ValueError, KeyError) as exc:
            found = [PortfolioRow(folder.name, "unreadable", "", problem=" ".join(str(exc).split())[:300])]
        rows += [PortfolioRow(**{**r.__dict__, "report": link}) for r in found]
    return tuple(rows)


def _experiment_rows(folder: Path) -> list[PortfolioRow]:
    from bayes_ab.checkins.latest import latest_result, nothing_stored

    latest = latest_result(folder)
    if latest is None:
        status = "no looks" if (folder / "ledger.sqlite").exists() else "not analysed"
        return [PortfolioRow(folder.name, status, "", problem=nothing_stored(folder))]
    if latest.action in STATUS and not latest.checked_in:      # one analysis recommended it; no look recorded it
        status = RECOMMENDED[latest.action]
    else:
        status = STATUS.get(latest.action, "running" if latest.checked_in or latest.recommendation else "analysed")
    primary = latest.primary()
    rows = latest.metrics[primary]["rows"] if primary is not None else []
    about = {"owner": latest.about.get("owner"), "description": latest.about.get("description")}
    return [PortfolioRow(**{**r.__dict__, **about})
            for r in _arm_rows(latest.experiment, status, latest.when, primary, rows,
                               latest.recommendation.get("headline", ""))]


def _arm_rows(experiment: str, status: str, when: str, metric: str | None, rows: list[dict],
              recommendation: str) -> list[PortfolioRow]:
    arms = [r for r in rows if r["is_overall"] and not r["is_control"]]
    if not arms:
        return [PortfolioRow(experiment, status, when, metric, recommendation=recommendation)]
    return [PortfolioRow(experiment, status, when, metric, str(r["arm"]), number(r["rel_lift"]), number(r["rel_low"]),
                         number(r["rel_high"]), number(r["p_beat_control"]), recommendation) for r in arms]


def portfolio_document(models_dir: str | Path, rows: tuple[PortfolioRow, ...], page: str | Path | None = None) -> dict:
    """The portfolio as the versioned ``bayes-ab/portfolio`` document (:mod:`bayes_ab.documents`): the ``rows`` of
    :func:`portfolio_rows` (one per experiment and treatment arm of its first primary metric, as the page shows
    them) and the page written."""
    return document("portfolio", {"models_dir": str(models_dir), "page": None if page is None else str(page),
                                  "rows": list(rows)})


def write_portfolio(models_dir: str | Path = "models", reports_dir: str | Path = "reports",
                    priors: list[str | Path] | tuple[str | Path, ...] = (),
                    rows: tuple[PortfolioRow, ...] | None = None) -> Path:
    """Write ``reports_dir/index.html``: the portfolio table and one figure per learned prior file.

    Parameters
    ----------
    models_dir
        Where the experiments' ledgers and analyses are stored.
    reports_dir
        Where the experiments' reports are (linked when they exist) and where the page is written.
    priors
        Learned prior files (``bayes-ab priors learn``) to plot with the past effects they were learned from.
    rows
        The rows when already read (:func:`portfolio_rows` of the same folders: ``portfolio --json`` prints them
        too); read here otherwise.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    from bayes_ab import format as fmt
    from bayes_ab.learned_prior import parse_prior, read_prior_document

    reports = Path(reports_dir)
    rows = portfolio_rows(models_dir, reports) if rows is None else rows
    learned = []
    for path in priors:
        prior_file = read_prior_document(path)
        prior = parse_prior(prior_file, path)
        learned.append({"name": Path(path).stem, "describe": prior.describe(), "figure": _prior_figure(prior_file, prior)})
    env = Environment(loader=PackageLoader("bayes_ab.report", "templates"), autoescape=select_autoescape(default=True))
    env.filters["prob"] = fmt.probability
    env.filters["rel"] = fmt.relative
    counts = {status: sum(r.status == status for r in rows) for status in dict.fromkeys(r.status for r in rows)}
    html = env.get_template("portfolio.html.j2").render(
        rows=rows, priors=learned, counts=counts, models_dir=str(models_dir),
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    reports.mkdir(parents=True, exist_ok=True)
    return write_atomically(reports / "index.html", lambda tmp: tmp.write_text(html, encoding="utf-8"))


def _prior_figure(document: dict, prior) -> str:
    """The past estimates of a (checked) prior file's provenance with both fitted distributions."""
    import numpy as np

    from bayes_ab.priors.learn import EffectDistribution
    from bayes_ab.figures import learned_prior

    past = [r["estimate"] for r in (document.get("provenance") or {}).get("results", []) if "estimate" in r]
    alternatives = document.get("alternatives") or {}
    curves = {}
    for form, raw in alternatives.items():
        if isinstance(raw, dict) and {"location", "scale"} <= set(raw):
            curves[form] = EffectDistribution(form, float(raw["location"]), float(raw["scale"]),
                                              float(raw["df"]) if raw.get("df") is not None else None, 0, 0, 0)
    curves.setdefault(prior.form, EffectDistribution(prior.form, prior.location, prior.scale, prior.df, 0, 0, 0))
    return learned_prior(np.asarray(past, dtype=float), curves, prior.form)
