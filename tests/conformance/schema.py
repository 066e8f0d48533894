"""OpenAI's published OpenAPI description as JSON Schema validators: the conformance tier's judge.

The description is the copy committed beside this module (`reference/openai-openapi.yaml`, pinned
by `reference/VERSION`), so the tier runs on a clean clone. It is parsed once per process (libyaml,
about a second for ~3 MB) and adapted so plain JSON Schema (draft 2020-12, `$ref`s resolved through
`referencing`) judges an answer the way OpenAI's SDK generators read the document:

- `nullable: true` (OpenAPI 3.0, still used by some schemas) admits null;
- a `discriminator` over `oneOf`/`anyOf` picks the branch named by the discriminating property, so a
  bad object fails with that branch's own errors (and an unknown `type` fails outright) rather than
  with "not valid under any of the given schemas";
- `ERRATA`: the few places where OpenAI's API (and the document's own examples or request docs)
  answers outside the schema, each named with its reason.

Nothing else is relaxed: extra properties (our `usage.cost`, model `pricing`, …) pass only where the
schema allows them, and a missing required field, a wrong type or a wrong enum value fails.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REFERENCE = Path(__file__).parent / "reference"
SPEC_FILE = REFERENCE / "openai-openapi.yaml"
BASE_URI = "urn:openai-openapi"
SCHEMAS = "#/components/schemas/"
JSON = dict[str, Any]


class Erratum(NamedTuple):
    """Where OpenAI's API (and the document's own examples or request docs) answers outside the schema."""

    schema: str
    prop: str
    also: JSON  # what the property may also be
    example: Any  # a value the API sends that only the erratum admits
    why: str


NULL: JSON = {"type": "null"}
ERRATA = (
    Erratum("ModelResponseProperties", "user", NULL, None, "a Response says `user: null` when the request set none"),
    Erratum("Response", "usage", NULL, None, "a Response has `usage: null` until it is finished (response.created)"),
    Erratum("Embedding", "embedding", {"type": "string"}, "AACAPw==", "`encoding_format: base64` answers a string"),
)


_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it


class _Loader(_SafeLoader):
    """A safe loader whose timestamps stay strings: the document describes JSON, which has no dates."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
    }


class OpenAPI:
    """Validators for the schemas an OpenAPI document names, by component name or by route."""

    def __init__(self, document: JSON) -> None:
        self.document = document
        self.unions: dict[str, dict[str, str]] = {}  # union's JSON pointer -> discriminator value -> member
        self.unpatched = _apply_errata(document["components"]["schemas"])
        _adapt(document, "#", document, self.unions)
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(BASE_URI, resource)

    @functools.cache  # noqa: B019 - one instance per process (see `openapi`)
    def validator(self, name: str) -> Draft202012Validator:
        """A validator for `#/components/schemas/<name>`."""
        if name not in self.document["components"]["schemas"]:
            raise KeyError(f"the OpenAPI document has no schema {name!r}")
        return self.validator_at(f"{SCHEMAS}{name}")

    def validator_at(self, pointer: str) -> Draft202012Validator:
        """A validator for the schema at a JSON pointer into the document (`#/components/...`)."""
        return Draft202012Validator({"$ref": f"{BASE_URI}{pointer}"}, registry=self._registry)

    def route_schema(self, method: str, path: str, media_type: str = "application/json", status: str = "200") -> str:
        """The component name the document gives for a route's answer (`path` as in the document: `/models/{model}`)."""
        operation = self.document["paths"][path][method.lower()]
        ref = operation["responses"][status]["content"][media_type]["schema"]["$ref"]
        return str(ref).removeprefix(SCHEMAS)

    def member(self, union: str, value: str) -> str:
        """The member of a discriminated union (e.g. `ResponseStreamEvent`) that `value` names."""
        members = self.unions[f"{SCHEMAS}{union}"]
        if value not in members:
            raise AssertionError(f"{union} has no member with discriminator {value!r}")
        return members[value]

    def problems(self, name: str, instance: Any) -> list[str]:
        """Every way `instance` breaks schema `name`, one line each (empty: it conforms)."""
        errors = sorted(self.validator(name).iter_errors(instance), key=lambda error: list(error.path))
        return [_describe(error) for error in errors]

    def check(self, name: str, instance: Any) -> None:
        """Fail (AssertionError) unless `instance` conforms to schema `name`."""
        problems = self.problems(name, instance)
        assert not problems, f"{name} violated:\n  " + "\n  ".join(problems)


