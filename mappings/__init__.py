"""CRM mappings: which methodology field goes to which CRM field, under which write policy.

A mapping is a YAML file (`mappings/salesforce-meddic.yaml` is the built-in one). This module
loads and validates it (line-precise errors), checks it against the CRM's own description of
the object before anything is written, and plans: given the CRM's current values and the
values found in calls, it decides field by field what to write and says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.yaml_models import LocatedError, YamlFileError, line_of, parse_yaml_model

BUILTIN_DIR = Path(__file__).parent
TEXT_TYPES = {"string", "textarea", "url", "email", "phone", "picklist", "multipicklist"}


class MappingError(YamlFileError):
    """A mapping file is invalid, or does not fit the CRM object; names file and line."""


class Policy(StrEnum):
    FILL_EMPTY = "fill_empty"
    OVERWRITE = "overwrite"
    APPEND = "append"
    SHADOW = "shadow"
    NEVER = "never"


class Approval(StrEnum):
    """Whose consent a value needs before it is written."""

    REVIEW = "review"  # a person approves, edits or rejects it first (`coachloop crm review`)
    AUTO = "auto"  # written without review at or above the mapping's `auto_confidence`
    NEVER = "never"  # never written


class FieldRule(BaseModel):
    """One methodology field → one CRM field, with its write policy and approval mode."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)
    policy: Policy
    min_confidence: float | None = Field(None, ge=0, le=1)
    shadow_field: str | None = None
    # Default: `review` for every field a rep owns; `auto` for our own AI copy (`shadow`).
    approval: Approval | None = None

    @property
    def approval_mode(self) -> Approval:
        if self.approval is not None:
            return self.approval
        return Approval.AUTO if self.policy is Policy.SHADOW else Approval.REVIEW

    @property
    def target(self) -> str:
        """The CRM field actually written (the AI copy, for `shadow`)."""
        if self.policy is Policy.SHADOW:
            return self.shadow_field or f"AI_{self.to}"
        return self.to


# What the `values` templates of each record rule may name.
ACTIVITY_NAMES = frozenset({"title", "date", "started_at", "summary", "meeting_id", "url",
                            "rep_email", "rep_user"})
SKILL_NAMES = frozenset({"rep_email", "rep_handle", "skill", "window_days", "as_of", "score",
                         "interval_low", "interval_high", "percentile", "n_calls", "state"})


class RecordRule(BaseModel):
    """A record we create per call (the activity) or per skill snapshot, upserted by our
    external id. `values`: CRM field → template over what we know (`"Call: {title}"`); a
    template that is one name alone keeps its type (a number stays a number). `link_field`
    holds the record's link where links are fields (Salesforce: the activity's deal, the
    skill row's CRM user); `associate` links it where links are associations (HubSpot):
    what we link (`deal`, `contacts`) → the CRM object it is."""

    model_config = ConfigDict(extra="forbid")

    object: str
    external_id: str
    enabled: bool = True
    link_field: str | None = None
    # The skill rows of a closed deal (its owner's scores as of the close) name the deal
    # here (Salesforce), or are associated with it (`associate: {deal: …}`, HubSpot).
    deal_field: str | None = None
    associate: dict[Literal["deal", "contacts"], str] = Field(default_factory=dict)
    values: dict[str, str] = Field(default_factory=dict)

    def names_used(self) -> set[str]:
        return {name for template in self.values.values() for name in _template_names(template)}

    def render(self, known: dict[str, Any], info: ObjectInfo) -> dict[str, Any]:
        """The record's values: each template filled, strings cut to the field's length,
        fields the CRM does not have or will not take on create (an Auto Number Name) left
        out."""
        out = {}
        for name, template in self.values.items():
            field_info = info.field(name)
            if field_info is None or not field_info.createable:
                continue
            value = _fill(template, known)
            if isinstance(value, str) and field_info.length:
                value = value[:field_info.length]
            out[field_info.name] = value
        return out


def _template_names(template: str) -> list[str]:
    from string import Formatter

    return [name for _, name, _, _ in Formatter().parse(template) if name]


def _fill(template: str, known: dict[str, Any]) -> Any:
    names = _template_names(template)
    if len(names) == 1 and template == "{" + names[0] + "}":
        return known.get(names[0])  # one name alone: its own type (None stays None)
    return template.format_map({k: "" if v is None else v for k, v in known.items()})


