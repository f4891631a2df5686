"""Progress lines: on a terminal (or when forced) each long step says what it does and how long it took."""

from __future__ import annotations

import io
import pytest

from bayes_ab.progress import enabled, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_pipe_gets_nothing_and_a_terminal_gets_the_step_and_its_time(monkeypatch):
    monkeypatch.delenv("BAYES_AB_PROGRESS", raising=False)
    monkeypatch.delenv("CI", raising=False)
    pipe, terminal = io.StringIO(), Terminal()
    with progress("trades: sampling", pipe):
        pass
    with progress("trades: sampling", terminal):
        pass
    assert pipe.getvalue() == ""
    assert "trades: sampling ... " in terminal.getvalue() and terminal.getvalue().endswith(" s\n")


def test_ci_is_quiet_even_on_a_terminal_unless_forced(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("BAYES_AB_PROGRESS", raising=False)
    assert not enabled(Terminal())
    monkeypatch.setenv("BAYES_AB_PROGRESS", "1")
    assert enabled(io.StringIO())
    monkeypatch.setenv("BAYES_AB_PROGRESS", "0")
    assert not enabled(Terminal())


def test_a_failed_step_is_marked_and_the_error_propagates(monkeypatch):
    monkeypatch.setenv("BAYES_AB_PROGRESS", "1")
    out = io.StringIO()
    with pytest.raises(ValueError):
        with progress("conversion: preparing", out):
            raise ValueError("boom")
    assert out.getvalue().startswith("conversion: preparing ... ") and "(failed)" in out.getvalue()
