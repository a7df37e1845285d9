"""The Campus object hierarchy: declared in YAML, validated, compiled into a graph.

`load()` returns the compiled `Hierarchy` for the project (cached per process); `compile_path()`
compiles any folder or file (used by `campus-sync hierarchy validate PATH` and the tests).
"""

from campus_sync.hierarchy.errors import HierarchyError, UnknownObjectError
from campus_sync.hierarchy.graph import Hierarchy
from campus_sync.hierarchy.loader import compile_path, load
from campus_sync.hierarchy.model import ForeignKey, ObjectSpec, SCHOOL_YEARS

__all__ = [
    "ForeignKey",
    "Hierarchy",
    "HierarchyError",
    "ObjectSpec",
    "SCHOOL_YEARS",
    "UnknownObjectError",
    "compile_path",
    "load",
]