class DealSkillRule(BaseModel):
    """Where a CRM has no object for skill scores (HubSpot below Enterprise): the deal
    owner's scores as properties of each open deal, frozen when it closes (a report then
    joins the owner's skills at close with won and lost). `property` is a template over
    `skill`; `as_of` names the property that says when the scores are from."""

    model_config = ConfigDict(extra="forbid")

    window_days: int = Field(90, gt=0)
    property: str = Field(pattern=r"\{skill\}")
    as_of: str | None = None


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")

    crm: str
    methodology: str
    object: str
    min_confidence: float = Field(0.6, ge=0, le=1)
    overwrite_confidence: float = Field(0.8, ge=0, le=1)
    auto_confidence: float = Field(0.85, ge=0, le=1)  # `approval: auto` writes from here up
    fields: list[FieldRule] = Field(default_factory=list)
    activity: RecordRule | None = None
    skill_scores: RecordRule | None = None
    skill_scores_on_deals: DealSkillRule | None = None
    source: str = Field("", exclude=True)  # the file it came from, for messages
    lines: dict[str, int] = Field(default_factory=dict, exclude=True)  # "fields.3.to" → line

    @model_validator(mode="after")
    def _check_rules(self) -> Mapping:
        from core.rubrics import builtin_rubric, list_builtin_rubrics

        if self.methodology not in list_builtin_rubrics():
            raise LocatedError(f"unknown methodology {self.methodology!r} (built-in: "
                               f"{', '.join(list_builtin_rubrics())})", ("methodology",))
        known = {f.key for f in builtin_rubric(self.methodology).fields}
        targets: dict[str, int] = {}
        for index, rule in enumerate(self.fields):
            if rule.source not in known:
                raise LocatedError(f"{self.methodology} has no field {rule.source!r} (its "
                                   f"fields: {', '.join(sorted(known))})",
                                   ("fields", index, "from"))
            if rule.policy is Policy.NEVER:
                continue
            if rule.target.lower() in targets:
                earlier = targets[rule.target.lower()]
                raise LocatedError(f"{rule.target} is already written by fields[{earlier}]; "
                                   "one CRM field takes one rule", ("fields", index, "to"))
            targets[rule.target.lower()] = index
        for section, allowed in (("activity", ACTIVITY_NAMES), ("skill_scores", SKILL_NAMES)):
            rule = getattr(self, section)
            if rule is None:
                continue
            for target, template in rule.values.items():
                try:
                    unknown = set(_template_names(template)) - allowed
                except ValueError as exc:  # an unbalanced brace
                    raise LocatedError(f"{template!r} is not a template: {exc}",
                                       (section, "values", target)) from None
                if unknown:
                    raise LocatedError(f"{section} values cannot name {', '.join(sorted(unknown))}"
                                       f" (they can name: {', '.join(sorted(allowed))})",
                                       (section, "values", target))
        return self

    def threshold(self, rule: FieldRule) -> float:
        if rule.min_confidence is not None:
            return rule.min_confidence
        if rule.policy is Policy.OVERWRITE:
            return max(self.min_confidence, self.overwrite_confidence)
        return self.min_confidence

    def where(self, *loc: str | int) -> str:
        """"file:line" of a node, for messages about it."""
        key = ".".join(str(part) for part in loc)
        line = self.lines.get(key)
        return f"{self.source}:{line}" if line else self.source


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file; MappingError names the file and line at fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read mapping file ({exc})", file=str(path)) from None
    mapping = parse_yaml_model(text, Mapping, source=str(path), error=MappingError,
                               shape="a mapping file must be a mapping (crm:, object:, fields:)")
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    lines = {}
    for index in range(len(mapping.fields)):
        for key in ("from", "to", "policy"):
            lines[f"fields.{index}.{key}"] = line_of(root, ("fields", index, key))
    for section in ("activity", "skill_scores"):
        for key in ("object", "external_id", "link_field", "deal_field"):
            lines[f"{section}.{key}"] = line_of(root, (section, key))
        rule = getattr(mapping, section)
        for name in rule.values if rule is not None else ():
            lines[f"{section}.values.{name}"] = line_of(root, (section, "values", name))
    lines["object"] = line_of(root, ("object",))
    return mapping.model_copy(update={"source": str(path), "lines": lines})


def builtin_mapping(name: str) -> Mapping:
    """A mapping shipped in `mappings/`, by file stem (e.g. "salesforce-meddic")."""
    path = BUILTIN_DIR / f"{name}.yaml"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))
        raise MappingError(f"no built-in mapping {name!r} (available: {available})",
                           file=str(BUILTIN_DIR))
    return load_mapping(path)


# ----------------------------------------------------- fitting the CRM's schema ----


