"""Alerts of unattended check-ins: a rollback reaches a webhook and fails the job; a hold does neither."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from jsonschema import Draft202012Validator

from bayes_ab.checkins import history
from bayes_ab.cli import ACTION_EXIT_CODES, main
from bayes_ab.documents import schema

from checkins.test_checkin import conversion_spec_file, users


class Hook:
    """A local webhook that records what is posted and answers with ``status``."""

    def __init__(self, status: int = 200):
        self.bodies: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):       # noqa: N802 (the http.server name)
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/SECRET-TOKEN"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def hook():
    made = []

    def start(status: int = 200) -> Hook:
        made.append(Hook(status))
        return made[-1]
    yield start
    for h in made:
        h.close()


@pytest.fixture
def experiment(tmp_path):
    spec = conversion_spec_file(tmp_path, "alerts")
    harmful, harmless = tmp_path / "harmful.csv", tmp_path / "harmless.csv"
    users(20000, 0.10, 0.05, 7).to_csv(harmful, index=False)        # conversion halved: roll back
    users(2000, 0.10, 0.10, 8).to_csv(harmless, index=False)        # nothing yet: hold
    return spec, harmful, harmless, tmp_path / "models"


def checkin(spec, data, models, as_of, *extra):
    return main(["checkin", str(spec), "--data", str(data), "--as-of", as_of, "--stage", "50", "--days", "7",
                 "--models-dir", str(models), *extra])


def test_a_rollback_posts_the_alert_and_fails_the_job_a_hold_does_neither(experiment, hook, capsys):
    spec, harmful, harmless, models = experiment
    webhook = hook()
    assert checkin(spec, harmless, models, "2026-05-01", "--webhook", webhook.url) == 0
    assert webhook.bodies == []
    assert checkin(spec, harmful, models, "2026-05-02", "--webhook", webhook.url) == ACTION_EXIT_CODES["rollback"]
    (body,) = webhook.bodies
    Draft202012Validator(schema("alert")).validate(body)
    assert body["action"] == "rollback" and body["experiment"] == "alerts" and body["look"] == 2
    assert body["text"].startswith("bayes-ab: alerts: rollback (look 2, 2026-05-02T00:00:00Z). Roll back")
    assert "posted to the webhook" in capsys.readouterr().err
    # a later look of the decided experiment alerts again, saying it was decided before
    assert checkin(spec, harmless, models, "2026-05-03", "--webhook", webhook.url) == ACTION_EXIT_CODES["rollback"]
    assert webhook.bodies[-1]["decided_before"] is True and "already decided" in webhook.bodies[-1]["text"]


def test_alert_on_chooses_the_actions_and_without_a_webhook_only_the_exit_code_says_it(experiment, hook):
    spec, harmful, harmless, models = experiment
    webhook = hook()
    assert checkin(spec, harmless, models, "2026-05-01", "--alert-on", "hold", "--webhook", webhook.url) == \
        ACTION_EXIT_CODES["hold"]
    assert [b["action"] for b in webhook.bodies] == ["hold"]
    assert checkin(spec, harmful, models, "2026-05-02", "--alert-on", "rollback") == ACTION_EXIT_CODES["rollback"]
    assert len(webhook.bodies) == 1


def test_a_webhook_that_fails_loses_nothing_and_the_job_still_fails(experiment, hook, capsys, monkeypatch):
    spec, harmful, _, models = experiment
    down = hook(status=500)
    monkeypatch.setenv("BAYES_AB_WEBHOOK_URL", down.url)        # the URL from the environment
    assert checkin(spec, harmful, models, "2026-05-02") == ACTION_EXIT_CODES["rollback"]
    err = capsys.readouterr().err
    assert "not delivered (HTTP 500); the results are written" in err
    assert "SECRET-TOKEN" not in err                             # the webhook's secret path is not printed
    assert len(down.bodies) == 1 and len(history("alerts", models).looks) == 1


@pytest.mark.parametrize("url", ["ftp://example.org/hook", "hooks.example.org/x", "https://"])
def test_a_bad_webhook_is_refused_before_any_data_is_read(experiment, url, capsys):
    spec, _, _, models = experiment
    assert checkin(spec, "no-such-file.csv", models, "2026-05-02", "--webhook", url) == 2
    assert "--webhook: must be an http:// or https:// URL with a host" in capsys.readouterr().err


def test_stage_since_gives_the_days_from_the_looks_date(experiment, capsys):
    spec, _, harmless, models = experiment
    common = ["checkin", str(spec), "--data", str(harmless), "--stage", "50", "--models-dir", str(models)]
    assert main(common + ["--as-of", "2026-05-08T09:00:00Z", "--stage-since", "2026-05-01"]) == 0
    assert history("alerts", models).looks[-1].payload["days"] == 7
    assert main(common + ["--as-of", "2026-05-09", "--stage-since", "2026-05-01", "--days", "8"]) == 2
    assert "give one" in capsys.readouterr().err
    assert main(common + ["--as-of", "2026-05-09", "--stage-since", "2026-05-10"]) == 2
    assert "after the look's date 2026-05-09" in capsys.readouterr().err
    assert main(common + ["--as-of", "2026-05-09", "--stage-since", "May 1st"]) == 2
    assert "not an ISO 8601 date" in capsys.readouterr().err
