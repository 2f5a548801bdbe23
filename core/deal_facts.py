"""Deal facts: what a call tells us about the deal, whoever said it, kept apart from rep skill.

For every methodology field (MEDDIC's Economic Buyer, BANT's Budget, a custom rubric's own)
a call yields a status, *found*, *ambiguous* or *absent*, a distilled value (a person's name
and title, a number with its unit, vendor names, an amount, a date, process steps, a short
phrase: never the buyer's sentence), verbatim evidence with times, and a confidence. Hedged,
vague or conflicting statements are ambiguous and are never written to a CRM; a clear "none"
("you're the only vendor we're talking to") is found, with a negative value. `merge_deal`
combines a deal's calls: the newest specific, unhedged statement wins, a conflict between
calls is ambiguous, and an earlier found value is not replaced by a later absent.

The rep's own statements are not facts unless a buyer confirms them; the rep's word count
plays no part (that gates rep *skill*, not what we learned).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from core.domain import Evidence, FieldResult, Role, TranscriptSegment, TranscriptView
from core.numbers import numbers_in, spoken_to_digits
from core.rubrics import MethodologyField, Rubric, compile_phrase
from core.text import AFFIRMATIVE, plain, sentences

FOUND, AMBIGUOUS, ABSENT = "found", "ambiguous", "absent"
FIELD_STATUSES = (FOUND, AMBIGUOUS, ABSENT)
MAX_EVIDENCE = 3
MAX_VALUE_WORDS = 14


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w)(?:{pattern})(?!\w)", re.IGNORECASE)


_HEDGE = _rx(
    r"i think|i guess|i believe|i suppose|i reckon|i imagine|i'd imagine|i assume|presumably|"
    r"probably|maybe|perhaps|possibly|might|(?:we|they|it|that|there|he|she|i|you) may|"
    r"not (?:sure|certain|clear)|unclear|sort of|kind of|kinda|somewhere|somehow|"
    r"depends|depending on|hopefully|ideally|would be nice|i'd hope|fingers crossed|"
    r"in theory|tbd|to be (?:decided|confirmed|determined)|not (?:decided|settled|finali[sz]ed)|"
    r"(?:haven't|have not|hasn't) (?:decided|worked out|figured out|settled)|"
    r"still (?:working (?:it )?out|figuring|deciding)|could be|or so i'm told|i've heard|"
    r"in the mix|at some point|some (?:say|kind|sort)|ish")
_QUESTION_START = _rx(
    r"who|whom|whose|what|when|where|why|how|which|is|are|was|were|do|does|did|can|could|"
    r"would|will|should|have|has|had|any|anything|anyone")
# "What we keep running into is…", "How we decide is…": statements, not questions.
_PSEUDO_CLEFT = re.compile(
    r"^(?:what|how|why|who|where|when)\s+(?:we|i|they|he|she|our|my|the team|everyone|"
    r"really|actually|basically)\b[^?]*\b(?:is|are|was|were)\b", re.IGNORECASE)
_FILLER = re.compile(
    r"^(?:(?:so|and|but|okay|ok|right|well|yeah|yes|yep|um+|uh+|honestly|look|listen|"
    r"basically|actually|i mean|you know|to be honest|frankly|then|now|also|oh)\b[,.!]?\s*)+",
    re.IGNORECASE)
_DENY = re.compile(r"^(?:no|nope|not really|nah|not yet|none|nobody|no one|not at all)(?!\w)",
                   re.IGNORECASE)
_DODGE = _rx(
    r"i (?:don't|do not) know|no idea|not sure|can't (?:say|share|tell|disclose)|"
    r"cannot (?:say|share)|rather not|not at liberty|i'd have to (?:check|ask)|"
    r"let me (?:check|find out|get back)|i'll (?:check|find out)|good question|hard to say|"
    r"not something i can")
_CORRECTION = _rx(r"actually|correction|sorry|to be clear|scratch that|not (?:him|her|me|tom)|"
                  r"rather|it's not|no,")

# ------------------------------------------------------------------- people ----

_TITLE = (
    r"(?:chief [a-z]+ officer|c[efortmi]o|cfo|ceo|coo|cio|cto|cro|cmo|chro|ciso|cso|cdo|cco|"
    r"(?:senior |executive |group |regional |area )?(?:vp|vice president|svp|evp|director|"
    r"head|manager|lead)(?: (?:of|for) (?!us\b|you\b|them\b|me\b|this\b|that\b|it\b)"
    r"[A-Za-z&]+)?|"
    r"managing director|finance director|fd|md|general manager|gm|president|founder|"
    r"co-founder|owner|partner|managing partner|principal|superintendent|dean|provost|"
    r"controller|comptroller|treasurer|chair(?:man|woman|person)?|board|trustees|"
    r"procurement|purchasing|practice manager|medical director|headteacher|head teacher|"
    r"bursar|registrar|commissioner|city manager|county administrator)")
_TITLE_RE = re.compile(rf"(?<!\w){_TITLE}(?!\w)", re.IGNORECASE)
_BODY = re.compile(r"(?<!\w)(?:the |our |their )?(board(?: of (?:directors|supervisors|"
                   r"trustees|governors))?|trustees|exec(?:utive)? team|leadership team|"
                   r"steering (?:group|committee)|investment committee|council|partners)(?!\w)",
                   re.IGNORECASE)
_NAME = re.compile(r"(?<![\w'])([A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?(?: (?:[A-Z][a-z]+(?:[-'][A-Z]?"
                   r"[a-z]+)?|Mc[A-Z][a-z]+|O'[A-Z][a-z]+))?)(?:'s)?(?![\w])")
_NOT_NAMES = set("""
I I'm I'll I've I'd A An The This That These Those There Then Than Thanks Thank So And But Or If
Yes Yeah Yep No Nope Okay Ok Right Well Sure Great Good Cool Perfect Hi Hello Hey Morning
Afternoon Evening Honestly Look Listen Actually Basically Also Just Now What Who When Where Why
How Which Is Are Was Were Do Does Did Can Could Would Will Should Have Has Had Our Your Their
We You They He She It Its My Me Us Him Her Them Let Maybe Probably Sorry Oh Um Uh Hmm Ha Wow
Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June
July August September October November December Christmas Easter Q1 Q2 Q3 Q4 FY
CFO CEO COO CIO CTO CRO CMO VP SVP EVP IT HR OK API SSO CRM ERP SOC ROI KPI PO MSA NDA RFP POC
Director Manager Head Lead President Founder Board Chief Officer Vice Finance Operations Sales
Marketing Legal Procurement Security Engineering Product Support Team Group Committee Council
Also Absolutely Exactly Definitely Correct Totally Agreed Fine Fair Cheers Bye Excellent
Mhm Understood Interesting Nice Awesome Brilliant Lovely Noted Hang Anyway Alright All Any Every
Some Most Both Each One Two Three Four Five Six Seven Eight Nine Ten Next Last First Second
Not Nothing Nobody None Everyone Everything Anyone Anything Someone Something Here Today Tomorrow
Yesterday Week Month Year Quarter Dr Mr Mrs Ms
""".split())


@dataclass(frozen=True)
class _Line:
    """One sentence of the call, with who said it and where it sits."""

    index: int
    turn: int
    segment: TranscriptSegment
    quote: str  # verbatim
    text: str  # typography normalised, for matching

    @property
    def role(self) -> Role:
        return self.segment.role

    @property
    def speaker(self) -> str | None:
        return self.segment.speaker_name or self.segment.speaker

    @property
    def question(self) -> bool:
        text = _FILLER.sub("", self.text)
        if text.rstrip().endswith("?"):
            return True
        if _PSEUDO_CLEFT.match(text):
            return False
        return bool(_QUESTION_START.match(text)) and "?" in self.text

    @property
    def hedged(self) -> bool:
        return bool(_HEDGE.search(self.text))


@dataclass(frozen=True)
class _Candidate:
    """One statement that supports a field, and what it says."""

    line: _Line
    value: str | None  # distilled; None when nothing can be distilled
    subject: str | None  # what two candidates must agree on (a person, an amount)
    hedged: bool
    negative: bool
    strength: float
    answer: _Line | None = None  # the reply that confirmed a rep's line or answered a question

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        lines = [self.line] + ([self.answer] if self.answer else [])
        return tuple(_evidence(line) for line in lines)


def _evidence(line: _Line) -> Evidence:
    return Evidence(line.quote, line.segment.start, line.segment.end, line.segment.id)


@dataclass(frozen=True)
class _Call:
    """The call's sentences plus what helps distil values: names, titles, companies."""

    lines: tuple[_Line, ...]
    titles: dict[str, str]  # person name → title said in the call
    own_names: frozenset[str]  # our side's names (never a buyer-side person or a vendor)
    companies: frozenset[str]  # the buyer's and our company names (never a competitor)
    known: frozenset[str] = frozenset()  # capitalised words seen mid-sentence or as speakers

    def next_reply(self, line: _Line) -> list[_Line]:
        """The first sentences of the next buyer turn after `line`, within two turns."""
        out: list[_Line] = []
        for later in self.lines[line.index + 1:]:
            if later.turn > line.turn + 2:
                break
            if later.role == Role.BUYER and later.turn > line.turn:
                if out and later.turn != out[0].turn:
                    break
                out.append(later)
                if len(out) == 3:
                    break
            elif out:
                break
        return out

    def recent_person(self, line: _Line) -> str | None:
        """The last third-party person named shortly before `line` (for "she approves")."""
        for earlier in reversed(self.lines[max(0, line.index - 4):line.index + 1]):
            names = [n for n in _names(earlier.quote, self) if n != earlier.speaker]
            if names:
                return names[-1]
        return None


