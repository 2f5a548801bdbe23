"""What a HubSpot portal needs before write-back, created once an admin approves
(`coachloop crm setup --apply`): the "coachloop" property group and every property the
mapping writes (methodology fields on deals, our key on calls), and a home for skill scores.

Skill scores go to a custom object where the portal has custom objects (Enterprise, and the
app granted the custom-object scopes); elsewhere each open deal carries its owner's scores
as number properties (the mapping's `skill_scores_on_deals`). The choice is made here, kept
with the connection, and shown by `coachloop connections`. An existing property of the
wrong type is reported, never changed; an existing enumeration missing some of our options
gets them added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectors.base import SetupReport, SetupStep
from core.errors import CoachloopError, TransientError

if TYPE_CHECKING:
    from connectors.hubspot.writer import HubSpotWriter
    from core.settings import Settings
    from mappings import Mapping

GROUP = "coachloop"
GROUP_LABEL = "coachloop (AI sales coaching)"
SKILL_TARGET_STREAM = "skill-scores-as"
CUSTOM_OBJECT, DEAL_PROPERTIES = "object", "deal_properties"
NUMBER_NAMES = {"window_days", "score", "interval_low", "interval_high", "percentile",
                "n_calls"}


@dataclass(frozen=True)
class SkillTarget:
    """Where this connection's skill scores go (None: setup has not run)."""

    mode: str | None

    def describe(self) -> str:
        if self.mode == CUSTOM_OBJECT:
            return "skill scores: custom object"
        if self.mode == DEAL_PROPERTIES:
            return ("skill scores: owner's scores on each open deal (this portal has no "
                    "custom objects)")
        return "run `coachloop crm setup` before write-back"


def skill_target(connection_id: int | None) -> SkillTarget:
    from core.connections import read_cursor

    return SkillTarget(read_cursor(connection_id, SKILL_TARGET_STREAM)
                       if connection_id is not None else None)


@dataclass(frozen=True)
class PropertySpec:
    object_type: str
    name: str
    label: str
    type: str  # string | number | date | enumeration
    field_type: str  # text | textarea | number | date | select
    options: tuple[tuple[str, str], ...] = ()  # (value, label)
    unique: bool = False

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "label": self.label, "type": self.type,
                                "fieldType": self.field_type, "groupName": GROUP,
                                "description": "Written by coachloop"}
        if self.options:
            body["options"] = [{"value": v, "label": label, "displayOrder": i, "hidden": False}
                               for i, (v, label) in enumerate(self.options)]
        if self.unique:
            body["hasUniqueValue"] = True
        return body


def _skills() -> tuple[tuple[str, str], ...]:
    from core.skill_taxonomy import SKILLS

    return tuple((key, skill.label) for key, skill in SKILLS.items())


def _methodology_properties(mapping: Mapping) -> list[PropertySpec]:
    from core.rubrics import builtin_rubric
    from mappings import Policy

    labels = {f.key: f.label for f in builtin_rubric(mapping.methodology).fields}
    specs = []
    for rule in mapping.fields:
        if rule.policy is Policy.NEVER:
            continue
        label = labels.get(rule.source, rule.source)
        specs.append(PropertySpec(mapping.object, rule.target,
                                  f"AI: {label}" if rule.policy is Policy.SHADOW else label,
                                  "string", "textarea"))
    return specs


def _activity_properties(mapping: Mapping) -> list[PropertySpec]:
    rule = mapping.activity
    if rule is None or not rule.enabled:
        return []
    return [PropertySpec(rule.object, rule.external_id, "coachloop meeting key", "string",
                         "text", unique=True)]


def _skill_object_properties(mapping: Mapping) -> list[PropertySpec]:
    """The skill-score object's properties, typed from what each template names."""
    rule = mapping.skill_scores
    specs = [PropertySpec(rule.object, rule.external_id, "Score key", "string", "text",
                          unique=True)]
    for name, template in rule.values.items():
        if name == rule.link_field:
            continue
        named = template.strip("{}") if template.count("{") == 1 and \
            template.startswith("{") and template.endswith("}") else None
        label = name.replace("_", " ").capitalize()
        if named == "skill":
            specs.append(PropertySpec(rule.object, name, label, "enumeration", "select",
                                      _skills()))
        elif named in NUMBER_NAMES:
            specs.append(PropertySpec(rule.object, name, label, "number", "number"))
        elif named == "as_of":
            specs.append(PropertySpec(rule.object, name, label, "date", "date"))
        else:
            specs.append(PropertySpec(rule.object, name, label, "string", "text"))
    return specs


def _deal_skill_properties(mapping: Mapping) -> list[PropertySpec]:
    rule = mapping.skill_scores_on_deals
    if rule is None:
        return []
    specs = [PropertySpec(mapping.object, rule.property.format(skill=key),
                          f"Owner's {label} ({rule.window_days}-day score)", "number", "number")
             for key, label in _skills()]
    if rule.as_of:
        specs.append(PropertySpec(mapping.object, rule.as_of, "Owner's skill scores as of",
                                  "date", "date"))
    return specs


