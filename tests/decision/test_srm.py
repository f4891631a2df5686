"""Sample ratio across many segments: Holm's correction keeps the family-wise false alarm at ``srm_p`` and still
finds one segment whose split is really off."""

import numpy as np
import pytest
import xarray as xr

from bayes_ab.decision.srm import srm_checks
from bayes_ab.spec import parse_spec

SPEC = parse_spec({"name": "srm", "arms": [{"name": "control", "control": True}, {"name": "treatment"}],
                   "segments": ["segment"], "metrics": [{"name": "conv", "family": "conversion", "column": "conv"}]})


def _stats(users: np.ndarray) -> xr.Dataset:
    """``users`` (arms x segments) as the statistics the checks read."""
    return xr.Dataset({"n": (("arm", "segment"), users)},
                      coords={"arm": ["control", "treatment"], "segment": [f"s{k}" for k in range(users.shape[1])]})


def test_a_thousand_correct_segments_rarely_fail_and_one_bad_segment_still_does():
    """300 experiments of 1,000 segments x 60 users split 50/50: without a correction (each segment at
    p < 0.001) 63% of them would fail some segment; with Holm at most 0.1% should, so 3 or more failures of 300
    happen with probability 0.4%. Then one larger segment split 46/54 (p = 4e-7) among them is still found."""
    rng = np.random.default_rng(11)
    failed_experiments, uncorrected = 0, 0
    for _ in range(300):
        control = rng.binomial(60, 0.5, size=1000)
        checks = srm_checks(_stats(np.stack([control, 60 - control])), SPEC, 0.001)
        segments = [c for c in checks if c.name != "sample ratio (overall)"]
        failed_experiments += any(not c.passed for c in segments)
        uncorrected += any(float(c.value.split("= ")[1]) < 0.001 for c in segments)
    assert failed_experiments <= 2
    assert uncorrected >= 150            # the correction is what keeps them: each segment alone would fail

    control = rng.binomial(60, 0.5, size=1000)
    users = np.stack([control, 60 - control])
    users[:, 17] = [1840, 2160]
    checks = {c.name: c for c in srm_checks(_stats(users), SPEC, 0.001)}
    assert not checks["sample ratio (s17)"].passed and checks["sample ratio (s17)"].blocking
    assert "Holm, 1,000 segments" in checks["sample ratio (s17)"].threshold
    assert sum(not c.passed for c in checks.values()) == 1 + (not checks["sample ratio (overall)"].passed)


@pytest.mark.parametrize("segments", [2, 12])
def test_few_segments_keep_their_thresholds_ordered_by_p_value(segments):
    users = np.full((2, segments), 500)
    users[:, 0] = [420, 580]                 # p = 3.6e-7: below 0.001 / segments
    checks = [c for c in srm_checks(_stats(users), SPEC, 0.001) if c.name != "sample ratio (overall)"]
    assert not checks[0].passed and all(c.passed for c in checks[1:])
    assert checks[0].threshold.startswith(f"p >= {0.001 / segments:.2g}")
    # each segment's shown limit is Holm's for its rank: 0.001 / k for the smallest p-value ... 0.001 for the largest
    shown = sorted(float(c.threshold.split()[2]) for c in checks)
    assert shown == pytest.approx(sorted(float(f"{0.001 / (segments - r):.2g}") for r in range(segments)))
    assert all(f"(Holm, {segments} segments)" in c.threshold for c in checks)
    overall = srm_checks(_stats(users), SPEC, 0.001)[0]
    assert overall.name == "sample ratio (overall)" and overall.threshold == "p >= 0.001"