def _lines(view: TranscriptView) -> list[_Line]:
    out: list[_Line] = []
    turn, previous = -1, None
    for segment in sorted(view.segments, key=lambda s: (s.start, s.end, s.id)):
        if segment.role == Role.UNKNOWN:
            continue
        speaker = (segment.role, segment.speaker_name or segment.speaker)
        if speaker != previous:
            turn += 1
            previous = speaker
        for _offset, quote in sentences(segment.text):
            out.append(_Line(len(out), turn, segment, quote, plain(quote)))
    return out


def _stem(email_or_name: str | None) -> str | None:
    if not email_or_name or "@" not in email_or_name:
        return None
    return email_or_name.split("@", 1)[1].split(".")[0].lower()


# What follows a person's name as a subject: "Priya has been…", "Rick signs…".
_PERSON_VERB = re.compile(r"(?:'s)? (?:has|had|is|was|will|would|can|signs|approves|decides|"
                          r"owns|runs|said|says|thinks|wants|told|reports|handles|leads)\b")


def _names(text: str, call: _Call | None = None) -> list[str]:
    """Capitalised names in `text` that are people or products, not titles, days or companies.
    A capitalised word that opens a sentence counts only when the call uses it mid-sentence
    too, or it is a participant's name ("Final sign-off is…" is not a name)."""
    out = []
    for match in _NAME.finditer(text):
        name = match.group(1)
        words = name.split()
        before = text[:match.start()]
        opening = (not before.strip() or re.search(r"[.!?]\s*[\"']?$", before)) and \
            not re.search(r"(?<!\w)(?:Dr|Mr|Mrs|Ms|Prof)\.?\s*$", before)
        if opening and call is not None and words[0] not in call.known and not (
                len(words) == 1 and _PERSON_VERB.match(text[match.end():])):
            words.pop(0)
        while words and words[0].split("'")[0] in _NOT_NAMES:
            words.pop(0)
        while words and words[-1].split("'")[0] in _NOT_NAMES:
            words.pop()
        if not words:
            continue
        name = " ".join(words)
        if call is not None and (name.lower() in call.companies
                                 or any(w.lower() in call.companies for w in words)):
            continue
        out.append(name)
    return out


