"""The declared shape of one object, as read from YAML and checked by the loader."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

SCHOOL_YEARS = ("current", "previous", "next")
COLUMN_TYPES = {
    "int": "integer",
    "bigint": "bigint",
    "text": "text",
    "date": "date",
    "bool": "boolean",
    "numeric": "numeric",
    "timestamp": "timestamp",
}
YEAR_COLUMN = "endYear"


@dataclass(frozen=True)
class ForeignKey:
    """`column` of the child carries the key of `target`, an ancestor object."""

    column: str
    target: str
    target_column: str


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    description: str
    parents: tuple[str, ...]
    key: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]  # (name, type) in declared order
    school_years: tuple[str, ...] = ()
    selective_key: str | None = None
    states: tuple[str, ...] = ()  # empty: every state
    not_states: tuple[str, ...] = ()
    sql: str = ""
    source: str = ""  # file it was declared in, for messages
    foreign_keys: tuple[ForeignKey, ...] = field(default=())
    # Refusal reasons (fnmatch patterns) for which a row the state holds is deleted once the
    # district refuses it. A refused row under any other reason (out of year, not enrolled,
    # duplicate key, ...) that the state already holds is kept: a rule change never deletes.
    delete_refused: tuple[str, ...] = ()

    @property
    def school_year_scoped(self) -> bool:
        return bool(self.school_years)

    @property
    def table(self) -> str:
        """Table name at district and state (PostgreSQL folds names to lower case)."""
        return self.name.lower()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)

    def applies_to(self, state: str | None) -> bool:
        """Whether a deployment for `state` syncs this object (None: no state filter)."""
        if state is None:
            return True
        state = state.upper()
        if state in self.not_states:
            return False
        return not self.states or state in self.states

    def deletes_refused(self, reason: str) -> bool:
        """Whether a state row whose district row is now refused for `reason` is deleted."""
        return any(fnmatch.fnmatchcase(reason, p) for p in self.delete_refused)

    def offered_for(self, school_year: str) -> bool:
        """Campus's resync tool: previous/next year offer only objects tied to and configured for that year."""
        if school_year == "current":
            return True
        return school_year in self.school_years
