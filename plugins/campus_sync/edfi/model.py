"""The Ed-Fi resource model, read from `include/edfi/` (format: include/edfi/README.md).

One model serves two readers: the Ed-Fi Resync (what to send, in which order, under which natural
key) and the local Ed-Fi API (what to accept and what to refuse). Both get the same answers from
the same data, so a sender tested against the local API sends what the model declares.

    from campus_sync.edfi import model
    m = model.load()                               # cached per process
    r = m.resource("studentSchoolAssociations")
    r.identity                                     # ('entryDate', 'schoolReference', 'studentReference')
    r.key_paths                                    # ('entryDate', 'schoolReference.schoolId', ...)
    m.key_of(r, document)                          # the natural key as a tuple (descriptors folded to lower case)
    m.reference_key(r.properties["schoolReference"], {"schoolId": 255901001})
    m.dependencies()                               # [{'resource': '/ed-fi/schools', 'order': 3, ...}, ...]
    m.campus_resync_order()                        # [['schools'], ['gradingPeriods', 'calendars', ...], ...]

Terms: a *resource* is an Ed-Fi API endpoint (`students`); its *identity* lists the top-level
properties of its natural key (a reference in the identity stands for all of its fields); its
*key paths* spell the natural key out field by field, each key-unified group once; a *reference*
(`schoolReference`) names its target and, where the field names differ from the target's
identity leaves, the field → target path map; *unified* groups are paths that must hold equal
values (`calendarReference.schoolId` = `schoolReference.schoolId`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCALAR_TYPES = frozenset({"string", "int16", "int32", "int64", "decimal", "boolean", "date", "time", "datetime"})
INT_RANGES = {"int16": (-(2 ** 15), 2 ** 15 - 1), "int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1)}
# Every Ed-Fi descriptor resource has these properties (Ed-Fi API: /ed-fi/<name>Descriptors).
DESCRIPTOR_PROPERTIES: dict[str, dict] = {
    "codeValue": {"type": "string", "max": 50, "required": True},
    "namespace": {"type": "string", "max": 255, "required": True},
    "shortDescription": {"type": "string", "max": 75, "required": True},
    "description": {"type": "string", "max": 1024},
    "effectiveBeginDate": {"type": "date"},
    "effectiveEndDate": {"type": "date"},
}
_NAME = re.compile(r"^[a-z][A-Za-z0-9]*$")


class ModelError(ValueError):
    """The resource model is inconsistent; the message names the file and the problem."""


@dataclass(frozen=True)
class Property:
    """One property of a resource, a collection item or an embedded object.

    kind: "scalar" (type, max_length, precision, scale), "descriptor" (descriptor: its name),
    "reference" (target: resource name; fields: reference field → target key path, in the
    target's key order), "collection" (node: the item; required means at least one item) or
    "object" (node: the embedded object).
    """

    name: str
    kind: str
    required: bool = False
    type: str | None = None
    max_length: int | None = None
    precision: int | None = None
    scale: int | None = None
    descriptor: str | None = None
    target: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    node: Node | None = None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f for f, _ in self.fields)


@dataclass(frozen=True)
class Node:
    """A set of properties: a resource's body, a collection item or an embedded object."""

    properties: Mapping[str, Property]
    identity: tuple[str, ...] = ()
    unified: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Resource(Node):
    """One Ed-Fi resource. `served` is False for resources the local API does not serve (only
    their identity is declared); `kind` is "resource", "descriptor" or "abstract"."""

    name: str = ""
    entity: str = ""
    kind: str = "resource"
    served: bool = True
    source: str = ""
    campus_resync_group: int | None = None
    key_updatable: bool = False
    superclass: str | None = None
    superclass_identity: str | None = None
    key_paths: tuple[str, ...] = ()
    data_standard: str = ""  # the Data Standard this definition follows ("5.2", "4.0")

    @property
    def path(self) -> str:
        """The route below the data management API, e.g. `/ed-fi/students`."""
        return f"/ed-fi/{self.name}"


@dataclass(frozen=True)
class DescriptorValue:
    code_value: str
    short_description: str
    description: str


@dataclass(frozen=True)
class Model:
    """The compiled model (see the module docstring)."""

    resources: Mapping[str, Resource]
    descriptor_values: Mapping[str, tuple[DescriptorValue, ...]]
    data_standard: Mapping[str, str]
    descriptor_namespace: str
    school_years: tuple[int, int]
    person_updates_after: Mapping[str, tuple[str, ...]]
    subclasses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    # ------------------------------------------------------------------ lookup
    def resource(self, name: str) -> Resource:
        try:
            return self.resources[name]
        except KeyError:
            raise KeyError(f"unknown Ed-Fi resource {name!r}") from None

    def served(self) -> list[Resource]:
        """Served resources, descriptors included, by name."""
        return sorted((r for r in self.resources.values() if r.served), key=lambda r: r.name)

    def descriptor_resource(self, descriptor: str) -> Resource:
        """The resource of a descriptor name (`GradeLevelDescriptor` → `gradeLevelDescriptors`)."""
        return self.resource(descriptor_endpoint(descriptor))

    def descriptor_uri(self, descriptor: str, code_value: str) -> str:
        return f"{self.descriptor_namespace}/{descriptor}#{code_value}"

    def resolves_to(self, target: str) -> tuple[str, ...]:
        """Resources whose documents a reference to `target` may name (the target itself, or the
        served subclasses of an abstract target)."""
        if self.resource(target).kind == "abstract":
            return self.subclasses.get(target, ())
        return (target,)

    def property_at(self, resource: Resource, path: str) -> Property:
        """The scalar or descriptor property a key path ends on, following references
        (`schoolReference.schoolId` of calendars → schools' `schoolId`)."""
        head, _, rest = path.partition(".")
        prop = resource.properties[head]
        if not rest:
            return prop
        if prop.kind != "reference":
            raise KeyError(f"{resource.name}: {path} does not go through a reference")
        target = self.resource(prop.target)
        return self.property_at(target, dict(prop.fields)[rest])

    # ------------------------------------------------------------------ keys
    def key_of(self, resource: Resource, document: Mapping[str, Any]) -> tuple:
        """The natural key of a (validated) document, in `key_paths` order (a descriptor's is its
        URI folded to lower case, as references name it)."""
        if resource.kind == "descriptor":
            return self.descriptor_key(f"{document['namespace']}#{document['codeValue']}")
        out = []
        for path in resource.key_paths:
            value: Any = document
            for part in path.split("."):
                value = value[part]
            out.append(self.key_value(self.property_at(resource, path), value))
        return tuple(out)

    def reference_key(self, prop: Property, reference: Mapping[str, Any]) -> tuple:
        """The natural key of the document a reference object names (in the target's key order)."""
        target = self.resource(prop.target)
        return tuple(self.key_value(self.property_at(target, tpath), reference[f]) for f, tpath in prop.fields)

    def descriptor_key(self, uri: str) -> tuple:
        """The natural key of a descriptor value (its URI, compared without regard to case)."""
        return (uri.casefold(),)

    @staticmethod
    def key_value(prop: Property, value: Any) -> Any:
        """A value as natural keys compare it (descriptor URIs folded to lower case)."""
        return value.casefold() if prop.kind == "descriptor" and isinstance(value, str) else value

    # ------------------------------------------------------------------ queries
    def query_parameters(self, resource: Resource) -> dict[str, tuple[tuple[str, ...], Property]]:
        """GET query parameters of a resource: name → (the JSON paths it matches, the property that
        types its value). Top-level scalars and descriptors by their names, then the fields of
        top-level references (identity references first) by the field's name; a field whose name
        is taken by a path it is not key-unified with is left out."""
        out: dict[str, tuple[tuple[str, ...], Property]] = {}
        for name, prop in resource.properties.items():
            if prop.kind in ("scalar", "descriptor"):
                out[name] = ((name,), prop)
        refs = [n for n in resource.identity if resource.properties[n].kind == "reference"]
        refs += [n for n, p in resource.properties.items() if p.kind == "reference" and n not in refs]
        groups = [set(g) for g in resource.unified]
        for rname in refs:
            prop = resource.properties[rname]
            for fname, tpath in prop.fields:
                path = f"{rname}.{fname}"
                end = self.property_at(self.resource(prop.target), tpath)
                if fname not in out:
                    out[fname] = ((path,), end)
                elif any(path in g and out[fname][0][0] in g for g in groups):
                    out[fname] = (out[fname][0] + (path,), out[fname][1])
        return out

    def key_query(self, resource: Resource, document: Mapping[str, Any]) -> dict[str, Any]:
        """The query parameters that find a document by its natural key (GET ?studentUniqueId=...),
        e.g. to learn its id before a DELETE."""
        params = self.query_parameters(resource)
        by_path = {path: name for name, (paths, _) in params.items() for path in paths}
        out = {}
        for path in resource.key_paths:
            name = by_path.get(path)
            if name is None:
                raise KeyError(f"{resource.name}: key path {path} has no query parameter")
            value: Any = document
            for part in path.split("."):
                value = value[part]
            out[name] = value
        return out

    # ------------------------------------------------------------------ order
    def dependencies(self) -> list[dict]:
        """The Ed-Fi API's `/metadata/data/v3/dependencies` answer for the served resources:
        [{resource, order, operations}], sorted by order then resource.

        A resource's order is one more than the highest order among the resources it refers to
        (collections included; descriptors and schoolYearTypes are order 1). Person resources
        (`person_updates_after`) appear twice, as an ODS lists them: "Create" by their references,
        then "Update" one after the associations that authorize their updates."""
        level = self._levels()
        out = []
        for r in self.served():
            if r.name in self.person_updates_after:
                out.append({"resource": r.path, "order": level[r.name], "operations": ["Create"]})
                after = max(level[a] for a in self.person_updates_after[r.name])
                out.append({"resource": r.path, "order": after + 1, "operations": ["Update"]})
            else:
                out.append({"resource": r.path, "order": level[r.name], "operations": ["Create", "Update"]})
        return sorted(out, key=lambda d: (d["order"], d["resource"]))

    def campus_resync_order(self) -> list[list[str]]:
        """Infinite Campus's recommended resync groups (`campus_resync_group`), each ordered by
        dependency order then name, so every resource comes after those it refers to."""
        level = self._levels()
        groups: dict[int, list[str]] = {}
        for r in self.resources.values():
            if r.campus_resync_group is not None:
                groups.setdefault(r.campus_resync_group, []).append(r.name)
        return [sorted(groups[g], key=lambda n: (level[n], n)) for g in sorted(groups)]

    def references_of(self, resource: Resource) -> set[str]:
        """Resources (never abstract: subclasses instead) a resource's documents may refer to."""
        out: set[str] = set()
        for prop in iter_properties(resource):
            if prop.kind == "reference":
                out.update(self.resolves_to(prop.target))
        return out

    def _levels(self) -> dict[str, int]:
        level: dict[str, int] = {}

        def visit(name: str, stack: tuple[str, ...]) -> int:
            if name in level:
                return level[name]
            if name in stack:  # a resource referring to itself (parentLocalEducationAgencyReference)
                return 0
            r = self.resource(name)
            deps = [d for d in self.references_of(r) if d != name and self.resources[d].served]
            level[name] = 1 + max((visit(d, stack + (name,)) for d in deps), default=0)
            return level[name]

        for name, r in self.resources.items():
            if r.served:
                visit(name, ())
        return level


def descriptor_endpoint(descriptor: str) -> str:
    return descriptor[0].lower() + descriptor[1:] + "s"


def iter_properties(node: Node) -> Iterator[Property]:
    """Every property of a node, collection items and embedded objects included."""
    for prop in node.properties.values():
        yield prop
        if prop.node is not None:
            yield from iter_properties(prop.node)


# ---------------------------------------------------------------------- loading
def model_dir() -> Path:
    from campus_sync import paths

    return paths.include_dir() / "edfi"


@functools.lru_cache(maxsize=8)
def load(root: Path | str | None = None, data_standard: str | None = None) -> Model:
    """Read and check the model under `root` (default include/edfi); cached per process.

    `data_standard` picks one of model.yaml's `data_standards` (default: `default_data_standard`,
    the one the files are written for); for another, each file's `other_data_standards` entry
    for it is applied (a resource's identity and the properties that differ)."""
    import yaml

    root = Path(root) if root is not None else model_dir()
    if not (root / "model.yaml").is_file():
        raise ModelError(f"{root}: no model.yaml (the Ed-Fi resource model lives in include/edfi/)")

    def read(path: Path) -> Any:
        try:
            return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise ModelError(f"{path}: not valid YAML: {exc}") from None

    top = read(root / "model.yaml") or {}
    standards = top.get("data_standards") or {}
    base = str(top.get("default_data_standard") or "")
    if base not in standards:
        raise ModelError(f"{root / 'model.yaml'}: default_data_standard {base!r} is not one of data_standards")
    ds = str(data_standard or base)
    if ds not in standards:
        raise ModelError(f"unknown Ed-Fi Data Standard {ds!r}; the model has {', '.join(sorted(standards))}")

    def variant(spec: dict, source: str) -> dict:
        declared = str(spec.get("data_standard", base))
        if declared != base:
            raise ModelError(f"{source}: written for Data Standard {declared}, but the model's files follow {base}")
        if ds == base:
            return spec
        change = (spec.get("other_data_standards") or {}).get(ds)
        if not change:
            return spec
        unknown = set(change) - {"identity", "properties", "unified"}
        if unknown:
            raise ModelError(f"{source}: other_data_standards {ds} may change identity, properties and unified, "
                             f"not {', '.join(sorted(unknown))}")
        out = dict(spec)
        for k in ("identity", "unified"):
            if k in change:
                out[k] = change[k]
        props = dict(spec.get("properties") or {})
        for k, v in (change.get("properties") or {}).items():
            if v is None:
                if k not in props:
                    raise ModelError(f"{source}: other_data_standards {ds} removes {k!r}, which is not a property")
                del props[k]
            else:
                props[k] = v
        out["properties"] = props
        if "unified" not in change:  # groups lose the paths of removed properties
            groups = ([q for q in g if q.split(".")[0].removesuffix("[*]") in props] for g in spec.get("unified") or [])
            out["unified"] = [g for g in groups if len(g) > 1]
        return out

    specs: list[tuple[dict, str, bool, str]] = []  # (spec, source, served, kind)
    for spec in top.get("abstract") or []:
        specs.append((variant(spec, "model.yaml"), "model.yaml", False, "abstract"))
    files = sorted((root / "resources").glob("*.yaml"))
    if not files:
        raise ModelError(f"{root / 'resources'}: no resource files")
    for path in files:
        spec = read(path)
        if not isinstance(spec, dict):
            raise ModelError(f"{path}: expected a mapping")
        if spec.get("resource") != path.stem:
            raise ModelError(f"{path}: resource is {spec.get('resource')!r}; the file must be named after it")
        source = f"resources/{path.name}"
        specs.append((variant(spec, source), source, True, "resource"))
    unserved = root / "unserved.yaml"
    for spec in ((read(unserved) or {}).get("resources") or []) if unserved.is_file() else []:
        specs.append((variant(spec, "unserved.yaml"), "unserved.yaml", False, "resource"))
    doc = read(root / "descriptors.yaml") or {}
    values = dict(doc.get("descriptors") or {})
    if ds != base:
        for name, change in ((doc.get("other_data_standards") or {}).get(ds) or {}).items():
            if name not in values:
                raise ModelError(f"descriptors.yaml: other_data_standards {ds} changes {name}, which has no entry")
            drop = set(change.get("remove") or [])
            kept = [v for v in values[name] if (v if isinstance(v, str) else v[0]) not in drop]
            values[name] = kept + list(change.get("add") or [])
    return _compile({**top, "data_standard": {"id": ds, **standards[ds]}}, specs, values)


def _compile(top: dict, specs: list[tuple[dict, str, bool, str]], values: Mapping[str, list]) -> Model:
    ds_id = str((top.get("data_standard") or {}).get("id", ""))
    raw: dict[str, tuple[dict, str, bool, str]] = {}
    for spec, source, served, kind in specs:
        name = spec.get("resource")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ModelError(f"{source}: resource name {name!r} is not a camelCase Ed-Fi endpoint name")
        if name in raw:
            raise ModelError(f"{source}: resource {name} is declared twice (also in {raw[name][1]})")
        raw[name] = (spec, source, served, kind)

    descriptor_names: set[str] = set()

    def node(spec: dict, where: str) -> Node:
        props_spec = spec.get("properties")
        if not isinstance(props_spec, dict) or not props_spec:
            raise ModelError(f"{where}: no properties")
        props = {}
        for pname, p in props_spec.items():
            props[pname] = prop(pname, p, f"{where}.{pname}")
        identity = tuple(spec.get("identity") or ())
        for item in identity:
            if item not in props:
                raise ModelError(f"{where}: identity names {item!r}, which is not a property")
            if props[item].kind in ("collection", "object"):
                raise ModelError(f"{where}: identity item {item!r} is a {props[item].kind}")
        unified = tuple(tuple(g) for g in spec.get("unified") or ())
        for group in unified:
            for path in group:
                head = path.split(".")[0].removesuffix("[*]")
                if head not in props:
                    raise ModelError(f"{where}: unified path {path!r} starts with an unknown property")
        return Node(properties=props, identity=identity, unified=unified)

    def prop(name: str, p: Any, where: str) -> Property:
        if not isinstance(p, dict):
            raise ModelError(f"{where}: expected a mapping")
        required = bool(p.get("required", False))
        kinds = [k for k in ("type", "descriptor", "reference", "collection", "object") if k in p]
        if len(kinds) != 1:
            raise ModelError(f"{where}: give exactly one of type, descriptor, reference, collection, object")
        kind = kinds[0]
        if kind == "type":
            if p["type"] not in SCALAR_TYPES:
                raise ModelError(f"{where}: unknown type {p['type']!r} (one of {', '.join(sorted(SCALAR_TYPES))})")
            if p["type"] == "string" and not isinstance(p.get("max"), int):
                raise ModelError(f"{where}: a string needs max (its maximum length)")
            if p["type"] == "decimal" and not (isinstance(p.get("precision"), int) and isinstance(p.get("scale"), int)):
                raise ModelError(f"{where}: a decimal needs precision and scale")
            return Property(name, "scalar", required, type=p["type"], max_length=p.get("max"),
                            precision=p.get("precision"), scale=p.get("scale"))
        if kind == "descriptor":
            d = p["descriptor"]
            if not isinstance(d, str) or not d.endswith("Descriptor"):
                raise ModelError(f"{where}: descriptor {d!r} must be a name ending in Descriptor")
            descriptor_names.add(d)
            return Property(name, "descriptor", required, descriptor=d)
        if kind == "reference":
            if not name.endswith("Reference"):
                raise ModelError(f"{where}: a reference property's name ends in Reference")
            target = p["reference"]
            if target not in raw:
                raise ModelError(f"{where}: reference to {target!r}, which is neither a resource nor in unserved.yaml")
            fields = p.get("fields") or {}
            if not isinstance(fields, dict):
                raise ModelError(f"{where}: fields must map reference fields to target key paths")
            return Property(name, "reference", required, target=target, fields=tuple(fields.items()))
        sub = node(p[kind], where)
        return Property(name, kind, required, node=sub)

    resources: dict[str, Resource] = {}
    for name, (spec, source, served, kind) in raw.items():
        n = node(spec, f"{source} ({name})")
        if not n.identity:
            raise ModelError(f"{source} ({name}): no identity")
        sup = spec.get("superclass") or {}
        group = spec.get("campus_resync_group")
        if group is not None and (not isinstance(group, int) or not 1 <= group <= 9):
            raise ModelError(f"{source} ({name}): campus_resync_group must be a small whole number")
        resources[name] = Resource(
            properties=n.properties, identity=n.identity, unified=n.unified, name=name,
            entity=spec.get("entity") or name, kind=kind, served=served, source=source,
            campus_resync_group=group, key_updatable=bool(spec.get("key_updatable", False)),
            superclass=sup.get("resource"), superclass_identity=sup.get("identity"), data_standard=ds_id)

    namespace = str(top.get("descriptor_namespace") or "uri://ed-fi.org").rstrip("/")
    descriptor_values: dict[str, tuple[DescriptorValue, ...]] = {}
    for d in sorted(descriptor_names | set(values)):
        items = values.get(d)
        if items is None:
            raise ModelError(f"descriptors.yaml: no entry for {d} (give [] when the Data Standard has no core values)")
        out = []
        for item in items:
            if isinstance(item, str):
                out.append(DescriptorValue(item, item, item))
            elif isinstance(item, list) and len(item) == 3 and all(isinstance(x, str) for x in item):
                out.append(DescriptorValue(*item))
            else:
                raise ModelError(f"descriptors.yaml: {d}: {item!r} is neither a codeValue nor [codeValue, short, description]")
            if len(out[-1].code_value) > 50:
                raise ModelError(f"descriptors.yaml: {d}: codeValue {out[-1].code_value!r} is longer than 50")
        descriptor_values[d] = tuple(out)
        endpoint = descriptor_endpoint(d)
        dprops = {k: prop(k, v, f"descriptor {d}.{k}") for k, v in DESCRIPTOR_PROPERTIES.items()}
        resources[endpoint] = Resource(properties=dprops, identity=("namespace", "codeValue"), name=endpoint,
                                       entity=d, kind="descriptor", served=True, source="descriptors.yaml",
                                       data_standard=ds_id)

    subclasses: dict[str, list[str]] = {}
    for r in resources.values():
        if r.superclass:
            sup = resources.get(r.superclass)
            if sup is None or sup.kind != "abstract":
                raise ModelError(f"{r.source}: superclass {r.superclass!r} is not an abstract resource of model.yaml")
            if r.superclass_identity not in r.identity or len(r.identity) != 1 or len(sup.identity) != 1:
                raise ModelError(f"{r.source}: superclass identity must be the resource's single identity property")
            if r.served:
                subclasses.setdefault(r.superclass, []).append(r.name)

    years = top.get("school_years") or {}
    first, last = int(years.get("first", 1991)), int(years.get("last", 2050))
    persons = {k: tuple(v) for k, v in (top.get("person_updates_after") or {}).items()}
    for person, after in persons.items():
        for a in (person, *after):
            if a not in resources or not resources[a].served:
                raise ModelError(f"model.yaml: person_updates_after names {a!r}, which is not a served resource")
    ds = top.get("data_standard") or {}
    model = Model(resources=resources, descriptor_values=descriptor_values,
                  data_standard={k: str(v) for k, v in ds.items()}, descriptor_namespace=namespace,
                  school_years=(first, last), person_updates_after=persons,
                  subclasses={k: tuple(sorted(v)) for k, v in subclasses.items()})
    return _resolve_keys(model)


def _resolve_keys(model: Model) -> Model:
    """Complete every reference's field map (target key order) and every resource's key paths.

    Identity references form a DAG (a resource's natural key cannot contain itself), resolved
    depth first; a reference's default field for a target key path is the path's last segment,
    and two target paths with the same last segment need an explicit `fields` entry."""
    resources = dict(model.resources)
    key_paths: dict[str, tuple[str, ...]] = {}

    def paths_of(name: str, stack: tuple[str, ...] = ()) -> tuple[str, ...]:
        if name in key_paths:
            return key_paths[name]
        if name in stack:
            raise ModelError(f"{resources[name].source}: the natural key of {name} contains itself via {' → '.join(stack)}")
        r = resources[name]
        out: list[str] = []
        groups = [set(g) for g in r.unified]
        for item in r.identity:
            prop = r.properties[item]
            if prop.kind == "reference":
                prop = complete(r, item, prop, stack + (name,))
                candidates = [f"{item}.{f}" for f, _ in prop.fields]
            else:
                candidates = [item]
            for path in candidates:
                if any(path in g and any(k in g for k in out) for g in groups):
                    continue  # key-unified with a path already in the key
                out.append(path)
        key_paths[name] = tuple(out)
        return key_paths[name]

    def complete(owner: Resource, pname: str, prop: Property, stack: tuple[str, ...]) -> Property:
        target = resources[prop.target]
        tpaths = paths_of(target.name, stack)
        explicit = dict(prop.fields)
        by_path = {v: k for k, v in explicit.items()}
        where = f"{owner.source} ({owner.name}.{pname})"
        for f, tp in explicit.items():
            if tp not in tpaths:
                raise ModelError(f"{where}: field {f} maps to {tp!r}, not a key path of {target.name} ({', '.join(tpaths)})")
        fields: list[tuple[str, str]] = []
        for tp in tpaths:
            f = by_path.get(tp) or tp.split(".")[-1]
            if f in (x for x, _ in fields):
                raise ModelError(f"{where}: two key paths of {target.name} both default to field {f!r}; "
                                 f"name them in fields")
            fields.append((f, tp))
        return Property(prop.name, "reference", prop.required, target=prop.target, fields=tuple(fields))

    def complete_node(owner: Resource, node: Node) -> Node:
        props = {}
        for pname, prop in node.properties.items():
            if prop.kind == "reference":
                prop = complete(owner, pname, prop, ())
            elif prop.node is not None:
                prop = Property(prop.name, prop.kind, prop.required, node=complete_node(owner, prop.node))
            props[pname] = prop
        return Node(properties=props, identity=node.identity, unified=node.unified)

    for name in sorted(resources):
        paths_of(name)
    for name, r in sorted(resources.items()):
        n = complete_node(r, r)
        resources[name] = Resource(
            properties=n.properties, identity=r.identity, unified=r.unified, name=r.name, entity=r.entity,
            kind=r.kind, served=r.served, source=r.source, campus_resync_group=r.campus_resync_group,
            key_updatable=r.key_updatable, superclass=r.superclass, superclass_identity=r.superclass_identity,
            key_paths=key_paths[name], data_standard=r.data_standard)
    out = Model(resources=resources, descriptor_values=model.descriptor_values, data_standard=model.data_standard,
                descriptor_namespace=model.descriptor_namespace, school_years=model.school_years,
                person_updates_after=model.person_updates_after, subclasses=model.subclasses)
    for r in out.resources.values():  # every key path ends on a scalar or descriptor
        for path in r.key_paths:
            try:
                end = out.property_at(r, path)
            except KeyError as exc:
                raise ModelError(f"{r.source} ({r.name}): key path {path}: {exc}") from None
            if end.kind not in ("scalar", "descriptor"):
                raise ModelError(f"{r.source} ({r.name}): key path {path} ends on a {end.kind}")
    return out
