"""What the newest releases of the sampler stack do to bayes-ab: run by ``make canary`` in a throwaway venv.

Prints the installed releases beside the tested ones (``constraints.txt``), the sampler path a fit would take
and why, then runs the smoke tests twice in fresh model caches: as a user would get them (the path chosen
automatically), and with the fast path forced (``BAYES_AB_SAMPLER=native``), which tells whether the pins
could move. Exit code 0 when the automatic path passes: the product still works on these releases.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_smoke(label: str, extra_env: dict[str, str]) -> bool:
    with tempfile.TemporaryDirectory(prefix="bayes-ab-canary-cache-") as cache:
        env = {**os.environ, "BAYES_AB_CACHE_DIR": cache, **extra_env}
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "smoke", "-p", "no:cacheprovider",
                               str(ROOT / "tests")], cwd=ROOT, env=env, capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or ["(no output)"])[-1]
    print(f"  {label}: {'passed' if done.returncode == 0 else 'FAILED'} -- {summary}")
    if done.returncode != 0:
        print("\n".join("    " + line for line in (done.stdout + done.stderr).strip().splitlines()[-25:]))
    return done.returncode == 0


def main() -> int:
    from bayes_ab.models import compat

    print("bayes-ab canary: the sampler stack's newest releases")
    for name, version in compat.installed_versions().items():
        tested = compat.PINNED[name]
        print(f"  {name:9} {version or 'missing':10} (tested {tested}){'' if version == tested else '  <- new'}")
    runtime = compat.runtime_mismatches()
    compile_ = compat.compile_mismatches()
    print("  fast path's internals: " + ("all present" if not (runtime or compile_) else "; ".join(runtime + compile_)))
    print("smoke tests:")
    automatic = run_smoke("path chosen automatically", {})
    if not (runtime or compile_):
        run_smoke("fast path forced (BAYES_AB_SAMPLER=native)", {"BAYES_AB_SAMPLER": "native"})
    print("verdict: " + ("bayes-ab works on these releases" if automatic else "bayes-ab FAILS on these releases"))
    return 0 if automatic else 1


if __name__ == "__main__":
    sys.exit(main())
