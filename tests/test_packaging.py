"""The distribution: a wheel named bayes-ab-engine ("bayes-ab" on PyPI is someone else's package) that
installs into a fresh virtualenv with the ``bayes-ab`` command, the ``bayes_ab`` package and its templates."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from bayes_ab import DISTRIBUTION, __version__
from bayes_ab.documents import DOCUMENTS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(ROOT)], check=True, capture_output=True, timeout=600)
    [built] = out.glob("*.whl")
    return built


def test_the_wheel_is_named_after_the_free_distribution_name(wheel):
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == __version__
    assert DISTRIBUTION == "bayes-ab-engine"
    assert wheel.name.startswith(f"bayes_ab_engine-{version}-py3-none-any")


def test_the_wheel_installs_into_a_fresh_virtualenv_with_its_command(wheel, tmp_path):
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    shown = subprocess.run([str(python), "-m", "pip", "show", DISTRIBUTION], capture_output=True, text=True, check=True)
    assert f"Name: {DISTRIBUTION}" in shown.stdout
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    assert (site / "bayes_ab" / "report" / "templates" / "report.html.j2").is_file()
    assert (site / "bayes_ab" / "families" / "conversion.py").is_file()
    for kind in DOCUMENTS:                                # the JSON Schemas of the --json documents and the alert
        assert (site / "bayes_ab" / "schemas" / f"{kind}.schema.json").is_file()
    # the dependencies come from this test's environment (installing them from PyPI here would take minutes);
    # PYTHONPATH does not run this environment's editable-install hook, so bayes_ab is the wheel's
    deps = sysconfig.get_path("purelib")
    run = subprocess.run([str(env_dir / "bin" / "bayes-ab"), "--help"], capture_output=True, text=True,
                         env={"PYTHONPATH": deps, "PATH": "/usr/bin:/bin"}, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "usage: bayes-ab" in run.stdout
    where = subprocess.run([str(python), "-c", "import bayes_ab; print(bayes_ab.__file__)"], capture_output=True,
                           text=True, env={"PYTHONPATH": deps}, check=True, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(site))


def test_the_image_installs_the_tested_stack_warms_the_cache_and_runs_as_a_user():
    """The Dockerfile as the scheduled-check-ins guide describes it (the image itself was built with Podman; see
    benchmarks/RESULTS.md): pinned stack, cache warmed at build time under the folder the runtime user owns, a
    non-root user, bayes-ab as the entry point, and a build context without the virtual environment."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    steps = [line.split(None, 1) for line in dockerfile.splitlines() if line and not line.startswith((" ", "#"))]
    instructions = [step[0] for step in steps]
    assert "pip install --quiet -c constraints.txt ." in dockerfile
    assert "bayes-ab warmup" in dockerfile and "BAYES_AB_CACHE_DIR=/opt/bayes-ab/cache" in dockerfile
    for cache in ("NUMBA_CACHE_DIR=", "compiledir=", "MPLCONFIGDIR="):
        assert f"{cache}/opt/bayes-ab/cache/" in dockerfile
    user = instructions.index("USER")
    assert steps[user][1].strip() == "bayes" and instructions.index("RUN", instructions.index("COPY")) < user
    assert 'ENTRYPOINT ["bayes-ab"]' in dockerfile and 'VOLUME ["/work/models", "/work/reports"]' in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
