"""The README's code, as a reader copies it: fenced blocks and indented
command blocks found by the text they hold, for tests that run them."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent.parent / "README.md"


def readme_text() -> str:
    """The README as it is in this checkout."""
    return README.read_text(encoding="utf-8")


def fenced_block(containing: str, language: str = "python") -> str:
    """The one ```language block of the README that holds ``containing``."""
    blocks = re.findall(rf"(?ms)^```{language}\n(.*?)^```$", readme_text())
    found = [block for block in blocks if containing in block]
    if len(found) != 1:
        raise LookupError(f"{len(found)} {language} blocks hold {containing!r}")
    return found[0]


def indented_block(after: str) -> list[str]:
    """The lines of the first indented (4-space) block after the text
    ``after``, without their indentation."""
    text = readme_text()
    start = text.index(after) + len(after)
    lines: list[str] = []
    for line in text[start:].splitlines():
        if line.startswith("    "):
            lines.append(line[4:])
        elif lines and line.strip():
            break
    if not lines:
        raise LookupError(f"no indented block after {after!r}")
    while lines and not lines[-1].strip():
        lines.pop()
    return lines
