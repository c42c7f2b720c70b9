"""``python -m bench``: run the MUCA load benchmark and print its figures.

    .venv/bin/python -m bench                        # every workload
    .venv/bin/python -m bench --workload broadcast --clients 500 --window 16
    .venv/bin/python -m bench --workload join-presence --clients 10000
    .venv/bin/python -m bench --cluster 2            # one node, then two nodes

Prints a table and then the same figures as JSON; exits 1 when any message
was lost, duplicated, reordered or misdelivered, or a roster ended wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable

from bench.server import BenchFailure
from bench.workloads import (
    Result,
    Settings,
    broadcast,
    join_original,
    join_presence,
    join_replay,
    private,
)

WORKLOADS = (
    "all",
    "broadcast",
    "private",
    "join-original",
    "join-presence",
    "history",
    "websocket",
)


#: What ``--workload`` may be with ``--cluster``.
CLUSTER_WORKLOADS = ("all", "broadcast", "private", "join-presence")


def _labelled(run: Callable[[], Result], label: str) -> Callable[[], Result]:
    def labelled() -> Result:
        result = run()
        result.workload = f"{result.workload} {label}"
        return result

    return labelled


def history_runs(settings: Settings) -> list[Callable[[], Result]]:
    """History on (SQLite, the default) against --db none, in one run."""
    off = dataclasses.replace(
        settings, server_args=(*settings.server_args, "--db", "none")
    )
    runs: list[Callable[[], Result]] = []
    for storage, chosen in (("db=none", off), ("sqlite", settings)):
        runs.append(_labelled(lambda s=chosen: private(100, 1, s), storage))
        runs.append(_labelled(lambda s=chosen: broadcast(500, 20, 16, s), storage))
    runs.append(lambda: join_replay(1000, settings))
    return runs


def history_notes(results: list[Result]) -> list[str]:
    """History on against off: the ratios and the CPU per stored message."""
    by_name = {result.workload: result for result in results}
    notes = []
    for name in ("private w1", "broadcast w16"):
        off, on = by_name.get(f"{name} db=none"), by_name.get(f"{name} sqlite")
        if not (off and on and off.deliveries_per_s and on.messages):
            continue
        ratio = on.deliveries_per_s / off.deliveries_per_s
        per_message = on.server_cpu_s * 1e6 / on.messages
        extra = per_message - off.server_cpu_s * 1e6 / max(1, off.messages or 1)
        notes.append(
            f"{name}: history on gives {ratio:.0%} of the deliveries/s of --db none;"
            f" server CPU {per_message:.1f} µs per stored message"
            f" ({extra:+.1f} µs against --db none)"
        )
    return notes


def cluster_plan(
    args: argparse.Namespace, settings: Settings
) -> list[Callable[[], Result]]:
    """``--cluster N``: broadcast w16 to 1,000 clients, private w1 at 200,
    10,000 presence joins; each on one node, then on N nodes of a cluster
    (``--workload`` other than ``all``: that one only)."""
    wanted = args.workload
    runs: list[Callable[[], Result]] = []
    # Like for like: the cluster's nodes run with --db none (their default),
    # so the single node does too (its default would be SQLite history).
    single = dataclasses.replace(
        settings, server_args=(*settings.server_args, "--db", "none")
    )
    for nodes in (0, args.cluster):
        s = dataclasses.replace(single, nodes=nodes)
        if wanted in ("all", "broadcast"):
            runs.append(lambda s=s: broadcast(1000, args.senders, 16, s))
        if wanted in ("all", "private"):
            runs.append(lambda s=s: private(200, 1, s))
        if wanted in ("all", "join-presence"):
            runs.append(lambda s=s: join_presence(10000, s))
    return runs


def plan(args: argparse.Namespace, settings: Settings) -> list[Callable[[], Result]]:
    """The runs that the command line asks for, in order."""
    if args.cluster:
        return cluster_plan(args, settings)
    runs: list[Callable[[], Result]] = []
    windows = [args.window] if args.window else [1, 16]
    if args.workload in ("all", "broadcast"):
        for clients in [args.clients] if args.clients else [10, 100, 500]:
            for window in windows:
                runs.append(
                    lambda c=clients, w=window: broadcast(c, args.senders, w, settings)
                )
    if args.workload in ("all", "private"):
        for window in windows:
            runs.append(lambda w=window: private(args.clients or 100, w, settings))
    if args.workload in ("all", "join-original"):
        runs.append(lambda: join_original(args.clients or 1000, settings))
    if args.workload in ("all", "join-presence"):
        runs.append(lambda: join_presence(args.clients or 10000, settings))
    if args.workload in ("all", "history"):
        runs.extend(history_runs(settings))
    if args.workload in ("all", "websocket"):
        # Each WebSocket row beside the same TCP row, in the same run.
        window = args.window or 16
        broadcasters = args.clients or 500
        joiners = args.clients or 1000
        for websocket in (False, True):
            runs.append(
                lambda ws=websocket: broadcast(
                    broadcasters, args.senders, window, settings, ws
                )
            )
        for websocket in (False, True):
            runs.append(lambda ws=websocket: join_presence(joiners, settings, ws))
    return runs


# (Result field, title, format, width wide enough for any run's figure, so
# that progress rows printed one by one line up with the header.)
_COLUMNS = [
    ("workload", "workload", "{}", 22),
    ("nodes", "nodes", "{}", 5),
    ("clients", "clients", "{}", 7),
    ("senders", "send", "{}", 4),
    ("deliveries_per_s", "deliv/s", "{:,.0f}", 9),
    ("latency_p50_ms", "p50 ms", "{:.2f}", 8),
    ("latency_p99_ms", "p99 ms", "{:.2f}", 8),
    ("latency_max_ms", "max ms", "{:.1f}", 8),
    ("join_s", "join s", "{:.2f}", 7),
    ("server_cpu_s", "srv CPU s", "{:.2f}", 9),
    ("cpu_us_per_delivery", "µs/deliv", "{:.2f}", 8),
    ("server_peak_rss_mb", "peak MB", "{:.1f}", 8),
    ("kb_per_connection", "kB/conn", "{:.1f}", 7),
    ("generator_cpu_s", "gen CPU s", "{:.1f}", 9),
    ("redis_cpu_s", "redis CPU s", "{:.2f}", 11),
]

#: What the columns mean, printed under the table (bench/README.md has more).
LEGEND = (
    "nodes: cluster nodes sharing one redis-server (-: a single server)",
    "clients: clients connected; send: those of them sending",
    "deliv/s: messages received by clients per second of the message run",
    "p50/p99/max ms: send to receive, per delivery",
    "join s: first connect until every client's roster is complete",
    "srv CPU s: server CPU during the message run (the join, for join workloads)",
    "µs/deliv: server CPU per delivery",
    "peak MB: server peak RSS (VmHWM) at the end of the run",
    "kB/conn: server RSS growth over the join, per client",
    "gen CPU s: the load generator's own CPU for the whole workload",
    "redis CPU s: the redis-server's CPU during the message run (clusters)",
)


def _cells(result: Result) -> list[str]:
    cells = []
    for key, _, form, _ in _COLUMNS:
        value = getattr(result, key)
        cells.append("-" if value is None else form.format(value))
    return cells


def _line(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        cell.ljust(width) if i == 0 else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
    ).rstrip()


_TITLES = [title for _, title, _, _ in _COLUMNS]
_WIDTHS = [max(len(title), width) for _, title, _, width in _COLUMNS]


def format_header() -> str:
    """The table's header, in the columns of :func:`format_row`."""
    return _line(_TITLES, _WIDTHS)


