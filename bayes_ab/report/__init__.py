"""Self-contained HTML summary of an analysis (no external requests; data-derived text escaped)."""

from bayes_ab.report.html import render_report, write_report

__all__ = ["render_report", "write_report"]