@dataclass(frozen=True)
class FieldInfo:
    """What the CRM says about one field (from describe)."""

    name: str
    type: str
    length: int | None = None
    updateable: bool = True
    createable: bool = True
    picklist: tuple[str, ...] = ()
    restricted_picklist: bool = False
    external_id: bool = False


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    fields: dict[str, FieldInfo]  # lower-cased name → info

    def field(self, name: str) -> FieldInfo | None:
        return self.fields.get(name.lower())


def check_against(mapping: Mapping, describe: dict[str, ObjectInfo]) -> None:
    """Raise MappingError listing every rule the CRM's schema cannot take (before any write)."""
    problems = []
    target = describe.get(mapping.object.lower())
    if target is None:
        problems.append(f"{mapping.where('object')}: the CRM has no object {mapping.object!r}")
    else:
        for index, rule in enumerate(mapping.fields):
            if rule.policy is Policy.NEVER:
                continue
            info = target.field(rule.target)
            where = mapping.where("fields", index, "to")
            if info is None:
                problems.append(f"{where}: {mapping.object} has no field {rule.target!r} (check "
                                "the API name; fields the integration user cannot see are "
                                "hidden too)")
            elif not info.updateable:
                problems.append(f"{where}: {mapping.object}.{info.name} is read-only for the "
                                "integration user (field-level security)")
            elif info.type not in TEXT_TYPES:
                problems.append(f"{where}: {mapping.object}.{info.name} is a {info.type} field;"
                                " methodology values are text (use a text, long text or "
                                "picklist field)")
            elif rule.policy is Policy.APPEND and info.type not in ("textarea", "string"):
                problems.append(f"{where}: append needs a text field, and "
                                f"{mapping.object}.{info.name} is a {info.type}")
    for section in ("activity", "skill_scores"):
        rule = getattr(mapping, section)
        if rule is None or not rule.enabled:
            continue
        obj = describe.get(rule.object.lower())
        if obj is None:
            problems.append(f"{mapping.where(section, 'object')}: the CRM has no object "
                            f"{rule.object!r}")
            continue
        key = obj.field(rule.external_id)
        if key is None or not key.external_id:
            problems.append(f"{mapping.where(section, 'external_id')}: {rule.object}."
                            f"{rule.external_id} is not an External ID field, so writes could "
                            "not be retried without duplicates")
        for name, where in [(n, (section, "values", n)) for n in rule.values] + [
                (getattr(rule, key), (section, key)) for key in ("link_field", "deal_field")
                if getattr(rule, key)]:
            if obj.field(name) is None:
                problems.append(f"{mapping.where(*where)}: {rule.object} has no field "
                                f"{name!r} (or the integration user cannot see it)")
    if problems:
        raise MappingError(problems[0].split(": ", 1)[1], file=mapping.source,
                           problems=tuple(problems))


# ---------------------------------------------------------------------- planning ----


@dataclass(frozen=True)
class FoundValue:
    """A deal fact for one methodology field, and the call it comes from."""

    value: str | None
    confidence: float
    evidence: tuple[dict[str, Any], ...] = ()
    status: str = "found"  # found | ambiguous | absent: only found values are ever written
    meeting_id: int | None = None  # the call whose statement it is (default: the findings')
    call_title: str | None = None


@dataclass(frozen=True)
class CallFindings:
    """What one call says, in the order calls happened."""

    meeting_id: int
    title: str
    started_on: date
    values: dict[str, FoundValue]  # methodology field key → value


@dataclass(frozen=True)
class FieldDecision:
    """What the planner decided for one rule and one call, and why."""

    meeting_id: int
    source: str
    field: str
    policy: Policy
    before: str | None
    after: str | None
    status: str  # write | review (waits for a person's consent) | unchanged | skip
    reason: str
    confidence: float | None = None
    evidence: tuple[dict[str, Any], ...] = ()
    approval: Approval = Approval.AUTO
    call_title: str | None = None


@dataclass
class RecordPlan:
    """The writes planned for one CRM record: the final values and every decision."""

    record_id: str
    values: dict[str, str] = field(default_factory=dict)
    decisions: list[FieldDecision] = field(default_factory=list)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _fit(text: str, info: FieldInfo | None) -> tuple[str | None, str]:
    """The value as the field can hold it, or None and why not."""
    text = " ".join(text.split())
    if info is None:
        return text, ""
    if info.type in ("picklist", "multipicklist"):
        match = next((p for p in info.picklist if p.lower() == text.lower()), None)
        if match is None and (info.restricted_picklist or info.picklist):
            return None, f"{text!r} is not one of the picklist values (a wrong picklist value " \
                         "is worse than an empty field)"
        return match or text, ""
    if info.length and len(text) > info.length:
        cut = text[:info.length - 1].rsplit(" ", 1)[0]
        return cut + "…", f"shortened to the field's {info.length} characters"
    return text, ""


