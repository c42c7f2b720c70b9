"""The load benchmark in miniature, so that it never rots: every workload
against a real ``twistd -n muca``, asserting no loss; timings are not
checked here (see bench/README.md for the figures)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re

from twisted.trial import unittest

from bench import __main__ as bench_main
from bench.load import Client, LoadGenerator, unframe
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
from muca.protocol.wire import websocket_text_frame

TINY = Settings(duration=0.3, timeout=30.0)


class BenchSmokeTests(unittest.TestCase):
    """Each workload, tiny, end to end."""

    def test_broadcast_delivers_every_message_to_every_other_client(self) -> None:
        result = broadcast(clients=6, senders=3, window=4, settings=TINY)
        self.assertGreater(result.messages, 0)
        self.assertEqual(result.deliveries, result.messages * 5)
        self.assertGreaterEqual(result.server_cpu_s, 0)
        # Read from the server process itself: a twistd holds well over 10 MB.
        self.assertGreater(result.server_peak_rss_mb, 10)

    def test_private_pairs_deliver_only_to_the_partner(self) -> None:
        result = private(clients=6, window=2, settings=TINY)
        self.assertGreater(result.messages, 0)
        self.assertEqual(result.deliveries, result.messages)

    def test_irc_clients_broadcast_and_talk_in_private(self) -> None:
        result = broadcast(clients=6, senders=3, window=4, settings=TINY, irc=True)
        self.assertEqual(result.workload, "broadcast w4 irc")
        self.assertGreater(result.messages, 0)
        self.assertEqual(result.deliveries, result.messages * 5)
        result = private(clients=6, window=2, settings=TINY, irc=True)
        self.assertEqual(result.workload, "private w2 irc")
        self.assertGreater(result.messages, 0)
        self.assertEqual(result.deliveries, result.messages)

    def test_irc_notes_compare_irc_clients_with_muca_ones_round_by_round(
        self,
    ) -> None:
        results = []
        for number, (muca, irc) in enumerate([(0.4, 0.5), (0.5, 0.7)], start=1):
            base = Result(f"broadcast w16 #{number}", 500, 20, 16)
            base.cpu_us_per_delivery = muca
            other = Result(f"broadcast w16 irc #{number}", 500, 20, 16)
            other.cpu_us_per_delivery = irc
            results += [base, other]
        alone = Result("private w1", 100, 100, 1)
        alone.cpu_us_per_delivery = 50.0
        results.append(alone)
        self.assertEqual(
            bench_main.irc_notes(results),
            [
                "broadcast w16: IRC clients' server CPU per delivery 1.32×"
                " (median of 2 rounds: 1.25×, 1.40×) the MUCA protocol's"
                " (target within 1.5×)"
            ],
        )
        plan = bench_main.irc_runs(TINY, 6, 4, 3, rounds=1)
        self.assertEqual(len(plan), 4)

    def test_original_clients_all_see_the_full_list(self) -> None:
        result = join_original(clients=20, settings=TINY)
        self.assertIsNotNone(result.join_s)
        self.assertGreater(result.server_peak_rss_mb, 0)

    def test_presence_clients_join_then_one_broadcast_reaches_all(self) -> None:
        result = join_presence(clients=30, settings=TINY)
        self.assertEqual(result.deliveries, 29)

    def test_history_clients_join_and_each_gets_its_replay(self) -> None:
        result = join_replay(clients=20, settings=TINY, replay=5)
        self.assertIsNotNone(result.join_s)
        self.assertEqual(
            result.notes,
            [
                f"all 20 clients had their replay of 5 messages after "
                f"{result.join_s:.2f} s"
            ],
        )

    def test_history_notes_compare_history_on_with_off(self) -> None:
        off = Result("private w1 db=none", 100, 100, 1, 1000, 1000, 10_000.0)
        off.server_cpu_s = 0.05
        on = Result("private w1 sqlite", 100, 100, 1, 800, 800, 8_000.0)
        on.server_cpu_s = 0.08
        self.assertEqual(
            bench_main.history_notes([off, on]),
            [
                "private w1: history on gives 80% of the deliveries/s of --db none;"
                " server CPU 100.0 µs per stored message (+50.0 µs against --db none)"
            ],
        )

    def test_history_notes_give_the_median_of_the_rounds_and_each_round(
        self,
    ) -> None:
        results = []
        # Round by round, on / off: 70 %, 95 %, 80 %; the median is 80 %.
        for number, (rate_off, rate_on) in enumerate(
            [(10_000, 7_000), (8_000, 7_600), (10_000, 8_000)], start=1
        ):
            off = Result(f"private w1 db=none #{number}", 100, 100, 1, 1000)
            off.deliveries_per_s, off.server_cpu_s = rate_off, 0.05
            on = Result(f"private w1 sqlite #{number}", 100, 100, 1, 1000)
            on.deliveries_per_s, on.server_cpu_s = rate_on, 0.05 + number / 100
            results += [on, off] if number % 2 == 0 else [off, on]
        self.assertEqual(
            bench_main.history_notes(results),
            [
                "private w1: history on gives 80% (median of 3 rounds: 70%, 95%,"
                " 80%) of the deliveries/s of --db none; server CPU 70.0 µs per"
                " stored message (+20.0 µs against --db none)"
            ],
        )

    def test_cluster_notes_compare_each_round_with_its_own_single_node(
        self,
    ) -> None:
        results = []
        for number, (single_us, cluster_us) in enumerate(
            [(80.0, 160.0), (100.0, 120.0)], start=1
        ):
            single = Result(f"private w1 #{number}", 200, 200, 1)
            single.cpu_us_per_delivery, single.deliveries_per_s = single_us, 1000
            cluster = Result(f"private w1 #{number}", 200, 200, 1, nodes=2)
            cluster.cpu_us_per_delivery, cluster.deliveries_per_s = cluster_us, 900
            results += [single, cluster]
        self.assertEqual(
            bench_main.cluster_notes(results),
            [
                "private w1: 2 nodes against one, server CPU per delivery 1.60×"
                " (median of 2 rounds: 2.00×, 1.20×); deliveries/s 0.90×"
                " (median of 2 rounds: 0.90×, 0.90×)"
            ],
        )

    def test_compared_runs_interleave_and_swap_sides_every_round(self) -> None:
        ran: list[str] = []

        def side(name: str):
            def run() -> Result:
                ran.append(name)
                return Result(name, 1)

            return run

        runs = bench_main.compared([(side("a off"), side("a on"))], rounds=3)
        workloads = [run().workload for run in runs]
        self.assertEqual(ran, ["a off", "a on", "a on", "a off", "a off", "a on"])
        self.assertEqual(
            workloads,
            ["a off #1", "a on #1", "a on #2", "a off #2", "a off #3", "a on #3"],
        )
        single = bench_main.compared([(side("b off"), side("b on"))], rounds=1)
        self.assertEqual([run().workload for run in single], ["b off", "b on"])


class WebSocketBenchTests(unittest.TestCase):
    """The WebSocket rows: clients on the web listener, the same checks."""

    def test_websocket_broadcast_delivers_every_message_to_every_other_client(
        self,
    ) -> None:
        result = broadcast(
            clients=6, senders=3, window=4, settings=TINY, websocket=True
        )
        self.assertEqual(result.workload, "broadcast w4 ws")
        self.assertGreater(result.messages, 0)
        self.assertEqual(result.deliveries, result.messages * 5)

    def test_websocket_clients_join_then_one_broadcast_reaches_all(self) -> None:
        result = join_presence(clients=30, settings=TINY, websocket=True)
        self.assertEqual(result.deliveries, 29)

    def test_unframe_cuts_frames_of_every_length_wherever_tcp_splits(self) -> None:
        texts = [
            b"{}",
            b'{"A":"' + b"x" * 200 + b'"}',
            b'{"B":"' + b"y" * 70000 + b'"}',
        ]
        stream = b"".join(websocket_text_frame(text) for text in texts)
        for cut in (1, 2, 3, 9, 150, 70000, len(stream) - 1):
            lines, rest = unframe(stream[:cut])
            more, rest = unframe(rest + stream[cut:])
            self.assertEqual((lines or b"") + more, b"\n".join(texts) + b"\n", cut)
            self.assertEqual(rest, b"")

    def test_unframe_refuses_what_the_server_never_sends(self) -> None:
        self.assertIsNone(unframe(b"\x82\x02{}")[0])  # binary
        self.assertIsNone(unframe(b"\x81\x82abcd{}")[0])  # masked


class OriginalRosterParsingTests(unittest.TestCase):
    """The generator cuts original-framing rosters right wherever TCP splits them."""

    STREAM = (
        b'{"CMD": "ACK", "TYPE": "OKAY"}'
        b'{"CMD": "LIST", "DATA": [{"UN": "n0", "UID": "u0"}]}'
        b'{"CMD": "LIST", "DATA": [{"UN": "n0", "UID": "u0"}, '
        b'{"UN": "n1", "UID": "u1"}]}'
    )

    def setUp(self) -> None:
        self.generator = LoadGenerator(port=1)
        self.addCleanup(self.generator.close)

    def test_every_split_point_gives_the_last_list(self) -> None:
        for cut in range(1, len(self.STREAM)):
            client = Client(0, presence=False)
            self.generator._on_original_roster(client, self.STREAM[:cut])
            self.generator._on_original_roster(client, self.STREAM[cut:])
            self.assertEqual((client.view, client.acked), (2, True), cut)
            self.assertEqual(client.tail, b"")

    def test_a_refused_join_fails_the_run(self) -> None:
        client = Client(0, presence=False)
        with self.assertRaises(BenchFailure):
            self.generator._on_original_roster(
                client, b'{"CMD": "ACK", "TYPE": "FAIL"}{"CMD": "LIST", "DATA": []}'
            )


class NativeRosterParsingTests(unittest.TestCase):
    """The generator counts a presence client's roster wherever TCP splits it."""

    STREAM = (
        b'{"CMD":"ACK","TYPE":"OKAY"}\n'
        b'{"CMD":"LIST","DATA":[{"UN":"n0","UID":"u0"},{"UN":"n1","UID":"u1"}]}\n'
        b'{"CMD":"PRESENCE","JOINED":[{"UN":"n2","UID":"u2"}],"LEFT":[]}\n'
    )

    def setUp(self) -> None:
        self.generator = LoadGenerator(port=1)
        self.addCleanup(self.generator.close)

    def test_every_split_point_counts_list_plus_deltas(self) -> None:
        for cut in range(1, len(self.STREAM)):
            client = Client(0, presence=True)
            self.generator._on_native_roster(client, self.STREAM[:cut])
            self.generator._on_native_roster(client, self.STREAM[cut:])
            self.assertEqual((client.view, client.acked, client.kind), (3, True, 0))

    def test_every_three_way_split_counts_the_same(self) -> None:
        stream = self.STREAM
        for first in range(1, len(stream), 3):
            for second in range(first, len(stream), 2):
                client = Client(0, presence=True)
                for piece in stream[:first], stream[first:second], stream[second:]:
                    if piece:
                        self.generator._on_native_roster(client, piece)
                self.assertEqual((client.view, client.kind), (3, 0), (first, second))

    def test_a_leave_during_a_join_workload_fails_the_run(self) -> None:
        client = Client(0, presence=True)
        with self.assertRaises(BenchFailure):
            self.generator._on_native_roster(
                client,
                self.STREAM + b'{"CMD":"PRESENCE","JOINED":[],"LEFT":["u1"]}\n',
            )


