"""The project's own documents: the protocol ships with it and the README
points a clone at files it has."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from muca.protocol import messages

ROOT = Path(__file__).resolve().parent.parent


class DocumentTests(SynchronousTestCase):
    def test_the_readme_links_the_protocol_that_ships_with_the_project(self) -> None:
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        self.assertIn("(docs/protocol.md)", readme)
        self.assertTrue((ROOT / "docs" / "protocol.md").is_file())
        for absent in ("shared folder", "DESIGN.md", "PROTOCOL.md"):
            self.assertNotIn(absent, readme)

    def test_every_error_code_the_server_sends_is_in_the_protocol(self) -> None:
        protocol = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
        codes = [
            value
            for name, value in vars(messages).items()
            if name.isupper()
            and isinstance(value, str)
            and re.fullmatch(r"[A-Z_]+", value)
        ]
        self.assertIn("FRAME_TOO_LONG", codes)
        for code in codes:
            self.assertIn(f"`{code}`", protocol)
        self.assertNotIn("RATE_LIMITED", protocol.replace("no `RATE_LIMITED`", ""))
