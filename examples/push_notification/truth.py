"""Known true effects of the push-notification example, by segment (tenure x region).

A trading app sends a push notification at market open. Trade conversion (did the user trade
that day) rises most for new users; notification opt-outs (decrease is good) rise a little. Trades per
user are heavy-tailed: most users trade a few times a month, 4% are active traders with a power-law
tail (some trade thousands of times); the push raises everyone's trading rate by 5%.

Not every push is delivered (notifications disabled, app uninstalled): 88% of tenured users and 70% of new users
assigned to it receive it (``received``), and the push acts only through being received. The lifts above are
what *assigning* the push does (the intent-to-treat effect a rollout delivers); the effect on users who receive
it (the complier effect) is larger by 1 / delivery: :func:`complier_effect` states it.
"""

from bayes_ab.simulation import HeavyTailedCounts, SegmentTruth

ARMS = {"control": 0.5, "push": 0.5}


DELIVERY = {"new": 0.70, "tenured": 0.88}
"""Share of users assigned to the push who receive it, by tenure (segments' traffic-weighted mean 82.6%)."""


def _segment(tenure: str, region: str, share: float, trade: float, lift: float,
             opt_out: float, opt_out_lift: float) -> SegmentTruth:
    return SegmentTruth(
        labels={"tenure": tenure, "region": region},
        share=share,
        rates={
            "traded": {"control": trade, "push": trade * (1 + lift)},
            "opted_out": {"control": opt_out, "push": opt_out * (1 + opt_out_lift)},
        },
        delivery=DELIVERY[tenure],
    )


TRUTHS = [
    _segment("new", "US", 0.12, 0.080, 0.09, 0.012, 0.25),
    _segment("new", "EU", 0.10, 0.070, 0.07, 0.010, 0.20),
    _segment("new", "APAC", 0.08, 0.060, 0.08, 0.011, 0.20),
    _segment("tenured", "US", 0.30, 0.150, 0.03, 0.006, 0.10),
    _segment("tenured", "EU", 0.25, 0.130, 0.02, 0.005, 0.10),
    _segment("tenured", "APAC", 0.15, 0.110, 0.04, 0.006, 0.15),
]


def complier_effect(metric: str, arm: str = "push") -> tuple[float, float]:
    """The true effect of receiving ``arm`` on ``metric`` ("traded" or "opted_out") among the users who receive it
    when assigned (compliers): absolute, and relative to the compliers' own rate without it.

    Compliers are ``delivery`` of each segment's users, so they weight segments by share x delivery."""
    weights = [t.share * t.delivery for t in TRUTHS]
    control = sum(w * t.rates[metric]["control"] for w, t in zip(weights, TRUTHS)) / sum(weights)
    treated = sum(w * t.complier_rate(metric, arm) for w, t in zip(weights, TRUTHS)) / sum(weights)
    return treated - control, treated / control - 1


def trades_factor(arm: str, tenure: str, received: bool) -> float:
    """The factor on a user's trading rate: ``TRADES_FACTOR``'s effect of assignment, acting only on users who
    receive the push, divided by the delivery share (so that assignment still raises trading by 5%)."""
    effect = TRADES_FACTOR[arm] - 1.0
    return 1.0 + effect / DELIVERY[tenure] if received and effect else 1.0


TRADES = HeavyTailedCounts(regular_mean=0.6, dispersion=0.5, active_share=0.04, active_mean=20.0, tail_shape=2.5)
TRADES_FACTOR = {"control": 1.0, "push": 1.05}
"""True mean trades per user by assignment: ``TRADES.mean(TRADES_FACTOR[arm])`` (1.376 and 1.445, +5%); among users
who receive the push, +5% / delivery (+7.1% for new users, +5.7% for tenured ones)."""
