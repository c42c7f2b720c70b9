"""Run mutmut on one of the module sets of ``setup.cfg``.

mutmut reads only ``setup.cfg``'s ``[mutmut]``. A set is a section
``[mutmut:NAME]`` whose options replace those of ``[mutmut]`` (the others are
kept), so that the core (``tox -e mutation``: ``[mutmut]`` alone) and, say,
the store's SQL and the cluster (``[mutmut:store-cluster]``, which need a
real PostgreSQL and Redis) run as separate, smaller runs::

    python scripts/mutmut_set.py store-cluster run --max-children 2
    python scripts/mutmut_set.py store-cluster results

Everything after the set's name goes to mutmut's command line. The results
land in ``mutants/`` as a plain ``mutmut run``'s do (one set at a time).
"""

from __future__ import annotations

import configparser
import sys


def overlay(parser: configparser.ConfigParser, name: str) -> None:
    """Replace ``[mutmut]``'s options in ``parser`` with those of
    ``[mutmut:NAME]``; SystemExit when the set does not exist."""
    section = f"mutmut:{name}"
    if not parser.has_section(section):
        sets = [s[7:] for s in parser.sections() if s.startswith("mutmut:")]
        raise SystemExit(f"setup.cfg has no [{section}]; sets: {', '.join(sets)}")
    if not parser.has_section("mutmut"):
        parser.add_section("mutmut")
    for key in parser.options(section):
        parser.set("mutmut", key, parser.get(section, key, raw=True))


def main(argv: list[str]) -> None:
    """Run mutmut's command line ``argv[1:]`` on the set ``argv[0]``."""
    if not argv or argv[0].startswith("-"):
        raise SystemExit(__doc__)
    name, args = argv[0], argv[1:]

    class SetConfigParser(configparser.ConfigParser):
        def read(self, *a: object, **k: object) -> list[str]:
            done = super().read(*a, **k)  # type: ignore[arg-type]
            overlay(self, name)
            return done

    overlay(_read_setup_cfg(), name)  # fail before mutmut starts
    from mutmut import configuration

    configuration.ConfigParser = SetConfigParser  # type: ignore[misc]
    from mutmut.__main__ import cli

    cli(args, prog_name=f"mutmut_set.py {name}")


def _read_setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read("setup.cfg")
    return parser


if __name__ == "__main__":
    main(sys.argv[1:])
