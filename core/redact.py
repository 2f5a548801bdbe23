"""PII redaction before a transcript leaves the building: e-mails, phone numbers, payment cards,
IBANs and account numbers, plus patterns an admin adds, become placeholders like `[EMAIL_1]`.

One `Redactor` serves one call, so the same value gets the same placeholder in every segment.
Nothing is stored: the mapping lives as long as the scoring of the call. Each `RedactedText`
remembers where its placeholders came from, so a quote found in the redacted text can be shown
to users as the original words (`original_span`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# E-mail addresses (local@domain.tld).
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# IBAN: country code, check digits, 11–30 letters/digits, optionally in groups of four.
_IBAN = re.compile(r"(?<![\w])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![\w])")
# Payment cards: 13–19 digits, optionally grouped by spaces or dashes; kept only if Luhn-valid.
_CARD = re.compile(r"(?<![\w.,$€£-])\d(?:[ -]?\d){12,18}(?![\w]|[.,]\d)")
# Phone numbers: optional +country code, then groups separated by space, dot or dash (or an
# area code in brackets). Separators are required so plain amounts and years stay untouched.
_PHONE = re.compile(
    r"(?<![\w.,$€£/+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?|\d{1,5}[ .-])"
    r"\d{2,5}(?:[ .-]\d{2,5}){0,3}(?![\w]|[.,/]\d)")
# Account numbers: a run of 8+ digits, groups of four that look like a card but fail Luhn,
# or any number right after words such as "account number" / "routing" / "sort code".
_ACCOUNT = re.compile(r"(?<![\w.,$€£-])(?:\d{8,34}|\d{4}(?:[ -]\d{4}){2,7})(?![\w]|[.,]\d)")
_ACCOUNT_NAMED = re.compile(
    r"(?<!\w)(?:account|acct|routing|sort code|a/c)(?: number| no\.?| #|#)?:? "
    r"(?P<value>\d[\d -]{4,32}\d)(?!\w)", re.IGNORECASE)
_YEAR = re.compile(r"(?:19|20)\d\d")
_WORD_SEPARATORS = re.compile(r"[ .()-]")


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum that every payment card carries."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _phone_valid(text: str) -> bool:
    digits = _digits(text)
    groups = [g for g in _WORD_SEPARATORS.split(text.lstrip("+")) if g]
    if all(_YEAR.fullmatch(g) for g in groups):
        return False  # "2022 2023 2024"
    if text.startswith("+"):
        return 8 <= len(digits) <= 15
    return 10 <= len(digits) <= 13 and len(groups) >= 2


def _account_valid(text: str) -> bool:
    groups = [g for g in re.split(r"[ -]", text) if g]
    return not all(_YEAR.fullmatch(g) for g in groups)


# (kind, pattern, is this match really one, key that makes two spellings the same value)
_DETECTORS = (
    ("EMAIL", _EMAIL, lambda m: True, str.lower),
    ("IBAN", _IBAN, _iban_valid, lambda v: v.replace(" ", "").upper()),
    ("ACCOUNT", _ACCOUNT_NAMED, _account_valid, _digits),
    ("CARD", _CARD, lambda m: luhn_valid(_digits(m)), _digits),
    ("PHONE", _PHONE, _phone_valid, _digits),
    ("ACCOUNT", _ACCOUNT, _account_valid, _digits),
)


@dataclass(frozen=True)
class Replacement:
    """One placeholder in a redacted text and the original span it stands for."""

    start: int  # in the redacted text
    end: int
    original_start: int
    original_end: int
    placeholder: str


@dataclass(frozen=True)
class RedactedText:
    """A text with PII replaced, and how to map positions back to the original."""

    text: str
    original: str
    replacements: tuple[Replacement, ...] = ()

    def original_span(self, start: int, end: int) -> str:
        """The original words behind `text[start:end]`; a placeholder cut in half counts whole."""
        return self.original[self._to_original(start, True):self._to_original(end, False)]

    def _to_original(self, position: int, is_start: bool) -> int:
        shift = 0
        for r in self.replacements:
            if position <= r.start:
                break
            if position < r.end:  # inside a placeholder: take all of what it stands for
                return r.original_start if is_start else r.original_end
            shift = r.original_end - r.end
        return position + shift


class Redactor:
    """Redacts the texts of one call with placeholders that are stable across its segments.

    `extra` maps a label to a regular expression an admin wants redacted too
    (`{"EMPLOYEE_ID": "EMP-\\d{6}"}` gives `[EMPLOYEE_ID_1]`); extra patterns run first.
    """

    def __init__(self, extra: Mapping[str, str] | None = None):
        self._detectors = tuple(
            (re.sub(r"[^A-Z0-9]+", "_", label.upper()).strip("_") or "CUSTOM",
             re.compile(pattern), lambda m: True, str)
            for label, pattern in (extra or {}).items()) + _DETECTORS
        self._placeholders: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self.mapping: dict[str, str] = {}  # placeholder -> the first original spelling

    def redact(self, text: str) -> RedactedText:
        """`text` with every detected value replaced by its placeholder."""
        found: list[tuple[int, int, str, str]] = []  # start, end, kind, value
        for kind, pattern, valid, _ in self._detectors:
            for match in pattern.finditer(text):
                # A pattern with a `value` group redacts only that part ("account no. 123...").
                group = "value" if match.groupdict().get("value") else 0
                start, end = match.span(group)
                if start == end or not valid(match.group(group)):
                    continue
                if any(start < e and s < end for s, e, _, _ in found):
                    continue
                found.append((start, end, kind, match.group(group)))
        found.sort()
        keys = {kind: key for kind, _, _, key in self._detectors}
        pieces: list[str] = []
        replacements: list[Replacement] = []
        cursor = length = 0
        for start, end, kind, value in found:
            placeholder = self._placeholder(kind, keys[kind](value), value)
            pieces.append(text[cursor:start])
            length += start - cursor
            replacements.append(Replacement(length, length + len(placeholder), start, end,
                                            placeholder))
            pieces.append(placeholder)
            length += len(placeholder)
            cursor = end
        pieces.append(text[cursor:])
        return RedactedText("".join(pieces), text, tuple(replacements))

    def restore(self, text: str) -> str:
        """`text` with placeholders replaced by the original values (for field values)."""
        return re.sub(r"\[[A-Z0-9_]+_\d+\]", lambda m: self.mapping.get(m.group(), m.group()),
                      text)

    def _placeholder(self, kind: str, key: str, value: str) -> str:
        if (kind, key) not in self._placeholders:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            placeholder = f"[{kind}_{self._counts[kind]}]"
            self._placeholders[(kind, key)] = placeholder
            self.mapping[placeholder] = value
        return self._placeholders[(kind, key)]


def redact(text: str, *, extra: Mapping[str, str] | None = None,
           redactor: Redactor | None = None) -> tuple[str, dict[str, str]]:
    """Redact one text: (redacted text, placeholder -> original). Pass one `redactor` for
    every segment of a call to keep placeholders consistent across them."""
    redactor = redactor or Redactor(extra)
    return redactor.redact(text).text, dict(redactor.mapping)