class OutputTests(unittest.TestCase):
    """The progress rows line up with the header; a legend follows the table."""

    def assert_aligned(self, header: str, rows: list[str]) -> None:
        """Every cell of every row ends where its column title ends."""
        # Titles are two spaces apart at least ("p50 ms" has one inside).
        ends = [m.end() for m in re.finditer(r"\S(?=  |$)", header)]
        self.assertEqual(len(ends), len(bench_main._COLUMNS), header)
        for row in rows:
            self.assertEqual(len(row), len(header), f"\n{header}\n{row}")
            for end in ends[1:]:  # the first column is left-aligned
                self.assertNotEqual(row[end - 1], " ", f"\n{header}\n{row}")
                self.assertTrue(end == len(row) or row[end] == " ")

    def test_rows_of_very_different_runs_line_up_with_the_header(self) -> None:
        small = Result("private w1", 4, senders=None, deliveries_per_s=12.0,
                       latency_p50_ms=0.1, latency_p99_ms=0.2, latency_max_ms=0.3,
                       server_cpu_s=0.01, cpu_us_per_delivery=1.0,
                       server_peak_rss_mb=30.0, generator_cpu_s=0.1)  # fmt: skip
        large = Result("join presence", 10000, senders=20, deliveries_per_s=1234567.0,
                       latency_p50_ms=123.45, latency_p99_ms=4567.89,
                       latency_max_ms=12345.6, join_s=12.34, server_cpu_s=123.45,
                       cpu_us_per_delivery=12.34, server_peak_rss_mb=1234.5,
                       kb_per_connection=123.4, generator_cpu_s=123.4)  # fmt: skip
        header = bench_main.format_header()
        self.assert_aligned(header, [bench_main.format_row(r) for r in (small, large)])
        table = bench_main.format_table([small, large]).splitlines()
        self.assertEqual(
            table[:3], [header, *map(bench_main.format_row, (small, large))]
        )

    def test_a_run_prints_aligned_progress_and_a_legend_under_the_table(self) -> None:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = bench_main.main(
                ["--workload", "private", "--clients", "4", "--window", "1",
                 "--duration", "0.2"]
            )  # fmt: skip
        self.assertEqual(status, 0)
        progress = err.getvalue().splitlines()
        self.assertEqual(len(progress), 2, progress)
        self.assert_aligned(progress[0], progress[1:])
        self.assertTrue(progress[1].startswith("private"))
        printed = out.getvalue()
        table = printed[: printed.index("[")].splitlines()
        self.assertEqual(table[:2], progress)
        legend = table[table.index("") + 1 :]
        self.assertEqual(legend, list(bench_main.LEGEND))
        for title in ("deliv/s", "p50/p99/max ms", "join s", "srv CPU s",
                      "µs/deliv", "peak MB", "kB/conn", "gen CPU s"):  # fmt: skip
            self.assertTrue(any(line.startswith(title + ":") for line in legend), title)
        self.assertEqual(json.loads(printed[printed.index("[") :])[0]["clients"], 4)

    def test_cluster_rows_of_one_workload_with_each_node_noted(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            status = bench_main.main(
                [
                    "--cluster",
                    "2",
                    "--workload",
                    "private",
                    "--duration",
                    "0.2",
                    "--rounds",
                    "2",
                ]
            )
        self.assertEqual(status, 0)
        printed = out.getvalue()
        rows = json.loads(printed[printed.index("[") :])
        self.assertEqual(
            [(r["workload"], r["nodes"]) for r in rows],
            [
                ("private w1 #1", None),
                ("private w1 #1", 2),
                ("private w1 #2", 2),
                ("private w1 #2", None),
            ],
        )
        for cluster in (rows[1], rows[2]):
            self.assertEqual(
                [n.split(":")[0] for n in cluster["notes"]],
                ["node 1", "node 2", "redis-server"],
            )
        self.assertRegex(
            printed,
            r"private w1: 2 nodes against one, server CPU per delivery \d+\.\d\d×"
            r" \(median of 2 rounds: \d+\.\d\d×, \d+\.\d\d×\)",
        )


class AbuseBenchTests(unittest.TestCase):
    """``--workload abuse``, small: each memory attack's peak against the
    quiet server's, with the 100 MB target stated."""

    def test_abuse_rows_compare_each_attack_with_a_quiet_server(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            status = bench_main.main(
                ["--workload", "abuse", "--clients", "5", "--duration", "0.5"]
            )
        self.assertEqual(status, 0)
        printed = out.getvalue()
        rows = json.loads(printed[printed.index("[") :])
        self.assertEqual(
            [r["workload"] for r in rows],
            ["abuse quiet", "abuse pings", "abuse replays", "abuse slow readers"],
        )
        quiet = rows[0]["server_peak_rss_mb"]
        for row in rows[1:]:
            self.assertRegex(
                row["notes"][0],
                r"peak \d+\.\d MB, -?\d+\.\d MB above the quiet server's"
                rf" {quiet:.1f} MB: (within|OVER) the 100 MB target",
            )
        # Five non-reading clients of a 6 MB replay each: all dropped.
        self.assertIn("5 of 5 dropped as slow consumers", rows[2]["notes"][1])


class RoomsBenchTests(unittest.TestCase):
    """``--workload rooms``, small: 200 users in 20 rooms of 10 (and all in
    general), each sending to its room; beside the one-room broadcast of the
    same fan-out, without and with SQLite history."""

    def test_every_message_reaches_its_room_mates_and_nobody_else(self) -> None:
        # Rosters and ROOMS 0.5 s apart: the join waits for the last ROOMS.
        slow = dataclasses.replace(TINY, list_interval=0.5)
        result = rooms(clients=200, size=10, window=2, settings=slow)
        self.assertEqual(result.workload, "rooms w2")
        self.assertGreater(result.messages, 200)
        self.assertEqual(result.deliveries, result.messages * 9)
        self.assertIsNotNone(result.join_s)
        self.assertRegex(
            result.notes[0],
            r"^20 rooms of 10 and 200 in general: rosters complete after "
            r"\d+\.\d\d s, the last ROOMS after \d+\.\d\d s, \d+\.\d\d s "
            r"server CPU, \d+\.\d ROOMS per client$",
        )
        self.assertRegex(
            result.notes[1],
            r"^peak \d+\.\d MB after the join, \d+\.\d MB after the messages$",
        )

    def test_a_run_reports_rooms_beside_the_one_room_broadcast(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            status = bench_main.main(
                ["--workload", "rooms", "--clients", "200", "--duration", "0.3"]
            )
        self.assertEqual(status, 0)
        printed = out.getvalue()
        rows = json.loads(printed[printed.index("[") :])
        self.assertEqual(
            [(r["workload"], r["clients"], r["senders"]) for r in rows],
            [
                ("broadcast w1 db=none", 10, 10),
                ("rooms w1 db=none", 200, 200),
                ("broadcast w1 sqlite", 10, 10),
                ("rooms w1 sqlite", 200, 200),
            ],
        )
        for row in rows:
            # Fan-out 9 on both sides: 10 in a room, 10 in the broadcast.
            self.assertEqual(row["deliveries"], row["messages"] * 9)
        table = printed[: printed.index("[")].splitlines()
        for side in ("db=none", "sqlite"):
            self.assertTrue(
                any(line.startswith(f"rooms w1 {side} ") for line in table), side
            )
            self.assertTrue(
                any(
                    re.fullmatch(
                        rf"  rooms w1 {side}: server CPU per delivery \d+\.\d\d×"
                        r" the one-room broadcast's \(target 1\.2×\); peak \d+ MB"
                        r" \((within|over) the 150 MB target\)",
                        line,
                    )
                    for line in table
                ),
                table,
            )


class SearchBenchTests(unittest.TestCase):
    """``--workload search`` in miniature, on SQLite and PostgreSQL."""

    def test_the_generated_history_finds_every_kind_of_query(self) -> None:
        from bench import search
        from muca.store.search import parse, words

        messages = search.generate(3000)
        cjk = [m for m in messages if not m.text.isascii()]
        self.assertTrue(200 <= len(cjk) <= 400, len(cjk))
        kinds = search.queries()
        common = kinds["common word"][0]
        self.assertGreater(sum(common in words(m.text) for m in messages), 300)
        for texts in kinds.values():
            for text in texts:
                parse(text)  # every query is a good one

    def test_a_run_prints_figures_for_both_backends(self) -> None:
        from bench import search
        from tests.support import postgres as pgsupport

        conninfo = pgsupport.fresh_database(self)
        printed = search.run(2000, conninfo, lambda line: None)
        table = printed[: printed.index("[")]
        rows = json.loads(printed[printed.index("[") :])
        self.assertEqual([r["backend"] for r in rows], ["sqlite", "postgresql"])
        for row in rows:
            self.assertEqual(row["messages"], 2000)
            self.assertEqual(set(row["query_ms"]), set(search.queries()))
            self.assertGreater(row["bytes_with_index"], row["bytes_without_index"])
            self.assertGreater(row["cpu_ratio"], 0)
        self.assertIn("sqlite, 2,000 messages: database", table)
        self.assertIn("  cjk part       p50", table)


class LoginsBenchTests(unittest.TestCase):
    """``--workload logins``, small: 20 accounts log in with Argon2id on a
    ``--auth db`` server while a broadcast runs, beside the same broadcast
    without logins."""

    def test_every_login_succeeds_during_a_checked_broadcast(self) -> None:
        from bench.logins import logins

        quiet, busy, after, row = logins(20, TINY, clients=6, senders=3, window=2)
        self.assertEqual(
            [quiet.workload, busy.workload, after.workload, row.workload],
            [
                "logins broadcast w2 no logins",
                "logins broadcast w2 with logins",
                "logins broadcast w2 after logins",
                "logins",
            ],
        )
        for broadcast_row in (quiet, busy, after):
            self.assertGreater(broadcast_row.messages, 0)
            self.assertEqual(broadcast_row.deliveries, broadcast_row.messages * 5)
            self.assertGreater(broadcast_row.latency_p99_ms, 0)
        self.assertEqual(row.clients, 20)
        self.assertRegex(row.notes[0], r"^set-up: 26 accounts written in \d+\.\d\d s$")
        self.assertRegex(
            row.notes[1],
            r"^20 of 20 logins OKAY in \d+\.\d\d s: \d+\.\d logins/s, 4 at a"
            r" time; \d+ ms server CPU a login",
        )
        self.assertRegex(
            row.notes[2],
            r"^broadcast p99 \d+\.\d\d ms with logins against \d+\.\d\d ms"
            r" before and \d+\.\d\d ms after them: \d+\.\d\d× their mean"
            r" \((within|OVER) the 2× target\)$",
        )
        # The login clients came and went in sight of the broadcast clients
        # (deltas batched, the last ones maybe after the last phase).
        phases = re.match(
            r"^(\d+) broadcast phases during the logins; (\d+) PRESENCE lines"
            r" of login clients set aside$",
            busy.notes[0],
        )
        self.assertIsNotNone(phases, busy.notes[0])
        self.assertGreater(int(phases.group(1)), 0)
        self.assertGreater(int(phases.group(2)), 0)
        self.assertGreater(row.latency_p50_ms, 0)
        self.assertGreater(row.server_cpu_s, 0)

    def test_presence_lines_are_set_aside_wherever_tcp_splits(self) -> None:
        from bench.logins import AccountsGenerator

        stream = (
            b'{"CMD":"MSG","MSG":"0.1.5"}\n'
            b'{"CMD":"PRESENCE","JOINED":[{"UID":"l1"}],"LEFT":[]}\n'
            b'{"CMD":"MSG","MSG":"0.2.6"}\n'
            b'{"CMD":"PRESENCE","JOINED":[],"LEFT":["l1"]}\n'
        )
        generator = AccountsGenerator(1)
        self.addCleanup(generator.close)
        client = Client(0, True)
        for cut in range(len(stream) + 1):
            seen: list[bytes] = []
            generator.presence_lines = 0
            wrapped = generator._without_presence(
                lambda c, data, seen=seen: seen.append(data)
            )
            wrapped(client, stream[:cut])
            wrapped(client, stream[cut:])
            self.assertEqual(
                b"".join(seen),
                b'{"CMD":"MSG","MSG":"0.1.5"}\n{"CMD":"MSG","MSG":"0.2.6"}\n',
            )
            self.assertTrue(all(data.endswith(b"\n") for data in seen))
            self.assertEqual(generator.presence_lines, 2)
