"""`python -m campus_sync.cli`: the same as the `campus-sync` command."""

from campus_sync.cli import main

raise SystemExit(main())
