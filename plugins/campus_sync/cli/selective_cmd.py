"""Placeholder: filled in by its issue."""


def register(sub) -> None:
    """Add this group's subcommands to the `campus-sync` parser."""
