"""The project speaks only of itself: its tracked text files describe behaviour in their own words.

Source documents, work tickets and version-control history are not part of what a user gets, so
no tracked file may point at them: no source document by number, no ticket by number, no
reference to a working session, no path outside the repository, no commit hash. The test lists
every offending `file:line` so each one can be fixed where it is.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TEXT_SUFFIXES = frozenset({".py", ".md", ".yaml", ".yml", ".sql", ".js", ".html", ".css", ".toml",
                           ".txt", ".cfg", ".ini"})
TEXT_NAMES = frozenset({"Makefile", "Dockerfile"})
SKIPPED = frozenset({"constraints.txt"})  # pip's lock: package hashes and versions, not prose

# Each pattern is written so that its own source text does not match it (this file is scanned too).
RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("source document by number", re.compile(r"\bseeds?\s*(?:no\.?\s*)?#?0\d\d", re.IGNORECASE)),
    ("path outside the repository", re.compile(r"\.\./shared\b|\bshared\W{1,6}seeds\b", re.IGNORECASE)),
    ("ticket by number", re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)),
    ("finding by number", re.compile(r"\bfindings?\s*#?\d+", re.IGNORECASE)),
    ("working session", re.compile(r"\bthis\s+session\b", re.IGNORECASE)),
    ("commit hash", re.compile(r"\b(?:commit|main\s+at)\s+[0-9a-f]{7,40}\b", re.IGNORECASE)),
)
# In prose (.md), any hex-looking token of 7-40 characters with both letters and digits is a
# commit hash; `#` excludes colours, the surrounding character classes exclude parts of names.
HEX_TOKEN = re.compile(r"(?<![0-9A-Za-z_#./-])[0-9a-f]{7,40}(?![0-9A-Za-z_])")


def tracked_text_files() -> list[Path]:
    """Every file git tracks whose suffix or name marks it as text the project wrote."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = []
    for rel in sorted(out.decode("utf-8").split("\0")):
        if not rel:
            continue
        path = Path(rel)
        if path.name in SKIPPED:
            continue
        if path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            files.append(path)
    return files


def offences(rel: Path, text: str) -> list[str]:
    """`file:line: what: the line` for every mention in `text` (the contents of `rel`)."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        hits = [what for what, pattern in RULES if pattern.search(line)]
        if rel.suffix == ".md":
            for token in HEX_TOKEN.findall(line):
                if re.search(r"[a-f]", token) and re.search(r"\d", token):
                    hits.append(f"commit hash {token}")
                    break
        if hits:
            found.append(f"{rel}:{number}: {', '.join(hits)}: {line.strip()[:160]}")
    return found


def test_the_rules_catch_what_they_are_for():
    """A rule that cannot fail is no rule: each kind of mention is caught, and look-alikes are not."""
    # Built by concatenation so that this file's own text does not match.
    bad = ["see seed " + "002's table", "Seeds " + "001/002", "from ../" + "shared/design",
           'ROOT / "sha' + 'red" / "seeds"', "issue " + "12's note", "Issue " + "#7", "finding " + "#3",
           "measured in this " + "session",
           "before (commit " + "42d1381)", "main " + "at 4d254c2", "was fixed in e140a8e"]
    for line in bad:
        assert offences(Path("x.md"), line), line
    good = ["the demo's --seed 7", "seed_district(conn)", "color: #1a2b3c;", "2026-12-04",
            "campus_row_hash", "one issue at a time", "a new session of the database",
            "sha256 of deadbeef", "1e-10 a week", "bucket 65536"]
    for line in good:
        assert not offences(Path("x.md"), line), line
    assert not offences(Path("x.css"), "a { color: #a1b2c3d; }")
    assert not offences(Path("x.py"), "KEY = 'a1b2c3d4e5'")


def test_no_file_points_outside_the_project():
    found = []
    for rel in tracked_text_files():
        try:
            text = (ROOT / rel).read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            continue  # deleted in the working tree, or not text after all
        found.extend(offences(rel, text))
    for entry in found:
        print(entry)
    assert not found, f"{len(found)} mention(s) of things outside the project:\n" + "\n".join(found)
