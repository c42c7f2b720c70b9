"""Print the mutation score of each module after ``mutmut run``; fail below the bar.

Reads the verdicts mutmut left in ``mutants/**/*.py.meta`` and the list of
equivalent mutants (``tests/mutation-equivalents.txt``: one mutant name per
line, then `` -- `` and why it cannot change behaviour). Exits 1 when fewer
than 97 % (``--bar``) of the non-equivalent mutants were killed in total, or
fewer than ``--module-bar`` % in some module, or when a mutant was not
checked at all; exits 2 when there are no results to read. Entries of the
list that name a mutant of a module this run mutated but no mutant of it
are reported as stale (the other modules' entries belong to another set).

Run by ``tox -e mutation`` and ``tox -e mutation-store-cluster``; by hand:
``python scripts/mutation_report.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BAR = 97.0
ROOT = Path(__file__).resolve().parent.parent

# mutmut's exit codes for a mutant (see mutmut.stats): a failing test run
# (1) or a pytest internal error (3) kills it; a timeout or a crash also
# means the tests noticed. 0 is a survivor; anything else was not run.
_KILLED = {1, 3, 24, -24, 36, 152, 255, -9, -11, 37}
_SURVIVED = {0}


def read_equivalents(path: Path) -> dict[str, str]:
    """The equivalent mutants listed in ``path``, by name, with their reasons."""
    equivalents: dict[str, str] = {}
    if not path.exists():
        return equivalents
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, reason = line.partition(" -- ")
        if not sep or not reason.strip():
            raise SystemExit(f"{path}:{number}: expected 'MUTANT -- reason'")
        equivalents[name.strip()] = reason.strip()
    return equivalents


def read_verdicts(mutants: Path) -> dict[str, dict[str, int | None]]:
    """Exit codes by mutant name, per module, from mutmut's meta files."""
    by_module: dict[str, dict[str, int | None]] = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = meta.relative_to(mutants).as_posix()[: -len(".meta")]
        data = json.loads(meta.read_text(encoding="utf-8"))
        by_module[module] = data.get("exit_code_by_key", {})
    return by_module


def module_of(mutant: str) -> str:
    """The file of a mutant's module: ``muca/store/sql.py`` for
    ``muca.store.sql.x_insert__mutmut_3``."""
    dotted = mutant.split("__mutmut_")[0].rsplit(".", 1)[0]
    return dotted.replace(".", "/") + ".py"


def main(argv: list[str] | None = None) -> int:
    """Print the table and the survivors; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=ROOT / "mutants")
    parser.add_argument(
        "--equivalents",
        type=Path,
        default=ROOT / "tests" / "mutation-equivalents.txt",
    )
    parser.add_argument(
        "--bar", type=float, default=BAR, help="the total score to reach (%%)"
    )
    parser.add_argument(
        "--module-bar",
        type=float,
        default=0.0,
        help="the score every module must reach (%%)",
    )
    args = parser.parse_args(argv)
    by_module = read_verdicts(args.mutants)
    if not by_module:
        print(f"no mutmut results under {args.mutants}: run mutmut run first")
        return 2
    equivalents = read_equivalents(args.equivalents)
    seen: set[str] = set()
    survivors: list[str] = []
    unchecked: list[str] = []
    rows = []
    totals = [0, 0, 0, 0]
    for module, verdicts in by_module.items():
        tried = killed = survived = equivalent = 0
        for name, code in sorted(verdicts.items()):
            tried += 1
            if name in equivalents:
                seen.add(name)
                equivalent += 1
            elif code in _KILLED:
                killed += 1
            elif code is None:
                survived += 1
                unchecked.append(name)
            else:
                # 0, or no test reached it, or a result mutmut cannot trust.
                survived += 1
                survivors.append(name if code in _SURVIVED else f"{name} ({code})")
        rows.append((module, tried, killed, survived, equivalent))
        for i, value in enumerate((tried, killed, survived, equivalent)):
            totals[i] += value
    below = [
        module
        for module, tried, killed, _, equivalent in rows
        if tried > equivalent
        and 100.0 * killed / (tried - equivalent) < args.module_bar
    ]
    rows.append(("total", *totals))

    header = ("module", "tried", "killed", "survived", "equivalent", "score")
    width = max(len(row[0]) for row in rows)
    print(f"{header[0]:<{width}}  " + "  ".join(f"{h:>10}" for h in header[1:]))
    for module, tried, killed, survived, equivalent in rows:
        scored = tried - equivalent
        score = 100.0 * killed / scored if scored else 100.0
        print(
            f"{module:<{width}}  {tried:>10}  {killed:>10}  {survived:>10}"
            f"  {equivalent:>10}  {score:>9.1f}%"
        )
    for name in survivors:
        print(f"survived: {name}")
    for name in unchecked:
        print(f"not checked: {name}")
    for name in sorted(set(equivalents) - seen):
        if module_of(name) in by_module:
            print(f"stale entry in {args.equivalents.name}: {name}")

    tried, killed, _, equivalent = totals
    scored = tried - equivalent
    score = 100.0 * killed / scored if scored else 100.0
    if unchecked:
        print(f"FAIL: {len(unchecked)} mutants were not checked (an interrupted run?)")
        return 1
    if score < args.bar:
        print(f"FAIL: {score:.1f}% of non-equivalent mutants killed, bar {args.bar}%")
        return 1
    if below:
        print(
            f"FAIL: below {args.module_bar}% of non-equivalent mutants killed in "
            + ", ".join(below)
        )
        return 1
    print(f"OK: {score:.1f}% of non-equivalent mutants killed, bar {args.bar}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
