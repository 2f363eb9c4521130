"""Argument checks shared by the public entry points ("Received: x=..." errors)."""


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r}"
        )


def check_probability(name, value, low_inclusive=False):
    """Raises a ValueError unless `0 < value <= 1` (or `0 <= value <= 1`)."""
    ok = _is_number(value) and (
        (0.0 <= value <= 1.0) if low_inclusive else (0.0 < value <= 1.0)
    )
    if not ok:
        interval = "[0, 1]" if low_inclusive else "(0, 1]"
        raise ValueError(
            f"Argument `{name}` must be a number in {interval}. Received: {name}={value!r}"
        )


def check_non_negative(name, value):
    if not _is_number(value) or not 0.0 <= value < float("inf"):
        raise ValueError(
            f"Argument `{name}` must be a finite number >= 0. Received: {name}={value!r}"
        )
