"""Meta's OpenAPI spec of the WhatsApp Cloud API, turned into JSON Schema validators.

The vendored spec (``testing/meta_openapi/``, OpenAPI 3.1, so JSON Schema 2020-12) is the
authority for what Nyala sends and receives, but it needs four repairs before a real
validator can use it. Each keeps what the spec means, and each is listed here so that a new
version of the spec can be checked against it:

1. **allOf closure.** Message schemas are ``allOf: [BaseMessageProperties, {...,
   additionalProperties: false}]``. Under strict JSON Schema that branch forbids the base's
   own fields, so every message would fail. Within an ``allOf``, a branch's
   ``additionalProperties: false`` becomes ``unevaluatedProperties: false`` on the schema
   holding the ``allOf`` (WHATSAPP.md, "Validating against Meta's OpenAPI spec").
2. **Webhook references.** The spec was merged from several files; schemas whose names
   collided were renamed ``Name_1``, ``Name_2``... but the ``$ref`` s were not. So the
   webhook's ``IncomingMessage`` points at the *outgoing* ``TextMessage`` (which requires
   ``to`` and ``recipient_type``) instead of ``TextMessage_2``, and no example validates.
   The webhook schemas form the last block of ``components.schemas`` (from
   ``WebhookPayload`` on); references made inside that block are pointed back at the
   block's own renamed schemas. The outgoing ``Message`` block keeps its references as
   written: its one collision, ``MediaObject``, resolves to the spec's open media object,
   which accepts the documented ``filename`` of a document (the unreferenced, closed
   ``MediaObject_1`` would reject it, and with it the spec's own document examples).
3. **Discriminated bases.** ``TemplateComponent``, ``ParameterObject`` and
   ``ButtonParameterObject`` are OpenAPI inheritance bases: a ``discriminator`` maps
   ``type`` to subschemas (``BodyComponent``, ``TextParameter``...) that ``allOf`` the base.
   JSON Schema ignores ``discriminator``, which would leave template parameters unchecked,
   so each base gets an ``if type == X then $ref subschema`` per mapping entry.
4. **Self-contradictions** (``_PATCHES``): a template button's ``index`` pattern
   ``^[2-6, 11-14]$`` is a broken character class that rejects ``"0"``, while the same
   schema says "Position index of the button (0-9)" and gives ``"0"`` as its example; and
   three group-webhook details disagree with the spec's own group examples.

Where the schema is simply stricter than Meta's prose or examples (``recipient_type``
required, ``location.latitude`` a string, ``language.policy`` required) it is kept as
written: 19 of the spec's own 50 send examples fail it, and Nyala sends what the schema
wants.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from storage import NyalaError

__all__ = [
    "MARK_READ_EXAMPLE",
    "MESSAGES_PATH",
    "SPEC_PATH",
    "WEBHOOK_PATH",
    "MetaSpec",
    "MetaSpecError",
]

SPEC_PATH: Final = Path(__file__).parent / "meta_openapi" / "business-messaging-api_v23.0.yaml"
MESSAGES_PATH: Final = "/{Version}/{Phone-Number-ID}/messages"
WEBHOOK_PATH: Final = "/whatsapp/webhooks"
MARK_READ_EXAMPLE: Final = "Send typing indicator and read receipt"

_URI: Final = "urn:nyala:meta-openapi"
_SCHEMAS: Final = "#/components/schemas/"
_WEBHOOK_BLOCK_START: Final = "WebhookPayload"
_INDEX_PATTERN: Final = "^[0-9]$"
_MAX_MESSAGE: Final = 200


def _becomes(value: Any) -> Callable[[Any], Any]:
    return lambda _old: value


def _also(*extra: str) -> Callable[[Any], Any]:
    """Widen a ``type`` or ``enum`` by further values."""

    def widen(old: Any) -> Any:
        values = list(old) if isinstance(old, list) else [old]
        return values + [value for value in extra if value not in values]

    return widen


# (schema, JSON path inside it, change). Every entry is a place where the spec contradicts
# itself; the comment says which reading wins and why.
_PATCHES: Final[tuple[tuple[str, tuple[str | int, ...], Callable[[Any], Any]], ...]] = (
    # Button index: description "(0-9)" and example "0" beat the broken character class.
    ("TemplateComponent", ("properties", "index", "pattern"), _becomes(_INDEX_PATTERN)),
    ("ButtonComponent", ("allOf", 1, "properties", "index", "pattern"), _becomes(_INDEX_PATTERN)),
    # Group webhooks: the schema says an integer; the spec's three group examples (and
    # every other webhook timestamp) use a unix-seconds string. Accept both.
    ("Groups", ("properties", "timestamp", "type"), _also("string")),
    # The examples carry participants' numbers unquoted (YAML makes them integers) while
    # every other wa_id in the spec is a string. Accept both rather than reject Meta's data.
    ("GroupParticipant", ("properties", "input", "type"), _also("integer")),
    ("GroupParticipant", ("properties", "wa_id", "type"), _also("integer")),
    # The examples (and Meta's groups page) say ``group_participants_update``; the
    # schema's enum says ``group_participant_update``. Accept both spellings.
    ("Change", ("properties", "field", "enum"), _also("group_participants_update")),
)


class MetaSpecError(NyalaError):
    """The spec file lacks something Nyala relies on (a path, schema or example)."""


class MetaSpec:
    """Validators for the request bodies Nyala sends and the webhooks it receives.

    Build it with :meth:`load`, which parses the YAML once per process and path.

    Args:
        document: the parsed OpenAPI document (not modified).

    Raises:
        MetaSpecError: when the document lacks the messages or webhook operation, a schema
            they reference, or the mark-as-read example.
    """

    def __init__(self, document: Mapping[str, Any]) -> None:
        try:
            messages = document["paths"][MESSAGES_PATH]["post"]["requestBody"]["content"]
            webhook = document["paths"][WEBHOOK_PATH]["post"]["requestBody"]["content"]
            message_ref = messages["application/json"]["schema"]["$ref"]
            webhook_ref = webhook["application/json"]["schema"]["$ref"]
            self._message_examples: dict[str, Any] = {
                name: example["value"]
                for name, example in messages["application/json"]["examples"].items()
            }
            self._webhook_examples: dict[str, Any] = {
                name: example["value"]
                for name, example in webhook["application/json"]["examples"].items()
            }
            mark_read_example = self._message_examples[MARK_READ_EXAMPLE]
            schemas = _repaired_schemas(document["components"]["schemas"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MetaSpecError(f"the OpenAPI document lacks {exc}") from exc
        registry: Registry[Any] = Registry().with_resource(
            _URI, DRAFT202012.create_resource({"components": {"schemas": schemas}})
        )
        self.message_schema_name: str = _schema_name(message_ref)
        self.webhook_schema_name: str = _schema_name(webhook_ref)
        self._schemas = schemas
        self._message = _validator(message_ref, registry)
        self._webhook = _validator(webhook_ref, registry)
        self._mark_read = Draft202012Validator(_mark_read_schema(mark_read_example))

    @classmethod
    def load(cls, path: Path | None = None) -> MetaSpec:
        """The spec at ``path`` (default: the vendored v23.0 file), parsed once per process.

        Raises:
            OSError: when the file cannot be read.
            MetaSpecError: when it is not the spec Nyala expects.
        """
        return _load((path or SPEC_PATH).resolve())

    def validate_message(self, body: Mapping[str, Any]) -> list[str]:
        """Check a ``POST /{phone-number-id}/messages`` body against the spec's ``Message``.

        Returns:
            One line per problem (``"$.interactive.action.buttons: ..."``); empty when the
            body is valid.
        """
        return _problems(self._message, body, self._schemas)

    def validate_mark_read(self, body: Mapping[str, Any]) -> list[str]:
        """Check a mark-as-read body (optionally with a typing indicator).

        The spec's ``Message`` schema does not cover these bodies, so the schema is built
        from the spec's example "Send typing indicator and read receipt": the same keys,
        all required but ``typing_indicator``, the same types, ``status`` equal to
        ``"read"``, ``typing_indicator.type`` equal to ``"text"`` and no other keys.

        Returns:
            One line per problem; empty when the body is valid.
        """
        return _problems(self._mark_read, body, self._schemas)

    def validate_webhook(self, payload: Mapping[str, Any]) -> list[str]:
        """Check a webhook notification against the spec's ``WebhookPayload``.

        Returns:
            One line per problem; empty when the payload is valid.
        """
        return _problems(self._webhook, payload, self._schemas)

    def webhook_examples(self) -> list[tuple[str, dict[str, Any]]]:
        """The spec's named webhook examples (``POST /whatsapp/webhooks``), as fresh copies."""
        return [(name, copy.deepcopy(value)) for name, value in self._webhook_examples.items()]

    def message_examples(self) -> list[tuple[str, dict[str, Any]]]:
        """The spec's named ``POST /messages`` examples, as fresh copies.

        Not all of them satisfy the spec's own schema (see the module docstring).
        """
        return [(name, copy.deepcopy(value)) for name, value in self._message_examples.items()]


