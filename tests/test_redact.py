"""PII redaction: what is redacted, what must not be (dates, prices, years), and mapping back."""

from __future__ import annotations

import pytest

from core.redact import Redactor, luhn_valid, redact


@pytest.mark.parametrize("text, expected", [
    ("Mail dana.w@acme.io today", "Mail [EMAIL_1] today"),
    ("Call (415) 555-0142.", "Call [PHONE_1]."),
    ("Call 415-555-0142 or 415.555.0142", "Call [PHONE_1] or [PHONE_1]"),
    ("UK office +44 20 7946 0958", "UK office [PHONE_1]"),
    ("Toll free 1-800-555-0199", "Toll free [PHONE_1]"),
    ("Card 4111 1111 1111 1111 expires soon", "Card [CARD_1] expires soon"),
    ("Card 4111-1111-1111-1111", "Card [CARD_1]"),
    ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN [IBAN_1] please"),
    ("account number 12345678", "account number [ACCOUNT_1]"),
    ("acct 0012-3456-78", "acct [ACCOUNT_1]"),
    ("ref 123456789012", "ref [ACCOUNT_1]"),
])
def test_redacts(text, expected):
    assert redact(text)[0] == expected


@pytest.mark.parametrize("text", [
    "We go live on 2024-03-15, or 03/15/2024, or 15.03.2024.",
    "It costs $1,200,000 a year, about 1.200.000 EUR, or $180,000.",
    "We grew from 2022 2023 2024 onwards.",
    "We have 300 500 reps across 12 teams and 1 200 000 users.",
    "Meet at 10:30, version 3.14.15, 60 hours a week, 45 percent.",
    "Ext 555 0142 is too short to be a full number.",
])
def test_leaves_dates_prices_and_counts_alone(text):
    assert redact(text)[0] == text


def test_a_card_number_must_pass_luhn():
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("41x1")
    # Not a card, but still a long number in card-like groups: redacted as an account.
    assert redact("Number 4111 1111 1111 1112")[0] == "Number [ACCOUNT_1]"


def test_an_invalid_iban_is_not_an_iban():
    assert "[IBAN" not in redact("code DE00 3704 0044 0532 0130 00")[0]


def test_same_value_same_placeholder_across_segments():
    redactor = Redactor()
    one = redactor.redact("Dana is Dana@Acme.io, phone 415-555-0142.")
    two = redactor.redact("Again: dana@acme.io or (415) 555-0142; Sam is sam@acme.io.")
    assert one.text == "Dana is [EMAIL_1], phone [PHONE_1]."
    assert two.text == "Again: [EMAIL_1] or [PHONE_1]; Sam is [EMAIL_2]."
    assert redactor.mapping == {"[EMAIL_1]": "Dana@Acme.io", "[PHONE_1]": "415-555-0142",
                                "[EMAIL_2]": "sam@acme.io"}
    assert redactor.restore("Sign-off: [EMAIL_2]") == "Sign-off: sam@acme.io"


def test_extra_patterns_from_settings():
    text, mapping = redact("Badge EMP-123456 and EMP-123456", extra={"employee id": r"EMP-\d{6}"})
    assert text == "Badge [EMPLOYEE_ID_1] and [EMPLOYEE_ID_1]"
    assert mapping == {"[EMPLOYEE_ID_1]": "EMP-123456"}


def test_positions_map_back_to_the_original_words():
    redacted = Redactor().redact("Write to dana@acme.io or call 415-555-0142 today.")
    text = redacted.text
    assert text == "Write to [EMAIL_1] or call [PHONE_1] today."
    start = text.index("[EMAIL_1]")
    assert redacted.original_span(start, len(text)) == "dana@acme.io or call 415-555-0142 today."
    assert redacted.original_span(0, start + 3) == "Write to dana@acme.io"  # half a placeholder
    assert redacted.original_span(text.index("today"), len(text)) == "today."
