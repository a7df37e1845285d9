"""Check an Ed-Fi document against the resource model, as an Ed-Fi API does before it stores it.

Pure: no database, no network. The local Ed-Fi API runs it on every POST and PUT; the Ed-Fi
Resync can run it before sending, to keep a record it knows will be refused out of the run.

What is checked (a failed check is a `validationErrors` entry, keyed by the JSON path, worded as
the Ed-Fi ODS/API 7.2+ words it; see the Error Response Knowledge Base,
https://docs.ed-fi.org/reference/ods-api/client-developers-guide/error-response-knowledge-base):
required properties and collections, types, string lengths, integer and decimal ranges,
leading or trailing spaces in natural-key strings, markup that could be dangerous downstream,
duplicate collection items, and key unification (values that must agree across references).
Descriptor values and references are collected here and resolved by the caller, which has the
data (unknown descriptor → 400, unresolved reference → 409).

Values are normalised as an Ed-Fi API reads them (the Ed-Fi API guidelines' "Data Strictness":
https://docs.ed-fi.org/reference/data-exchange/api-guidelines/design-and-implementation-guidelines/api-design-guidelines/rest-api-conventions/data-strictness/):
numbers given as strings become numbers, "true"/"false"/1/0 become booleans, a date-time given
for a date keeps its date; property names are case-sensitive; properties the model does not
declare (a wrongly cased one too), nulls, `link`, `_ext`, `_etag` and `_lastModifiedDate` are
dropped, neither stored nor refused. Natural-key values compare case-sensitively, as an ODS on
PostgreSQL compares them (descriptor URIs excepted).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from campus_sync.edfi.model import INT_RANGES, Model, Node, Property, Resource

_INT = re.compile(r"^\s*[-+]?\d+\s*$")
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")
_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$")
DESCRIPTOR_MAX = 306  # namespace (255) + '#' + codeValue (50)
READ_ONLY = frozenset({"link", "_ext", "_etag", "_lastModifiedDate"})


@dataclass
class Checked:
    """The outcome of `check`.

    document: the normalised document (only declared properties); errors: JSON path → messages;
    descriptors: (path, descriptor name, value, container, key) for every descriptor value, so the
    caller can check it exists and write back its canonical spelling; references:
    (path, property, reference object) for every reference."""

    document: dict
    errors: dict[str, list[str]] = field(default_factory=dict)
    descriptors: list[tuple[str, str, str, dict, str]] = field(default_factory=list)
    references: list[tuple[str, Property, dict]] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)


def pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def check(model: Model, resource: Resource, body: Any) -> Checked:
    """Validate `body` (parsed JSON) as a `resource` document; see the module docstring."""
    if not isinstance(body, dict):
        out = Checked(document={})
        out.add("$", "The request body must be a JSON object.")
        return out
    out = Checked(document={})
    identity = set(resource.identity)
    out.document = _node(model, resource, body, "$", out, identity, root=resource)
    if not out.errors:
        _unified(model, resource, out.document, "$", out)
    return out


def _node(model: Model, node: Node, body: Mapping, path: str, out: Checked, identity: set[str],
          root: Resource) -> dict:
    doc: dict = {}
    for name, prop in node.properties.items():
        value = body.get(name)
        p = f"{path}.{name}"
        if value is None:
            if prop.required:
                if prop.kind == "collection":
                    out.add(p, f"{pascal(name)} must have at least one item.")
                else:
                    out.add(p, f"{pascal(name)} is required.")
            continue
        in_key = name in identity
        if prop.kind == "scalar":
            v = _scalar(prop, value, p, out, in_key)
            if v is not None:
                doc[name] = v
        elif prop.kind == "descriptor":
            if not isinstance(value, str):
                out.add(p, f"{pascal(name)} must be a descriptor URI (a string such as "
                           f"'{model.descriptor_namespace}/{prop.descriptor}#...').")
            elif value == "":
                if prop.required:
                    out.add(p, f"{pascal(name)} is required.")
            elif len(value) > DESCRIPTOR_MAX:
                out.add(p, f"{pascal(name)} must be at most {DESCRIPTOR_MAX} characters in length.")
            else:
                doc[name] = value
                out.descriptors.append((p, prop.descriptor, value, doc, name))
        elif prop.kind == "reference":
            ref = _reference(model, prop, value, p, out, in_key)
            if ref is not None:
                doc[name] = ref
                out.references.append((p, prop, ref))
        elif prop.kind == "object":
            if not isinstance(value, dict):
                out.add(p, f"{pascal(name)} must be a JSON object.")
            else:
                sub = _node(model, prop.node, value, p, out, set(), root)
                if sub:
                    doc[name] = sub
        else:  # collection
            items = _collection(model, prop, value, p, out, root)
            if items is not None:
                doc[name] = items
    return doc


def _collection(model: Model, prop: Property, value: Any, path: str, out: Checked, root: Resource) -> list | None:
    if not isinstance(value, list):
        out.add(path, f"{pascal(prop.name)} must be a JSON array.")
        return None
    if prop.required and not value:
        out.add(path, f"{pascal(prop.name)} must have at least one item.")
        return None
    items = []
    seen: dict[tuple, int] = {}
    for i, item in enumerate(value):
        p = f"{path}[{i}]"
        if not isinstance(item, dict):
            out.add(p, f"Each item of {pascal(prop.name)} must be a JSON object.")
            continue
        before = len(out.errors)
        doc = _node(model, prop.node, item, p, out, set(), root)
        _unified(model, prop.node, doc, p, out)
        items.append(doc)
        if len(out.errors) == before and prop.node.identity:
            key = _item_key(model, prop.node, doc)
            if key in seen:
                names = ", ".join(prop.node.identity)
                out.add(p, f"{pascal(prop.name)} has two items with the same {names}: items {seen[key]} and {i}.")
            else:
                seen[key] = i
    return items


def _item_key(model: Model, node: Node, doc: dict) -> tuple:
    key = []
    for name in node.identity:
        prop = node.properties[name]
        v = doc.get(name)
        if prop.kind == "reference" and isinstance(v, dict):
            key.append(model.reference_key(prop, v))
        elif prop.kind == "descriptor" and isinstance(v, str):
            key.append(v.casefold())
        else:
            key.append(v)
    return tuple(key)


def _reference(model: Model, prop: Property, value: Any, path: str, out: Checked, in_key: bool) -> dict | None:
    if not isinstance(value, dict):
        out.add(path, f"{pascal(prop.name)} must be a JSON object.")
        return None
    target = model.resource(prop.target)
    ref: dict = {}
    ok = True
    for fname, tpath in prop.fields:
        fprop = model.property_at(target, tpath)
        p = f"{path}.{fname}"
        v = value.get(fname)
        if v is None or v == "":
            out.add(p, f"{pascal(fname)} is required.")
            ok = False
            continue
        if fprop.kind == "descriptor":
            if not isinstance(v, str) or len(v) > DESCRIPTOR_MAX:
                out.add(p, f"{pascal(fname)} must be a descriptor URI of at most {DESCRIPTOR_MAX} characters.")
                ok = False
                continue
            ref[fname] = v
            out.descriptors.append((p, fprop.descriptor, v, ref, fname))
        else:
            renamed = Property(fname, "scalar", True, type=fprop.type, max_length=fprop.max_length,
                               precision=fprop.precision, scale=fprop.scale)
            c = _scalar(renamed, v, p, out, in_key)
            if c is None:
                ok = False
            else:
                ref[fname] = c
    return ref if ok else None


def _scalar(prop: Property, value: Any, path: str, out: Checked, in_key: bool) -> Any:
    """The normalised value, or None after adding an error (None is never a valid value here)."""
    name, t = pascal(prop.name), prop.type
    if t == "string":
        if not isinstance(value, str):
            out.add(path, f"{name} must be a string.")
            return None
        if value == "" and prop.required:
            out.add(path, f"{name} is required.")
            return None
        bad = False
        if len(value) > prop.max_length:
            out.add(path, f"{name} must be at most {prop.max_length} characters in length.")
            bad = True
        if in_key and value != value.strip():
            out.add(path, f"{name} cannot contain leading or trailing spaces.")
            bad = True
        if dangerous(value):
            out.add(path, f"{name} contains a value that could be dangerous for downstream systems using this data. "
                          "Try to avoid the use of special symbols like '<', '>' or '&' without surrounding spaces.")
            bad = True
        return None if bad else value
    if t in INT_RANGES:
        v: Any = value
        if isinstance(v, bool):
            v = None
        elif isinstance(v, str) and _INT.match(v):
            v = int(v)
        elif isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int):
            out.add(path, f"{name} must be a whole number.")
            return None
        lo, hi = INT_RANGES[t]
        if not lo <= v <= hi:
            out.add(path, f"{name} must be between {lo} and {hi}.")
            return None
        return v
    if t == "decimal":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            out.add(path, f"{name} must be a number.")
            return None
        try:
            d = Decimal(str(value).strip())
        except InvalidOperation:
            d = None
        if d is None or not d.is_finite():
            out.add(path, f"{name} must be a number.")
            return None
        limit = Decimal(10) ** (prop.precision - prop.scale)
        if abs(d) >= limit:
            out.add(path, f"{name} must be between {-limit} and {limit} (exclusive).")
            return None
        return value if isinstance(value, (int, float)) else (int(d) if d == d.to_integral_value() else float(d))
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return value == 1
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        out.add(path, f"{name} must be true or false.")
        return None
    if t == "date":
        m = _DATE.match(value) if isinstance(value, str) else None
        try:
            return dt.date.fromisoformat(m.group(1)).isoformat() if m else _bad(out, path, f"{name} must be a date (yyyy-mm-dd).")
        except ValueError:
            return _bad(out, path, f"{name} must be a date (yyyy-mm-dd).")
    if t == "time":
        m = _TIME.match(value) if isinstance(value, str) else None
        if m and int(m.group(1)) < 24 and int(m.group(2)) < 60 and int(m.group(3) or 0) < 60:
            return f"{m.group(1)}:{m.group(2)}:{m.group(3) or '00'}"
        return _bad(out, path, f"{name} must be a time of day (hh:mm:ss).")
    if t == "datetime":
        if isinstance(value, str):
            try:
                dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                return value
            except ValueError:
                pass
        return _bad(out, path, f"{name} must be a date and time (ISO 8601).")
    raise AssertionError(t)


def _bad(out: Checked, path: str, message: str) -> None:
    out.add(path, message)
    return None


def dangerous(s: str) -> bool:
    """ASP.NET's request validation rule, which the ODS/API applies to strings: '<' followed by a
    letter, '!', '/' or '?', or '&#', could inject markup downstream."""
    i = s.find("<")
    while i != -1:
        if i + 1 < len(s) and (s[i + 1].isalpha() or s[i + 1] in "!/?"):
            return True
        i = s.find("<", i + 1)
    return "&#" in s


def _values_at(doc: Any, parts: list[str]) -> list[tuple[str, Any]]:
    """(concrete path suffix, value) for a unified path, `[*]` expanded over collection items."""
    if not parts:
        return [("", doc)]
    head, rest = parts[0], parts[1:]
    if head.endswith("[*]"):
        items = doc.get(head[:-3]) if isinstance(doc, dict) else None
        out = []
        for i, item in enumerate(items or []):
            for suffix, v in _values_at(item, rest):
                out.append((f".{head[:-3]}[{i}]{suffix}", v))
        return out
    if not isinstance(doc, dict) or head not in doc:
        return []
    return [(f".{head}{suffix}", v) for suffix, v in _values_at(doc[head], rest)]


def _unified(model: Model, node: Node, doc: dict, path: str, out: Checked) -> None:
    """Key unification: every value along a group's paths must be equal (Ed-Fi KB: "All values
    supplied for 'schoolId' must match")."""
    for group in node.unified:
        found: list[tuple[str, Any]] = []
        for upath in group:
            found.extend(_values_at(doc, upath.split(".")))
        if not found:
            continue
        norm = {(v.casefold() if isinstance(v, str) else v) for _, v in found}
        if len(norm) > 1:
            leaf = group[0].split(".")[-1]
            values = ", ".join(f"'{v}'" for v in dict.fromkeys(str(v) for _, v in found))
            message = (f"All values supplied for '{leaf}' must match. Review all references and align the "
                       f"following conflicting values: {values}")
            for suffix, _ in found:
                out.add(f"{path}{suffix}", message)