@functools.cache
def _load(path: Path) -> MetaSpec:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as stream:
        document = yaml.load(stream, Loader=loader)  # noqa: S506 - a SafeLoader
    if not isinstance(document, dict):
        raise MetaSpecError(f"{path} is not an OpenAPI document")
    return MetaSpec(document)


def _schema_name(ref: str) -> str:
    if not ref.startswith(_SCHEMAS):
        raise MetaSpecError(f"unexpected schema reference {ref!r}")
    return ref.removeprefix(_SCHEMAS)


def _validator(ref: str, registry: Registry[Any]) -> Draft202012Validator:
    _schema_name(ref)
    return Draft202012Validator({"$ref": f"{_URI}{ref}"}, registry=registry)


# --- repairs ------------------------------------------------------------------------------


def _repaired_schemas(original: Mapping[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = copy.deepcopy(dict(original))
    _point_webhook_refs_home(schemas)
    for name, path, change in _PATCHES:
        _patch(schemas, name, path, change)
    _expand_discriminated_bases(schemas)
    _close_all_ofs(schemas)
    return schemas


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping in a JSON tree, parents before children."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _point_webhook_refs_home(schemas: dict[str, Any]) -> None:
    names = list(schemas)
    if _WEBHOOK_BLOCK_START not in schemas:
        raise MetaSpecError(f"no schema {_WEBHOOK_BLOCK_START!r}")
    block = names[names.index(_WEBHOOK_BLOCK_START) :]
    # ``TextMessage_2`` was ``TextMessage`` in the webhook's own file.
    home = {re.sub(r"_\d+$", "", name): name for name in block}

    def at_home(ref: Any) -> Any:
        if not (isinstance(ref, str) and ref.startswith(_SCHEMAS)):
            return ref
        target = ref.removeprefix(_SCHEMAS)
        return _SCHEMAS + home.get(target, target)

    for name in block:
        for node in _walk(schemas[name]):
            if "$ref" in node:
                node["$ref"] = at_home(node["$ref"])
            mapping = node.get("discriminator", {}).get("mapping")
            if isinstance(mapping, dict):
                node["discriminator"]["mapping"] = {k: at_home(v) for k, v in mapping.items()}


def _patch(
    schemas: dict[str, Any], name: str, path: Sequence[str | int], change: Callable[[Any], Any]
) -> None:
    try:
        node = schemas[name]
        for step in path[:-1]:
            node = node[step]
        old = node[path[-1]]  # the place must exist: a new spec may have moved or fixed it
    except (KeyError, IndexError, TypeError) as exc:
        where = "/".join(map(str, path))
        raise MetaSpecError(f"cannot patch {name}/{where}: the spec changed") from exc
    node[path[-1]] = change(old)


def _expand_discriminated_bases(schemas: dict[str, Any]) -> None:
    bases = [
        name
        for name, schema in schemas.items()
        if isinstance(schema, dict)
        and "discriminator" in schema
        and not {"oneOf", "anyOf"} & schema.keys()
    ]
    for name in bases:
        schema = schemas[name]
        discriminator = schema.pop("discriminator")
        prop = discriminator["propertyName"]
        base = f"{name}__base"
        schemas[base] = schema
        branches = []
        for value, target in discriminator.get("mapping", {}).items():
            # The subschema ``allOf``s the base; pointing it at the plain base avoids
            # base -> subschema -> base recursion.
            for node in _walk(schemas[_schema_name(target)]):
                if node.get("$ref") == _SCHEMAS + name:
                    node["$ref"] = _SCHEMAS + base
            branches.append(
                {
                    "if": {"properties": {prop: {"const": value}}, "required": [prop]},
                    "then": {"$ref": target},
                }
            )
        schemas[name] = {"$ref": _SCHEMAS + base, "allOf": branches}


def _close_all_ofs(schemas: dict[str, Any]) -> None:
    for node in _walk(schemas):
        branches = node.get("allOf")
        if not isinstance(branches, list):
            continue
        closed = False
        for branch in branches:
            if isinstance(branch, dict) and branch.get("additionalProperties") is False:
                del branch["additionalProperties"]
                closed = True
        if closed:
            node["unevaluatedProperties"] = False


def _mark_read_schema(example: Any) -> dict[str, Any]:
    schema = _schema_from_example(example)
    try:
        properties = schema["properties"]
        properties["status"]["const"] = "read"
        schema["required"].remove("typing_indicator")
        properties["typing_indicator"]["properties"]["type"]["const"] = "text"
    except (KeyError, ValueError) as exc:
        raise MetaSpecError(f"{MARK_READ_EXAMPLE!r} changed shape: no {exc}") from exc
    return schema


def _schema_from_example(value: Any) -> dict[str, Any]:
    """The strictest schema the example satisfies: same keys, all required, same types."""
    if isinstance(value, dict):
        return {
            "type": "object",
            "properties": {key: _schema_from_example(item) for key, item in value.items()},
            "required": sorted(value),
            "additionalProperties": False,
        }
    if isinstance(value, list):
        return {"type": "array", "items": _schema_from_example(value[0]) if value else {}}
    json_type = {bool: "boolean", int: "integer", float: "number", str: "string"}
    if value is None:
        return {"type": "null"}
    return {"type": json_type[type(value)]}


# --- error messages -----------------------------------------------------------------------


def _problems(
    validator: Draft202012Validator, instance: Any, schemas: Mapping[str, Any]
) -> list[str]:
    errors = sorted(
        (leaf for error in validator.iter_errors(instance) for leaf in _leaves(error)),
        key=lambda error: error.json_path,
    )
    lines = [
        _unknown_fields(error, schemas)
        if error.validator == "unevaluatedProperties"
        else _describe(error)
        for error in errors
    ]
    # A base and its discriminated subschema may report the same problem.
    return list(dict.fromkeys(line for line in lines if line))


def _leaves(error: ValidationError) -> list[ValidationError]:
    """The errors worth showing: inside a ``oneOf``, those of the branch meant."""
    if not error.context:
        return [error]
    schema = error.schema if isinstance(error.schema, dict) else {}
    chosen = _discriminated(error, schema)
    if chosen is None:
        chosen = _only_plausible_branch(error)
    if chosen is not None:
        return [leaf for sub in chosen for leaf in _leaves(sub)]
    best = best_match([error])
    return [best] if best is error else _leaves(best)


def _discriminated(error: ValidationError, schema: dict[str, Any]) -> list[ValidationError] | None:
    """For a failed ``oneOf`` with a discriminator: the errors of the branch it names.

    ``None`` when there is no discriminator; a single error of its own when the instance
    lacks the discriminating property or has a value the mapping does not know.
    """
    discriminator = schema.get("discriminator")
    branches = schema.get("oneOf")
    instance = error.instance
    if not (
        isinstance(discriminator, dict)
        and isinstance(branches, list)
        and isinstance(instance, dict)
    ):
        return None
    prop = discriminator.get("propertyName", "")
    mapping = discriminator.get("mapping", {})
    target = mapping.get(instance.get(prop)) if isinstance(instance.get(prop), str) else None
    indexes = [i for i, branch in enumerate(branches) if branch.get("$ref") == target]
    if not indexes:
        known = ", ".join(sorted(mapping))
        return [
            ValidationError(
                f"{instance[prop]!r} is not one of: {known}"
                if prop in instance
                else f"{prop!r} is a required property (one of: {known})",
                validator="discriminator",
                path=[*error.absolute_path, prop] if prop in instance else error.absolute_path,
                instance=instance,
            )
        ]
    return [sub for sub in error.context or () if sub.relative_schema_path[0] in indexes]


def _only_plausible_branch(error: ValidationError) -> list[ValidationError] | None:
    """For a ``oneOf``/``anyOf`` that no branch satisfied: the errors of the one branch
    that fits the instance's shape (every complaint is deeper inside it), if exactly one
    does. A list with 11 rows fails the list branch at ``sections[0].rows`` but the
    buttons branch at the top ("'buttons' is a required property"): the list was meant.
    """
    branches = error.validator_value
    if error.validator not in ("oneOf", "anyOf") or not isinstance(branches, list):
        return None
    by_branch = _errors_by_branch(error)
    if len(by_branch) != len(branches):  # some branch passed: "valid under each of"
        return None
    depth = len(error.absolute_path)
    plausible = [
        subs for subs in by_branch.values() if all(len(sub.absolute_path) > depth for sub in subs)
    ]
    return plausible[0] if len(plausible) == 1 else None


def _unknown_fields(error: ValidationError, schemas: Mapping[str, Any]) -> str | None:
    """Name the fields no branch of the ``allOf`` declares.

    A declared property whose subschema failed, or whose branch failed, counts as
    unevaluated too: that is an echo of an error reported elsewhere, so only fields that
    nothing declares are named, and ``None`` means there is none.
    """
    instance = error.instance
    if not isinstance(instance, dict):
        return _describe(error)
    declared = _declared(error.schema, schemas, frozenset())
    unknown = [repr(key) for key in instance if key not in declared]
    if not unknown:
        return None
    verb = "is" if len(unknown) == 1 else "are"
    return f"{error.json_path}: {', '.join(unknown)} {verb} not allowed here"


def _declared(schema: Any, schemas: Mapping[str, Any], seen: frozenset[str]) -> set[str]:
    """The property names a schema declares, through ``$ref`` and ``allOf``."""
    if not isinstance(schema, dict):
        return set()
    names = set(schema.get("properties", {}))
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_SCHEMAS) and ref not in seen:
        names |= _declared(schemas.get(ref.removeprefix(_SCHEMAS)), schemas, seen | {ref})
    for branch in schema.get("allOf", ()):
        names |= _declared(branch, schemas, seen)
    return names


def _describe(error: ValidationError) -> str:
    instance = error.instance
    limit = error.validator_value
    message = error.message
    if error.validator in ("maxItems", "minItems") and isinstance(instance, list):
        bound = "most" if error.validator == "maxItems" else "least"
        message = f"has {len(instance)} items; at {bound} {limit} allowed"
    elif error.validator in ("maxLength", "minLength") and isinstance(instance, str):
        bound = "most" if error.validator == "maxLength" else "least"
        message = f"is {len(instance)} characters long; at {bound} {limit} allowed"
    elif error.validator in ("oneOf", "anyOf") and isinstance(limit, list):
        message = _no_single_shape(error, limit)
    elif len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return f"{error.json_path}: {message}"


def _no_single_shape(error: ValidationError, branches: list[Any]) -> str:
    """Say why a ``oneOf``/``anyOf`` failed when no single branch was clearly meant."""
    by_branch = _errors_by_branch(error)
    if len(by_branch) < len(branches):
        return f"matches more than one of the {len(branches)} shapes the spec allows here"
    depth = len(error.absolute_path)
    needs: list[str] = []
    for subs in by_branch.values():
        if not all(
            sub.validator == "required" and len(sub.absolute_path) == depth for sub in subs
        ):
            return f"matches none of the {len(branches)} shapes the spec allows here"
        fields = [
            repr(name)
            for sub in subs
            if isinstance(sub.validator_value, list) and isinstance(sub.instance, dict)
            for name in sub.validator_value
            if name not in sub.instance
        ]
        needs.append(" + ".join(dict.fromkeys(fields)))
    return "needs one of: " + "; ".join(dict.fromkeys(needs))


def _errors_by_branch(error: ValidationError) -> dict[Any, list[ValidationError]]:
    """A failed ``oneOf``/``anyOf``'s sub-errors, keyed by the index of their branch."""
    by_branch: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
    return by_branch
