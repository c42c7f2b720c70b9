"""The workloads of the benchmark: each starts its own server and measures it."""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.cluster import Cluster
from bench.irc import IrcGenerator
from bench.load import Exchange, LoadGenerator, raise_fd_limit
from bench.rooms import RoomsGenerator
from bench.server import ServerProcess


@dataclass(slots=True)
class Result:
    """The figures of one workload run; ``None`` where they do not apply."""

    workload: str
    clients: int
    senders: int | None = None
    window: int | None = None
    messages: int | None = None
    deliveries: int | None = None
    deliveries_per_s: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    join_s: float | None = None
    server_cpu_s: float | None = None
    cpu_us_per_delivery: float | None = None
    server_peak_rss_mb: float | None = None
    kb_per_connection: float | None = None
    generator_cpu_s: float | None = None
    nodes: int | None = None  # None: one plain server, no cluster
    redis_cpu_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready values, rounded."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 3)
        return out


@dataclass(frozen=True, slots=True)
class Settings:
    """Knobs shared by all workloads."""

    duration: float = 5.0
    list_interval: float | None = None  # None: the server's default
    max_pending: int = 1000
    timeout: float = 120.0
    server_args: tuple[str, ...] = ()
    profile_dir: str | None = None  # py-spy profiles of the server go here
    nodes: int = 0  # > 0: a cluster of this many nodes on a private Redis


def _percentile(ordered: list[int], fraction: float) -> float:
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, int(fraction * len(ordered)))
    return ordered[index] / 1e6


def _fill_latency(result: Result, exchange: Exchange) -> None:
    ordered = sorted(exchange.latencies_ns)
    result.latency_p50_ms = _percentile(ordered, 0.50)
    result.latency_p99_ms = _percentile(ordered, 0.99)
    result.latency_max_ms = ordered[-1] / 1e6 if ordered else None


