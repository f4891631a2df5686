"""Known true effects of the push-notification example, by segment (tenure x region).

A trading app sends a push notification at market open. Trade conversion (did the user trade
that day) rises most for new users; notification opt-outs (decrease is good) rise a little. Trades per
user are heavy-tailed: most users trade a few times a month, 4% are active traders with a power-law
tail (some trade thousands of times); the push raises everyone's trading rate by 5%.
"""

from bayes_ab.simulation import HeavyTailedCounts, SegmentTruth

ARMS = {"control": 0.5, "push": 0.5}


def _segment(tenure: str, region: str, share: float, trade: float, lift: float,
             opt_out: float, opt_out_lift: float) -> SegmentTruth:
    return SegmentTruth(
        labels={"tenure": tenure, "region": region},
        share=share,
        rates={
            "traded": {"control": trade, "push": trade * (1 + lift)},
            "opted_out": {"control": opt_out, "push": opt_out * (1 + opt_out_lift)},
        },
    )


TRUTHS = [
    _segment("new", "US", 0.12, 0.080, 0.09, 0.012, 0.25),
    _segment("new", "EU", 0.10, 0.070, 0.07, 0.010, 0.20),
    _segment("new", "APAC", 0.08, 0.060, 0.08, 0.011, 0.20),
    _segment("tenured", "US", 0.30, 0.150, 0.03, 0.006, 0.10),
    _segment("tenured", "EU", 0.25, 0.130, 0.02, 0.005, 0.10),
    _segment("tenured", "APAC", 0.15, 0.110, 0.04, 0.006, 0.15),
]


TRADES = HeavyTailedCounts(regular_mean=0.6, dispersion=0.5, active_share=0.04, active_mean=20.0, tail_shape=2.5)
TRADES_FACTOR = {"control": 1.0, "push": 1.05}
"""True mean trades per user: ``TRADES.mean(TRADES_FACTOR[arm])`` (1.376 and 1.445, +5%)."""