def _known_names(lines: list[_Line]) -> frozenset[str]:
    known = set()
    for line in lines:
        if line.segment.speaker_name:
            known.update(line.segment.speaker_name.split())
        for match in re.finditer(r"(?<=[\w,;:] )([A-Z][a-z]+)", line.quote):
            if match.group(1) not in _NOT_NAMES:
                known.add(match.group(1))
    return frozenset(known)


def _people(call_lines: list[_Line], titles: dict[str, str] | None) -> dict[str, str]:
    """Names with the title said beside them ("Rick, our COO", "our CFO, Dana Ruiz")."""
    found = dict(titles or {})
    apposition = re.compile(
        rf"([A-Z][a-z]+(?: [A-Z][a-z]+)?),? (?:he's |she's |who's |is )?(?i:our|the|their|my) "
        rf"((?i:{_TITLE}))|(?i:our|the|their|my) ((?i:{_TITLE})),? ([A-Z][a-z]+(?: [A-Z][a-z]+)?)")
    for line in call_lines:
        for match in apposition.finditer(line.text):
            name = match.group(1) or match.group(4)
            title = match.group(2) or match.group(3)
            if name and name.split()[0] not in _NOT_NAMES:
                found.setdefault(name, _clean_title(title))
    return found


def _clean_title(title: str) -> str:
    title = " ".join(title.split()).strip(" ,.")
    return title.upper() if len(title) <= 4 and title.isalpha() else title


def _with_title(name: str, call: _Call) -> str:
    title = call.titles.get(name) or next(
        (t for n, t in call.titles.items() if n.split()[0] == name.split()[0]), None)
    full = next((n for n in call.titles if n != name and n.split()[0] == name), name)
    return f"{full}, {title}" if title else full


def _person(line: _Line, call: _Call, match: re.Match[str] | None) -> tuple[str, str] | None:
    """(value, subject) of the person a decider/advocate sentence is about."""
    text = line.text
    at = match.start() if match else 0
    names = [n for n in _names(line.quote, call) if n not in call.own_names]
    if names:
        # The name nearest the cue, preferring one before it ("Rick signs off", "it's Maria
        # who signs").
        def distance(name: str) -> tuple[int, int]:
            position = text.find(name)
            return (0 if position <= at else 1, abs(position - at))
        name = min(names, key=distance)
        return _with_title(name, call), name.split()[0].lower()
    if re.search(r"(?<!\w)(?:i|i'm|i'll|i've|i'd|i am|i will|my|myself|me)(?!\w)", text,
                 re.IGNORECASE) and line.role == Role.BUYER and line.speaker:
        if not re.search(r"(?<!\w)(?:my|our) (?:boss|manager|" + _TITLE[3:-1] + r")(?!\w)",
                         text, re.IGNORECASE) or re.search(
                r"(?<!\w)(?:my (?:call|decision|budget|sign[- ]?off|signature)|it's me|that's me|"
                r"that'd be me|that would be me|i sign|i approve|i decide)(?!\w)", text,
                re.IGNORECASE):
            return _with_title(line.speaker, call), line.speaker.split()[0].lower()
    pronoun = re.search(r"(?<!\w)(?:he|she|they)(?:'s|'ll| will| has| is)?(?!\w)", text,
                        re.IGNORECASE)
    following = call.lines[line.index + 1] if line.index + 1 < len(call.lines) else None
    if pronoun and following and following.turn == line.turn and \
            len(following.text.split()) <= 4 and _names(following.quote, call):
        name = _names(following.quote, call)[0]  # "She signs, yes. Corinne."
        return _with_title(name, call), name.split()[0].lower()
    if pronoun:
        earlier = call.recent_person(line)
        if earlier and earlier not in call.own_names:
            return _with_title(earlier, call), earlier.split()[0].lower()
    body = _BODY.search(text)
    title = _TITLE_RE.search(text)
    if title and title.group(0).lower() not in ("board", "trustees", "procurement",
                                                "purchasing"):
        label = _clean_title(title.group(0))
        return f"the {label}", label.lower()
    if body:
        label = body.group(1).lower()
        return f"the {label}", label
    return None


