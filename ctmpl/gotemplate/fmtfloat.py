"""Go's float64 text: strconv.FormatFloat's shortest and fixed-precision forms (%v of a float
is the shortest digits with an exponent from 1e+06 up or below 1e-04), the ``#`` flag, and the
binary forms %x, %X and %b."""

from __future__ import annotations

import math
from decimal import Decimal


def go_float(value: float, fmt: str = "g", prec: int = -1) -> str:
    """strconv.FormatFloat(value, fmt, prec, 64)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    upper = fmt.isupper()
    fmt = fmt.lower()
    if prec >= 0:
        text = f"{value:.{max(prec, 1)}g}" if fmt == "g" else f"{value:.{prec}{fmt}}"
        return text.upper() if upper else text
    sign, digits_t, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digits_t)) or "0"
    if digits == "0":
        digits, point = "0", 1
    else:
        point = len(digits) + int(exponent)  # decimal point position after `point` digits
    neg = "-" if sign else ""
    exp = point - 1
    # With the shortest precision Go switches to %e from exponent 6 up or below -4.
    if fmt == "e" or (fmt == "g" and (exp < -4 or exp >= 6)):
        text = neg + _e_form(digits, exp)
    else:
        text = neg + _fixed(digits, point)
    return text.upper() if upper else text


def _fixed(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * (-point) + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _e_form(digits: str, exp: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def sharp_float(text: str, verb: str, prec: int) -> str:
    """The ``#`` flag on floats (Go's rules): always a decimal point; %g and %x keep
    trailing zeros up to the precision (6 when none is given)."""
    sign = text[0] if text[:1] in "+-" else ""
    body = text[len(sign):]
    digits = (6 if prec < 0 else prec) if verb in "vgGxX" else 0
    tail, has_point, seen_nonzero = "", False, False
    for i, ch in enumerate(body):
        if ch == ".":
            has_point = True
        elif ch in "pP" or (ch in "eE" and verb not in "xX"):
            body, tail = body[:i], body[i:]
            break
        else:
            seen_nonzero = seen_nonzero or ch != "0"
            digits -= 1 if seen_nonzero else 0
    if not has_point:
        if body == "0":
            digits -= 1
        body += "."
    return sign + body + "0" * max(0, digits) + tail


def binary_float(value: float, verb: str) -> str:
    """%x/%X (hex mantissa, shortest) and %b (integer mantissa, binary exponent) of a float."""
    if math.isnan(value) or math.isinf(value):
        return go_float(value)
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    size = abs(value)
    if verb == "b":
        if size == 0:
            return f"{sign}0p-1074"
        mantissa, exponent = math.frexp(size)
        bits, shift = int(mantissa * (1 << 53)), exponent - 53
        if shift < -1074:
            bits, shift = bits >> (-1074 - shift), -1074
        return f"{sign}{bits}p{shift:+d}"
    if size == 0:
        text = "0x0p+00"
    else:
        head, _, exp = size.hex().partition("p")
        head = head.rstrip("0").rstrip(".")
        text = f"{head}p{exp[0]}{int(exp[1:]):02d}"
    text = sign + text
    return text.upper() if verb == "X" else text
