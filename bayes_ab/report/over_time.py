"""The lift over time: each primary's and guardrail's cumulative relative lift with its interval at every recorded
look, by date, and each arm's exposure — inline SVG, so that a pointer on a point shows its value.

What every results page shows first over time. The x axis is the look's date (looks are not evenly spaced), the
ramp stages are background bands, zero, the ROPE and a guardrail's margin are lines. SVG rather than a picture:
each point carries a ``<title>`` (the browser's tooltip) and the page stays one file with no script and no
request. Every text placed in the SVG is escaped.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from html import escape
from typing import Sequence

from bayes_ab import format as fmt
from bayes_ab.checkins.history import History
from bayes_ab.documents import number
from bayes_ab.checkins.latest import parse_time, readable_time
from bayes_ab.figures import OKABE_ITO
from bayes_ab.metric import Role

WIDTH, HEIGHT = 760, 250
LEFT, RIGHT, TOP, BOTTOM = 62, 18, 34, 38
BANDS = ("#f4f7fb", "#e8eef6")


@dataclass(frozen=True)
class Point:
    """One look of one metric and arm: when, the lift and its interval, the stage and the arm's users."""

    look: int
    when: dt.datetime
    lift: float
    low: float
    high: float
    stage: float | None
    users: int


def lift_series(history: History, metric: str) -> dict[str, list[Point]]:
    """Per treatment arm, the overall lift of ``metric`` at every look that recorded it."""
    series: dict[str, list[Point]] = {}
    for look in history.looks:
        recorded = look.payload["metrics"].get(metric)
        if recorded is None:
            continue
        for row in recorded["rows"]:
            if row["is_overall"] and not row["is_control"]:
                series.setdefault(str(row["arm"]), []).append(Point(
                    look.look, parse_time(look.as_of), number(row["rel_lift"]), number(row["rel_low"]),
                    number(row["rel_high"]), look.payload.get("stage"), int(row["users"])))
    return series