_SELF_ANSWER = re.compile(
    r"^(?:me|it's me|that's me|that'd be me|that would be me|i do|i am|myself|yes,? (?:i|me))"
    r"(?!\w)|(?<!\w)(?:i sign|i'm the one|i am the one|i make the (?:call|decision)|"
    r"my (?:call|decision|budget|money))(?!\w)", re.IGNORECASE)

# ------------------------------------------------------------------- values ----

_MONEY = re.compile(
    r"(?:(?:\$|£|€) ?\d[\d,.]*(?: ?(?:k|m|mm|bn|grand|thousand|million|billion))?|"
    r"\d[\d,.]* ?(?:k|m|grand|thousand|million)(?: (?:dollars|pounds|euros|bucks|rand|quid))?|"
    r"\d[\d,.]* (?:dollars|pounds|euros|bucks|rand|quid))(?!\w)", re.IGNORECASE)
_QUANTITY = re.compile(
    r"(?:(?:\$|£|€) ?)?\d[\d,.]*(?:\s?(?:%|percent|per ?cent|k\b|grand|thousand|million|x\b))?"
    r"(?:\s?-\s?\d[\d,.]*)?(?:\s(?:to|or)\s\d[\d,.]*)?"
    r"(?: (?:[a-z-]+ ){0,2}?(?:hours?|hrs|minutes?|mins?|days?|weeks?|months?|years?|people|"
    r"staff|reps|supers|nurses|agents|tickets|calls|claims|orders|invoices|shipments|loads|"
    r"errors|mistakes|incidents|customers|clients|accounts|deals|leads|patients|students|"
    r"sites|locations|stores|trucks|vehicles|users|seats|per cent|percent|points?|FTEs?|"
    r"a (?:day|week|month|year)|per (?:day|week|month|year|shift)))?", re.IGNORECASE)
_NOT_METRIC = _rx(
    r"extension|ext|ticket (?:number|no)|po(?: number)?|purchase order|order (?:number|no)|"
    r"invoice (?:number|no)|room|suite|reference|ref|case number|version|v\d|"
    r"anything over|over \$?\d[\d,.]*\w* (?:needs|goes|has to)|sign(?:s|ed)? off on|"
    r"approv\w* (?:anything|everything|spend|purchases)|per seat|per user|per licen[cs]e|"
    r"your (?:price|pricing|quote|proposal)|you quoted|list price|discount|on the call|"
    r"joining|years? ago|since \d{4}|back in|in \d{4}")
_DATE = re.compile(
    r"(?:(?:by|before|until|in|within|for|around|at|from|end of|start of|early|mid|late|"
    r"the end of|the start of|no later than|ahead of|after)\s+)?(?:the\s+)?"
    r"(?:(?:end|start|beginning|middle) of (?:the )?)?"
    r"(?:(?:january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)(?: \d{1,2}(?:st|nd|rd|th)?(?!\w))?|"
    r"q[1-4]|h[12]|fy ?\d{2,4}|"
    r"(?:this|next|the) (?:quarter|month|year|fiscal year|financial year|week|summer|spring|"
    r"autumn|fall|winter|term|semester|season)|(?:summer|spring|autumn|fall|winter)|"
    r"year[- ]end|quarter[- ]end|month[- ]end|christmas|black friday|new year|"
    r"\d+ (?:days|weeks|months)|(?:a|two|three|four|six) (?:couple of )?(?:weeks|months)|"
    r"20\d\d)(?: \d{4})?(?!\w)", re.IGNORECASE)
_EVENT = re.compile(r"(?:before|ahead of|in time for|by) (?:the |our |their )?"
                    r"((?:[a-z-]+ ){0,3}(?:audit|launch|season|go[- ]live|renewal|migration|"
                    r"inspection|rollout|roll-out|open enrol(?:l)?ment|peak|conference|"
                    r"board meeting|year[- ]end|deadline|expir\w+|contract (?:ends|runs out)))",
                    re.IGNORECASE)
