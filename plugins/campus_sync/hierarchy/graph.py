"""The compiled hierarchy: a DAG of objects with ancestors, descendants, stages and plans.

Order is always deterministic: ancestors follow the declared parent lists (top-level first,
as the Parent Objects column of Campus's Object Hierarchies table lists them); run order is by stage, then by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from campus_sync.hierarchy.errors import HierarchyError, SelectionError, UnknownObjectError, suggest
from campus_sync.hierarchy.model import SCHOOL_YEARS, ForeignKey, ObjectSpec


@dataclass(frozen=True)
class Plan:
    """What a resync request runs: objects in run order, grouped in stages that may run together."""

    objects: tuple[str, ...]
    stages: tuple[tuple[str, ...], ...]
    requested: tuple[str, ...]
    added: tuple[str, ...]  # ancestors added by check-dependencies
    school_year: str
    state: str | None

    def to_json(self) -> dict:
        return {"objects": list(self.objects), "stages": [list(s) for s in self.stages]}


def _find_cycle(parents: dict[str, tuple[str, ...]]) -> list[str] | None:
    """A cycle as a path [a, b, ..., a] if one exists (parent edges), else None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for p in parents.get(node, ()):
            if p not in parents:
                continue
            if state.get(p) == 1:
                return stack[stack.index(p):] + [p]
            if p not in state:
                found = visit(p)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for name in sorted(parents):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


