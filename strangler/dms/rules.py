"""DMS table mappings: written from the spec, checked against strangler's schema of them, and
interpreted the way DMS applies them.

DMS's selection rules name tables with ``%`` as the only wildcard (there is no escape), and
its transformation rules rename schemas and tables. strangler writes one ``include`` rule per
moved table and one ``rename`` of the schema, nothing else: exactly the tables of the spec
land in the service schema. A table name with ``%`` cannot be selected exactly and is
refused before anything is created.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from strangler.errors import BadInput, CheckFailed

__all__ = ["Mappings", "Placement", "apply_rules", "check_mappings", "table_mappings"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ObjectLocator(_Rule):
    schema_name: str = Field(alias="schema-name", min_length=1)
    table_name: str | None = Field(default=None, alias="table-name", min_length=1)


class SelectionRule(_Rule):
    rule_type: Literal["selection"] = Field(alias="rule-type")
    rule_id: str = Field(alias="rule-id", pattern=r"^[1-9][0-9]{0,9}$")
    rule_name: str = Field(alias="rule-name", min_length=1, max_length=255)
    object_locator: ObjectLocator = Field(alias="object-locator")
    rule_action: Literal["include", "exclude", "explicit"] = Field(alias="rule-action")
    filters: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _table(self) -> SelectionRule:
        if self.object_locator.table_name is None:
            raise ValueError(f"selection rule {self.rule_name}: object-locator needs table-name")
        return self


class TransformationRule(_Rule):
    rule_type: Literal["transformation"] = Field(alias="rule-type")
    rule_id: str = Field(alias="rule-id", pattern=r"^[1-9][0-9]{0,9}$")
    rule_name: str = Field(alias="rule-name", min_length=1, max_length=255)
    rule_target: Literal["schema", "table"] = Field(alias="rule-target")
    object_locator: ObjectLocator = Field(alias="object-locator")
    rule_action: Literal["rename", "convert-lowercase", "convert-uppercase"] = Field(
        alias="rule-action"
    )
    value: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> TransformationRule:
        if self.rule_action == "rename" and self.value is None:
            raise ValueError(f"transformation rule {self.rule_name}: rename needs a value")
        if self.rule_action != "rename" and self.value is not None:
            raise ValueError(f"transformation rule {self.rule_name}: only rename takes a value")
        if self.rule_target == "table" and self.object_locator.table_name is None:
            raise ValueError(f"transformation rule {self.rule_name}: a table rule needs table-name")
        if self.rule_target == "schema" and self.object_locator.table_name is not None:
            raise ValueError(f"transformation rule {self.rule_name}: a schema rule names no table")
        return self


Rule = Annotated[SelectionRule | TransformationRule, Field(discriminator="rule_type")]


class Mappings(_Rule):
    """A DMS table-mapping document, as strangler accepts it."""

    rules: list[Rule]

    @model_validator(mode="after")
    def _unique(self) -> Mappings:
        for attr in ("rule_id", "rule_name"):
            values = [getattr(r, attr) for r in self.rules]
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ValueError(f"{attr.replace('_', '-')} repeated: {', '.join(dup)}")
        if not any(isinstance(r, SelectionRule) and r.rule_action != "exclude" for r in self.rules):
            raise ValueError("no selection rule includes a table")
        return self


def table_mappings(source_schema: str, tables: Sequence[str], target_schema: str) -> dict[str, Any]:
    """One include rule per table, then the schema rename; checked before it is returned."""
    bad = [t for t in [source_schema, *tables] if "%" in t]
    if bad:
        raise BadInput(
            f"DMS selects tables by name with % as a wildcard and no escape, so "
            f"{', '.join(repr(b) for b in bad)} cannot be selected exactly",
            hint="use copy.engine: builtin or workers for this service",
        )
    rules: list[dict[str, Any]] = [
        {
            "rule-type": "selection",
            "rule-id": str(i),
            "rule-name": f"include-{i}",
            "object-locator": {"schema-name": source_schema, "table-name": table},
            "rule-action": "include",
            "filters": [],
        }
        for i, table in enumerate(tables, start=1)
    ]
    if target_schema != source_schema:
        rules.append(
            {
                "rule-type": "transformation",
                "rule-id": str(len(tables) + 1),
                "rule-name": "rename-schema",
                "rule-target": "schema",
                "object-locator": {"schema-name": source_schema},
                "rule-action": "rename",
                "value": target_schema,
            }
        )
    doc = {"rules": rules}
    check_mappings(doc)
    return doc


def check_mappings(doc: Any) -> Mappings:
    """``doc`` (a dict or its JSON) against strangler's model of DMS's rules."""
    try:
        data = json.loads(doc) if isinstance(doc, str | bytes) else doc
        return Mappings.model_validate(data)
    except (ValidationError, ValueError) as exc:
        first = str(exc).splitlines()
        raise CheckFailed(
            "the DMS table mappings are not valid: " + "; ".join(first[:4]),
            hint="this is a bug in strangler's rules; please report it",
        ) from exc


def _like(pattern: str, name: str) -> bool:
    """DMS's object-locator match: ``%`` is any run of characters, the rest literal."""
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("%")), name) is not None


@dataclass(frozen=True)
class Placement:
    """Where DMS puts one source table."""

    source_schema: str
    source_table: str
    target_schema: str
    target_table: str


def apply_rules(mappings: Mappings, tables: Mapping[str, Sequence[str]]) -> list[Placement]:
    """The tables of ``tables`` (``{schema: [table, …]}``) the rules select, and where each
    lands: includes (and explicits) minus excludes, then the transformations in rule-id
    order, as DMS applies them."""
    ordered = sorted(mappings.rules, key=lambda r: int(r.rule_id))
    selections = [r for r in ordered if isinstance(r, SelectionRule)]
    transforms = [r for r in ordered if isinstance(r, TransformationRule)]
    out: list[Placement] = []
    for schema, names in tables.items():
        for table in names:

            def hit(r: SelectionRule | TransformationRule, s: str = schema, t: str = table) -> bool:
                loc = r.object_locator
                return _like(loc.schema_name, s) and (
                    loc.table_name is None or _like(loc.table_name, t)
                )

            chosen = any(hit(r) for r in selections if r.rule_action != "exclude")
            if not chosen or any(hit(r) for r in selections if r.rule_action == "exclude"):
                continue
            to_schema, to_table = schema, table
            for r in transforms:
                if not hit(r):
                    continue
                current = to_schema if r.rule_target == "schema" else to_table
                new = (
                    r.value
                    if r.rule_action == "rename"
                    else current.lower()
                    if r.rule_action == "convert-lowercase"
                    else current.upper()
                )
                assert new is not None
                if r.rule_target == "schema":
                    to_schema = new
                else:
                    to_table = new
            out.append(Placement(schema, table, to_schema, to_table))
    return out