_STEPS = (
    ("security review", r"security (?:review|team|questionnaire|assessment)|infosec|"
                        r"penetration test|pen test|soc ?2 review"),
    ("IT review", r"it (?:review|sign[- ]?off|approval|team (?:has to|needs to|will))|"
                  r"architecture review"),
    ("pilot", r"pilot|proof of concept|poc|trial"),
    ("RFP", r"rfp|tender|request for proposals?"),
    ("reference calls", r"references?(?: calls?| checks?)?"),
    ("legal review", r"legal|redlines?|msa|contract review|lawyers?|counsel"),
    ("procurement", r"procurement|purchasing|vendor onboarding|vendor (?:review|setup|set-up)|"
                    r"supplier onboarding|purchase order|po"),
    ("finance approval", r"finance (?:review|approval|sign[- ]?off)|budget approval"),
    ("committee approval", r"(?:steering|investment|capital|tech(?:nology)?|change) "
                           r"(?:committee|board|group)|committee"),
    ("board approval", r"board(?: meeting| approval| sign[- ]?off)?"),
    ("exec sign-off", r"(?:cfo|ceo|coo|cio|cto|cro|vp|md|director|exec(?:utive)?s?|leadership)"
                      r"(?:'s)? (?:sign[- ]?off|signature|approval|sign)|sign[- ]?off from"),
)
_VENDOR_ALTERNATIVES = (
    ("in-house build", r"in[- ]house|build (?:it|this|something|our own|one)(?: ourselves)?|"
                       r"(?:our|the) (?:own )?(?:dev|engineering|it) team (?:could|would|can) "
                       r"build|homegrown|home-grown|built (?:it|our own)"),
    ("spreadsheets", r"spreadsheets?|excel|google sheets"),
    ("status quo", r"status quo|do nothing|doing nothing|stay (?:as we are|with what we have)|"
                   r"keep (?:doing|things) (?:it )?(?:the way|as)"),
)


def _clip(text: str, words: int = MAX_VALUE_WORDS) -> str:
    parts = text.split()
    clipped = " ".join(parts[:words]).strip(" ,;:-")
    return clipped + ("…" if len(parts) > words else "")


def _tidy(text: str) -> str:
    text = spoken_to_digits(_FILLER.sub("", text.strip()))
    text = re.sub(r"\s+", " ", text).strip(" ,.;:!?-\"'")
    return text[:1].upper() + text[1:] if text else text


def _clause(text: str, at: int) -> str:
    """The clause of `text` around position `at` (commas, dashes, semicolons split it)."""
    bounds = [0] + [m.end() for m in re.finditer(r"[;,:]\s|\s-\s|\s(?:but|because|so)\s", text)]
    begin = max(b for b in bounds if b <= at)
    rest = re.search(r"[;,:]\s|\s-\s|\s(?:but|because|so)\s", text[at:])
    end = at + rest.start() if rest else len(text)
    return text[begin:end]


def _metric(line: _Line, call: _Call) -> tuple[str, str] | None:
    text = spoken_to_digits(line.text)
    if _NOT_METRIC.search(text):
        return None
    clauses: list[str] = []
    for match in _QUANTITY.finditer(text):
        token = match.group(0)
        if not re.search(r"\d", token):
            continue
        if _DATE.fullmatch(token.strip()) or re.fullmatch(r"20\d\d|19\d\d", token.strip()):
            continue
        if not re.search(r"[%$£€]|percent|per ?cent|[a-z]", token, re.IGNORECASE):
            continue
        clause = _clip(_tidy(_clause(text, match.start())), 12)
        if clause not in clauses:
            clauses.append(clause)
    if not clauses:
        return None
    return "; ".join(clauses[:3]), None


def _money(line: _Line) -> str | None:
    text = spoken_to_digits(line.text)
    match = _MONEY.search(text)
    if not match:
        return None
    amount = match.group(0)
    state = re.search(r"(?<!\w)(approved|allocated|set aside|earmarked|signed off|budgeted|"
                      r"ring-?fenced|for (?:this|next) (?:year|quarter)|for fy ?\d+|per year|a year|"
                      r"annual(?:ly)?|per month|a month|max(?:imum)?|ceiling|cap(?:ped)?|"
                      r"up to|under|no more than)(?!\w)", text, re.IGNORECASE)
    return f"{amount} {state.group(1)}" if state else amount


_GOAL = _rx(r"need|needs|want|wants|live|launch|launched|decide|decision|sign|signed|start|"
            r"deadline|by|before|go-live|kick off|roll out|rollout|in place|ready|done|award|"
            r"vote|renewal|renews|expires|ends|runs out|readout|pilot|up and running|"
            r"implement\w*|switch|move|migrate|cut ?over|contract|budget cycle|approve\w*")
_PAST = _rx(r"since|ago|back in|used to|last (?:year|month|week|quarter|time)|had|was|were|got "
            r"cited|happened")


def _date(line: _Line) -> str | None:
    text = spoken_to_digits(line.text)
    if not _GOAL.search(text):
        return None
    if _PAST.search(text) and not re.search(r"(?<!\w)(?:by|before|need|want|go live|live|"
                                             r"launch|deadline|will|going to)(?!\w)", text,
                                             re.IGNORECASE):
        return None
    found: list[str] = []
    for date in _DATE.finditer(text):
        value = date.group(0).strip(" ,.")
        if re.fullmatch(r"\d+ (?:days|weeks|months)", value) and not re.search(
                r"(?:in|within) \d+ (?:days|weeks|months)", text[max(0, date.start() - 8):
                                                                date.end()]):
            continue
        found.append(_clip(value, 8))
    if not found:
        event = _EVENT.search(text)
        return _clip(event.group(0).strip(" ,."), 8) if event else None
    return "; ".join(dict.fromkeys(found[:3]))