@functools.cache
def openapi() -> OpenAPI:
    """The committed OpenAPI description, parsed and adapted once per process."""
    with SPEC_FILE.open("rb") as handle:
        return OpenAPI(yaml.load(handle, Loader=_Loader))


def _describe(error: ValidationError) -> str:
    deepest = best_match([error])  # descends into anyOf/oneOf to the most relevant branch's error
    return f"{deepest.json_path}: {deepest.message}"


def _apply_errata(schemas: JSON) -> dict[tuple[str, str], str]:
    """Widen each erratum's property in place; returns where each property stands as published (a JSON
    pointer), by (schema, property)."""
    unpatched = {}
    for erratum in ERRATA:
        where, holder = next(_with_property(schemas[erratum.schema], erratum.prop))
        holder[erratum.prop] = {"anyOf": [holder[erratum.prop], erratum.also]}
        unpatched[erratum.schema, erratum.prop] = f"{SCHEMAS}{erratum.schema}{where}/properties/{erratum.prop}/anyOf/0"
    return unpatched


def _with_property(schema: JSON, prop: str) -> Iterator[tuple[str, JSON]]:
    """The `properties` maps (of the schema or its allOf parts) that define `prop`, each with its path."""
    parts = [("", schema), *((f"/allOf/{index}", part) for index, part in enumerate(schema.get("allOf", [])))]
    for where, part in parts:
        if prop in part.get("properties", {}):
            yield where, part["properties"]


def _adapt(node: Any, pointer: str, root: JSON, unions: dict[str, dict[str, str]]) -> None:
    """Rewrite discriminated unions and `nullable` in place, depth first; `pointer` (unescaped) locates `node`."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _adapt(item, f"{pointer}/{index}", root, unions)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        _adapt(value, f"{pointer}/{key}", root, unions)
    members = _discriminate(node, root)
    if members is not None:
        unions[pointer] = members
    if node.get("nullable") is True:
        rest = {key: value for key, value in node.items() if key != "nullable"}
        node.clear()
        node["anyOf"] = [rest, {"type": "null"}]


def _discriminate(node: JSON, root: JSON) -> dict[str, str] | None:
    """Replace a discriminated `oneOf`/`anyOf` of `$ref`s by one `if`/`then` per discriminator value.

    Returns the members by value; None (and the node untouched) when a member's value cannot be read.
    """
    discriminator = node.get("discriminator")
    keyword = next((k for k in ("oneOf", "anyOf") if k in node), None)
    if not isinstance(discriminator, dict) or keyword is None:
        return None
    prop = discriminator.get("propertyName")
    refs = [branch.get("$ref") if isinstance(branch, dict) else None for branch in node[keyword]]
    if not isinstance(prop, str) or not all(isinstance(ref, str) and ref.startswith(SCHEMAS) for ref in refs):
        return None
    by_value: dict[str, list[str]] = {}
    for ref in refs:
        values = _values({"$ref": ref}, prop, root["components"]["schemas"])
        if not values:
            return None
        for value in values:
            by_value.setdefault(value, []).append(ref)
    branches = node.pop(keyword)
    cases = [
        {"if": {"properties": {prop: {"const": value}}}, "then": _either(keyword, members)}
        for value, members in by_value.items()
    ]
    known = {"properties": {prop: {"enum": list(by_value)}}, "allOf": cases}
    present = {"type": "object", "required": [prop]}
    node.setdefault("allOf", []).append({"if": present, "then": known, "else": {keyword: branches}})
    return {value: members[0].removeprefix(SCHEMAS) for value, members in by_value.items()}


def _either(keyword: str, refs: list[str]) -> JSON:
    """One `$ref` as itself (so each of its errors is reported), several under the union's own keyword."""
    return {"$ref": refs[0]} if len(refs) == 1 else {keyword: [{"$ref": ref} for ref in refs]}


def _values(schema: JSON, prop: str, schemas: JSON) -> list[str]:
    """The discriminator values a union member declares (`enum` or `const` of the property), following
    `$ref`s and `allOf` parts."""
    if isinstance(schema.get("$ref"), str) and schema["$ref"].startswith(SCHEMAS):
        return _values(schemas[schema["$ref"].removeprefix(SCHEMAS)], prop, schemas)
    declared = schema.get("properties", {}).get(prop)
    if isinstance(declared, dict):
        return (
            [declared["const"]] if "const" in declared else [v for v in declared.get("enum", []) if isinstance(v, str)]
        )
    return next((values for part in schema.get("allOf", []) if (values := _values(part, prop, schemas))), [])
