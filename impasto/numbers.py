"""The one check every number from a user passes first, wherever it comes from (a preset, the
hot folder's config, a job's fields, the command line; the web form's own checks can call it
too): it is a number, and finite.

TOML and Python both accept nan and inf, and a NaN slips through every range check (all
comparisons with it are false), so each door's own range check comes after this one.
"""

from __future__ import annotations

import argparse
import math

from impasto.errors import InputError


def finite(value, what: str, error: type = InputError) -> int | float:
    """value itself if it is an int or float and finite; else `error` in one line naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"{what} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise error(f"{what} must be a finite number, not {value!r}")
    return value


def checked_number(
    value,
    what: str,
    error: type = InputError,
    *,
    integer: bool = False,
    minimum: float = 0,
    positive: bool = False,
) -> int | float:
    """A number from a TOML file (a preset, the hot folder's config): finite, whole where
    `integer`, at least `minimum` (above 0 where `positive`); else `error` naming `what`."""
    value = finite(value, what, error)
    if integer and int(value) != value:
        raise error(f"{what} must be a whole number, not {value!r}")
    if value < minimum or (positive and value <= 0):
        need = "greater than 0" if positive else f"{minimum:g} or more"
        raise error(f"{what} must be {need}, not {value!r}")
    return int(value) if integer else float(value)


def whole_number_arg(text: str) -> int:
    """argparse type for counts and sizes: '12', not '12.5', 'nan' or 'lots'."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def finite_number_arg(text: str) -> float:
    """argparse type for weights, scales and seconds: '0.5' or '3e4', not 'nan' or 'inf'."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value
