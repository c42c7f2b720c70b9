"""The rooms workload's load generator: N rooms clients, ``size`` to a room.

Every client joins with the ``rooms`` capability (and ``presence-delta``),
so it is in the default room, where nobody sends; on its ``ACK`` it enters
its small room ``r<index // size>`` (the first to enter makes it). The join
is complete when every client has its ``ENTERED``, the default room's
roster shows all N and its small room's roster shows all ``size``. Then
every client sends to its small room, ``window`` messages in flight each,
and each delivery is checked: from a room-mate, in order, exactly once, with
its room's ``ROOM``. ``ROOMS`` lines are counted; a sample of clients keeps
its last one, checked room by room: the join waits for the last round.
"""

from __future__ import annotations

import json
import time
from array import array

from bench.load import _MSG_TEXT, Client, Exchange, LoadGenerator
from bench.server import BenchFailure

_ROOM_FIELD = b',"ROOM":"'
_LEFT_NONE = b'"LEFT":[],"ROOM":"'
_GENERAL = "general"


class RoomsClient(Client):
    """A client of the rooms workload: its small room and what it saw of it."""

    __slots__ = (
        "room",
        "entered",
        "general_view",
        "room_view",
        "listed",
        "rooms_lines",
        "last_rooms",
        "keep_rooms",
        "skipping",
        "room_tag",
        "mates",
    )

    def __init__(self, index: int, size: int) -> None:
        super().__init__(index, presence=True)
        self.room = f"r{index // size}"
        self.room_tag = b'"ROOM":"%s"}' % self.room.encode()
        self.entered = False
        self.general_view = 0
        self.room_view = 0
        self.listed: set[str] = set()  # rooms whose one full LIST came
        self.rooms_lines = 0  # ROOMS lines received
        self.last_rooms = b""  # kept for a sample only
        self.keep_rooms = False
        self.skipping = False  # inside a ROOMS line that is not kept
        self.mates: dict[int, int] = {}  # room-mate index: last sequence seen

    def join_frame(self) -> bytes:
        return (
            b'{"CMD":"JOIN","UN":"n%d","UID":"u%d","V":2,'
            b'"CAPS":["presence-delta","rooms"]}\n' % (self.index, self.index)
        )


