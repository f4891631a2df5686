"""The 0.1 import paths keep working until 0.3, each with a DeprecationWarning naming the new path."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bayes_ab._moved import MOVED_MODULES, MOVED_NAMES


def _fresh(code: str) -> tuple[str, str]:
    """Run ``code`` in a new interpreter (an old path is resolved once per process): its stdout and stderr."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return done.stdout, done.stderr


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_an_old_module_path_is_the_new_module_and_warns(old):
    import importlib
    import warnings

    new = importlib.import_module(MOVED_MODULES[old])
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert module is new
    assert module.__spec__.name == MOVED_MODULES[old], "the real module's spec must not take the old name"
    assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [
        f"{old} moved to {MOVED_MODULES[old]} in bayes-ab 0.2; the old path goes in 0.3"]


@pytest.mark.parametrize("old, name", sorted((old, name) for old, names in MOVED_NAMES.items() for name in names))
def test_an_old_name_is_the_new_object_and_warns(old, name):
    import importlib

    new = getattr(importlib.import_module(MOVED_NAMES[old][name]), name)
    out, err = _fresh(f"import warnings\nwarnings.simplefilter('always')\nfrom {old} import {name} as value\n"
                      f"import {MOVED_NAMES[old][name]} as home\nprint(value is home.{name})")
    assert out.split() == ["True"], err[-2000:]
    assert err.count(f"DeprecationWarning: {old}.{name} moved to {MOVED_NAMES[old][name]}.{name}") == 1
    assert new is not None


def test_an_unknown_name_of_a_package_that_lost_names_is_still_an_error():
    out, _ = _fresh("import bayes_ab.data as d\ntry:\n    d.no_such_thing\nexcept AttributeError as e:\n    print(e)")
    assert out.strip() == "module 'bayes_ab.data' has no attribute 'no_such_thing'"


def test_the_library_itself_uses_no_old_path():
    """Importing every module of the package (as the test suite's own imports do) goes through no old path:
    the warning would be an error here."""
    import pkgutil

    import bayes_ab

    names = [m.name for m in pkgutil.walk_packages(bayes_ab.__path__, "bayes_ab.") if m.name != "bayes_ab._moved"]
    out, err = _fresh("import importlib, warnings\nwarnings.simplefilter('error', DeprecationWarning)\n"
                      f"for name in {names!r}:\n    importlib.import_module(name)\nprint('clean')")
    assert out.strip() == "clean", err[-2000:]
