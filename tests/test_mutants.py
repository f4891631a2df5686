"""The mutation-testing script stays usable: every mutant it plants compiles, ids are unique, and every
mutant listed as equivalent still exists (an edit that removes one must remove its excuse too)."""

from __future__ import annotations

import ast
import importlib.util
import sys

from conftest import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("mutants_script", ROOT / "scripts" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module           # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_mutant_compiles_and_differs_and_every_equivalent_exists():
    mutants = load_script()
    ids = []
    for module in mutants.TARGETS:
        source = (ROOT / module).read_text()
        original = ast.dump(ast.parse(source))
        for mutant in mutants.mutants_of(module):
            mutated = mutants.mutate(source, mutant.index)
            assert ast.dump(ast.parse(mutated)) != original, mutant.id
            ids.append(mutant.id)
    assert len(ids) == len(set(ids)) and len(ids) > 300
    assert set(mutants.EQUIVALENT) <= set(ids)
    for target, tests in mutants.TARGETS.items():
        assert (ROOT / target).exists() and all((ROOT / t).exists() for t in tests)