def _steps(lines: list[_Line]) -> str | None:
    seen: list[tuple[int, int, str]] = []
    for line in lines:
        for step, pattern in _STEPS:
            match = re.search(rf"(?<!\w)(?:{pattern})(?!\w)", line.text, re.IGNORECASE)
            if match and step not in {s for *_, s in seen}:
                seen.append((line.index, match.start(), step))
    if not seen:
        return None
    steps = [s for *_, s in sorted(seen)]
    when = next((d for d in (_date(line) for line in lines) if d), None)
    return " → ".join(steps) + (f" ({when})" if when else "")


def _vendors(line: _Line, call: _Call) -> list[str]:
    out = []
    for label, pattern in _VENDOR_ALTERNATIVES:
        if re.search(rf"(?<!\w)(?:{pattern})(?!\w)", line.text, re.IGNORECASE):
            out.append(label)
    for name in _names(line.quote, call):
        first = name.split()[0]
        if first in call.own_names or name in call.titles or any(
                n.split()[0] == first for n in call.titles) or name == line.speaker:
            continue
        if line.speaker and first == line.speaker.split()[0]:
            continue
        out.append(name)
    return list(dict.fromkeys(out))


def _items(text: str, match: re.Match[str]) -> list[str]:
    """The list a criteria sentence gives, before or after its cue."""
    after = text[match.end():].strip(" ,.:;-")
    before = text[:match.start()].strip(" ,.:;-")
    # "X, Y and Z are what we'll compare on" puts the list first.
    source = before if re.search(r"(?:is|are)\s+(?:what|how)\b", match.group(0) + " " +
                                 text[match.start():match.start() + 30], re.IGNORECASE) or \
        (len(before.split()) >= 3 and len(after.split()) < 2) else after or before
    source = re.sub(r"^(?:is|are|was|that|to be|for|on|:)\s+", "", source.strip(), flags=re.I)
    parts = [p.strip(" .,;") for p in re.split(r",\s*|;\s*|\s+and\s+|\s+plus\s+", source)]
    return [_clip(_tidy(p), 6) for p in parts if len(p.split()) >= 1 and p][:5]


def _phrase(line: _Line, match: re.Match[str] | None) -> str | None:
    text = line.text
    lead = re.search(
        r"(?:(?:the|our|my|a|one|biggest|main|real|big|other|number one) )*"
        r"(?:problem|issue|challenge|pain|headache|struggle|frustration|concern|need|priority|"
        r"goal|trouble)s? (?:is|are|was|has been)(?: that)?\s+|what (?:we|i) (?:keep running into|"
        r"need|want|really need|struggle with|are missing|are after|care about)(?: is| are)?"
        r"(?: that)?\s+|we need\s+|i need\s+|we're looking for\s+|we are looking for\s+|"
        r"looking for\s+|we want\s+|we'd like\s+", text, re.IGNORECASE)
    if lead:
        value = text[lead.end():]
    elif match:
        value = _clause(text, match.start())
    else:
        value = text
    value = _tidy(value)
    return _clip(value, 12) if len(value.split()) >= 2 else None


# ---------------------------------------------------------------- extraction ----


def extract_facts(view: TranscriptView, rubric: Rubric,
                  titles: dict[str, str] | None = None) -> tuple[FieldResult, ...]:
    """Every field of `rubric` as a deal fact of this call: status, value, evidence."""
    lines = _lines(view)
    own = frozenset(n for s in view.segments if s.role == Role.REP
                    for n in ((s.speaker_name or "").split()[:1]) if n)
    companies = frozenset(stem for s in view.segments for stem in [_stem(s.speaker)] if stem)
    call = _Call(tuple(lines), _people(lines, titles), own, companies, _known_names(lines))
    return tuple(_fact(field, rubric, call) for field in rubric.fields)


def _asks(field: MethodologyField, rubric: Rubric) -> tuple[str, ...]:
    key = field.criterion or field.key
    criterion = next((c for c in rubric.criteria if c.key == key), None)
    return criterion.ask if criterion else ()


def _fact(field: MethodologyField, rubric: Rubric, call: _Call) -> FieldResult:
    candidates: list[_Candidate] = []
    asks = _asks(field, rubric)
    # A short phrase (pain, need) is whatever answers a broad probe, unless the answer is
    # plainly about a field with a distinctive topic (process steps, people, vendors).
    others = tuple(f for f in rubric.fields if field.kind == "phrase"
                   and f.kind in ("steps", "person", "vendors"))
    for line in call.lines:
        if line.role == Role.BUYER and not line.question:
            candidate = _from_statement(field, line, call)
            if candidate:
                candidates.append(candidate)
        elif line.role == Role.REP:
            candidate = _from_rep(field, line, call, asks, others)
            if candidate:
                candidates.append(candidate)
    return _settle(field, candidates)


def _topic(field: MethodologyField, text: str) -> re.Match[str] | None:
    if field.excluded(text):
        return None
    for pattern in field.patterns:
        match = compile_phrase(pattern).search(text)
        if match:
            return match
    return None