class _Axes:
    """Maps dates and values to the plot's pixels."""

    def __init__(self, times: Sequence[dt.datetime], low: float, high: float):
        self.start, self.end = min(times), max(times)
        span = (self.end - self.start).total_seconds()
        self.span = span if span > 0 else 1.0
        pad = 0.08 * (high - low if high > low else 1.0)
        self.low, self.high = low - pad, high + pad

    def x(self, when: dt.datetime) -> float:
        if self.end == self.start:
            return LEFT + (WIDTH - LEFT - RIGHT) / 2
        return LEFT + (WIDTH - LEFT - RIGHT) * (when - self.start).total_seconds() / self.span

    def y(self, value: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (self.high - value) / (self.high - self.low)


def _frame(axes: _Axes, points: Sequence[Point], label: str, ticks: Sequence[float], tick_text) -> list[str]:
    """The stage bands, the axes, the y ticks and the date ticks."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
             f'aria-label="{escape(label)}" class="over-time">', f"<title>{escape(label)}</title>"]
    looks = sorted({(p.when, p.stage) for p in points})
    for i, (when, stage) in enumerate(looks):         # a band from each look to the next at the same stage
        if i + 1 < len(looks) and looks[i + 1][1] == stage:
            x0, x1 = axes.x(when), axes.x(looks[i + 1][0])
            shade = BANDS[[s for _, s in looks].index(stage) % 2] if stage is not None else BANDS[0]
            parts.append(f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 0):.1f}" height="{HEIGHT - TOP - BOTTOM}" '
                         f'fill="{shade}"><title>stage {escape(_stage(stage))}</title></rect>')
    stages_seen = []
    for when, stage in looks:
        if stage not in stages_seen:
            stages_seen.append(stage)
            x = min(axes.x(when) + 3, WIDTH - RIGHT - 70)      # a label at the last look stays inside
            parts.append(f'<text x="{x:.1f}" y="{TOP + 11}" font-size="10" fill="#555">{escape(_stage(stage))}</text>')
    parts.append(f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" '
                 'stroke="#999"/>')
    for value in ticks:
        y = axes.y(value)
        parts.append(f'<text x="{LEFT - 6}" y="{y + 3.5:.1f}" font-size="10" text-anchor="end" fill="#555">'
                     f'{escape(tick_text(value))}</text>')
    dates = sorted({p.when for p in points})
    shown = dates if len(dates) <= 7 else [dates[round(i * (len(dates) - 1) / 6)] for i in range(7)]
    for when in shown:
        parts.append(f'<text x="{axes.x(when):.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="10" text-anchor="middle" '
                     f'fill="#555">{when.day} {when:%b}</text>')
    return parts


def _stage(stage) -> str:
    return "no stage" if stage is None else f"stage {stage:g}%"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def lift_over_time(history: History, metric: str, role: str, increase_is_good: bool, rope: float,
                   margin: float | None, interval: float) -> str | None:
    """The SVG of ``metric``'s relative lift by look date (``None`` when no look recorded it): one colour per
    treatment arm, each look a point with its interval and a tooltip; zero, the ROPE (dotted) and, for a
    guardrail, the margin on the harmful side (dashed)."""
    series = lift_series(history, metric)
    points = [p for arm in series.values() for p in arm if math.isfinite(p.lift)]
    if not points:
        return None
    values = [v for p in points for v in (p.low, p.high, p.lift) if math.isfinite(v)] + [0.0, rope, -rope]
    harm = None
    if role == Role.GUARDRAIL and margin is not None:
        harm = -margin if increase_is_good else margin
        values.append(harm)
    axes = _Axes([p.when for p in points], min(values), max(values))
    label = f"{metric}: relative lift at each look ({interval:.0%} intervals)"
    parts = _frame(axes, points, label, _ticks(axes.low, axes.high), lambda v: "0%" if abs(v) < 1e-12 else f"{100 * v:+.4g}%")
    parts.append(f'<line x1="{LEFT}" y1="{axes.y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{axes.y(0):.1f}" stroke="#666"/>')
    for edge in (rope, -rope):
        parts.append(f'<line x1="{LEFT}" y1="{axes.y(edge):.1f}" x2="{WIDTH - RIGHT}" y2="{axes.y(edge):.1f}" '
                     f'stroke="#999" stroke-dasharray="2 3"><title>ROPE {100 * edge:+.3g}%</title></line>')
    if harm is not None:
        parts.append(f'<line x1="{LEFT}" y1="{axes.y(harm):.1f}" x2="{WIDTH - RIGHT}" y2="{axes.y(harm):.1f}" '
                     f'stroke="#b34700" stroke-dasharray="6 4"><title>guardrail margin: worse by '
                     f'{100 * abs(harm):.3g}%</title></line>')
    for k, (arm, found) in enumerate(series.items()):
        colour = OKABE_ITO[k % len(OKABE_ITO)]
        shown = [p for p in found if math.isfinite(p.lift)]
        path = " ".join(f"{axes.x(p.when):.1f},{axes.y(p.lift):.1f}" for p in shown)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for p in shown:
            x = axes.x(p.when)
            text = (f"{arm}, look {p.look} ({readable_time(p.when)}, {_stage(p.stage)}): {fmt.relative(p.lift)} "
                    f"({interval:.0%} interval {fmt.relative(p.low)} to {fmt.relative(p.high)}), "
                    f"{p.users:,} users")
            parts.append(f'<g class="look"><line x1="{x:.1f}" y1="{axes.y(p.low):.1f}" x2="{x:.1f}" '
                         f'y2="{axes.y(p.high):.1f}" stroke="{colour}" stroke-width="2"/>'
                         f'<circle cx="{x:.1f}" cy="{axes.y(p.lift):.1f}" r="4" fill="{colour}">'
                         f"<title>{escape(text)}</title></circle></g>")
        parts.append(f'<text x="{WIDTH - RIGHT}" y="{TOP - 8 + 12 * k}" font-size="11" text-anchor="end" '
                     f'fill="{colour}">{escape(arm)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def exposure_over_time(history: History, arms: Sequence[str]) -> str | None:
    """The SVG of each arm's users at every look, by date (from the first metric each look recorded)."""
    counts: dict[str, list[tuple[Point, int]]] = {arm: [] for arm in arms}
    points = []
    for look in history.looks:
        metrics = look.payload["metrics"]
        if not metrics:
            continue
        first = next(iter(metrics.values()))
        when = parse_time(look.as_of)
        for row in first["rows"]:
            if row["is_overall"] and str(row["arm"]) in counts:
                point = Point(look.look, when, math.nan, math.nan, math.nan, look.payload.get("stage"),
                              int(row["users"]))
                counts[str(row["arm"])].append((point, int(row["users"])))
                points.append(point)
    if not points:
        return None
    top = max(p.users for p in points)
    axes = _Axes([p.when for p in points], 0.0, float(top))
    label = "users so far in each arm at each look"
    parts = _frame(axes, points, label, _ticks(0.0, axes.high), lambda v: f"{v:,.0f}")
    for k, (arm, found) in enumerate(counts.items()):
        colour = OKABE_ITO[k % len(OKABE_ITO)]
        path = " ".join(f"{axes.x(p.when):.1f},{axes.y(n):.1f}" for p, n in found)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for p, n in found:
            parts.append(f'<circle cx="{axes.x(p.when):.1f}" cy="{axes.y(n):.1f}" r="3" fill="{colour}"><title>'
                         f"{escape(f'{arm}, look {p.look} ({readable_time(p.when)}): {n:,} users')}</title></circle>")
        parts.append(f'<text x="{WIDTH - RIGHT}" y="{TOP - 8 + 12 * k}" font-size="11" text-anchor="end" '
                     f'fill="{colour}">{escape(arm)}</text>')
    parts.append("</svg>")
    return "".join(parts)
