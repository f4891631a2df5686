"""The rule trace's unit: one named check with its number, threshold and outcome."""

from __future__ import annotations

from dataclasses import dataclass

from bayes_ab.display import HtmlRepr


@dataclass(frozen=True)
class RuleCheck(HtmlRepr):
    """One evaluated check. ``blocking`` checks that fail stop any advance.

    ``value`` and ``threshold`` are for people; a check that compares a probability with a limit also
    carries both as numbers (``probability``, ``limit``), so trajectories are drawn from numbers, never
    from text parsed back.
    """

    name: str
    value: str
    threshold: str
    passed: bool
    detail: str = ""
    blocking: bool = False
    probability: float | None = None
    limit: float | None = None
    mcse: float | None = None
    """The Monte Carlo standard error of ``probability`` (the sampling noise in the number itself)."""

    def line(self) -> str:
        """``[pass] name: value (threshold) - detail`` for the console."""
        mark = "pass" if self.passed else ("BLOCK" if self.blocking else "fail")
        tail = f" - {self.detail}" if self.detail else ""
        return f"[{mark}] {self.name}: {self.value} (needs {self.threshold}){tail}"