class RoomsGenerator(LoadGenerator):
    """:class:`LoadGenerator` for the rooms workload (one ``epoll`` loop)."""

    _count = 0  # clients, set by join_rooms
    _size = 0  # clients to a room

    def join_rooms(
        self,
        count: int,
        size: int,
        max_pending: int = 1000,
        timeout: float = 120.0,
        sample: int = 8,
    ) -> float:
        """Connect ``count`` clients, each entering its room of ``size``;
        return the seconds from the first connect until all are complete."""
        if self.clients:
            raise ValueError("join_rooms() runs once per generator")
        if count % size:
            raise ValueError(f"{count} clients do not fill rooms of {size}")
        self._size = size
        self._count = count
        self._incomplete = count
        self._unacked = count
        self._handler = self._on_rooms_join_data
        step = max(1, count // max(1, sample))
        for index in range(count):
            client = RoomsClient(index, size)
            client.keep_rooms = index % step == 0
            self.clients.append(client)
        started = time.monotonic()
        deadline = started + timeout
        next_index = 0
        next_check = 0.0
        while self._incomplete:
            while next_index < count and self._pending < max_pending:
                self._connect(self.clients[next_index])
                next_index += 1
            now = time.monotonic()
            if now >= deadline:
                raise BenchFailure(
                    f"rooms join: {self._incomplete} of {count} clients still "
                    f"incomplete after {timeout:g} s"
                )
            self._poll(min(0.05, deadline - now))
            if self.all_acked_s is None and not self._unacked:
                self.all_acked_s = time.monotonic() - started
            if self._check is not None and now >= next_check:
                self._check()
                next_check = now + 0.5
        if self.all_acked_s is None:
            self.all_acked_s = time.monotonic() - started
        return time.monotonic() - started

    def _on_rooms_join_data(self, client: RoomsClient, data: bytes) -> None:
        self._rooms_data(client, data)
        if (
            not client.done
            and client.entered
            and client.general_view == self._count
            and client.room_view == self._size
        ):
            client.done = True
            self._incomplete -= 1

    def _rooms_data(self, client: RoomsClient, data: bytes) -> None:
        start = 0
        length = len(data)
        if client.skipping:  # the rest of a ROOMS line nobody keeps
            newline = data.find(b"\n")
            if newline < 0:
                return
            client.skipping = False
            start = newline + 1
        elif client.tail:
            data = client.tail + data
            client.tail = b""
            length = len(data)
        while start < length:
            newline = data.find(b"\n", start)
            if newline < 0:
                rest = data[start:]
                if rest.startswith(b'{"CMD":"ROOMS"') and not client.keep_rooms:
                    client.rooms_lines += 1
                    client.skipping = True
                else:
                    client.tail = rest
                return
            self._rooms_line(client, data, start, newline)
            start = newline + 1

    def _rooms_line(
        self, client: RoomsClient, data: bytes, start: int, end: int
    ) -> None:
        """One whole line of the join phase, ``data[start:end]``."""
        if not data.startswith(b'{"CMD":"', start):
            self._unexpected(client, data, start)
        kind = data[start + 8 : start + 12]
        if kind == b"ROOM":  # ROOMS
            client.rooms_lines += 1
            if client.keep_rooms:
                client.last_rooms = data[start:end]
            return
        if kind[:3] == b"ACK":
            line = data[start:end]
            self._acked(client, b'"TYPE":"OKAY"' in line, line)
            self._send_line(
                client, b'{"CMD":"ENTER","ROOM":"%s"}\n' % client.room.encode()
            )
            return
        if kind == b"ENTE":  # ENTERED
            line = data[start:end]
            if client.entered or b'"ROOM":"%s"' % client.room.encode() not in line:
                self._unexpected(client, data, start)
            client.entered = True
            return
        if kind not in (b"LIST", b"PRES"):
            self._unexpected(client, data, start)
        at = data.rfind(_ROOM_FIELD, start, end)
        if at < 0:
            self._unexpected(client, data, start)
        room = data[at + len(_ROOM_FIELD) : end - 2].decode()
        entries = data.count(b'"UID"', start, at)
        if kind == b"LIST":
            if room in client.listed:
                raise BenchFailure(f"client {client.uid}: a second LIST of {room}")
            client.listed.add(room)
        elif data.rfind(_LEFT_NONE, start, end) < 0 or room not in client.listed:
            # Nobody leaves during the join; a delta follows the room's LIST.
            self._unexpected(client, data, start)
        if room == _GENERAL:
            client.general_view = (
                entries if kind == b"LIST" else client.general_view + entries
            )
        elif room == client.room:
            client.room_view = (
                entries if kind == b"LIST" else client.room_view + entries
            )
        else:
            raise BenchFailure(f"client {client.uid}: a roster of {room}")

    def verify_rooms(self, timeout: float = 60.0, quiet: float = 0.5) -> float:
        """After the join: wait for the last round of ``ROOMS`` (the server
        sends them in rounds, further apart on a large server) until the
        sampled clients' last one is right and no ``ROOMS`` came for
        ``quiet`` seconds; then every roster must still be complete.
        Return the seconds waited."""
        started = time.monotonic()
        deadline = started + timeout
        pending = [client for client in self.clients if client.keep_rooms]
        wrong = b""
        lines = -1
        changed = next_check = started
        while True:
            self._poll(0.05)
            now = time.monotonic()
            for client in pending:
                if client.last_rooms:
                    if self._rooms_right(client):
                        client.keep_rooms = False  # no need to keep more
                    else:
                        wrong = client.last_rooms
                    client.last_rooms = b""
            pending = [client for client in pending if client.keep_rooms]
            total = self.rooms_received()
            if total != lines or any(client.skipping for client in self.clients):
                lines, changed = total, now
            if not pending and now - changed >= quiet:
                break
            if now >= deadline:
                raise BenchFailure(
                    f"{len(pending)} sampled clients without the right ROOMS after "
                    f"{timeout:g} s (e.g. {wrong[:300]!r})"
                )
            if self._check is not None and now >= next_check:
                self._check()
                next_check = now + 0.5
        for client in self.clients:
            if (
                client.general_view != self._count
                or client.room_view != self._size
                or client.tail
                or not client.rooms_lines
            ):
                raise BenchFailure(
                    f"client {client.uid} ends with {client.general_view} in "
                    f"{_GENERAL}, {client.room_view} in {client.room}, "
                    f"{client.rooms_lines} ROOMS"
                )
        return time.monotonic() - started

    def _rooms_right(self, client: RoomsClient) -> bool:
        """Whether the client's last ``ROOMS`` shows ``general`` first, then
        every room with its count, ``IN`` for its own only."""
        shown = json.loads(client.last_rooms)["DATA"]
        expected = [{"ROOM": _GENERAL, "TOPIC": "", "COUNT": self._count}]
        expected += [
            {"ROOM": f"r{k}", "TOPIC": "", "COUNT": self._size}
            for k in range(self._count // self._size)
        ]
        for entry in expected:
            entry["IN"] = entry["ROOM"] in (_GENERAL, client.room)
        # The rooms come in the order they were made: whoever entered first
        # made each, so r1 may come before r0.
        rest = sorted(shown[1:], key=lambda entry: int(entry["ROOM"][1:]))
        return shown[:1] + rest == expected

    def rooms_received(self) -> int:
        """``ROOMS`` lines received by all clients so far."""
        return sum(client.rooms_lines for client in self.clients)

    def exchange_rooms(
        self, window: int, duration: float, timeout: float = 60.0
    ) -> Exchange:
        """Every client sends to its small room for ``duration`` seconds,
        ``window`` messages in flight each (in flight until every room-mate
        has it); every delivery checked."""
        clients = self.clients
        size = self._size
        count = len(clients)
        fanout = size - 1
        for client in clients:
            client.tail = b""
            first = client.index - client.index % size
            client.mates = {i: 0 for i in range(first, first + size)}
            del client.mates[client.index]
        heads = [b'{"CMD":"SEND","MSG":"%d.' % client.index for client in clients]
        feet = [
            b'","TO":[],"ROOM":"%s","FROM":"%s"}\n'
            % (client.room.encode(), client.uid.encode())
            for client in clients
        ]
        sent = [0] * count
        remaining: list[dict[int, int]] = [{} for _ in range(count)]
        state = {"inflight": 0, "sending": True, "deliveries": 0}
        latencies = array("q")
        marker = b'"TYPE":"ALL"'

        def send_next(slot: int) -> None:
            sequence = sent[slot] = sent[slot] + 1
            remaining[slot][sequence] = fanout
            state["inflight"] += 1
            self._send_line(
                clients[slot],
                b"%s%d.%d%s" % (heads[slot], sequence, time.monotonic_ns(), feet[slot]),
            )

        def on_data(client: RoomsClient, data: bytes) -> None:
            data = client.tail + data if client.tail else data
            end = data.rfind(b"\n") + 1
            if end < len(data):
                client.tail = data[end:]
                data = data[:end]
            else:
                client.tail = b""
            if not end:
                return
            found = _MSG_TEXT.findall(data)
            found_count = len(found)
            if (
                data.count(b"\n") != found_count
                or data.count(marker) != found_count
                or data.count(client.room_tag) != found_count
            ):
                raise BenchFailure(f"client {client.uid}: unexpected {data[:300]!r}")
            now = time.monotonic_ns()
            mates = client.mates
            for slot_text, sequence_text, sent_text in found:
                slot = int(slot_text)
                sequence = int(sequence_text)
                last = mates.get(slot)
                if last is None:
                    raise BenchFailure(
                        f"client {client.uid} got a message of u{slot}, "
                        f"who is not in {client.room}"
                    )
                if sequence != last + 1:
                    raise BenchFailure(
                        f"client {client.uid} got message {sequence} of u{slot} "
                        f"after {last}"
                    )
                mates[slot] = sequence
                latencies.append(now - int(sent_text))
                waiting = remaining[slot]
                left = waiting[sequence] - 1
                if left:
                    waiting[sequence] = left
                else:
                    del waiting[sequence]
                    state["inflight"] -= 1
                    if state["sending"]:
                        send_next(slot)
            state["deliveries"] += found_count

        self._handler = on_data
        started = time.monotonic()
        end_at = started + duration
        for slot in range(count):
            for _ in range(window):
                send_next(slot)
        deadline = end_at + timeout
        last_check = started
        while state["inflight"] or state["sending"]:
            now = time.monotonic()
            if now >= end_at:
                state["sending"] = False
            if now >= deadline:
                raise BenchFailure(
                    f"rooms messages: {state['inflight']} still undelivered "
                    f"after {timeout:g} s of waiting (loss)"
                )
            if self._check is not None and now - last_check > 0.5:
                self._check()
                last_check = now
            self._poll(0.05)
        seconds = time.monotonic() - started
        self._settle(0.2)
        for client in clients:
            if client.tail:
                raise BenchFailure(f"client {client.uid}: stray {client.tail[:200]!r}")
            for mate, seen in client.mates.items():
                if seen != sent[mate]:
                    raise BenchFailure(
                        f"client {client.uid} has {seen} of the {sent[mate]} "
                        f"messages of u{mate}"
                    )
        return Exchange(state["deliveries"], sum(sent), seconds, latencies)
