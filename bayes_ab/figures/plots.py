"""Report figures: matplotlib drawings returned as inline SVG markup, their text kept as text, their points
showing their numbers on hover.

Text stays text (``svg.fonttype: none``) so that the reader's browser draws every glyph with its own fonts:
segment, arm and metric names in Chinese, Japanese or with emoji were boxes in the PNGs matplotlib's one
bundled font could draw, each with a warning. Each figure marks the artists whose numbers a reader wants
(:func:`~bayes_ab.figures.svg.hover`) and :func:`~bayes_ab.figures.svg.inline_svg` turns them into tooltips;
matplotlib and ElementTree escape every text, and the SVG has no script. Colours follow the Okabe-Ito palette,
which stays distinct under the common colour-vision deficiencies; every series is also told apart by marker
or line style.
"""

from __future__ import annotations

import io
import warnings
from typing import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, PercentFormatter  # noqa: E402
from markupsafe import Markup  # noqa: E402

from bayes_ab.figures.svg import hover, inline_svg  # noqa: E402
from bayes_ab.intervals import eti  # noqa: E402

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
GREY = "#999999"
LINES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P")
WIDTH = 7.2


SVG_SETTINGS = {"svg.fonttype": "none", "svg.hashsalt": "bayes-ab"}   # text as text; the same ids on every run


def _svg(fig, titles: dict | None = None) -> Markup:
    """``fig`` as inline SVG markup with its hover ``titles`` (and closed). The layout measures text with
    matplotlib's own font, which lacks CJK and emoji glyphs: the warnings saying so are about that
    measurement, not the drawing, and are silenced."""
    buffer = io.BytesIO()
    with plt.rc_context(SVG_SETTINGS), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return inline_svg(buffer.getvalue(), titles or {})


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:+.2f}%"


def _middle_90(draws: np.ndarray) -> tuple[float, float, float] | None:
    """The equal-tailed 90% interval's ends and the median of the finite draws (a curve's hover text), or
    ``None`` without any."""
    finite = draws[np.isfinite(draws)]
    if not finite.size:
        return None
    low, high = eti(finite, 0.9)
    return low, float(np.median(finite)), high


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="both", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)


def _percent(ax, axis: str = "x") -> None:
    formatter = FuncFormatter(lambda v, _: f"{100 * v:+.0f}%" if abs(v) >= 0.01 or v == 0 else f"{100 * v:+.1f}%")
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(formatter)


def _density(draws: np.ndarray, grid: np.ndarray) -> np.ndarray:
    from scipy.stats import gaussian_kde   # here, not at the top: a check-in without a report never loads scipy.stats

    finite = draws[np.isfinite(draws)]
    if finite.size < 2 or np.ptp(finite) == 0:
        return np.zeros_like(grid)
    return gaussian_kde(finite)(grid)


