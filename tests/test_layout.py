"""The package's house rules: no import circles, and each room imports only
the rooms below it (protocol < session < the server's front-ends, client;
the composition root, muca.service, above them all; nothing imports
tests)."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

PACKAGE = Path(__file__).resolve().parent.parent / "muca"


def module_name(path: Path) -> str:
    """``muca/server/node.py`` → ``muca.server.node``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The ``muca`` modules a file imports, wherever the import stands
    (``TYPE_CHECKING`` blocks and function bodies included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def import_graph() -> dict[str, set[str]]:
    """Every module under ``muca/`` and the ``muca`` modules it imports
    (a package's own ``__init__`` is not counted as an edge)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {
        name: {
            target
            for target in imports_of(path, known)
            if target != name and not name.startswith(target + ".")
        }
        for name, path in files.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules round it, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph.get(name, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name)
            if cycle:
                return cycle
    return None


class PackagingTests(SynchronousTestCase):
    """What a non-editable install (the README's first command) ships."""

    def test_every_package_under_muca_is_listed_in_setup_cfg(self) -> None:
        config = configparser.ConfigParser()
        config.read(PACKAGE.parent / "setup.cfg")
        listed = set(config["options"]["packages"].split())
        packages = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
        self.assertEqual(packages - listed, set())


class ImportTests(SynchronousTestCase):
    """Modules under ``muca/`` and what they may import."""

    def test_the_graph_sees_the_known_imports(self) -> None:
        graph = import_graph()
        self.assertIn("muca.server.connection", graph["muca.server.node"])
        self.assertIn("muca.protocol.wire", graph["muca.client.client"])

    def test_no_module_imports_another_that_imports_it_back(self) -> None:
        self.assertIsNone(find_cycle(import_graph()))

    def test_the_cycle_finder_finds_a_circle(self) -> None:
        graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
        self.assertEqual(find_cycle(graph), ["a", "b", "c", "a"])

    def test_the_protocol_knows_nothing_of_server_or_client(self) -> None:
        for name, targets in import_graph().items():
            if name.startswith("muca.protocol"):
                outside = {t for t in targets if not t.startswith("muca.protocol")}
                self.assertEqual(outside, set(), name)

    def test_the_composition_root_sits_above_every_other_room(self) -> None:
        # muca.service (options, listeners, the startup sequence) puts the
        # rooms together; none of them imports it back.
        for name, targets in import_graph().items():
            if not name.startswith("muca.service"):
                service = {t for t in targets if t.startswith("muca.service")}
                self.assertEqual(service, set(), name)

    def test_the_server_knows_no_front_end_above_it_nor_the_cluster(self) -> None:
        # The web room reuses the server's connection; a cluster's bus is
        # given to the node by the composition root. The server imports
        # neither, and the web room never the client.
        above = ("muca.web", "muca.irc", "muca.cluster", "muca.client")
        for name, targets in import_graph().items():
            if name.startswith(("muca.server", "muca.protocol", "muca.session")):
                outside = {t for t in targets if t.startswith(above)}
                self.assertEqual(outside, set(), name)
            if name.startswith(("muca.web", "muca.irc")):
                client = {t for t in targets if t.startswith("muca.client")}
                self.assertEqual(client, set(), name)

    def test_the_session_layer_knows_no_wire(self) -> None:
        # Front-ends (TCP, WebSocket, IRC) adapt onto the session; it knows
        # the protocol's values and, of the server, the room's members and
        # the login throttle, never a connection, a listener or a web page.
        below = ("muca.protocol", "muca.session", "muca.server.room")
        below += ("muca.server.logins",)
        for name, targets in import_graph().items():
            if name.startswith("muca.session"):
                outside = {t for t in targets if not t.startswith(below)}
                self.assertEqual(outside, set(), name)

    def test_the_client_knows_nothing_of_the_server(self) -> None:
        for name, targets in import_graph().items():
            if name.startswith("muca.client"):
                server = {t for t in targets if t.startswith("muca.server")}
                self.assertEqual(server, set(), name)
