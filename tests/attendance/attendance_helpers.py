"""Constants shared by the attendance tests (a module of its own: `conftest` names are ambiguous)."""

NV_DISTRICTS = ("NV02", "NV16")
YEAR = 2027  # the NV test configuration's current school year (2026-27)