def _from_statement(field: MethodologyField, line: _Line, call: _Call,
                    strength: float = 0.85) -> _Candidate | None:
    text = line.text
    hedged = line.hedged
    if field.states_none(text) and not field.excluded(text):
        return _Candidate(line, field.negative_value, "none", hedged, True, strength)
    match = _topic(field, text)
    if match is None:
        return None
    value, subject = _distil(field, line, call, match)
    if value is None and field.kind in ("person", "vendors", "money", "date", "metric"):
        # On topic, but nothing we could write: only a hedge or a vague mention is evidence.
        return _Candidate(line, None, None, True, False, 0.3) if hedged else None
    return _Candidate(line, value, subject, hedged, False, strength)


def _from_rep(field: MethodologyField, line: _Line, call: _Call,
              asks: tuple[str, ...], others: tuple[MethodologyField, ...] = ()
              ) -> _Candidate | None:
    """A rep's line counts when a buyer answers it: a question on the field answered with a
    value, or a statement the buyer confirms ("So Rick signs?" "Yes.")."""
    reply = call.next_reply(line)
    if not reply:
        return None
    first = reply[0]
    text = line.text
    about_field = _topic(field, text) is not None or field.states_none(text) or (
        line.question and any(compile_phrase(p).search(text) for p in asks))
    if not about_field:
        return None
    answer_text = _FILLER.sub("", first.text)
    if _DODGE.search(first.text) and not AFFIRMATIVE.match(answer_text):
        return None
    if line.question and _DENY.match(answer_text) and field.kind == "vendors":
        # "Anyone else you're looking at?" "No, just you."
        if not any(_topic(field, r.text) for r in reply):
            return _Candidate(line, field.negative_value, "none", first.hedged, True, 0.75,
                              first)
    if AFFIRMATIVE.match(answer_text) and not line.question or (
            AFFIRMATIVE.match(answer_text) and re.match(r"^(?:is|are|does|do|did|so|and)\b",
                                                     _FILLER.sub("", text), re.IGNORECASE)):
        # The buyer confirms what the rep said: the rep's words carry the value.
        confirmed = _Line(line.index, first.turn, line.segment, line.quote, text)
        value, subject = _distil(field, confirmed, call, _topic(field, text))
        if field.kind == "person" and value and re.search(r"(?<!\w)you(?!\w)", text,
                                                          re.IGNORECASE) and \
                not _names(line.quote, call):
            speaker = first.speaker or ""
            value, subject = _with_title(speaker, call), speaker.split()[0].lower()
        if value:
            return _Candidate(line, value, subject, first.hedged, False, 0.7, first)
    if line.question:
        for answer in reply:
            if answer.question:
                break
            direct = _from_statement(field, answer, call, strength=0.8)
            if direct:
                return None  # the buyer's statement is a candidate of its own
            if any(_topic(other, answer.text) for other in others):
                # "What happens after you approve?" "Our lawyers look over the contract…":
                # an answer about another field says nothing about this one.
                return None
            value, subject = _distil(field, answer, call, None, answering=True)
            if value:
                return _Candidate(line, value, subject, answer.hedged, False, 0.7, answer)
    return None


def _distil(field: MethodologyField, line: _Line, call: _Call, match: re.Match[str] | None,
            answering: bool = False) -> tuple[str | None, str | None]:
    kind = field.kind
    if kind == "person":
        if answering and not (_names(line.quote, call) or _TITLE_RE.search(line.text)
                              or _SELF_ANSWER.search(_FILLER.sub("", line.text))):
            return None, None
        found = _person(line, call, match)
        return found if found else (None, None)
    if kind == "metric":
        found = _metric(line, call)
        return found if found else (None, None)
    if kind == "money":
        amount = _money(line)
        if amount:
            return amount, amount.split()[0].lower()
        if answering:
            return None, None
        state = re.search(r"(?<!\w)(?:(?:have|got|has) (?:the |a )?budget|budget (?:is|was) "
                          r"(?:approved|signed off|there|allocated|in place)|(?:approved|"
                          r"allocated|set aside|earmarked) (?:the )?budget)(?!\w)", line.text,
                          re.IGNORECASE)
        return ("budget approved (amount not stated)", "approved") if state else (None, None)
    if kind == "date":
        date = _date(line)
        return (date, date.lower()) if date else (None, None)
    if kind == "vendors":
        names = _vendors(line, call)
        return ("; ".join(names), "; ".join(names).lower()) if names else (None, None)
    if kind == "steps":
        steps = _steps([line])
        return (steps, steps) if steps else (None, None)
    if kind == "list":
        if match is None:
            items = [_clip(_tidy(line.text), 10)] if len(line.text.split()) >= 3 else []
        else:
            items = _items(line.text, match)
        items = [i for i in items if i]
        return ("; ".join(items), None) if items else (None, None)
    value = _phrase(line, match)
    if answering and value and len(value.split()) < 3:
        return None, None
    return value, None