class Hierarchy:
    """Compiled, validated object graph. Build with `Hierarchy.build` (or `hierarchy.load()`)."""

    def __init__(self, specs: dict[str, ObjectSpec], sql_root: Path | None):
        self._specs = specs
        self.sql_root = sql_root
        self._children: dict[str, tuple[str, ...]] = {n: () for n in specs}
        for spec in specs.values():
            for p in spec.parents:
                self._children[p] = tuple(sorted(self._children[p] + (spec.name,)))
        self._ancestors: dict[str, tuple[str, ...]] = {}
        for name in sorted(specs):
            self._ancestors[name] = self._compute_ancestors(name)
        self._stage: dict[str, int] = {}
        for name in sorted(specs, key=lambda n: len(self._ancestors[n])):
            parents = specs[name].parents
            self._stage[name] = 1 + max((self._stage_of(p) for p in parents), default=-1)
        self._order = tuple(sorted(specs, key=lambda n: (self._stage[n], n)))

    # ----------------------------------------------------------------- building
    @classmethod
    def build(cls, specs: Iterable[ObjectSpec], problems: list[str] | None = None,
              sql_root: Path | None = None) -> "Hierarchy":
        problems = list(problems or [])
        by_name: dict[str, ObjectSpec] = {}
        by_lower: dict[str, ObjectSpec] = {}
        for spec in specs:
            other = by_lower.get(spec.name.lower())
            if other is not None:
                problems.append(
                    f"{spec.source}: object {spec.name!r} is declared twice "
                    f"(also in {other.source} as {other.name!r}; names ignore case)"
                )
                continue
            by_name[spec.name] = spec
            by_lower[spec.name.lower()] = spec
        for spec in by_name.values():
            for p in spec.parents:
                if p not in by_name:
                    problems.append(
                        f"{spec.source}: object {spec.name!r}: unknown parent {p!r}{suggest(p, by_name)}"
                    )
        cycle = _find_cycle({n: s.parents for n, s in by_name.items()})
        if cycle:
            where = by_name[cycle[0]].source
            problems.append(f"{where}: cycle in parents: {' -> '.join(cycle)}")
        if problems:
            raise HierarchyError(problems)
        graph = cls(by_name, sql_root)
        graph._check_consistency(problems)
        if problems:
            raise HierarchyError(problems)
        graph._derive_foreign_keys()
        return graph

    def _stage_of(self, name: str) -> int:
        if name not in self._stage:
            parents = self._specs[name].parents
            self._stage[name] = 1 + max((self._stage_of(p) for p in parents), default=-1)
        return self._stage[name]

    def _compute_ancestors(self, name: str) -> tuple[str, ...]:
        """Depth-first over the declared parents, each parent after its own ancestors."""
        out: list[str] = []
        for p in self._specs[name].parents:
            for a in self._compute_ancestors(p) + (p,):
                if a not in out:
                    out.append(a)
        return tuple(out)

    def _check_consistency(self, problems: list[str]) -> None:
        """An object may only depend on objects that sync wherever and whenever it does."""
        for name in self._order:
            spec = self._specs[name]
            for a in self._ancestors[name]:
                anc = self._specs[a]
                if anc.states and (not spec.states or not set(spec.states) <= set(anc.states)):
                    problems.append(
                        f"{spec.source}: object {name!r} applies to "
                        f"{', '.join(spec.states) or 'every state'} but its ancestor {a!r} "
                        f"only to {', '.join(anc.states)}"
                    )
                if anc.school_year_scoped:
                    missing = [y for y in spec.school_years if y not in anc.school_years]
                    if missing:
                        problems.append(
                            f"{spec.source}: object {name!r} syncs for {', '.join(missing)} year "
                            f"but its ancestor {a!r} does not"
                        )

    def _derive_foreign_keys(self) -> None:
        """A column that carries a single-column ancestor key references that ancestor."""
        for name in self._order:
            spec = self._specs[name]
            fks = []
            for a in self._ancestors[name]:
                anc = self._specs[a]
                if len(anc.key) == 1 and anc.key[0] in spec.column_names and not (
                    spec.key == anc.key and a == name
                ):
                    fks.append(ForeignKey(anc.key[0], a, anc.key[0]))
            self._specs[name] = replace(spec, foreign_keys=tuple(sorted(fks, key=lambda f: f.column)))

    # ----------------------------------------------------------------- queries
    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def names(self) -> tuple[str, ...]:
        """Every object in run order (stage, then name)."""
        return self._order

    def spec(self, name: str) -> ObjectSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownObjectError(name, self._specs) from None

    def resolve(self, name: str) -> str:
        """The declared spelling of `name` (case-insensitive), or UnknownObjectError."""
        if name in self._specs:
            return name
        for known in self._specs:
            if known.lower() == name.lower():
                return known
        raise UnknownObjectError(name, self._specs)

    def parents(self, name: str) -> tuple[str, ...]:
        return self.spec(name).parents

    def children(self, name: str) -> tuple[str, ...]:
        self.spec(name)
        return self._children[name]

    def ancestors(self, name: str) -> tuple[str, ...]:
        """Every ancestor, top-level first (the Parent Objects column of Campus's Object Hierarchies table)."""
        self.spec(name)
        return self._ancestors[name]

    def descendants(self, name: str) -> tuple[str, ...]:
        """Every descendant, in run order."""
        self.spec(name)
        return tuple(n for n in self._order if name in self._ancestors[n])

    def stage(self, name: str) -> int:
        self.spec(name)
        return self._stage[name]

    def stages(self) -> tuple[tuple[str, ...], ...]:
        """All objects grouped by longest distance from a root; each group sorted by name."""
        depth = max(self._stage.values(), default=-1)
        return tuple(
            tuple(sorted(n for n in self._specs if self._stage[n] == i)) for i in range(depth + 1)
        )

    def enabled(self, state: str | None = None, school_year: str = "current") -> tuple[str, ...]:
        """Objects a deployment for `state` offers for `school_year`, in run order."""
        return tuple(
            n for n in self._order
            if self._specs[n].applies_to(state) and self._specs[n].offered_for(school_year)
        )

    # ----------------------------------------------------------------- planning
    def plan(self, objects: Iterable[str], check_dependencies: bool = True,
             school_year: str = "current", state: str | None = None) -> Plan:
        """The ordered objects a request runs.

        With `check_dependencies`, every ancestor the request's year and state offer is added
        (objects not tied to a school year are synced with the current year, as Campus's resync tool does).
        Without it, exactly the selection, still in dependency order.
        """
        if school_year not in SCHOOL_YEARS:
            raise SelectionError(
                f"unknown school year {school_year!r}; use one of {', '.join(SCHOOL_YEARS)}"
            )
        requested: list[str] = []
        for raw in objects:
            name = self.resolve(str(raw).strip())
            if name not in requested:
                requested.append(name)
        if not requested:
            raise SelectionError("no objects selected")
        for name in requested:
            spec = self._specs[name]
            if not spec.applies_to(state):
                raise SelectionError(f"object {name!r} does not apply to state {state}")
            if not spec.offered_for(school_year):
                why = ("is not tied to a school year" if not spec.school_year_scoped
                       else f"is configured for {', '.join(spec.school_years)} only")
                raise SelectionError(
                    f"object {name!r} is not offered for the {school_year} school year: it {why}"
                )
        chosen = set(requested)
        if check_dependencies:
            for name in requested:
                for a in self._ancestors[name]:
                    spec = self._specs[a]
                    if spec.applies_to(state) and spec.offered_for(school_year):
                        chosen.add(a)
        stage: dict[str, int] = {}
        for n in self._order:  # ancestors come first in run order
            if n in chosen:
                before = [stage[a] for a in self._ancestors[n] if a in chosen]
                stage[n] = 1 + max(before, default=-1)
        depth = max(stage.values(), default=-1)
        stages = tuple(tuple(sorted(n for n in stage if stage[n] == i)) for i in range(depth + 1))
        ordered = tuple(n for s in stages for n in s)
        return Plan(
            objects=ordered,
            stages=stages,
            requested=tuple(sorted(requested, key=ordered.index)),
            added=tuple(n for n in ordered if n not in requested),
            school_year=school_year,
            state=state.upper() if state else None,
        )

    def to_json(self, names: Iterable[str] | None = None) -> dict:
        """The `campus-sync hierarchy show --json` document."""
        chosen = list(names) if names is not None else list(self._order)
        return {
            "objects": [
                {
                    "name": n,
                    "parents": list(self._specs[n].parents),
                    "ancestors": list(self._ancestors[n]),
                    "children": list(self._children[n]),
                    "school_year_scoped": self._specs[n].school_year_scoped,
                    "selective_key": self._specs[n].selective_key,
                    "states": list(self._specs[n].states),
                }
                for n in chosen
            ]
        }
