"""Machine-readable documents: the versioned JSON every output shares, and the schemas that define it.

Every document bayes-ab writes for a program to read (``summary.json`` of an analysis and of each look,
``--json`` on the command line) carries ``schema`` (what it is, e.g. ``bayes-ab/analysis``) and
``schema_version``. A version changes only when a field is removed or changes meaning; added fields keep it.
The JSON Schema of each document ships in the package (``bayes_ab/schemas/<name>.schema.json``) and the tests
validate every output against it.

Numbers are plain JSON numbers; a value that is not a number (a control arm's lift, an interval without
draws) is ``null``, never ``NaN``, which strict JSON parsers refuse.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
SCHEMAS = Path(__file__).resolve().parent / "schemas"
DOCUMENTS = ("analysis", "checkin", "history", "plan", "simulation", "portfolio", "alert", "targeting", "offpolicy")


def document(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` as the ``kind`` document: its schema name and version first, every value JSON-ready."""
    if kind not in DOCUMENTS:
        raise ValueError(f"unknown document kind {kind!r}")
    return {"schema": f"bayes-ab/{kind}", "schema_version": SCHEMA_VERSION, **json_ready(body)}


def json_ready(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays as Python numbers and lists, enums as their values, dataclasses as
    dicts, and non-finite floats as ``None``."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if is_dataclass(value) and not isinstance(value, type):
        return json_ready(asdict(value))
    return value


def number(value: Any) -> float:
    """A stored number back as a float: ``NaN`` where the document has ``null`` (or anything not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def dumps(doc: dict[str, Any]) -> str:
    """The document as strict JSON text (``NaN`` refused: :func:`json_ready` has replaced it)."""
    return json.dumps(doc, indent=2, allow_nan=False)


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of the ``kind`` document."""
    return json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
