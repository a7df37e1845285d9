"""Parse the *Campus Object Hierarchies* table out of seed 001 (the cleanest OCR copy).

Returns {object: [parent objects in column order]} for all 55 rows, so the tests compare the
compiled hierarchy against the document itself rather than against a transcription of it.
"""

from __future__ import annotations

import re
from pathlib import Path

SEED = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "001_3c09c0d4f52147a5.txt"
ALIASES = {"LepKY": "LEPKY", "Health Screening": "HealthScreening"}
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9 ]*\*?$")


def _blocks(text: str) -> list[list[str]]:
    start = text.index("Resync Object\n\nParent Objects\n\nChild Objects")
    end = text.index("Technical Information")
    body = text[start:end].split("\n")[5:]
    blocks, cur = [], []
    for line in body:
        line = line.strip()
        if not line:
            if cur:
                blocks.append(cur)
                cur = []
            continue
        cur.append(line)
    if cur:
        blocks.append(cur)
    return blocks


def parent_columns(path: Path = SEED) -> dict[str, list[str]]:
    blocks = _blocks(path.read_text(encoding="utf-8"))
    table: dict[str, list[str]] = {}
    i = 0
    while i < len(blocks):
        name = ALIASES.get(blocks[i][0], blocks[i][0])
        assert len(blocks[i]) == 1, blocks[i]
        i += 1
        if name == "ReportingEntity":  # a note sits between the name and its parents
            while blocks[i][0] != "District*":
                i += 1
        parents_block = blocks[i]
        i += 1
        if parents_block[0].lower().startswith("no parent"):
            parents = []
        else:
            parents = [ALIASES.get(p.rstrip("* ").strip(), p.rstrip("* ").strip()) for p in parents_block]
        table[name] = parents
        i += 1  # the children block
    return table
