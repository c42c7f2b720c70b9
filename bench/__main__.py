"""``python -m bench``: run the MUCA load benchmark and print its figures.

    .venv/bin/python -m bench                        # every workload
    .venv/bin/python -m bench --workload broadcast --clients 500 --window 16
    .venv/bin/python -m bench --workload join-presence --clients 10000
    .venv/bin/python -m bench --cluster 2            # one node, then two nodes
    .venv/bin/python -m bench --workload abuse       # memory attacks, quiet server
    .venv/bin/python -m bench --workload rooms       # 10,000 users in 1,000 rooms
    .venv/bin/python -m bench --workload search --messages 1000000
    .venv/bin/python -m bench --workload irc         # IRC clients beside MUCA ones
    .venv/bin/python -m bench --workload logins      # 1,000 Argon2id logins

Prints a table and then the same figures as JSON; exits 1 when any message
was lost, duplicated, reordered or misdelivered, or a roster ended wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from collections.abc import Callable

from bench.abuse import abuse_runs
from bench.logins import logins
from bench.server import BenchFailure
from bench.workloads import (
    Result,
    Settings,
    broadcast,
    join_original,
    join_presence,
    join_replay,
    private,
    rooms,
)

WORKLOADS = (
    "all",
    "broadcast",
    "private",
    "join-original",
    "join-presence",
    "history",
    "websocket",
    "abuse",
    "rooms",
    "search",
    "irc",
    "logins",
)


#: What ``--workload`` may be with ``--cluster``.
CLUSTER_WORKLOADS = ("all", "broadcast", "private", "join-presence")


def _labelled(run: Callable[[], Result], label: str) -> Callable[[], Result]:
    def labelled() -> Result:
        result = run()
        result.workload = f"{result.workload} {label}"
        return result

    return labelled


def compared(
    pairs: list[tuple[Callable[[], Result], Callable[[], Result]]], rounds: int
) -> list[Callable[[], Result]]:
    """Each (baseline, candidate) pair, run ``rounds`` times, interleaved:
    the two sides of a pair back to back, the baseline first in odd rounds
    and last in even ones, so that drift on a noisy machine (another
    process, a warming cache) falls on both sides alike."""
    runs: list[Callable[[], Result]] = []
    for number in range(1, rounds + 1):
        label = f"#{number}" if rounds > 1 else ""
        for baseline, candidate in pairs:
            pair = [baseline, candidate] if number % 2 else [candidate, baseline]
            runs.extend(_labelled(run, label) if label else run for run in pair)
    return runs


def history_runs(settings: Settings, rounds: int) -> list[Callable[[], Result]]:
    """History on (SQLite, the default) against --db none, in one run."""
    off = dataclasses.replace(
        settings, server_args=(*settings.server_args, "--db", "none")
    )
    pairs = [
        (
            _labelled(lambda: private(100, 1, off), "db=none"),
            _labelled(lambda: private(100, 1, settings), "sqlite"),
        ),
        (
            _labelled(lambda: broadcast(500, 20, 16, off), "db=none"),
            _labelled(lambda: broadcast(500, 20, 16, settings), "sqlite"),
        ),
    ]
    return [*compared(pairs, rounds), lambda: join_replay(1000, settings)]


def rooms_runs(
    settings: Settings, clients: int, size: int, window: int
) -> list[Callable[[], Result]]:
    """The rooms workload beside the one-room broadcast of the same fan-out
    and window (``size`` clients, every one sending ``window`` at a time:
    each read of the server then carries as many messages as in a room),
    with ``--db none`` and with SQLite history, in one run."""
    off = dataclasses.replace(
        settings, server_args=(*settings.server_args, "--db", "none")
    )
    runs: list[Callable[[], Result]] = []
    for side, chosen in (("db=none", off), ("sqlite", settings)):
        runs.append(_labelled(lambda s=chosen: broadcast(size, size, window, s), side))
        runs.append(_labelled(lambda s=chosen: rooms(clients, size, window, s), side))
    return runs


def irc_runs(
    settings: Settings, broadcasters: int, talkers: int, senders: int, rounds: int
) -> list[Callable[[], Result]]:
    """Broadcast w16 to ``broadcasters`` clients and private w1 at
    ``talkers``, each over the MUCA protocol and by IRC clients, the two
    sides interleaved for ``rounds`` rounds."""
    pairs = [
        (
            lambda: broadcast(broadcasters, senders, 16, settings),
            lambda: broadcast(broadcasters, senders, 16, settings, irc=True),
        ),
        (
            lambda: private(talkers, 1, settings),
            lambda: private(talkers, 1, settings, irc=True),
        ),
    ]
    return compared(pairs, rounds)


def irc_notes(results: list[Result]) -> list[str]:
    """IRC clients against MUCA clients: server CPU per delivery, round by
    round (target within 1.5×)."""
    notes = []
    for name in ("broadcast w16", "private w1"):
        muca: dict[str, Result] = {}
        irc: dict[str, Result] = {}
        for result in results:
            words = result.workload.split()
            number = words.pop() if words[-1].startswith("#") else ""
            if " ".join(words) == name:
                muca[number] = result
            elif " ".join(words) == f"{name} irc":
                irc[number] = result
        if not (muca and irc):
            continue
        ratio = _ratios(muca, irc, lambda r: r.cpu_us_per_delivery or 0.0, "{:.2f}×")
        notes.append(
            f"{name}: IRC clients' server CPU per delivery {ratio} the MUCA"
            " protocol's (target within 1.5×)"
        )
    return notes


def logins_runs(
    settings: Settings, count: int, senders: int, window: int
) -> list[Callable[[], Result]]:
    """The logins workload's four rows (one server run): the broadcast
    before, during and after ``count`` logins, and the logins."""
    results: list[Result] = []

    def run() -> Result:
        results.extend(logins(count, settings, senders=senders, window=window))
        return results[0]

    return [run, *(lambda i=i: results[i] for i in range(1, 4))]


def rooms_notes(results: list[Result]) -> list[str]:
    """Each side's rooms run against its one-room broadcast: server CPU per
    delivery, and the rooms run's peak against the 150 MB target."""
    notes = []
    for side in ("db=none", "sqlite"):
        runs = [
            r
            for r in results
            if r.workload.startswith("rooms w") and r.workload.endswith(f" {side}")
        ]
        for run in runs:
            name = run.workload.replace("rooms", "broadcast", 1)
            base = [r for r in results if r.workload == name]
            if not base or not base[-1].cpu_us_per_delivery:
                continue
            ratio = (run.cpu_us_per_delivery or 0.0) / base[-1].cpu_us_per_delivery
            peak = run.server_peak_rss_mb or 0.0
            notes.append(
                f"{run.workload}: server CPU per delivery {ratio:.2f}× the"
                f" one-room broadcast's (target 1.2×); peak {peak:.0f} MB"
                f" ({'within' if peak < 150 else 'over'} the 150 MB target)"
            )
    return notes


