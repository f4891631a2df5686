"""Alerts for check-ins that run unattended: a webhook post and an exit code when the recommendation needs a person.

A scheduled check-in (cron, Airflow, a Kubernetes CronJob) is read by nobody when it holds or advances as planned;
a rollback must reach someone. ``--alert-on ACTION`` names the actions that do (rollback when only ``--webhook``
is given); for those the command exits with the action's code (``ACTION_EXIT_CODES``), which schedulers report as
a failed job, and posts :func:`alert_document` to the webhook. Every other action exits 0, so a job that holds is
a job that succeeded.

The look is recorded (and the report written) before the post: a webhook that is down cannot lose them; the
command then says so on stderr and still exits with the action's code, so the job is reported either way. The body
is JSON with a ``text`` field, which Slack's and Teams' incoming webhooks show as the message, and the decision's
fields for a program.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from bayes_ab.documents import document, dumps
from bayes_ab.errors import SpecError

WEBHOOK_VARIABLE = "BAYES_AB_WEBHOOK_URL"
TIMEOUT_SECONDS = 10.0


def webhook_url(given: str | None) -> str | None:
    """``--webhook``, else ``$BAYES_AB_WEBHOOK_URL`` (keeping a token in the URL off the command line), checked
    before any data is read: an http(s) URL with a host."""
    url = given or os.environ.get(WEBHOOK_VARIABLE) or None
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        source = "--webhook" if given else f"${WEBHOOK_VARIABLE}"
        raise SpecError(f"{source}: must be an http:// or https:// URL with a host, got {_redacted(url)!r}")
    return url


def alert_actions(alert_on: list[str] | None, url: str | None) -> frozenset[str]:
    """The actions that alert: those given, or a rollback when only a webhook is."""
    if alert_on:
        return frozenset(alert_on)
    return frozenset({"rollback"}) if url else frozenset()


def alert_document(experiment: str, action: str, headline: str, look: int | None, as_of: str | None,
                   stage: float | None, report: str | None, decided_before: bool) -> dict:
    """The versioned ``bayes-ab/alert`` document posted to the webhook."""
    when = f" (look {look}, {as_of})" if look is not None else ""
    earlier = " An earlier look had already decided it." if decided_before else ""
    text = f"bayes-ab: {experiment}: {action.replace('_', ' ')}{when}. {headline}{earlier}"
    return document("alert", {"text": text, "experiment": experiment, "action": action, "headline": headline,
                              "look": look, "as_of": as_of, "stage": stage, "report": report,
                              "decided_before": decided_before})


def post(url: str, body: dict) -> str | None:
    """POST ``body`` as JSON to ``url``; ``None`` when the webhook accepted it (2xx), else why not, in a line."""
    import urllib.error        # here: urllib.request brings ssl and http.client, which `bayes-ab --help` need not load
    import urllib.request

    request = urllib.request.Request(url, data=dumps(body).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "bayes-ab"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:      # noqa: S310 (http(s) only)
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"webhook {_redacted(url)}: not delivered ({reason})"
    return None if 200 <= status < 300 else f"webhook {_redacted(url)}: not delivered (HTTP {status})"


def _redacted(url: str) -> str:
    """``url`` without its path, query and credentials: a webhook's secret is usually in its path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/..." if parts.scheme else "<not a URL>"


__all__ = ["WEBHOOK_VARIABLE", "webhook_url", "alert_actions", "alert_document", "post"]