class _Portal:
    """What the portal has, read once, and the steps to add what it lacks."""

    def __init__(self, writer: HubSpotWriter, apply: bool):
        self.writer, self.apply = writer, apply
        self.steps: list[SetupStep] = []
        self._groups: dict[str, set[str]] = {}
        self._properties: dict[str, dict[str, Any]] = {}

    def _step(self, object_type: str, what: str, action) -> None:
        if not self.apply:
            self.steps.append(SetupStep(object_type, what, "to create"))
            return
        try:
            action()
            self.steps.append(SetupStep(object_type, what, "created"))
        except TransientError:
            raise
        except CoachloopError as exc:
            self.steps.append(SetupStep(object_type, what, "failed", exc.message))

    def group(self, object_type: str) -> None:
        if object_type not in self._groups:
            answer = self.writer._call("crm.properties.groups_api", "get_all", object_type)
            self._groups[object_type] = {g.name for g in answer.results or ()}
        if GROUP not in self._groups[object_type]:
            self._step(object_type, f"property group {GROUP!r}", lambda: self.writer._call(
                "crm.properties.groups_api", "create", object_type,
                {"name": GROUP, "label": GROUP_LABEL, "displayOrder": -1}))
            self._groups[object_type].add(GROUP)

    def existing(self, object_type: str) -> dict[str, Any]:
        if object_type not in self._properties:
            answer = self.writer._call("crm.properties.core_api", "get_all", object_type)
            self._properties[object_type] = {p.name: p for p in answer.results or ()}
        return self._properties[object_type]

    def properties(self, specs: list[PropertySpec]) -> None:
        for spec in specs:
            object_type = self.writer.object_type(spec.object_type)
            have = self.existing(object_type).get(spec.name)
            if have is None:
                self.group(object_type)
                self._step(object_type, f"property {spec.name} ({spec.type})",
                           lambda s=spec, t=object_type: self.writer._call(
                               "crm.properties.core_api", "create", t, s.body()))
                continue
            if have.type != spec.type:
                self.steps.append(SetupStep(object_type, f"property {spec.name}", "conflict",
                                            f"it is a {have.type} property; coachloop needs "
                                            f"a {spec.type} one: rename it or change the "
                                            "mapping"))
            elif spec.unique and not have.has_unique_value:
                self.steps.append(SetupStep(object_type, f"property {spec.name}", "conflict",
                                            "it does not require unique values, so writes "
                                            "could not be retried without duplicates"))
            elif spec.options:
                self.options(object_type, spec, have)

    def options(self, object_type: str, spec: PropertySpec, have: Any) -> None:
        """An enumeration takes only its options' internal values: add the ones missing."""
        current = [{"value": o.value, "label": o.label, "displayOrder": o.display_order,
                    "hidden": bool(o.hidden)} for o in have.options or ()]
        known = {o["value"] for o in current}
        missing = [(v, label) for v, label in spec.options if v not in known]
        if not missing:
            return
        wanted = current + [{"value": v, "label": label, "displayOrder": len(current) + i,
                             "hidden": False} for i, (v, label) in enumerate(missing)]
        self._step(object_type, f"options {', '.join(v for v, _ in missing)} of {spec.name}",
                   lambda: self.writer._call("crm.properties.core_api", "update", object_type,
                                             spec.name, {"options": wanted}))

    def custom_object(self, mapping: Mapping, specs: list[PropertySpec]) -> bool:
        """The skill-score object exists, or is created: False when the portal cannot have
        custom objects."""
        rule = mapping.skill_scores
        try:
            self.writer.object_type(rule.object)
            self.properties(specs)
            return True
        except CoachloopError as exc:
            if isinstance(exc, TransientError):
                raise
        if not self._can_have_custom_objects():
            return False
        body = {"name": rule.object, "labels": {"singular": "Rep skill score",
                                                "plural": "Rep skill scores"},
                "description": "A rep's skill score over a window, from coachloop",
                "primaryDisplayProperty": "name" if "name" in rule.values else rule.external_id,
                "requiredProperties": [rule.external_id],
                "searchableProperties": [rule.external_id],
                "properties": [{k: v for k, v in s.body().items() if k != "groupName"}
                               for s in specs],
                "associatedObjects": ["DEAL"]}
        self._step(rule.object, "custom object (schema)", lambda: self.writer._call(
            "crm.schemas.core_api", "create", body))
        return True

    def _can_have_custom_objects(self) -> bool:
        try:
            self.writer._call("crm.schemas.core_api", "get_all")
            return True
        except TransientError:
            raise
        except CoachloopError:
            return False  # below Enterprise, or the custom-object scopes were not granted


def plan_portal(writer: HubSpotWriter, mapping: Mapping, *, apply: bool
                ) -> tuple[list[SetupStep], str]:
    """The steps (done when `apply`) and where skill scores go."""
    portal = _Portal(writer, apply)
    portal.properties(_methodology_properties(mapping) + _activity_properties(mapping))
    mode = DEAL_PROPERTIES
    if mapping.skill_scores is not None and mapping.skill_scores.enabled and \
            portal.custom_object(mapping, _skill_object_properties(mapping)):
        mode = CUSTOM_OBJECT
    else:
        portal.properties(_deal_skill_properties(mapping))
    return portal.steps, mode


def prepare(org_id: int, settings: Settings, *, apply: bool) -> SetupReport:
    """`coachloop crm setup`: what the org's portal lacks for its mapping, created when
    `apply` (an admin approved); the skill-score home is remembered for the connection."""
    from connectors.hubspot import writer_for_org
    from core.connections import save_cursor
    from mappings import configured_mapping

    mapping = configured_mapping("hubspot", settings)
    writer = writer_for_org(org_id, settings)
    try:
        steps, mode = plan_portal(writer, mapping, apply=apply)
    finally:
        writer.close()
    done = apply and not any(s.status in ("failed", "conflict") for s in steps)
    if done or not steps:
        save_cursor(writer.connection_id, SKILL_TARGET_STREAM, mode)
    return SetupReport(steps=steps, applied=apply,
                       notes=(SkillTarget(mode).describe(),))