def _settle(field: MethodologyField, candidates: list[_Candidate]) -> FieldResult:
    """The field's status and value from every statement about it in the call."""
    if not candidates:
        return FieldResult(field.key, field.label, None, 0.0, (), ABSENT)
    firm = [c for c in candidates if not c.hedged and c.value]
    if not firm:
        shown = candidates[:MAX_EVIDENCE]
        value = next((c.value for c in shown if c.value and not c.negative), None)
        return FieldResult(field.key, field.label, value, 0.3,
                           tuple(e for c in shown for e in c.evidence)[:MAX_EVIDENCE], AMBIGUOUS)
    positive = [c for c in firm if not c.negative]
    if field.kind in ("vendors", "list", "metric", "steps", "date") and positive:
        return _union(field, positive)
    chosen = positive or firm
    if field.kind in ("person", "money", "date") and positive:
        subjects = list(dict.fromkeys(c.subject for c in positive if c.subject))
        last = positive[-1]
        corrected = _CORRECTION.search(last.line.text) or (
            last.answer is not None and _CORRECTION.search(last.answer.text))
        speakers = {c.line.speaker for c in positive if c.subject}
        if len(subjects) > 1 and not corrected and field.kind == "person" and len(speakers) > 1:
            return FieldResult(field.key, field.label, None, 0.35,
                               tuple(c.evidence[0] for c in positive)[:MAX_EVIDENCE], AMBIGUOUS)
        if corrected or field.kind == "person":
            chosen = [last]
    best = max(chosen, key=lambda c: (c.strength, c.line.index))
    confidence = round(min(1.0, best.strength * best.line.segment.attribution_confidence), 3)
    return FieldResult(field.key, field.label, best.value, confidence, best.evidence, FOUND,
                       negative=best.negative)


def _union(field: MethodologyField, positive: list[_Candidate]) -> FieldResult:
    if field.kind == "steps":
        value = _steps([c.answer or c.line for c in positive]) or positive[0].value
    else:
        parts: list[str] = []
        for candidate in positive:
            for part in (candidate.value or "").split("; "):
                if part and part.lower() not in (p.lower() for p in parts):
                    parts.append(part)
        value = "; ".join(parts[:4])
    best = max(positive, key=lambda c: c.strength)
    confidence = round(min(1.0, best.strength * best.line.segment.attribution_confidence), 3)
    evidence = tuple(e for c in positive for e in c.evidence)[:MAX_EVIDENCE]
    return FieldResult(field.key, field.label, value, confidence, evidence, FOUND)


# ----------------------------------------------------------------- per deal ----


@dataclass(frozen=True)
class CallFact:
    """A field's fact from one call, with when the call happened."""

    meeting_id: int
    started_at: datetime
    title: str
    fact: FieldResult


def merge_deal(facts: list[CallFact], *, single_valued: bool
               ) -> tuple[FieldResult, int | None]:
    """A deal's field from all its calls, and the meeting whose statement won (see
    `merge_in_order`)."""
    if not facts:
        raise ValueError("merge_deal needs at least one call's fact")
    ordered = sorted(facts, key=lambda f: (f.started_at, f.meeting_id))
    merged, winner = merge_in_order([f.fact for f in ordered], single_valued=single_valued)
    return merged, (ordered[winner].meeting_id if winner is not None else None)


def merge_in_order(facts: list[FieldResult], *, single_valued: bool
                   ) -> tuple[FieldResult, int | None]:
    """One field from statements in time order (a deal's calls, or the parts of a long call),
    and the index of the one that won.

    The newest found value wins over older ones when they agree or when the newer one is
    specific and unhedged; two different found values that a later one does not settle are
    ambiguous, with both quotes; a later absent never erases a found.
    """
    found = [i for i, f in enumerate(facts) if f.status == FOUND]
    if not found:
        ambiguous = [i for i, f in enumerate(facts) if f.status == AMBIGUOUS]
        if ambiguous:
            return facts[ambiguous[-1]], ambiguous[-1]
        return facts[-1], None
    newest = facts[found[-1]]
    earlier = [facts[i] for i in found[:-1]
               if _comparable(facts[i].value) != _comparable(newest.value)]
    if earlier and single_valued and not newest.negative:
        previous = earlier[-1]
        if not _contains(newest.value, previous.value):
            evidence = previous.evidence[:1] + newest.evidence[:1]
            return replace(newest, status=AMBIGUOUS, value=None,
                           confidence=min(0.35, newest.confidence),
                           evidence=evidence), found[-1]
    return newest, found[-1]


def distillation_problem(field: MethodologyField, value: str, source: str,
                         negative: bool = False) -> str | None:
    """Why `value` is not a distilled value of `field` (a sentence, a person who is not named
    in `source`, a metric with no number), or None when it is one. Used on values we did not
    distil ourselves (the LLM's)."""
    words = value.split()
    if len(words) > MAX_VALUE_WORDS:
        return f"{len(words)} words is a sentence, not a value"
    if negative:
        return None
    if field.kind == "person":
        names = _names(value)
        if not names and not _TITLE_RE.search(value) and not _BODY.search(value):
            return "names no person or title"
        missing = [n for n in names if n.split()[0] not in source]
        if missing:
            return f"{missing[0]} is not named in the call"
    if field.kind in ("metric", "money") and not numbers_in(value) \
            and not re.search(r"approved|allocated", value, re.IGNORECASE):
        return "has no number"
    return None


def _comparable(value: str | None) -> str:
    return re.sub(r"\W+", " ", (value or "").lower()).strip()


def _contains(newer: str | None, older: str | None) -> bool:
    """Whether the newer value names what the older one did ("Rick" → "Rick Alvarez, COO")."""
    a, b = _comparable(newer), _comparable(older)
    return bool(b) and (b.split()[0] in a.split() or a.split()[0] in b.split())
