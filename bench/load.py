"""The load generator: N chat clients on loopback, driven by one epoll loop.

Written for speed rather than generality: it parses only what it must. In
the join phase it counts ``"UID"`` entries in ``LIST`` and ``PRESENCE``
lines; in the message phase one regular expression pulls sender, sequence
number and send time out of every ``MSG``, and every other line is a
failure. It checks as it goes that each message reaches each expected
recipient exactly once and in order per sender, and nobody else.

WebSocket clients (``websocket=True``) shake hands and send through
``wsproto``; what the server sends them, unmasked text frames, is cut by
:func:`unframe` into the same newline-separated lines as on TCP, so that the
same parsers check them (``wsproto`` takes about 27 µs a frame to decode,
30 times the server's cost of a delivery: it would measure the generator).
"""

from __future__ import annotations

import errno
import json
import re
import select
import socket
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from bench.server import BenchFailure

RECV_SIZE = 1 << 18
_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_READ_EVENTS = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
# An expected sequence number no message can follow: marks the senders a
# client must never hear from (itself; anyone but its partner in pairs).
_FORBIDDEN = -(1 << 62)

# What a MSG's text carries: "<sender slot>.<sequence>.<monotonic ns at send>".
_MSG_TEXT = re.compile(rb'"MSG":"(\d+)\.(\d+)\.(\d+)"')
_ORIGINAL_LIST = b'"CMD": "LIST"'
# The first letter of CMD in a native line b'{"CMD":"X...'.
_A, _L, _P = b"ALP"
_ORIGINAL_ACK_OKAY = b'"CMD": "ACK", "TYPE": "OKAY"'


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's descriptor limit towards ``wanted``; return it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class Client:
    """One simulated chat client: its socket and what it has seen."""

    __slots__ = (
        "index",
        "uid",
        "sock",
        "fd",
        "presence",
        "connecting",
        "acked",
        "done",
        "view",
        "tail",
        "kind",
        "count",
        "carry",
        "out",
        "expect",
        "last_list",
        "transcript",
        "history",
        "received",
        "ws",
        "handshake",
        "frames",
    )

    def __init__(self, index: int, presence: bool) -> None:
        self.index = index
        self.uid = f"u{index}"
        self.presence = presence
        self.sock: socket.socket | None = None
        self.fd = -1
        self.connecting = True
        self.acked = False
        self.done = False
        self.view = 0  # how many peers this client's roster shows
        self.tail = b""  # bytes of an incomplete frame
        self.kind = 0  # native rosters: the CMD letter of an unfinished line
        self.count = 0  # its "UID"s so far
        self.carry = b""  # the last bytes read of it
        self.out = b""  # bytes the socket did not take yet
        self.expect: list[int] = []  # last sequence seen, per sender slot
        self.last_list = b""  # original framing: the last complete LIST
        self.transcript: list[bytes] | None = None  # kept for a sample only
        self.history = False  # asks for the history's replay
        self.received: list[bytes] = []  # join with replay: all bytes so far
        self.ws: WSConnection | None = None  # a WebSocket client's wsproto side
        self.handshake: bytes | None = None  # the HTTP answer, while it comes
        self.frames = b""  # WebSocket: bytes of an incomplete frame

    def join_frame(self) -> bytes:
        """The JOIN this client sends: native with presence, or original."""
        if self.history:
            return (
                b'{"CMD":"JOIN","UN":"n%d","UID":"u%d","V":2,'
                b'"CAPS":["presence-delta","history"]}\n' % (self.index, self.index)
            )
        if self.presence:
            return (
                b'{"CMD":"JOIN","UN":"n%d","UID":"u%d","V":2,'
                b'"CAPS":["presence-delta"]}\n' % (self.index, self.index)
            )
        # Original framing: no newline, no extension fields.
        return b'{"CMD": "JOIN", "UN": "n%d", "UID": "u%d"}' % (self.index, self.index)


