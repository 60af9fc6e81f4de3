"""Validation of generation options: every bad value becomes a ValueError naming the option.

These run before any array is allocated, so a hostile value can neither crash the process nor
allocate gigabytes.
"""
from __future__ import annotations

import math
import numbers


def _type_name(value) -> str:
    return type(value).__name__


def check_bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{name} must be True or False, got {value!r} ({_type_name(value)})")


def check_int(name: str, value, lo: int, hi: int) -> int:
    """An integer in [lo, hi]; bools, floats (even 3.0) and strings are rejected."""
    if type(value) is int and lo <= value <= hi:     # the common case, without the ABC check
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r} "
                         f"({_type_name(value)})")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return value


def check_float(name: str, value, lo: float, hi: float) -> float:
    """A finite real number in [lo, hi] (ints accepted)."""
    if type(value) is float and lo <= value <= hi and math.isfinite(value):   # common case
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r} "
                         f"({_type_name(value)})")
    value = float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a finite number in [{lo}, {hi}], got {value!r}")
    return value


def check_str(name: str, value, max_len: int = 100_000) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {_type_name(value)}")
    if len(value) > max_len:
        raise ValueError(f"{name} is too long ({len(value)} characters; at most {max_len})")
    return value


def check_choice(name: str, value, choices) -> str:
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def _check_sequence(name: str, value, max_items: int) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list, got {_type_name(value)}")
    if len(value) > max_items:
        raise ValueError(f"{name} has too many items ({len(value)}; at most {max_items})")
    return list(value)


def check_str_list(name: str, value, max_items: int = 1000, max_len: int = 10_000) -> list[str]:
    items = _check_sequence(name, value, max_items)
    for i, item in enumerate(items):
        check_str(f"{name}[{i}]", item, max_len)
    return items


def check_int_list(name: str, value, lo: int, hi: int, max_items: int = 10_000) -> list[int]:
    items = _check_sequence(name, value, max_items)
    return [check_int(f"{name}[{i}]", item, lo, hi) for i, item in enumerate(items)]


def check_seed(seed):
    if seed is None:
        return None
    return check_int("seed", seed, 0, 2**63 - 1)