def lift_density(series: dict[str, np.ndarray], rope: float, title: str) -> Markup:
    """Posterior density of the relative lift per treatment arm, with the ROPE band and the zero line."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.8))
    titles: dict = {}
    everything = np.concatenate([d[np.isfinite(d)] for d in series.values()])
    low, high = np.percentile(everything, [0.2, 99.8])
    pad = max(high - low, 2 * rope) * 0.15
    grid = np.linspace(min(low, -rope) - pad, max(high, rope) + pad, 400)
    ax.axvspan(-rope, rope, color=GREY, alpha=0.25, label=f"ROPE ±{rope:.1%}")
    ax.axvline(0, color="black", linewidth=1)
    for k, (arm, draws) in enumerate(series.items()):
        line, = ax.plot(grid, _density(draws, grid), color=OKABE_ITO[k % 8], linestyle=LINES[k % 4], linewidth=2,
                        label=arm)
        if (middle := _middle_90(draws)) is not None:
            low, mid, high = middle
            hover(line, f"{arm}: median lift {_pct(mid)}; 90% of the posterior between {_pct(low)} and "
                        f"{_pct(high)}", titles)
    ax.set_yticks([])
    ax.set_xlabel("relative lift vs control")
    _percent(ax)
    _style(ax)
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(frameon=False, fontsize=9)
    return _svg(fig, titles)


def forest(rows: Sequence[dict], title: str) -> Markup:
    """Per segment (and overall): unpooled and pooled relative lift with intervals, one row each."""
    labels = [r["label"] for r in rows]
    fig, ax = plt.subplots(figsize=(WIDTH, 0.9 + 0.42 * len(rows)))
    titles: dict = {}
    y = np.arange(len(rows))[::-1]
    for offset, key, colour, marker, name in ((0.14, "unpooled", OKABE_ITO[1], "s", "unpooled (segment alone, flat prior)"),
                                              (-0.14, "pooled", OKABE_ITO[0], "o", "pooled (hierarchical model)")):
        mid = np.array([r[key][0] for r in rows])
        lo = np.array([r[key][1] for r in rows])
        hi = np.array([r[key][2] for r in rows])
        bars = ax.errorbar(mid, y + offset, xerr=[mid - lo, hi - mid], fmt=marker, color=colour, ecolor=colour,
                           capsize=2, markersize=5, label=name)
        hover(bars.lines[0], [f"{r['label']}, {key}: {_pct(r[key][0])} ({_pct(r[key][1])} to {_pct(r[key][2])})"
                              for r in rows], titles)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xlabel("relative lift vs control (interval)")
    _percent(ax)
    _style(ax)
    ax.set_title(title, fontsize=10, loc="left")
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.5 / max(len(rows), 2) - 0.12),
              ncol=2)
    return _svg(fig, titles)


def guardrail_bars(names: Sequence[str], p_harm: Sequence[float], threshold: float) -> Markup:
    """P(harm beyond margin) per guardrail, with the rollback threshold."""
    fig, ax = plt.subplots(figsize=(WIDTH, 0.9 + 0.4 * len(names)))
    y = np.arange(len(names))[::-1]
    colours = [OKABE_ITO[3] if p >= threshold else OKABE_ITO[2] for p in p_harm]
    titles: dict = {}
    for bar, name, p in zip(ax.barh(y, p_harm, color=colours, height=0.55), names, p_harm):
        hover(bar, f"{name}: P(worse than control by more than the margin) {p:.1%} (rollback at {threshold:.0%})",
              titles)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    ax.text(threshold, y.max() + 0.45, f" roll back at {threshold:.0%}", fontsize=8, va="bottom")
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=9)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("P(worse than control by more than the margin)")
    _style(ax)
    return _svg(fig, titles)


def trajectory(looks: Sequence[int], series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
               ship_beat: float, caring: float) -> Markup:
    """P(beat control) and expected loss if shipped over the looks, with the rule's thresholds;
    ``series`` maps a name to (look numbers, P(beat control), expected loss).

    The loss here is *relative* (a share of the control's value), unlike the tables' absolute loss in each
    metric's unit: it is the number the rule compares with its ``caring`` threshold, and the one scale on which
    several metrics share an axis and that threshold. The axis says so."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(WIDTH, 4.6), sharex=True)
    titles: dict = {}
    for k, (name, (x, p_beat, loss)) in enumerate(series.items()):
        style = dict(color=OKABE_ITO[k % 8], marker=MARKERS[k % 6], linestyle=LINES[k % 4], label=name)
        hover(top.plot(x, p_beat, **style)[0], [f"{name}, look {n}: P(beat control) {p:.1%}"
                                                for n, p in zip(x, p_beat)], titles)
        hover(bottom.plot(x, loss, **style)[0], [f"{name}, look {n}: expected relative loss if shipped {v:.3%}"
                                                 for n, v in zip(x, loss)], titles)
    top.axhline(ship_beat, color="black", linestyle="--", linewidth=1)
    top.text(looks[0], ship_beat, f"ship needs {ship_beat:.0%}", fontsize=8, va="bottom")
    top.set_ylim(0, 1)
    top.yaxis.set_major_formatter(PercentFormatter(1.0))
    top.set_ylabel("P(beat control)")
    bottom.axhline(caring, color="black", linestyle="--", linewidth=1)
    bottom.text(looks[0], caring, f"caring threshold {caring:.2%}", fontsize=8, va="bottom")
    bottom.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=2))
    bottom.set_ylabel("expected loss if shipped\n(relative, as the rule reads it)", fontsize=9)
    bottom.set_xlabel("look")
    bottom.set_xticks(list(looks))
    for ax in (top, bottom):
        _style(ax)
    top.legend(frameon=False, fontsize=8)
    return _svg(fig, titles)