@dataclass(slots=True)
class Exchange:
    """What one message phase measured."""

    deliveries: int
    messages: int
    seconds: float
    latencies_ns: array


class LoadGenerator:
    """Clients of one server, all in this process, on one ``epoll``."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        check=None,
        websocket: bool = False,
        ports=None,
    ) -> None:
        """``ports``: several servers (a cluster); client i goes to the
        ``i % len(ports)``-th."""
        self.address = (host, port)
        self.addresses = [(host, p) for p in ports] if ports else [self.address]
        # Clients speak WebSocket to the web listener at this address.
        self.websocket = websocket
        self.epoll = select.epoll()
        self.clients: list[Client] = []
        self._by_fd: dict[int, Client] = {}
        self._handler: Callable[[Client, bytes], None] = self._on_join_data
        # Called now and then while waiting, e.g. to notice a dead server.
        self._check = check
        self._expected_view = 0
        self._incomplete = 0
        self._pending = 0
        self._unacked = 0
        self.all_acked_s: float | None = None  # first connect until the last ACK

    def close(self) -> None:
        """Close every client socket and the epoll object."""
        for client in self.clients:
            if client.sock is not None:
                client.sock.close()
                client.sock = None
        self._by_fd.clear()
        self.epoll.close()

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The event loop

    def _poll(self, timeout: float) -> None:
        by_fd = self._by_fd
        handler = self._handler
        for fd, events in self.epoll.poll(timeout, 8192):
            client = by_fd.get(fd)
            if client is None:
                continue
            if events & _OUT:
                self._on_writable(client)
            if events & _READ_EVENTS and not client.connecting:
                try:
                    data = client.sock.recv(RECV_SIZE)
                except BlockingIOError:
                    continue
                except OSError as error:
                    raise BenchFailure(
                        f"client {client.uid}: connection failed: {error}"
                    ) from None
                if not data:
                    raise BenchFailure(f"client {client.uid}: the server closed it")
                if client.ws is not None:
                    data = self._from_websocket(client, data)
                    if not data:
                        continue
                handler(client, data)

    def _settle(self, seconds: float) -> None:
        """Go on reading for a while, so that anything stray shows up."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._poll(min(0.05, left))

    # Writing

    def _on_writable(self, client: Client) -> None:
        if client.connecting:
            error = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise BenchFailure(
                    f"client {client.uid}: cannot connect: {errno.errorcode[error]}"
                )
            client.connecting = False
            self.epoll.modify(client.fd, _IN)
            if self.websocket:
                client.ws = WSConnection(ConnectionType.CLIENT)
                client.handshake = b""
                host = f"{self.address[0]}:{self.address[1]}"
                self._write(client, client.ws.send(Request(host=host, target="/ws")))
            else:
                self._write(client, self._join_frame(client))
            return
        data, client.out = client.out, b""
        self.epoll.modify(client.fd, _IN)
        self._write(client, data)

    #: What a message's text carries in what a client reads (see _MSG_TEXT).
    MSG_TEXT = _MSG_TEXT

    def _message_parts(
        self, slot: int, sender: Client, private: bool
    ) -> tuple[bytes, bytes]:
        """What a sender's message is, before and after its
        ``<sequence>.<ns>``: a ``SEND`` to all, or to its partner."""
        to = f'"u{sender.index ^ 1}"' if private else ""
        return (
            b'{"CMD":"SEND","MSG":"%d.' % slot,
            f'","TO":[{to}],"FROM":"{sender.uid}"}}\n'.encode(),
        )

    def _marker(self, private: bool) -> bytes:
        """What every message line a client reads holds once."""
        return b'"TYPE":"PRIVATE"' if private else b'"TYPE":"ALL"'

    def _join_frame(self, client: Client) -> bytes:
        """What a client sends once connected (see :meth:`Client.join_frame`)."""
        return client.join_frame()

    def _send_line(self, client: Client, line: bytes) -> None:
        """Send one JSON line: as it is on TCP, as a text message on WebSocket."""
        if client.ws is None:
            self._write(client, line)
        else:
            text = line.rstrip(b"\n").decode()
            self._write(client, client.ws.send(TextMessage(text)))

    def _from_websocket(self, client: Client, data: bytes) -> bytes:
        """What a WebSocket client read, as newline-separated lines."""
        if client.handshake is not None:
            data = client.handshake + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                client.handshake = data
                return b""
            client.handshake = None
            client.ws.receive_data(data[: end + 4])
            if not any(isinstance(e, AcceptConnection) for e in client.ws.events()):
                raise BenchFailure(f"client {client.uid}: refused {data[:200]!r}")
            self._send_line(client, self._join_frame(client))
            data = data[end + 4 :]
        lines, client.frames = unframe(client.frames + data if client.frames else data)
        if lines is None:
            raise BenchFailure(f"client {client.uid}: not a text frame {data[:200]!r}")
        return lines

    def _write(self, client: Client, data: bytes) -> None:
        if client.out:
            client.out += data
            return
        try:
            sent = client.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            client.out = data[sent:]
            self.epoll.modify(client.fd, _IN | _OUT)

    # Joining

    def join(
        self,
        count: int,
        presence: bool,
        max_pending: int = 200,
        timeout: float = 120.0,
        sample: int = 8,
    ) -> float:
        """Connect ``count`` clients and join them all; return the seconds
        from the first connect until every client's roster shows all of them.

        At most ``max_pending`` clients are between connect and ``ACK`` at a
        time. The rosters of ``sample`` clients are kept and checked entry by
        entry afterwards; every client's entry count is checked.
        """
        if self.clients:
            raise ValueError("join() runs once per generator")
        self._handler = self._on_join_data
        self._expected_view = count
        self._incomplete = count
        self._unacked = count
        step = max(1, count // max(1, sample))
        for index in range(count):
            client = Client(index, presence)
            if presence and index % step == 0:
                client.transcript = []
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
                    f"join: {self._incomplete} of {count} clients still incomplete "
                    f"after {timeout:g} s"
                )
            self._poll(min(0.05, deadline - now))
            if self.all_acked_s is None and not self._unacked:
                self.all_acked_s = time.monotonic() - started
            if self._check is not None and now >= next_check:
                self._check()
                next_check = now + 0.5
        if self.all_acked_s is None:
            self.all_acked_s = time.monotonic() - started
        elapsed = time.monotonic() - started
        return elapsed

    def join_with_replay(
        self, count: int, replay: int, max_pending: int = 1000, timeout: float = 120.0
    ) -> float:
        """Connect ``count`` history clients at once; return the seconds from
        the first connect until every one has its replay (the ``HISTORY``
        marker), checking that each got ``replay`` replayed messages."""
        if self.clients:
            raise ValueError("join_with_replay() runs once per generator")
        self._incomplete = count
        for index in range(count):
            client = Client(index, True)
            client.history = True
            self.clients.append(client)

        def on_data(client: Client, data: bytes) -> None:
            client.received.append(data)
            seen = (
                client.received[-2][-20:] + data if len(client.received) > 1 else data
            )
            if b'{"CMD":"HISTORY"' not in seen:
                return
            whole = b"".join(client.received)
            client.received = []
            replayed = whole.count(b'"HIST":true')
            if replayed != replay or client.done:
                raise BenchFailure(
                    f"client {client.uid}: {replayed} messages replayed, not {replay}"
                )
            client.done = True
            self._pending -= 1
            self._incomplete -= 1

        self._handler = on_data
        started = time.monotonic()
        deadline = started + timeout
        next_index = 0
        while self._incomplete:
            while next_index < count and self._pending < max_pending:
                self._connect(self.clients[next_index])
                next_index += 1
            now = time.monotonic()
            if now >= deadline:
                raise BenchFailure(
                    f"join with replay: {self._incomplete} of {count} clients "
                    f"without their replay after {timeout:g} s"
                )
            self._poll(min(0.05, deadline - now))
        return time.monotonic() - started

    def verify_rosters(self, settle: float = 0.3) -> None:
        """After a join: every roster still shows exactly everyone, and the
        kept ones name exactly the right user ids."""
        self._settle(settle)
        expected = {client.uid for client in self.clients}
        for client in self.clients:
            if client.view != self._expected_view or client.tail or client.kind:
                raise BenchFailure(
                    f"client {client.uid} ends with {client.view} peers "
                    f"(expected {self._expected_view})"
                )
            if not client.presence:
                entries = json.loads(b"{" + client.last_list.strip(b"{}") + b"}")
                uids = [entry["UID"] for entry in entries["DATA"]]
                _check_roster(client, uids, expected)
            elif client.transcript is not None:
                _check_roster(client, _replay(client.transcript), expected)
                client.transcript = None

    def _connect(self, client: Client) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        addresses = self.addresses
        error = sock.connect_ex(addresses[client.index % len(addresses)])
        if error not in (0, errno.EINPROGRESS):
            sock.close()
            raise BenchFailure(
                f"client {client.uid}: connect: {errno.errorcode[error]}"
            )
        client.sock = sock
        client.fd = sock.fileno()
        self._by_fd[client.fd] = client
        self.epoll.register(client.fd, _OUT)
        self._pending += 1

    def _on_join_data(self, client: Client, data: bytes) -> None:
        if client.presence:
            self._on_native_roster(client, data)
        else:
            self._on_original_roster(client, data)
        if client.view == self._expected_view and not client.done:
            client.done = True
            self._incomplete -= 1

    def _acked(self, client: Client, okay: bool, frame: bytes) -> None:
        if client.acked or not okay:
            raise BenchFailure(f"client {client.uid}: unexpected {frame[:200]!r}")
        client.acked = True
        self._pending -= 1
        self._unacked -= 1

    def _on_native_roster(self, client: Client, data: bytes) -> None:
        # Rosters carry N² entries in all, in lines of up to N entries that
        # span many reads: count "UID"s where the bytes lie, without
        # splitting, joining or decoding. A line begun in an earlier read
        # continues with client.kind set; client.carry keeps that read's
        # last bytes for what straddles the boundary.
        if client.transcript is not None:
            client.transcript.append(data)
        if client.tail:  # a line head too short to tell its kind
            data = client.tail + data
            client.tail = b""
        length = len(data)
        start = 0
        if client.kind:
            newline = data.find(b"\n")
            stop = newline if newline >= 0 else length
            edge = client.carry[-4:] + data[: min(stop, 4)]
            client.count += data.count(b'"UID"', 0, stop) + edge.count(b'"UID"')
            if newline < 0:
                client.carry = (client.carry + data)[-10:]
                return
            self._end_line(client, (client.carry + data[:newline])[-10:])
            start = newline + 1
        while start < length:
            newline = data.find(b"\n", start)
            if length - start < 9 or (newline < 0 and data[start + 8] == _A):
                client.tail = data[start:]  # short: wait for the rest
                return
            if not data.startswith(b'{"CMD":"', start):
                self._unexpected(client, data, start)
            client.kind = data[start + 8]
            if client.kind == _A:
                line = data[start:newline]
                self._acked(client, b'"TYPE":"OKAY"' in line, line)
                client.kind = 0
                start = newline + 1
                continue
            if client.kind not in (_L, _P):
                self._unexpected(client, data, start)
            stop = newline if newline >= 0 else length
            client.count = data.count(b'"UID"', start, stop)
            if newline < 0:
                client.carry = data[-10:]
                return
            self._end_line(client, data[max(start, newline - 10) : newline])
            start = newline + 1

    def _end_line(self, client: Client, ending: bytes) -> None:
        """A LIST or PRESENCE line is complete: apply its entry count."""
        if client.kind == _P:  # nobody leaves during a join workload
            if ending != b'"LEFT":[]}':
                raise BenchFailure(f"client {client.uid}: a PRESENCE ending {ending!r}")
            client.view += client.count
        else:  # LIST: once, right after ACK
            if client.view or not client.acked:
                raise BenchFailure(f"client {client.uid}: a LIST out of place")
            client.view = client.count
        client.kind = 0
        client.count = 0

    def _unexpected(self, client: Client, data: bytes, start: int) -> None:
        raise BenchFailure(
            f"client {client.uid}: unexpected {data[start : start + 200]!r}"
        )

    def _on_original_roster(self, client: Client, data: bytes) -> None:
        # Cut as the original client does, on "}{"; the last piece is whole
        # only when it closes a LIST ("]}"), else it waits for more bytes.
        data = client.tail + data if client.tail else data
        pieces = data.split(b"}{")
        if data.endswith(b"]}"):
            client.tail = b""
        else:
            client.tail = b"{" + pieces.pop() if len(pieces) > 1 else pieces.pop()
        for piece in pieces:
            if _ORIGINAL_LIST in piece:
                client.view = piece.count(b'"UID"')
                client.last_list = piece
            elif _ORIGINAL_ACK_OKAY in piece:
                self._acked(client, True, piece)
            else:
                raise BenchFailure(f"client {client.uid}: unexpected {piece[:200]!r}")

    # Messages

    def exchange(
        self,
        senders: list[Client],
        private: bool,
        window: int,
        duration: float | None = None,
        per_sender: int | None = None,
        timeout: float = 60.0,
    ) -> Exchange:
        """Send messages and check every delivery.

        Broadcast (``private`` false): each sender's messages go to every
        other client. Private: client 2k and 2k+1 send to each other. Every
        sender keeps ``window`` messages in flight (a message is in flight
        until all its recipients have it) for ``duration`` seconds, or sends
        ``per_sender`` messages.
        """
        clients = self.clients
        if private:
            senders = clients[: len(clients) // 2 * 2]
        slots = len(senders)
        slot_of = {sender.index: slot for slot, sender in enumerate(senders)}
        for client in clients:
            client.tail = b""
            if private:
                client.expect = [_FORBIDDEN] * slots
                partner = client.index ^ 1
                if partner in slot_of:
                    client.expect[slot_of[partner]] = 0
            else:
                client.expect = [0] * slots
                if client.index in slot_of:
                    client.expect[slot_of[client.index]] = _FORBIDDEN
        fanout = 1 if private else len(clients) - 1
        prefixes = [
            (sender, *self._message_parts(slot, sender, private))
            for slot, sender in enumerate(senders)
        ]
        sent = [0] * slots
        remaining: list[dict[int, int]] = [{} for _ in range(slots)]
        state = {"inflight": 0, "sending": True, "deliveries": 0}
        latencies = array("q")
        marker = self._marker(private)
        message_text = self.MSG_TEXT

        def send_next(slot: int) -> None:
            if per_sender is not None and sent[slot] >= per_sender:
                return
            sequence = sent[slot] = sent[slot] + 1
            remaining[slot][sequence] = fanout
            state["inflight"] += 1
            sender, head, foot = prefixes[slot]
            self._send_line(
                sender, b"%s%d.%d%s" % (head, sequence, time.monotonic_ns(), foot)
            )

        def on_data(client: Client, data: bytes) -> None:
            data = client.tail + data if client.tail else data
            end = data.rfind(b"\n") + 1
            if end < len(data):
                client.tail = data[end:]
                data = data[:end]
            else:
                client.tail = b""
            if not end:
                return
            found = message_text.findall(data)
            count = len(found)
            if data.count(b"\n") != count or data.count(marker) != count:
                _stray(client, data, marker, message_text)
            now = time.monotonic_ns()
            expect = client.expect
            for slot_text, sequence_text, sent_text in found:
                slot = int(slot_text)
                sequence = int(sequence_text)
                if sequence != expect[slot] + 1:
                    _out_of_order(client, slot, sequence, expect[slot])
                expect[slot] = sequence
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
            state["deliveries"] += count

        self._handler = on_data
        started = time.monotonic()
        end_at = started + duration if duration is not None else None
        for slot in range(slots):
            for _ in range(window):
                send_next(slot)
        deadline = started + (duration or 0) + timeout
        last_check = started
        while state["inflight"] or state["sending"]:
            now = time.monotonic()
            if end_at is not None and now >= end_at:
                state["sending"] = False
            elif end_at is None and all(
                per_sender is not None and n >= per_sender for n in sent
            ):
                state["sending"] = False
            if now >= deadline:
                raise BenchFailure(
                    f"messages: {state['inflight']} still undelivered after "
                    f"{timeout:g} s of waiting (loss)"
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
            for slot, seen in enumerate(client.expect):
                if seen != _FORBIDDEN and seen != sent[slot]:
                    raise BenchFailure(
                        f"client {client.uid} has {seen} of the {sent[slot]} messages "
                        f"of sender {senders[slot].uid}"
                    )
        return Exchange(state["deliveries"], sum(sent), seconds, latencies)


def unframe(data: bytes) -> tuple[bytes | None, bytes]:
    """Cut server WebSocket frames: each whole one's payload and a newline,
    and the bytes of an incomplete last frame; ``None`` for the lines when a
    frame is not a whole unmasked text message (the server sends no other)."""
    payloads = []
    length = len(data)
    start = 0
    while start + 2 <= length:
        if data[start] != 0x81:
            return None, b""
        size = data[start + 1]
        head = 2
        if size == 126:
            head = 4
            size = int.from_bytes(data[start + 2 : start + 4], "big")
        elif size == 127:
            head = 10
            size = int.from_bytes(data[start + 2 : start + 10], "big")
        elif size > 127:  # masked
            return None, b""
        end = start + head + size
        if end > length or start + head > length:
            break
        payloads.append(data[start + head : end])
        start = end
    if not payloads:
        return b"", data[start:]
    payloads.append(b"")
    return b"\n".join(payloads), data[start:]


def _check_roster(client: Client, uids: list[str], expected: set[str]) -> None:
    if len(uids) != len(expected) or set(uids) != expected:
        missing = sorted(expected - set(uids))[:5]
        raise BenchFailure(
            f"client {client.uid}: roster of {len(uids)} entries is wrong "
            f"(missing e.g. {missing})"
        )


def _replay(transcript: list[bytes]) -> list[str]:
    """The roster a presence client ends with, from its LIST and PRESENCEs."""
    roster: dict[str, None] = {}
    for line in b"".join(transcript).splitlines():
        obj = json.loads(line)
        if obj["CMD"] == "LIST":
            roster = {entry["UID"]: None for entry in obj["DATA"]}
        elif obj["CMD"] == "PRESENCE":
            for uid in obj["LEFT"]:
                roster.pop(uid, None)
            for entry in obj["JOINED"]:
                if entry["UID"] in roster:
                    raise BenchFailure(f"PRESENCE repeats {entry['UID']}")
                roster[entry["UID"]] = None
    return list(roster)


def _stray(
    client: Client, data: bytes, marker: bytes, message_text: re.Pattern[bytes]
) -> None:
    for line in data.splitlines():
        if not (message_text.search(line) and marker in line):
            raise BenchFailure(f"client {client.uid}: unexpected {line[:200]!r}")
    raise BenchFailure(f"client {client.uid}: unexpected {data[:200]!r}")


def _out_of_order(client: Client, slot: int, sequence: int, last: int) -> None:
    if last == _FORBIDDEN:
        raise BenchFailure(
            f"client {client.uid} got message {sequence} of sender slot {slot}, "
            "which was not for it"
        )
    if sequence <= last:
        raise BenchFailure(
            f"client {client.uid} got message {sequence} of sender slot {slot} "
            f"again or out of order (after {last})"
        )
    raise BenchFailure(
        f"client {client.uid} lost messages {last + 1}..{sequence - 1} "
        f"of sender slot {slot}"
    )