def _rounds(results: list[Result], name: str) -> dict[str, dict[str, Result]]:
    """The results of workload ``name``, by side, then by round (``""``
    when there was one round)."""
    sides: dict[str, dict[str, Result]] = {}
    for result in results:
        words = result.workload.split()
        number = words.pop() if words[-1].startswith("#") else ""
        if " ".join(words[:-1]) == name:
            sides.setdefault(words[-1], {})[number] = result
        elif " ".join(words) == name:
            sides.setdefault(str(result.nodes or 1), {})[number] = result
    return sides


def _ratios(
    base: dict[str, Result],
    other: dict[str, Result],
    figure: Callable[[Result], float],
    form: str,
) -> str:
    """``figure`` of ``other`` over ``base``, round by round, in ``form``:
    the median, then each round's when there were several."""
    ratios = [
        figure(other[number]) / figure(base[number])
        for number in sorted(base)
        if number in other and figure(base[number])
    ]
    if not ratios:
        return "-"
    text = form.format(statistics.median(ratios))
    if len(ratios) > 1:
        rounds = ", ".join(form.format(ratio) for ratio in ratios)
        text += f" (median of {len(ratios)} rounds: {rounds})"
    return text


def _per_message(result: Result) -> float:
    return (result.server_cpu_s or 0.0) * 1e6 / max(1, result.messages or 0)


def history_notes(results: list[Result]) -> list[str]:
    """History on against off: deliveries/s round by round, and the server
    CPU per stored message (medians)."""
    notes = []
    for name in ("private w1", "broadcast w16"):
        sides = _rounds(results, name)
        off, on = sides.get("db=none"), sides.get("sqlite")
        if not (off and on):
            continue
        rate = _ratios(off, on, lambda r: r.deliveries_per_s or 0.0, "{:.0%}")
        cpu = statistics.median(_per_message(result) for result in on.values())
        extra = statistics.median(
            _per_message(on[number]) - _per_message(off[number])
            for number in on
            if number in off
        )
        notes.append(
            f"{name}: history on gives {rate} of the deliveries/s of --db none;"
            f" server CPU {cpu:.1f} µs per stored message"
            f" ({extra:+.1f} µs against --db none)"
        )
    return notes


