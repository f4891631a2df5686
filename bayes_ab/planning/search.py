"""The smallest size a plan needs: a doubling search for a size with enough power, then bisection."""

from __future__ import annotations

from typing import Callable


def smallest_reaching(power: Callable[[int], float], target: float, limit: int, start: int = 2) -> int | None:
    """The smallest size from ``start`` whose ``power`` reaches ``target`` (power grows with the size); ``None``
    when even ``limit`` does not."""
    low, high = start, start
    while power(high) < target and high < limit:
        low, high = high, min(2 * high, limit)
    if power(high) < target:
        return None
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if power(middle) < target else (low, middle)
    return high
