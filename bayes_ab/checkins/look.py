"""What one look stores: per-metric effects (overall and per segment), diagnostics, recommendation."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from typing import Any

from bayes_ab.errors import LedgerError
from bayes_ab.families import family_for
from bayes_ab.intervals import kind_of
from bayes_ab.data.stats import exposed_users

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_timestamp(value: str | datetime | None = None) -> str:
    """``value`` (ISO 8601 text or datetime; naive means UTC; ``None`` means now) as ``YYYY-MM-DDTHH:MM:SSZ``.

    Raises
    ------
    LedgerError
        When the text is not an ISO 8601 date or timestamp.
    """
    if value is None:
        moment = datetime.now(timezone.utc)
    elif isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise LedgerError(f"as-of {value!r} is not an ISO 8601 date or timestamp "
                              f"(e.g. 2026-03-01 or 2026-03-01T09:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime(TIME_FORMAT)


CLOCK_SKEW = timedelta(minutes=5)


def look_time(value: str | datetime | None = None) -> str:
    """The time of a look (:func:`utc_timestamp`), refused when it lies in the future.

    Looks must come in time order, so one recorded ahead of time (``--as-of 2099-...``) would block every
    real check-in after it; a few minutes of clock skew between machines are allowed.
    """
    moment = utc_timestamp(value)
    now = datetime.now(timezone.utc)
    if datetime.strptime(moment, TIME_FORMAT).replace(tzinfo=timezone.utc) > now + CLOCK_SKEW:
        raise LedgerError(f"as-of {moment} is in the future (now {now.strftime(TIME_FORMAT)}); a look is "
                          "recorded when it is taken")
    return moment


def look_payload(analysis, recommendation, stage: float | None, days: float | None) -> dict[str, Any]:
    """The JSON-ready record of one look: every metric's effects and diagnostics, and the decision."""
    first = next(iter(analysis.stats.values()))
    metrics = {}
    for name, effects in analysis.effects.items():
        metric = effects.metric
        metrics[name] = {
            "family": metric.family, "role": metric.role, "direction": metric.direction,
            "unit": family_for(metric).unit_of(metric), "interval": effects.interval,
            "interval_kind": str(kind_of(effects.interval)),
            "rows": [asdict(row) for row in effects.rows],
            "diagnostics": effects.diagnostics.to_dict(),
            "model_note": effects.model_note,
            "warnings": list(effects.warnings),
        }
        if effects.compliance is not None:
            metrics[name]["compliance"] = effects.compliance.to_dict()
    payload: dict[str, Any] = {
        "experiment": analysis.spec.name,
        "about": analysis.spec.about(),
        "users": exposed_users(first),
        "stage": stage, "days": days,
        "metrics": metrics,
        "recommendation": None if recommendation is None else recommendation.to_dict(),
    }
    return payload
