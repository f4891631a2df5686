"""Mutation testing of the core numeric modules: plant one small bug at a time, see whether a test fails.

    python scripts/mutants.py                          # every target below, 2 workers, a 40-minute budget
    python scripts/mutants.py --only effects --budget-minutes 10
    make mutants

A mutant is the module with one operator changed, as a reviewer would slip: ``<`` for ``<=``, ``+`` for ``-``,
``max`` for ``min``, ``argmax`` for ``argmin``, ``and`` for ``or``, a sign dropped, a constant moved. Each is
written into a private copy of the project and the module's killer tests (the non-slow tests that exercise it)
run against it; a failing test kills the mutant, a passing run lets it survive. The score is the share killed.
Survivors are either killed by a new test or listed in :data:`EQUIVALENT` with the reason they cannot be.

Why not mutmut or cosmic-ray: both mutate every function of the package and run the whole suite (or trace
coverage first); here a target module has a handful of killer test files, the model cache stays warm (the
compiled-model key hashes only the floors below the spec, so mutating effects or decisions never recompiles a
model), and a budget in minutes bounds a run to a working session. Mutants are taken in a seeded shuffled
order, so a run cut by the budget is a random sample of the whole.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TARGETS: dict[str, tuple[str, ...]] = {
    "bayes_ab/effects/compute.py": ("tests/effects",),
    "bayes_ab/decision/rules.py": ("tests/decision",),
    "bayes_ab/decision/evidence.py": ("tests/decision", "tests/effects"),
    "bayes_ab/decision/srm.py": ("tests/decision",),
    "bayes_ab/multiplicity.py": ("tests/test_multiplicity.py", "tests/decision/test_srm.py"),
    "bayes_ab/effects/conflict.py": ("tests/priors/test_prior_conflict.py",),
    "bayes_ab/learned_prior.py": ("tests/priors/test_prior_conflict.py", "tests/priors/test_learned_prior.py",
                                  "tests/priors/test_past.py"),
    "bayes_ab/intervals.py": ("tests/test_intervals.py", "tests/effects"),
    "bayes_ab/planning/fixed_horizon.py": ("tests/planning/test_fixed_horizon.py",),
    "bayes_ab/families/base.py": ("tests/families/test_base.py", "tests/planning/test_fixed_horizon.py",
                                  "tests/stopping/test_generate.py"),
    "bayes_ab/models/quantiles.py": ("tests/families/test_quantile.py",),
    "bayes_ab/models/prior_resampling.py": ("tests/families/test_quantile.py", "tests/stopping",
                                            "tests/models/test_prior_resampling.py", "tests/families/test_switchback.py"),
    "bayes_ab/families/mean.py": ("tests/families/test_mean.py",),
    "bayes_ab/models/netcdf.py": ("tests/models/test_netcdf.py", "tests/models/test_fitdata.py"),
    "bayes_ab/models/convergence.py": ("tests/models/test_convergence.py",),
    "bayes_ab/compliance/strata.py": ("tests/compliance",),
    "bayes_ab/compliance/effects.py": ("tests/compliance",),
    "bayes_ab/format.py": ("tests/test_documents.py", "tests/effects"),
    "bayes_ab/posterior/warmup.py": ("tests/test_warmup.py",),
    "bayes_ab/posterior/fit.py": ("tests/posterior/test_fit.py", "tests/models/test_quadrature.py",
                                  "tests/families/test_conversion.py"),
    "bayes_ab/figures/svg.py": ("tests/figures",),
    "bayes_ab/aggregation/panel.py": ("tests/aggregation/test_panel.py", "tests/novelty",
                                      "tests/families/test_quantile.py"),
    "bayes_ab/families/switchback.py": ("tests/families/test_switchback.py",),
    "bayes_ab/aggregation/clusters.py": ("tests/aggregation/test_clusters.py",),
    "bayes_ab/planning/clusters.py": ("tests/planning/test_cluster_planning.py",),
    "bayes_ab/planning/search.py": ("tests/planning/test_cluster_planning.py",
                                    "tests/planning/test_switchback_planning.py"),
    "bayes_ab/planning/switchback.py": ("tests/planning/test_switchback_planning.py",
                                        "tests/aggregation/test_switchback_cells.py"),
    "bayes_ab/targeting/value.py": ("tests/targeting",),
    "bayes_ab/targeting/crossfit.py": ("tests/targeting",),
    "bayes_ab/targeting/logs.py": ("tests/targeting/test_logs.py",),
    "bayes_ab/families/covariates.py": ("tests/families/test_covariates.py",),
    "bayes_ab/families/retention.py": ("tests/families/test_retention.py", "tests/stopping/test_generate.py"),
}
"""Module -> its killer tests: effects, decisions, SRM, prior-data conflict and the learned-prior format,
intervals, the families' planning variances, the quantile posterior and the effect prior's resampling, the
complier effects, the figures' inline SVG, the daily panel's checks, the switchback regression, the cluster
checks, the cluster and switchback plans, the covariate adjustment and retention (its life table and influence
function)."""

_TIE = ("the indicator differs only where two continuous posterior draws are exactly equal (probability 0); "
        "only the effective size of the indicator reads it")
_CLAMP = ("the clamp keeps ndtri finite at P = 0 or 1; the estimate is shown only below the ship threshold and "
          "only for P > 0.5, where neither bound is reached")
_STAND_IN = ("a NaN or infinite draw (a relative lift over a zero control) enters the effective-size estimate as "
             "a constant stand-in; which constant is a choice of the estimator, not a property any output has")
_NEGATIVE_DIMENSION = "numpy reads any negative dimension in reshape as 'the rest', as it reads -1"
_GRID_ENDS = ("the ends of the scale-mixture grid (|log lambda| near 25): the mixing density there is below 1e-5 "
              "for df >= 1, so widening, moving or reweighting them changes a tail probability by less than 1e-5, "
              "below what the conflict check (at 0.01) resolves; the grid's truncation error is of that size")
_FEW_DRAWS = ("a guard for data-only lifts that are mostly undefined (a control mean of exactly 0 in most draws); "
              "the closed-form draws of a cell with users are positive, so 100 and 101 finite draws of thousands do "
              "not arise")

EQUIVALENT: dict[str, str] = {
    "bayes_ab/figures/svg.py:inline_svg:1 -> 2:`1`":
        "rsplit's maximum split of a tag: an ElementTree tag holds one '}' (after its namespace), so 1 and 2 split "
        "alike",
    "bayes_ab/figures/svg.py:inline_svg:10 -> 11:`10`":
        "the length of the per-figure id prefix: any length that keeps figures apart names their ids alike",
    "bayes_ab/figures/svg.py:inline_svg:and -> or:`name in (\"href\", f\"{{{XLINK}}}href\") and value.startswith...`":
        "matplotlib writes no attribute but an href whose value starts with '#' (colours go in style attributes), "
        "so 'or' rewrites the same attributes",
    "bayes_ab/models/quantiles.py:effective_users:1.0 -> 2.0:`1.0`":
        "the stand-in divisor of a cell without values: every share of such a cell is 0 whatever it is",
    "bayes_ab/models/quantiles.py:effective_users:> -> >=:`binomial > 0`":
        "where the share is 0 or 1 every user's count up to the edge is 0 or all of theirs, so the variance is 0 "
        "too and the other branch is taken either way",
    "bayes_ab/models/quantiles.py:effective_users:> -> >=:`variance > 0`":
        "a zero variance with 0 < share < 1 gives binomial / 0 = inf, which the cap at the total values turns into "
        "the same total the other branch takes",
    "bayes_ab/models/quantiles.py:effective_users:> -> >=:`total > 0`":
        "only a cell without values has a total of 0, and no quantile is drawn from one (its draws stay NaN)",
    "bayes_ab/models/quantiles.py:quantile_cdf:<= -> <:`a <= 0`":
        "at a = 0 the regularized incomplete beta of a -> 0 is 1, so 1 - betainc gives the same 0 the branch gives",
    "bayes_ab/models/quantiles.py:bin_centres:2 -> 3:`2`":
        "bin 0's stand-in value only has to lie in (0, LOWEST]: LOWEST / 3 maps back to bin 0 as LOWEST / 2 does",
    "bayes_ab/models/quantiles.py:quantile_draws:0 -> 1:`0`#1":
        "values below 1 interpolated linearly instead of log-linearly inside a 0.1% bin: the two differ by about "
        "1e-7 of the value, below any test's resolution and any reading's",
    "bayes_ab/models/quantiles.py:quantile_draws:0 -> 1:`0`#5":
        "the stand-in divisor of the branch not taken where the lower edge is 0",
    "bayes_ab/models/quantiles.py:quantile_draws:> -> >=:`lo > 0`#1":
        "the stand-in divisor of the branch not taken where the lower edge is 0",
    "bayes_ab/models/quantiles.py:quantile_draws:0.5 -> 1.0:`0.5`":
        "a bin without posterior mass is never drawn (inversion picks the first edge whose CDF reaches u, which "
        "rises inside the bin), so its stand-in position is never read",
    "bayes_ab/models/quantiles.py:observed_quantile:- -> +:`hi - lo`":
        "the linear branch runs only in bin 0, whose lower edge is 0: hi - 0 = hi + 0",
    "bayes_ab/models/quantiles.py:quantile_cdf:<= -> <:`b <= 0`":
        "at b = 0 the regularized incomplete beta is 0, so 1 - betainc gives the same 1 the branch gives",
    "bayes_ab/models/quantiles.py:effective_users:0 -> 1:`0`":
        "a cell whose values total 1 divides by 1 either way",
    "bayes_ab/models/quantiles.py:observed_quantile:1e-12 -> 2e-12:`1e-12`":
        "the tolerance that puts a p landing exactly on an edge into the bin below; shares are multiples of 1/n",
    "bayes_ab/models/quantiles.py:quantile_cdf:1e-300 -> 2e-300:`1e-300`":
        "the floor only keeps betainc's arguments positive where the branch that reads it is not taken",
    "bayes_ab/models/quantiles.py:quantile_cdf:0.0 -> 1.0:`0.0`#1":
        "no NaN reaches the replacement: a cell with values has finite shares, and no quantile is drawn from one "
        "without",
    "bayes_ab/models/quantiles.py:quantile_cdf:1e-300 -> 2e-300:`1e-300`#1":
        "the floor only keeps betainc's arguments positive where the branch that reads it is not taken",
    "bayes_ab/models/quantiles.py:observed_quantile:1 -> 2:`1`#1":
        "the slice keys[index:index + 2] gives the same first element, the only one read",
    "bayes_ab/models/quantiles.py:quantile_draws:- -> +:`len(cdf) - 1`":
        "the clamp is a guard: the CDF's last entry is 1 and u < 1, so inversion never runs past the last bin",
    "bayes_ab/models/quantiles.py:quantile_draws:> -> >=:`step > 0`":
        "a bin without posterior mass is never drawn (inversion picks the first edge whose CDF reaches u), so the "
        "step-0 branch is never read",
    "bayes_ab/models/quantiles.py:quantile_draws:> -> >=:`step > 0`#1":
        "a bin without posterior mass is never drawn, so its stand-in divisor is never read",
    "bayes_ab/models/quantiles.py:observed_quantile:> -> >=:`share[index] > below`":
        "the first edge whose share reaches p always has values in its bin (an empty bin repeats the share before it "
        "and is never first)",
    "bayes_ab/models/quantiles.py:observed_quantile:0.5 -> 1.0:`0.5`":
        "the position used for a bin without values, which is never the first to reach p",
    "bayes_ab/models/quantiles.py:observed_quantile:- -> +:`p - 1e-12`":
        "a p exactly on an edge then lands at the start of the next bin, whose lower edge is the same value",
    "bayes_ab/models/quantiles.py:bin_centres:> -> >=:`keys > 0`":
        "bin 0's stand-in becomes LOWEST / 1.0005, still in (0, LOWEST]: it maps back to bin 0",
    "bayes_ab/models/quantiles.py:quantile_draws:1.0 -> 2.0:`1.0`#1":
        "the clip's upper bound is never reached: u is at most the CDF at its bin's edge, so t <= 1",
    "bayes_ab/models/quantiles.py:quantile_draws:1.0 -> 2.0:`1.0`#2":
        "the stand-in divisor of the branch not taken where the lower edge is 0",
    "bayes_ab/models/quantiles.py:quantile_draws:- -> +:`hi - lo`":
        "the linear branch runs only in bin 0, whose lower edge is 0: hi - 0 = hi + 0",
    "bayes_ab/models/quantiles.py:quantile_draws:1.0 -> 2.0:`1.0`":
        "the stand-in divisor where a bin holds no posterior mass; its result is replaced by 0.5 there",
    "bayes_ab/decision/evidence.py:evidence_from_draws:* -> /:`sign * (arm - control)`":
        "sign / d has the sign of sign * d; " + _TIE,
    "bayes_ab/decision/evidence.py:evidence_from_draws:> -> >=:`sign * (arm - control) > 0`": _TIE,
    "bayes_ab/decision/evidence.py:evidence_from_draws:< -> <=:`np.abs(rel) < metric.rope`": _TIE,
    "bayes_ab/decision/evidence.py:harm_draws:> -> >=:`relative_worsening(fit.metric, overall.isel(arm=0).values...`":
        "a draw exactly at the margin has probability 0 among continuous posterior draws (the report's figure "
        "reads these)",
    "bayes_ab/decision/rules.py:_more_units:1e-09 -> 2e-09:`1e-9`": _CLAMP,
    "bayes_ab/decision/rules.py:_more_units:1e-09 -> 2e-09:`1e-9`#1": _CLAMP,
    "bayes_ab/decision/rules.py:_more_units:- -> +:`1 - 1e-9`": _CLAMP,
    "bayes_ab/decision/rules.py:_more_units:1 -> 2:`1`": _CLAMP,
    "bayes_ab/effects/compute.py:_segment_rows:== -> !=:`winners == k`#1":
        "P(best)'s error read off the complement indicator: 1 - x has the autocorrelation of x, so the same "
        "effective size",
    "bayes_ab/effects/compute.py:_segment_rows:1 -> 2:`1`": _NEGATIVE_DIMENSION,
    "bayes_ab/effects/compute.py:effective_draws:0.0 -> 1.0:`0.0`": _STAND_IN,
    "bayes_ab/effects/compute.py:effective_draws:0.0 -> 1.0:`0.0`#1": _STAND_IN,
    "bayes_ab/effects/compute.py:effective_draws:0.0 -> 1.0:`0.0`#2": _STAND_IN,
    "bayes_ab/effects/compute.py:effective_draws:1 -> 2:`1`#1": _NEGATIVE_DIMENSION,
    "bayes_ab/effects/compute.py:lift_probabilities:> -> >=:`loss_ess > 0`":
        "an effective size of 0 means no draws, whose standard deviation is NaN either way",
    "bayes_ab/families/base.py:count:1 -> 2:`1`": "a Protocol's signature: never executed",
    "bayes_ab/learned_prior.py:predictive_tail:+ -> -:`log_mixing(0.5 * prior.df) + TRAPEZOID`": _GRID_ENDS,
    "bayes_ab/learned_prior.py:<module>:25.0 -> 50.0:`25.0`": _GRID_ENDS,
    "bayes_ab/learned_prior.py:<module>:25.0 -> 50.0:`25.0`#1": _GRID_ENDS,
    "bayes_ab/learned_prior.py:<module>:- -> +:`LOG_LAMBDA.size - 1`": _GRID_ENDS,
    "bayes_ab/learned_prior.py:<module>:801 -> 802:`801`": _GRID_ENDS,
    "bayes_ab/learned_prior.py:<module>:1 -> 2:`1`#1": _GRID_ENDS,
    "bayes_ab/learned_prior.py:<module>:0 -> 1:`0`": _GRID_ENDS,
    "bayes_ab/learned_prior.py:<module>:0.5 -> 1.0:`0.5`": _GRID_ENDS,
    "bayes_ab/learned_prior.py:predictive_tail:1.0 -> 2.0:`1.0`":
        "the clamp trims only rounding above 1 (the mixing weights sum to 1 up to the grid's error)",
    "bayes_ab/effects/conflict.py:prior_conflicts:< -> <=:`lift.size < 100`": _FEW_DRAWS,
    "bayes_ab/effects/conflict.py:prior_conflicts:100 -> 101:`100`": _FEW_DRAWS,
    "bayes_ab/multiplicity.py:holm:> -> >=:`p_values[i] > limits[i]`":
        "a p-value exactly equal to alpha / (k - rank) has probability 0",
    "bayes_ab/multiplicity.py:holm_limits:0.0 -> 1.0:`0.0`": "every entry of the list is assigned in the loop",
    "bayes_ab/multiplicity.py:benjamini_hochberg:<= -> <:`p_values[i] <= alpha * (rank + 1) / len(p_values)`":
        "a p-value exactly equal to its Benjamini-Hochberg limit has probability 0",
    "bayes_ab/multiplicity.py:benjamini_hochberg:1 -> 2:`1`":
        "the default cut -1 or -2 (`default=-1`): with no passing rank, no rank 0..k-1 is at or below either",
    "bayes_ab/format.py:amount:>= -> >:`abs(x) >= 0.1`":
        "at 0.1 both branches give 2 decimals (1 - floor(log10 0.1) = 2)",
    "bayes_ab/format.py:amount:0.1 -> 0.2:`0.1`":
        "from 0.1 to 0.2 both branches give 2 decimals (1 - floor(log10 x) = 2 there)",
    "bayes_ab/compliance/strata.py:_mean_draws:+ -> -:`mean + np.sqrt(variance / group.n) * rng.standard_t(dof, ...`":
        "a Student-t draw is symmetric about 0: the mean minus one has the distribution of the mean plus one",
    "bayes_ab/compliance/strata.py:strata_draws:> -> >=:`c > 0`":
        "c = 1 - a - nv is exactly 0 with probability 0 (a and nv are continuous draws, or exactly 0 together)",
    "bayes_ab/compliance/strata.py:strata_draws:<= -> <:`means <= upper`":
        "a rate's Beta draw, or a complier mean derived from them, equals 1 exactly with probability 0",
    "bayes_ab/compliance/effects.py:analyze_compliance:1.0 -> 2.0:`1.0`":
        "the direction factor enters only through the sign of sign x CACE: 2 and 1 give the same sign",
    "bayes_ab/compliance/effects.py:analyze_compliance:1.0 -> 2.0:`1.0`#1":
        "the direction factor enters only through the sign of sign x CACE: -2 and -1 give the same sign",
    "bayes_ab/compliance/effects.py:_row:* -> /:`sign * found.cace_abs`":
        "sign is +1 or -1: sign / x has the sign of sign * x, and only the sign is counted",
    "bayes_ab/compliance/effects.py:_row:> -> >=:`sign * found.cace_abs > 0`":
        "a continuous CACE draw is exactly 0 with probability 0",
    "bayes_ab/compliance/effects.py:analyze_compliance:< -> <=:`row.complier_share < LOW_COMPLIANCE`":
        "a posterior mean share exactly at 0.2 has probability 0",
    "bayes_ab/compliance/effects.py:analyze_compliance:< -> <=:`row.ess < MIN_ESS`":
        "an effective sample size of exactly 400 (a ratio of sums of continuous weights) has probability 0",
    "bayes_ab/compliance/effects.py:_mix_warning:< -> <=:`shift < MIX_SHIFT`":
        "a total-variation distance of exactly 0.1 between observed shares has probability 0",
}
"""Surviving mutants no test can kill, by id (module:function:change:`code`#repeat), with the reason."""

SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
         ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.And: ast.Or, ast.Or: ast.And,
         ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
NAMES = {"min": "max", "max": "min", "maximum": "minimum", "minimum": "maximum", "argmax": "argmin",
         "argmin": "argmax", "any": "all", "all": "any", "nanmax": "nanmin", "nanmin": "nanmax"}
SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Add: "+",
           ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.And: "and", ast.Or: "or", ast.Is: "is",
           ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


@dataclass(frozen=True)
class Mutant:
    """One planted change: where (module, function, line), what (``before -> after``) and its stable id."""

    module: str
    function: str
    line: int
    code: str           # the mutated expression's source: the id stays put when lines around it move
    change: str
    index: int          # the candidate's position in the module's walk: what :func:`mutate` changes
    repeat: int = 0     # the same change of the same code earlier in the same function

    @property
    def id(self) -> str:
        return f"{self.module}:{self.function}:{self.change}:`{self.code}`" + (f"#{self.repeat}" if self.repeat else "")


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    status: str         # killed | survived | timeout
    seconds: float


def _candidates(tree: ast.Module):
    """Every mutable place in walk order: (node, field, description)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, (ast.JoinedStr, ast.Raise, ast.Assert))
               for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skipped or id(node) in docstrings:
            continue
        if isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in SWAPS:
                    yield node, ("ops", k), f"{SYMBOLS[type(op)]} -> {SYMBOLS[SWAPS[type(op)]]}"
        elif isinstance(node, (ast.BinOp, ast.BoolOp)) and type(node.op) in SWAPS:
            yield node, ("op", None), f"{SYMBOLS[type(node.op)]} -> {SYMBOLS[SWAPS[type(node.op)]]}"
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            yield node, ("unary", None), f"{'-' if isinstance(node.op, ast.USub) else 'not '}x -> x"
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in NAMES:
                yield node, ("call", None), f"{name} -> {NAMES[name]}"
        elif (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
              and not isinstance(node.value, bool)):
            yield node, ("constant", None), f"{node.value!r} -> {_moved_constant(node.value)!r}"


def _moved_constant(value: float) -> float:
    if isinstance(value, int):
        return value + 1
    return 1.0 if value == 0 else value * 2


def _function_at(tree: ast.Module, line: int) -> tuple[str, int]:
    """The innermost function holding ``line`` and its first line (``<module>`` and 0 outside functions)."""
    best = ("<module>", 0)
    for node in ast.walk(tree):
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= line <= node.end_lineno
                and node.lineno >= best[1]):
            best = (node.name, node.lineno)
    return best


def mutants_of(module: str) -> list[Mutant]:
    source = (ROOT / module).read_text()
    tree, lines = ast.parse(source), source.splitlines()
    found, seen = [], {}
    for index, (node, (what, k), change) in enumerate(_candidates(tree)):
        if "# pragma: no mutate" in lines[node.lineno - 1]:
            continue
        if what == "ops" and len(node.ops) > 1:
            change += f" (comparison {k + 1} of {len(node.ops)})"       # 0 < a < 1 is one node
        function, _ = _function_at(tree, node.lineno)
        code = " ".join((ast.get_source_segment(source, node) or "").split())
        code = code if len(code) <= 60 else code[:57] + "..."
        key = (function, change, code)
        seen[key] = seen.get(key, -1) + 1
        found.append(Mutant(module, function, node.lineno, code, change, index, seen[key]))
    return found


def mutate(source: str, index: int) -> str:
    """``source`` with candidate ``index`` changed (the rest unparsed unchanged in meaning)."""
    tree = ast.parse(source)
    node, (what, k), _ = list(_candidates(tree))[index]
    if what == "ops":
        node.ops[k] = SWAPS[type(node.ops[k])]()
    elif what == "op":
        node.op = SWAPS[type(node.op)]()
    elif what == "unary":
        _replace(tree, node, node.operand)
    elif what == "call":
        if isinstance(node.func, ast.Attribute):
            node.func.attr = NAMES[node.func.attr]
        else:
            node.func.id = NAMES[node.func.id]
    else:
        node.value = _moved_constant(node.value)
    return ast.unparse(ast.fix_missing_locations(tree))


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    """Put ``new`` where ``old`` stands in ``tree``."""
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list) and any(item is old for item in value):
                value[[i for i, item in enumerate(value) if item is old][0]] = new
                return
    raise ValueError("node not found")


def _copy_project(target: Path) -> None:
    for name in ("bayes_ab", "tests", "examples"):
        # outputs written under examples (models/, reports/) are left behind; bayes_ab/models and tests/models are code
        skipped = ("__pycache__", "*.egg-info", "_work") + (("models", "reports", "site") if name == "examples" else ())
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns(*skipped))
    for name in ("pyproject.toml", "constraints.txt", "mkdocs.yml"):
        shutil.copy2(ROOT / name, target / name)


def _run_tests(workdir: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float]:
    env = {**os.environ, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-m", "not slow", "-p", "no:cacheprovider",
                               *tests], cwd=workdir, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    return ("survived" if done.returncode == 0 else "killed"), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], help="targets whose path contains this text")
    parser.add_argument("--budget-minutes", type=float, default=40.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_work" / "mutants.json")
    args = parser.parse_args()
    targets = {m: t for m, t in TARGETS.items() if not args.only or any(o in m for o in args.only)}
    work = Path(tempfile.mkdtemp(prefix="bayes-ab-mutants-"))
    slots = []
    for w in range(args.workers):
        _copy_project(work / f"w{w}")
        slots.append(work / f"w{w}")
    baselines = {}
    for module, tests in targets.items():
        status, seconds = _run_tests(slots[0], tests, timeout=1800)
        if status != "survived":
            print(f"mutants: the killer tests of {module} fail without a mutant ({status}); fix them first")
            return 2
        baselines[module] = seconds
    pool = [m for module in targets for m in mutants_of(module)]
    random.Random(args.seed).shuffle(pool)
    deadline = time.monotonic() + 60 * args.budget_minutes
    free = list(slots)
    outcomes: list[Outcome] = []

    def run(mutant: Mutant) -> Outcome | None:
        if time.monotonic() > deadline:
            return None
        workdir = free.pop()
        path = workdir / mutant.module
        original = path.read_text()
        try:
            path.write_text(mutate(original, mutant.index))
            status, seconds = _run_tests(workdir, targets[mutant.module], timeout=3 * baselines[mutant.module] + 30)
        finally:
            path.write_text(original)
            free.append(workdir)
        return Outcome(mutant, status, seconds)

    with ThreadPoolExecutor(max_workers=args.workers) as executor:
        for outcome in executor.map(run, pool):
            if outcome is not None:
                outcomes.append(outcome)
                print(f"  [{len(outcomes)}/{len(pool)}] {outcome.status:8} {outcome.mutant.id}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    report(outcomes, len(pool), args)
    return 0


def report(outcomes: list[Outcome], total: int, args) -> None:
    by_module: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_module.setdefault(o.mutant.module, []).append(o)
    print(f"mutants: {len(outcomes)} of {total} run (budget {args.budget_minutes:g} min, {args.workers} workers, "
          f"seed {args.seed})")
    survivors = []
    for module, found in sorted(by_module.items()):
        killed = sum(o.status != "survived" for o in found)
        unexplained = [o for o in found if o.status == "survived" and o.mutant.id not in EQUIVALENT]
        equivalent = sum(o.status == "survived" and o.mutant.id in EQUIVALENT for o in found)
        score = killed / max(len(found) - equivalent, 1)
        print(f"  {module}: {killed}/{len(found)} killed ({equivalent} equivalent), score {score:.1%}")
        survivors += unexplained
    for o in survivors:
        print(f"  SURVIVED {o.mutant.id} (in {o.mutant.function})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"run": {"seed": args.seed, "budget_minutes": args.budget_minutes,
                                            "workers": args.workers, "mutants": total, "ran": len(outcomes)},
                                    "outcomes": [{**asdict(o.mutant), "id": o.mutant.id, "status": o.status,
                                                  "seconds": round(o.seconds, 1)} for o in outcomes]}, indent=1))
    print(f"  written: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    sys.exit(main())