def decide(mapping: Mapping, rule: FieldRule, info: FieldInfo | None, current: Any,
           call: CallFindings) -> FieldDecision:
    """One rule against one call's findings, given the field's current value."""
    found = call.values.get(rule.source)
    before = None if current is None else str(current)

    def result(status: str, reason: str, after: str | None = None) -> FieldDecision:
        return FieldDecision((found.meeting_id if found else None) or call.meeting_id,
                             rule.source, rule.target, rule.policy, before,
                             after if status in ("write", "review") else before, status, reason,
                             found.confidence if found else None,
                             found.evidence if found else (), rule.approval_mode,
                             (found.call_title if found else None) or call.title)

    if rule.policy is Policy.NEVER:
        return result("skip", "policy is never")
    if rule.approval_mode is Approval.NEVER:
        return result("skip", "approval is never")
    if found is None or found.status == "absent" or (found.value is None
                                                     and found.status == "found"):
        return result("skip", "not found on this deal's calls")
    if found.status != "found":
        return result("skip", "ambiguous (hedged, vague or conflicting): never written")
    threshold = mapping.threshold(rule)
    if found.confidence < threshold:
        return result("skip", f"confidence {found.confidence:.2f} is below {threshold:.2f}")
    if rule.policy is Policy.APPEND:
        text = " ".join(found.value.split())
        if before and text.lower() in before.lower():
            return result("unchanged", "already noted")
        line = f"{call.started_on.isoformat()} ({call.title}): {text}"
        after = f"{before.rstrip()}\n{line}" if before and before.strip() else line
        if info and info.length and len(after) > info.length:
            return result("skip", f"appending would pass the field's {info.length} characters")
        return _consent(mapping, rule, found, result, "appended", after)
    value, note = _fit(found.value, info)
    if value is None:
        return result("skip", note)
    if before is not None and before == value:
        return result("unchanged", "the CRM already has this value")
    if rule.policy is Policy.FILL_EMPTY and not _blank(current):
        return result("skip", "the field already has a value (fill_empty never overwrites)")
    reason = {Policy.FILL_EMPTY: "the field was empty", Policy.OVERWRITE: "confident enough to "
              "overwrite", Policy.SHADOW: "the AI copy keeps our latest value"}[rule.policy]
    return _consent(mapping, rule, found, result, f"{reason}; {note}" if note else reason,
                    value)


def _consent(mapping: Mapping, rule: FieldRule, found: FoundValue, result, reason: str,
             value: str) -> FieldDecision:
    """A write the policy allows still needs consent unless its approval mode is `auto` and
    the value is confident enough."""
    # An explicit `approval: auto` on a rep's field needs `auto_confidence`; our own AI copy
    # (`shadow`, auto by default) only the rule's threshold, checked already.
    floor = mapping.auto_confidence if rule.approval is Approval.AUTO else 0.0
    if rule.approval_mode is Approval.AUTO and found.confidence >= floor:
        return result("write", reason, value)
    why = "needs approval (review mode)" if rule.approval_mode is Approval.REVIEW else \
        f"confidence {found.confidence:.2f} is below auto_confidence " \
        f"{mapping.auto_confidence:.2f}: needs approval"
    return result("review", f"{reason}; {why}", value)


def plan_record(mapping: Mapping, info: ObjectInfo | None, record_id: str,
                current: dict[str, Any], calls: list[CallFindings]) -> RecordPlan:
    """Decide every rule for every call, oldest call first, each seeing the earlier writes."""
    plan = RecordPlan(record_id)
    state = {k.lower(): v for k, v in current.items()}
    for call in sorted(calls, key=lambda c: (c.started_on, c.meeting_id)):
        for rule in mapping.fields:
            target_info = info.field(rule.target) if info else None
            decision = decide(mapping, rule, target_info, state.get(rule.target.lower()), call)
            plan.decisions.append(decision)
            if decision.status == "write":
                state[rule.target.lower()] = decision.after
                plan.values[target_info.name if target_info else rule.target] = decision.after
    return plan


def configured_mapping(crm: str, settings) -> Mapping:
    """The mapping a CRM's settings name (`COACHLOOP_<CRM>__MAPPING`): a built-in mapping's
    name or the path of a file."""
    name = getattr(settings, crm).mapping
    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        return load_mapping(name)
    return builtin_mapping(name)