def decision_checks(looks: Sequence[int], series: dict[str, tuple[list[int], list[float], float]],
                    changes: Sequence[tuple[int, str]]) -> Markup:
    """Every probability a look's decision compared with a limit, over the looks: one line per check with
    its limit dashed in the same colour, and a vertical line where the recommended action changed.
    ``series`` maps a check's name to (look numbers, probabilities, limit)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4 + 0.18 * len(series)))
    titles: dict = {}
    for k, (name, (x, p, limit)) in enumerate(series.items()):
        color = OKABE_ITO[k % 8]
        line, = ax.plot(x, p, color=color, marker=MARKERS[k % 6], linestyle=LINES[k % 4], label=name)
        hover(line, [f"{name}, look {n}: {v:.1%} (threshold {limit:.1%})" for n, v in zip(x, p)], titles)
        ax.axhline(limit, color=color, linestyle=":", linewidth=1)
    for look, action in changes:
        ax.axvline(look, color="#555555", linestyle="--", linewidth=1)
        ax.annotate(action.replace("_", " "), (look, 1.0), textcoords="offset points", xytext=(3, -10), fontsize=8,
                    color="#333333")
    ax.set_ylim(0, 1.02)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("probability (dotted: its threshold)")
    ax.set_xlabel("look")
    ax.set_xticks(list(looks))
    _style(ax)
    ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.18), ncol=1)
    return _svg(fig, titles)


def best_arm(metrics: dict[str, dict[str, float]]) -> Markup:
    """P(best) of every arm, one group of bars per metric (experiments with three or more arms)."""
    names = list(metrics)
    arms = list(next(iter(metrics.values())))
    fig, ax = plt.subplots(figsize=(WIDTH, 1.0 + 0.45 * len(names) * len(arms)))
    height = 0.8 / len(arms)
    titles: dict = {}
    for k, arm in enumerate(arms):
        y = np.arange(len(names)) + k * height
        bars = ax.barh(y, [metrics[n][arm] for n in names], height=height, color=OKABE_ITO[k % 8], label=arm,
                       hatch=["", "//", "..", "xx", "\\\\", "++"][k % 6], edgecolor="white")
        for bar, name in zip(bars, names):
            hover(bar, f"{name}, {arm}: P(best) {metrics[name][arm]:.1%}", titles)
    ax.set_yticks(np.arange(len(names)) + 0.4 - height / 2)
    ax.set_yticklabels(names)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("P(best arm)")
    ax.invert_yaxis()
    _style(ax)
    ax.legend(frameon=False, fontsize=8)
    return _svg(fig, titles)


def exposure(looks: Sequence[int], users: Sequence[int], stages: Sequence[float | None]) -> Markup:
    """Cumulative users at each look, annotated with the ramp stage."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.6))
    titles: dict = {}
    line, = ax.plot(looks, users, color=OKABE_ITO[0], marker="o")
    hover(line, [f"look {n}: {u:,} users" + ("" if s is None else f" (stage {s:g}%)")
                 for n, u, s in zip(looks, users, stages)], titles)
    for x, u, s in zip(looks, users, stages):
        if s is not None:
            ax.annotate(f"{s:g}%", (x, u), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set_xlabel("look")
    ax.set_ylabel("users so far")
    ax.set_xticks(list(looks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    _style(ax)
    return _svg(fig, titles)


def retention_curves(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> Markup:
    """Posterior retention by day per arm with interval bands."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.0))
    titles: dict = {}
    for k, (arm, (days, mid, low, high)) in enumerate(curves.items()):
        colour = OKABE_ITO[k % 8]
        ax.fill_between(days, low, high, color=colour, alpha=0.2, linewidth=0)
        line, = ax.plot(days, mid, color=colour, linestyle=LINES[k % 4], marker=MARKERS[k % 6], markersize=3,
                        label=arm)
        hover(line, [f"{arm}, day {d:g}: {m:.1%} retained ({lo:.1%} to {hi:.1%})"
                     for d, m, lo, hi in zip(days, mid, low, high)], titles)
    ax.set_xlabel("day since exposure")
    ax.set_ylabel("retained")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    _style(ax)
    ax.legend(frameon=False, fontsize=9)
    return _svg(fig, titles)


def count_distribution(values: np.ndarray, shares: dict[str, np.ndarray], cap: int) -> Markup:
    """Share of users per count value and arm, values above ``cap`` gathered in the last bar."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.8))
    width = 0.8 / max(len(shares), 1)
    titles: dict = {}
    for k, (arm, share) in enumerate(shares.items()):
        bars = ax.bar(values + (k - (len(shares) - 1) / 2) * width, share, width=width, color=OKABE_ITO[k % 8],
                      hatch=("", "//", "..", "xx")[k % 4], edgecolor="white", label=arm)
        for bar, v, x in zip(bars, values, share):
            hover(bar, f"{arm}, {v}{'+' if v == cap else ''} per user: {x:.1%} of users", titles)
    ticks = [v for v in values if v % max(1, len(values) // 12) == 0]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{v}+" if v == cap else str(v) for v in ticks], fontsize=8)
    ax.set_xlabel("count per user")
    ax.set_ylabel("share of users")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    _style(ax)
    ax.legend(frameon=False, fontsize=9)
    return _svg(fig, titles)


def prior_posterior(prior_sd: float, posteriors: dict[str, np.ndarray], scale: str, location: float = 0.0,
                    df: float | None = None) -> Markup:
    """Density of the treatment effect's prior (normal, or Student-t with ``df``) and posterior (link scale)."""
    from scipy.stats import norm, t as student_t

    fig, ax = plt.subplots(figsize=(WIDTH, 2.6))
    spread = max([prior_sd] + [float(np.std(d)) * 4 for d in posteriors.values()])
    centre = np.mean([np.median(d) for d in posteriors.values()]) if posteriors else 0.0
    grid = np.linspace(min(location - 3 * prior_sd, centre - spread), max(location + 3 * prior_sd, centre + spread), 500)
    density = norm.pdf(grid, location, prior_sd) if df is None else student_t.pdf(grid, df, location, prior_sd)
    name = f"Normal({location:.3g}, {prior_sd:.3g})" if df is None else f"StudentT({df:.3g}, {location:.3g}, {prior_sd:.3g})"
    titles: dict = {}
    hover(ax.fill_between(grid, density, color=GREY, alpha=0.35, label=f"prior {name}"), f"prior {name}", titles)
    for k, (arm, draws) in enumerate(posteriors.items()):
        line, = ax.plot(grid, _density(draws, grid), color=OKABE_ITO[k % 8], linestyle=LINES[k % 4], linewidth=2,
                        label=f"posterior, {arm}")
        if (middle := _middle_90(draws)) is not None:
            low, mid, high = middle
            hover(line, f"posterior, {arm}: median {mid:.3g}; 90% between {low:.3g} and {high:.3g}", titles)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks([])
    ax.set_xlabel(f"treatment effect ({scale})")
    _style(ax)
    ax.legend(frameon=False, fontsize=8)
    return _svg(fig, titles)


def learned_prior(past: np.ndarray, curves: dict, chosen: str) -> Markup:
    """Past experiments' relative effect estimates (histogram) with the fitted distributions of true effects
    (``curves``: form -> :class:`~bayes_ab.priors.learn.EffectDistribution`; the chosen one drawn solid)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 2.8))
    chosen_curve = curves[chosen]
    low, high = chosen_curve.quantile([0.005, 0.995])
    if past.size:
        low, high = min(low, np.quantile(past, 0.01)), max(high, np.quantile(past, 0.99))
    grid = np.linspace(low, high, 600)
    if past.size:
        inside = past[(past >= low) & (past <= high)]
        ax.hist(inside, bins=min(40, max(8, inside.size // 3)), density=True, color=GREY, alpha=0.45,
                label=f"past estimates ({past.size}, {past.size - inside.size} off the chart)")
    titles: dict = {}
    for k, (form, curve) in enumerate(sorted(curves.items(), key=lambda kv: kv[0] != chosen)):
        label = "normal" if curve.df is None else f"Student-t, df {curve.df:.1f}"
        line, = ax.plot(grid, np.exp(curve.log_density(grid)), color=OKABE_ITO[k % 8], linestyle=LINES[k % 4],
                        linewidth=2.2 if form == chosen else 1.4,
                        label=f"{label}{' (chosen)' if form == chosen else ''}")
        q05, q50, q95 = curve.quantile([0.05, 0.5, 0.95])
        hover(line, f"{label}: median true effect {_pct(q50)}; 90% between {_pct(q05)} and {_pct(q95)}", titles)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks([])
    ax.set_xlabel("true relative effect")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:+.1f}%" if v else "0%"))
    _style(ax)
    ax.legend(frameon=False, fontsize=8)
    return _svg(fig, titles)


def lift_by_week(arms: Sequence, interval: float, title: str) -> Markup:
    """The relative lift by week since exposure per treatment arm: the model's band, the pooled observed lift
    (markers), every cohort's observed curve (thin grey lines) and the long-run lift (band at the right)."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    titles: dict = {}
    for k, found in enumerate(arms):
        colour = OKABE_ITO[k % 8]
        weeks = np.array([w.week for w in found.weeks], dtype=float)
        cohorts: dict[str, list[tuple[int, float]]] = {}
        for start, week, lift in found.cohort_lifts:
            cohorts.setdefault(start, []).append((week, lift))
        for points in cohorts.values():
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], color=GREY, linewidth=0.7, alpha=0.7)
        ax.fill_between(weeks, [w.rel_low for w in found.weeks], [w.rel_high for w in found.weeks], color=colour,
                        alpha=0.2, linewidth=0)
        ax.plot(weeks, [w.rel_lift for w in found.weeks], color=colour, linestyle=LINES[k % 4],
                label=f"{found.arm}: model ({interval:.0%} band)")
        observed, = ax.plot(weeks, [w.observed for w in found.weeks], color=colour, marker=MARKERS[k % 6],
                            linestyle="none", markersize=4, label=f"{found.arm}: observed, cohorts pooled")
        hover(observed, [f"{found.arm}, week {w.week + 1}: observed {_pct(w.observed)}; model {_pct(w.rel_lift)} "
                         f"({_pct(w.rel_low)} to {_pct(w.rel_high)})" for w in found.weeks], titles)
        right = weeks.max() + 1.0
        long_run = ax.errorbar([right], [found.long_run], yerr=[[found.long_run - found.long_run_low],
                                                                [found.long_run_high - found.long_run]],
                               color=colour, marker=MARKERS[k % 6], capsize=4, label=f"{found.arm}: long run")
        hover(long_run.lines[0], [f"{found.arm}, long run: {_pct(found.long_run)} ({_pct(found.long_run_low)} to "
                                  f"{_pct(found.long_run_high)})"], titles)
    ax.axhline(0.0, color="#555555", linewidth=0.8)
    ticks = list(range(int(max(w.week for a in arms for w in a.weeks)) + 1))
    ax.set_xticks(ticks + [ticks[-1] + 1])
    ax.set_xticklabels([str(t + 1) for t in ticks] + ["long run"])
    ax.set_xlabel("week since exposure (grey: one line per weekly exposure cohort)")
    ax.set_ylabel("relative lift")
    _percent(ax, "y")
    ax.set_title(title, fontsize=10)
    _style(ax)
    ax.legend(frameon=False, fontsize=8)
    return _svg(fig, titles)


def uplift_curve(shares: Sequence[float], value: Sequence[float], low: Sequence[float], high: Sequence[float],
                 unit: str, scale: float, title: str) -> Markup:
    """The value per user of treating the top share by predicted uplift, with its band, beside random targeting
    (the straight line from nothing to treating everyone)."""
    shares, value, low, high = (np.asarray(a, float) for a in (shares, value, low, high))
    fig, ax = plt.subplots(figsize=(WIDTH, 3.0))
    titles: dict = {}
    ax.fill_between(shares, scale * low, scale * high, color=OKABE_ITO[0], alpha=0.2, linewidth=0)
    line, = ax.plot(shares, scale * value, color=OKABE_ITO[0], marker=MARKERS[0], markersize=3,
                    label="ranked by predicted uplift")
    hover(line, [f"top {100 * s:.0f}%: {scale * v:+.3g} {unit} ({scale * lo:+.3g} to {scale * hi:+.3g})"
                 for s, v, lo, hi in zip(shares, value, low, high)], titles)
    ax.plot([0, 1], [0, scale * value[-1]], color=GREY, linestyle=LINES[1], label="random targeting")
    ax.set_xlabel("share of users treated")
    ax.set_ylabel(f"value per user ({unit})")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title(title, fontsize=10)
    _style(ax)
    ax.legend(frameon=False, fontsize=9)
    return _svg(fig, titles)
