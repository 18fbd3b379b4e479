"""Argument validators for argparse ``type=``: a bad number is refused while parsing, in one line
naming the option (``argument --k: must be an integer >= 1, got '0'``), before anything is loaded."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """Parser of integers in ``[minimum, maximum]`` (no upper bound when ``maximum`` is ``None``)."""
    bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {text!r}")
        return value

    parse.__name__ = f"integer {bounds}"
    return parse


def float_in(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False
             ) -> Callable[[str], float]:
    """Parser of finite floats in the interval from ``low`` to ``high`` (open ends as flagged)."""
    if high == math.inf:
        bounds = f"> {low}" if low_open else f">= {low}"
    else:
        bounds = f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {bounds}, got {text!r}") from None
        inside = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
        if not math.isfinite(value) or not inside:
            raise argparse.ArgumentTypeError(f"must be a finite number {bounds}, got {text!r}")
        return value

    parse.__name__ = f"number {bounds}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
positive_float = float_in(0.0, low_open=True)
non_negative_float = float_in(0.0)
unit_interval = float_in(0.0, 1.0)  # [0, 1], e.g. an opacity
fraction = float_in(0.0, 1.0, low_open=True)  # (0, 1], e.g. a share of patches kept
