"""Reading transcript text: typography, sentences, and a buyer's "yes".

The built-in scorer, the deal-facts extractor and the LLM scorer's quote check all read the
same words; they split and normalise them here, so a sentence is the same sentence to each.
"""

from __future__ import annotations

import re

# Curly quotes, low quotes, dashes and non-breaking spaces as their plain forms, one character
# for one (the LLM quote check maps positions back to the original).
TYPOGRAPHY = str.maketrans({"’": "'", "‘": "'", "‚": "'", "“": '"', "”": '"', "„": '"',
                            "–": "-", "—": "-", "\u00a0": " "})

# A sentence ends at . ! ? or … (plus closing quotes) followed by whitespace, so "$1.5M" and
# "v2.0" stay whole, and not after a title ("Dr. Patel").
_SENTENCE_END = re.compile(r"(?<!\bDr)(?<!\bMr)(?<!\bMs)(?<!\bMrs)(?<!\bSt)(?<!\bProf)"
                           r"[.!?…]+[\"'”’)\]]*(?=\s)")

# A reply that says yes: to a closed question, or to a statement put to the buyer.
AFFIRMATIVE = re.compile(
    r"^(?:yes|yeah|yep|yup|correct|exactly|absolutely|definitely|of course|right|"
    r"that's right|that's correct|that's it|spot on|bang on|pretty much|100 percent|for sure|"
    r"sure is|it is|it does|it will|he does|she does|they do|we do|we are|we have|we will|"
    r"i do|i am|i will|i can|that's me|that would be me|that'd be me|let's do (?:that|it)|"
    r"that works)(?!\w)",
    re.IGNORECASE)


def plain(text: str) -> str:
    """`text` with plain typography and single spaces."""
    return " ".join(text.translate(TYPOGRAPHY).split())


def sentences(raw: str) -> list[tuple[int, str]]:
    """Each sentence of `raw` as (offset of its first character, its verbatim words)."""
    out, begin = [], 0
    for end in [m.end() for m in _SENTENCE_END.finditer(raw)] + [len(raw)]:
        chunk = raw[begin:end]
        stripped = chunk.strip()
        if stripped:
            out.append((begin + len(chunk) - len(chunk.lstrip()), stripped))
        begin = end
    return out