def format_row(result: Result) -> str:
    """One result as a row under :func:`format_header` (a progress line)."""
    return _line(_cells(result), _WIDTHS)


def format_table(results: list[Result]) -> str:
    """The results as an aligned text table, notes and legend below it."""
    rows = [_TITLES, *(_cells(result) for result in results)]
    widths = [
        max(width, *(len(row[i]) for row in rows)) for i, width in enumerate(_WIDTHS)
    ]
    lines = [_line(row, widths) for row in rows]
    for result in results:
        for note in result.notes:
            lines.append(f"  {result.workload} {result.clients}: {note}")
    lines.extend(f"  {note}" for note in history_notes(results))
    lines.append("")
    lines.extend(LEGEND)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workload", choices=WORKLOADS, default="all")
    parser.add_argument(
        "--clients", type=int, help="client count (default: each workload's own)"
    )
    parser.add_argument("--senders", type=int, default=20, help="broadcast senders")
    parser.add_argument(
        "--window", type=int, help="messages in flight per sender (default: 1 and 16)"
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds of sending per run"
    )
    parser.add_argument(
        "--list-interval", type=float, help="passed to twistd muca --list-interval"
    )
    parser.add_argument(
        "--max-pending",
        type=int,
        default=1000,
        help="joining clients between connect and ACK at a time",
    )
    parser.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help="the cluster workloads on one node, then on N nodes sharing a "
        "private redis-server (needs redis-server on the PATH)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the JSON here")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record the server with py-spy (collapsed stacks, one file a run)",
    )
    args = parser.parse_args(argv)
    if args.cluster and args.workload not in CLUSTER_WORKLOADS:
        parser.error(
            f"--cluster runs {', '.join(CLUSTER_WORKLOADS)}, not {args.workload}"
        )
    settings = Settings(
        duration=args.duration,
        list_interval=args.list_interval,
        max_pending=args.max_pending,
        profile_dir=args.profile,
    )
    results: list[Result] = []
    status = 0
    print(format_header(), file=sys.stderr, flush=True)
    for run in plan(args, settings):
        try:
            result = run()
        except BenchFailure as failure:
            print(f"FAILED: {failure}", file=sys.stderr)
            status = 1
            break
        results.append(result)
        print(format_row(result), file=sys.stderr, flush=True)
    print(format_table(results))
    document = json.dumps([result.as_dict() for result in results], indent=1)
    print(document)
    if args.json:
        with open(args.json, "w") as out:
            out.write(document + "\n")
    if status:
        print("FAILED: see above; figures of the runs before the failure only.")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