def _generator_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Run:
    """A server (or a cluster of ``settings.nodes``) and a generator for one
    workload, cleaned up on exit."""

    def __init__(
        self,
        settings: Settings,
        result: Result,
        websocket: bool = False,
        generator: type[LoadGenerator] = LoadGenerator,
        irc: bool = False,
    ) -> None:
        raise_fd_limit(result.clients * 2 + 200)
        if irc:
            # IRC clients, on the server's --irc listener.
            generator = IrcGenerator
            settings = dataclasses.replace(
                settings,
                server_args=(
                    *settings.server_args,
                    "--irc",
                    "tcp:0:interface=127.0.0.1",
                ),
            )
        self.irc = irc
        self.settings = settings
        profile = None
        if settings.profile_dir:
            name = f"{result.workload}-{result.clients}".replace(" ", "-")
            if settings.nodes:
                name += f"-cluster{settings.nodes}"
            profile = os.path.join(settings.profile_dir, name + ".txt")
        self.cluster: Cluster | None = None
        self.server: Any
        if settings.nodes:
            result.nodes = settings.nodes
            self.cluster = self.server = Cluster(
                settings.nodes, settings.list_interval, settings.server_args, profile
            )
        else:
            self.server = ServerProcess(
                settings.list_interval, settings.server_args, profile
            )
        self.generator: Any = None
        self.generator_class = generator
        self.websocket = websocket

    def __enter__(self) -> _Run:
        self.server.start()
        ports = self.cluster.ports if self.cluster is not None else None
        port = self.server.web_port if self.websocket else self.server.port
        if self.irc:
            port = self.server.irc_port
        self.generator = self.generator_class(
            port,
            check=self.server.check_alive,
            websocket=self.websocket,
            ports=ports,
        )
        return self

    def per_node(
        self,
        result: Result,
        cpu_before: list[float],
        redis_before: float,
        deliveries: int | None,
    ) -> None:
        """Cluster runs: each node's share, and Redis's CPU, as notes."""
        cluster = self.cluster
        if cluster is None:
            return
        result.redis_cpu_s = cluster.redis.cpu_seconds() - redis_before
        count = len(cluster.nodes)
        for index, (node, before) in enumerate(
            zip(cluster.nodes, cpu_before, strict=True)
        ):
            cpu = node.cpu_seconds() - before
            note = f"node {index + 1}: {cpu:.2f} s CPU"
            if deliveries:
                # Client i is on node i % count: each node writes its share.
                share = deliveries / count
                note += f", {cpu * 1e6 / share:.2f} µs/delivery"
            note += f", peak {node.memory().peak_kb / 1024:.1f} MB"
            result.notes.append(note)
        result.notes.append(f"redis-server: {result.redis_cpu_s:.2f} s CPU")

    def cpu_marks(self) -> tuple[list[float], float]:
        """Each node's and Redis's CPU so far (cluster runs)."""
        if self.cluster is None:
            return [], 0.0
        return self.cluster.node_cpu_seconds(), self.cluster.redis.cpu_seconds()

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.generator is not None:
                self.generator.close()
        finally:
            self.server.stop()

    def join(self, result: Result, count: int, presence: bool) -> None:
        """Join ``count`` clients; record the time, CPU and memory it took."""
        server, generator = self.server, self.generator
        assert generator is not None
        before = server.memory().rss_kb
        cpu = server.cpu_seconds()
        marks = self.cpu_marks()
        result.join_s = generator.join(
            count, presence, self.settings.max_pending, self.settings.timeout
        )
        result.server_cpu_s = server.cpu_seconds() - cpu
        after = server.memory()
        result.notes.append(
            f"all {count} ACKs after {generator.all_acked_s:.2f} s, rosters complete "
            f"after {result.join_s:.2f} s, {result.server_cpu_s:.2f} s server CPU"
        )
        generator.verify_rosters()
        result.kb_per_connection = (after.rss_kb - before) / count
        result.server_peak_rss_mb = after.peak_kb / 1024
        self.per_node(result, *marks, None)

    def exchange(
        self, result: Result, senders, private: bool, node_notes=True, **kwargs
    ) -> None:
        """Run a message phase; record throughput, latency and CPU (and, in
        a cluster with ``node_notes``, each node's)."""
        server, generator = self.server, self.generator
        assert generator is not None
        cpu = server.cpu_seconds()
        marks = self.cpu_marks()
        exchange = generator.exchange(senders, private, **kwargs)
        result.server_cpu_s = server.cpu_seconds() - cpu
        result.messages = exchange.messages
        result.deliveries = exchange.deliveries
        result.deliveries_per_s = exchange.deliveries / exchange.seconds
        if exchange.deliveries:
            result.cpu_us_per_delivery = result.server_cpu_s * 1e6 / exchange.deliveries
        _fill_latency(result, exchange)
        result.server_peak_rss_mb = server.memory().peak_kb / 1024
        if node_notes:
            self.per_node(result, *marks, exchange.deliveries)

    def exchange_rooms(self, result: Result, window: int, duration: float) -> None:
        """The rooms workload's message phase (see :mod:`bench.rooms`)."""
        server, generator = self.server, self.generator
        cpu = server.cpu_seconds()
        exchange = generator.exchange_rooms(window, duration)
        result.server_cpu_s = server.cpu_seconds() - cpu
        result.messages = exchange.messages
        result.deliveries = exchange.deliveries
        result.deliveries_per_s = exchange.deliveries / exchange.seconds
        if exchange.deliveries:
            result.cpu_us_per_delivery = result.server_cpu_s * 1e6 / exchange.deliveries
        _fill_latency(result, exchange)
        result.server_peak_rss_mb = server.memory().peak_kb / 1024


def _named(workload: str, websocket: bool, irc: bool = False) -> str:
    if irc:
        return f"{workload} irc"
    return f"{workload} ws" if websocket else workload


def broadcast(
    clients: int,
    senders: int,
    window: int,
    settings: Settings,
    websocket: bool = False,
    irc: bool = False,
) -> Result:
    """``senders`` clients broadcast to all, ``window`` messages in flight each;
    over WebSocket when ``websocket``, IRC clients in #general when ``irc``."""
    senders = min(senders, clients)
    result = Result(
        _named(f"broadcast w{window}", websocket, irc), clients, senders, window
    )
    cpu = _generator_cpu()
    with _Run(settings, result, websocket, irc=irc) as run:
        run.join(result, clients, presence=True)
        result.notes.clear()  # the join is set-up here, not the measure
        run.exchange(
            result,
            run.generator.clients[:senders],
            False,
            window=window,
            duration=settings.duration,
        )
    result.generator_cpu_s = _generator_cpu() - cpu
    return result


def private(clients: int, window: int, settings: Settings, irc: bool = False) -> Result:
    """Clients 2k and 2k+1 send each other private messages (IRC clients'
    PRIVMSG to a nick when ``irc``)."""
    result = Result(
        _named(f"private w{window}", False, irc), clients, clients // 2 * 2, window
    )
    cpu = _generator_cpu()
    with _Run(settings, result, irc=irc) as run:
        run.join(result, clients, presence=True)
        result.notes.clear()  # the join is set-up here, not the measure
        run.exchange(result, [], True, window=window, duration=settings.duration)
    result.generator_cpu_s = _generator_cpu() - cpu
    return result