def cluster_notes(results: list[Result]) -> list[str]:
    """The cluster against one node: server CPU per delivery and
    deliveries/s, round by round."""
    notes = []
    for name in ("broadcast w16", "private w1"):
        sides = _rounds(results, name)
        single = sides.pop("1", None)
        for nodes, cluster in sorted(sides.items()):
            if not single or not nodes.isdigit():
                continue
            cpu = _ratios(
                single, cluster, lambda r: r.cpu_us_per_delivery or 0.0, "{:.2f}×"
            )
            rate = _ratios(
                single, cluster, lambda r: r.deliveries_per_s or 0.0, "{:.2f}×"
            )
            notes.append(
                f"{name}: {nodes} nodes against one, server CPU per delivery"
                f" {cpu}; deliveries/s {rate}"
            )
    return notes


def cluster_plan(
    args: argparse.Namespace, settings: Settings
) -> list[Callable[[], Result]]:
    """``--cluster N``: broadcast w16 to 1,000 clients, private w1 at 200,
    10,000 presence joins; each on one node, then on N nodes of a cluster
    (``--workload`` other than ``all``: that one only). The message
    workloads run ``--rounds`` times, one node and the cluster interleaved."""
    wanted = args.workload
    # Like for like: the cluster's nodes run with --db none (their default),
    # so the single node does too (its default would be SQLite history).
    single = dataclasses.replace(
        settings, server_args=(*settings.server_args, "--db", "none")
    )
    cluster = dataclasses.replace(single, nodes=args.cluster)
    pairs = []
    if wanted in ("all", "broadcast"):
        pairs.append(
            (
                lambda: broadcast(1000, args.senders, 16, single),
                lambda: broadcast(1000, args.senders, 16, cluster),
            )
        )
    if wanted in ("all", "private"):
        pairs.append(
            (lambda: private(200, 1, single), lambda: private(200, 1, cluster))
        )
    runs = compared(pairs, args.rounds)
    if wanted in ("all", "join-presence"):
        runs.append(lambda: join_presence(10000, single))
        runs.append(lambda: join_presence(10000, cluster))
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
        runs.extend(history_runs(settings, args.rounds))
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
    if args.workload == "rooms":
        # Not part of "all": 10,000 clients, twice.
        runs.extend(
            rooms_runs(
                settings, args.clients or 10000, args.room_size, args.window or 1
            )
        )
    if args.workload == "irc":
        # Not part of "all": the IRC front-end against the MUCA protocol.
        runs.extend(
            irc_runs(
                settings,
                args.clients or 500,
                args.clients or 100,
                args.senders,
                args.rounds,
            )
        )
    if args.workload == "logins":
        # Not part of "all": --clients accounts log in during a broadcast.
        runs.extend(
            logins_runs(settings, args.clients or 1000, args.senders, args.window or 1)
        )
    if args.workload == "abuse":
        # Not part of "all": each attack runs for three times --duration.
        runs.extend(abuse_runs(settings, args.clients))
    return runs


# (Result field, title, format, width wide enough for any run's figure, so
# that progress rows printed one by one line up with the header.)
_COLUMNS = [
    ("workload", "workload", "{}", 24),
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
    lines.extend(f"  {note}" for note in cluster_notes(results))
    lines.extend(f"  {note}" for note in rooms_notes(results))
    lines.extend(f"  {note}" for note in irc_notes(results))
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
        "--room-size",
        type=int,
        default=10,
        help="rooms: clients to a small room (and the one-room broadcast's)",
    )
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
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="history and --cluster: each comparison this many times, the "
        "two sides interleaved; the notes give the median ratio",
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=100_000,
        help="search: messages in the generated database",
    )
    parser.add_argument(
        "--search-postgres",
        metavar="CONNINFO",
        help="search: also on this PostgreSQL database (its muca_ tables dropped)",
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
    if args.workload == "search":
        # Not a server run: the store's queries over a generated database.
        from bench import search

        output = search.run(
            args.messages,
            args.search_postgres,
            lambda line: print(line, file=sys.stderr, flush=True),
        )
        print(output)
        return 0
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
