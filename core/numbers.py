"""Spoken numbers as digits: "fourteen grand" → 14000, "forty-five minutes" → "45 minutes".

Deal facts are distilled into what a person would type ("$14K", "45 min"), and values are
compared by the numbers they name, however they were said.
"""

from __future__ import annotations

import re

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_SCALES = {"hundred": 100, "thousand": 1_000, "grand": 1_000, "million": 1_000_000,
           "billion": 1_000_000_000}
_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "and", "a", "an", "point"], key=len,
                        reverse=True))
_RUN = re.compile(rf"(?<![\w-])(?:{_WORD})(?:[\s-]+(?:{_WORD}))*(?![\w-])", re.IGNORECASE)
_DIGITS = re.compile(
    r"(?<![\w.])(\$|£|€)?\s?(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s?(k|m|mm|bn|grand|thousand|"
    r"million|billion)?(?![\w])", re.IGNORECASE)
_SUFFIX = {"k": 1_000, "grand": 1_000, "thousand": 1_000, "m": 1_000_000, "mm": 1_000_000,
           "million": 1_000_000, "bn": 1_000_000_000, "billion": 1_000_000_000}


def _words_value(words: list[str]) -> float | None:
    """The number a run of number words says, or None when it is not one ("a", "and")."""
    total, current, seen, decimals = 0.0, 0.0, False, None
    for index, word in enumerate(words):
        if word == "and":
            continue
        if word in ("a", "an"):  # "a hundred", "a grand"; not "a one"
            if index + 1 < len(words) and words[index + 1] in _SCALES:
                current = current or 1
            continue
        if word == "point":
            decimals = ""
            continue
        if decimals is not None and word in _UNITS and _UNITS[word] < 10:
            decimals += str(_UNITS[word])
            seen = True
            continue
        if decimals:
            current += float(f"0.{decimals}")
            decimals = None
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = (current or 1) * 100
        else:
            total += (current or 1) * _SCALES[word]
            current = 0
        seen = True
    if not seen:
        return None
    if decimals:
        current += float(f"0.{decimals}")
    return total + current


def _format(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def spoken_to_digits(text: str) -> str:
    """`text` with every run of number words replaced by digits ("fourteen grand" → "14000")."""
    def replace(match: re.Match[str]) -> str:
        raw = match.group(0)
        words = [w.lower() for w in re.split(r"[\s-]+", raw) if w]
        # Keep a lone article or "and"; trim leading/trailing glue words off the run.
        while words and words[0] == "and":
            words.pop(0)
        while words and words[-1] in ("and", "a", "an", "point"):
            words.pop()
        value = _words_value(words)
        if value is None:
            return raw
        lead = re.match(r"^(?:and[\s-]+)*", raw, re.IGNORECASE).group(0)
        tail = re.search(r"(?:[\s-]+(?:and|a|an|point))*$", raw, re.IGNORECASE).group(0)
        return f"{lead}{_format(value)}{tail}"

    return _RUN.sub(replace, text)


def numbers_in(text: str) -> set[float]:
    """Every number `text` names, in digits or words, with k / grand / million applied."""
    digits = spoken_to_digits(text)
    out: set[float] = set()
    for match in _DIGITS.finditer(digits):
        value = float(match.group(2).replace(",", ""))
        suffix = (match.group(3) or "").lower()
        out.add(value * _SUFFIX.get(suffix, 1))
        if suffix:
            out.add(value)  # "14K" also names 14
    return out