def join_original(clients: int, settings: Settings) -> Result:
    """Original-style clients (no V, no CAPS, unframed JSON) join at once;
    done when every client's last LIST shows all of them."""
    result = Result("join original", clients)
    cpu = _generator_cpu()
    with _Run(settings, result) as run:
        run.join(result, clients, presence=False)
    result.generator_cpu_s = _generator_cpu() - cpu
    return result


def join_presence(clients: int, settings: Settings, websocket: bool = False) -> Result:
    """Presence-capable clients join at once, then one broadcast reaches all.

    Done when every client's LIST plus PRESENCE deltas shows all of them;
    the latency columns are those of the one broadcast. Over WebSocket when
    ``websocket``.
    """
    result = Result(_named("join presence", websocket), clients, 1, 1)
    cpu = _generator_cpu()
    with _Run(settings, result, websocket) as run:
        run.join(result, clients, presence=True)
        join_cpu = result.server_cpu_s
        run.exchange(
            result,
            run.generator.clients[:1],
            False,
            node_notes=False,
            window=1,
            per_sender=1,
        )
        result.notes.append(
            f"one broadcast reached all {clients - 1} others "
            f"in {result.latency_max_ms:.0f} ms"
        )
        result.server_cpu_s = join_cpu
        result.cpu_us_per_delivery = None
        result.deliveries_per_s = None
    result.generator_cpu_s = _generator_cpu() - cpu
    return result


def join_replay(clients: int, settings: Settings, replay: int = 50) -> Result:
    """History clients join at once after ``2 * replay`` broadcasts were
    stored; done when every one has its replay of ``replay`` messages."""
    result = Result("join replay", clients)
    cpu = _generator_cpu()
    settings = dataclasses.replace(
        settings,
        server_args=(*settings.server_args, "--history-replay", str(replay)),
    )
    with _Run(settings, result) as run:
        seed = LoadGenerator(run.server.port, check=run.server.check_alive)
        try:
            seed.join(1, True, timeout=settings.timeout)
            # Broadcasts to an empty room: stored for whoever comes later.
            frames = b"".join(
                b'{"CMD":"SEND","MSG":"seed %d","TO":[],"FROM":"u0"}\n' % i
                for i in range(2 * replay)
            )
            seed._write(seed.clients[0], frames)
            seed._settle(1.0)
        finally:
            seed.close()
        time.sleep(0.3)  # the seed's u0 has left before u0 joins again
        server, generator = run.server, run.generator
        before = server.cpu_seconds()
        result.join_s = generator.join_with_replay(
            clients, replay, settings.max_pending, settings.timeout
        )
        result.server_cpu_s = server.cpu_seconds() - before
        result.server_peak_rss_mb = server.memory().peak_kb / 1024
        result.notes.append(
            f"all {clients} clients had their replay of {replay} messages after "
            f"{result.join_s:.2f} s"
        )
    result.generator_cpu_s = _generator_cpu() - cpu
    return result


def rooms(clients: int, size: int, window: int, settings: Settings) -> Result:
    """Rooms clients, ``size`` to a small room (every one in the default
    room too, where nobody sends), each sending to its small room with
    ``window`` messages in flight; the join's time and CPU in the notes."""
    result = Result(f"rooms w{window}", clients, clients, window)
    cpu = _generator_cpu()
    with _Run(settings, result, generator=RoomsGenerator) as run:
        server, generator = run.server, run.generator
        before = server.cpu_seconds()
        result.join_s = generator.join_rooms(
            clients, size, settings.max_pending, settings.timeout
        )
        rosters = result.join_s
        result.join_s += generator.verify_rooms(settings.timeout)
        join_cpu = server.cpu_seconds() - before
        rooms_lines = generator.rooms_received()
        result.notes.append(
            f"{clients // size} rooms of {size} and {clients} in general: rosters "
            f"complete after {rosters:.2f} s, the last ROOMS after "
            f"{result.join_s:.2f} s, {join_cpu:.2f} s server CPU, "
            f"{rooms_lines / clients:.1f} ROOMS per client"
        )
        joined_peak = server.memory().peak_kb / 1024
        run.exchange_rooms(result, window, settings.duration)
        result.notes.append(
            f"peak {joined_peak:.1f} MB after the join, "
            f"{result.server_peak_rss_mb:.1f} MB after the messages"
        )
    result.generator_cpu_s = _generator_cpu() - cpu
    return result
