"""The load generator's IRC clients (``--protocol irc``): the same checks as
the MUCA clients', over a ``twistd -n muca --irc``.

Each client registers (``NICK u<i>``, ``USER``) and is joined once its
``366`` (the end of ``#general``'s ``NAMES``) comes; the ``JOIN`` lines of
those who register after it are read and dropped until the server is quiet.
Messages are ``PRIVMSG #general`` (broadcast) or ``PRIVMSG u<partner>``
(private), and what each client reads must be ``PRIVMSG`` lines only, the
text ``<sender slot>.<sequence>.<ns>`` as the MUCA clients send it.
"""

from __future__ import annotations

import re
import time

from bench.load import Client, LoadGenerator
from bench.server import BenchFailure

#: Seconds without a byte from the server after which the join is over.
QUIET = 0.5
#: How much of the last read is kept, for an ``366`` cut between reads.
_KEEP = 64


class IrcGenerator(LoadGenerator):
    """IRC clients of one server's ``--irc`` listener."""

    MSG_TEXT = re.compile(rb" PRIVMSG \S+ :(\d+)\.(\d+)\.(\d+)\r")

    def _join_frame(self, client: Client) -> bytes:
        return b"NICK u%d\r\nUSER u%d 0 * :n%d\r\n" % (
            client.index,
            client.index,
            client.index,
        )

    def _message_parts(
        self, slot: int, sender: Client, private: bool
    ) -> tuple[bytes, bytes]:
        target = b"u%d" % (sender.index ^ 1) if private else b"#general"
        return b"PRIVMSG %s :%d." % (target, slot), b"\r\n"

    def _marker(self, private: bool) -> bytes:
        return b" PRIVMSG u" if private else b" PRIVMSG #general :"

    def _on_join_data(self, client: Client, data: bytes) -> None:
        if client.done:
            return  # others' JOIN lines
        seen = client.carry + data
        if b" 433 " in seen or b"ERROR " in seen:
            raise BenchFailure(f"client {client.uid}: refused {seen[-200:]!r}")
        if b" 366 " in seen:
            client.done = True
            client.acked = True
            self._pending -= 1
            self._unacked -= 1
            self._incomplete -= 1
            client.carry = b""
        else:
            client.carry = seen[-_KEEP:]

    def verify_rosters(self, settle: float = QUIET) -> None:
        """Read until the server has been quiet for ``settle`` seconds: the
        ``JOIN`` lines of the join are all read before messages go."""
        read = [0]
        handler = self._handler

        def count(client: Client, data: bytes) -> None:
            read[0] += len(data)
            handler(client, data)

        self._handler = count
        try:
            while True:
                before = read[0]
                deadline = time.monotonic() + settle
                while time.monotonic() < deadline:
                    self._poll(0.05)
                if read[0] == before:
                    return
        finally:
            self._handler = handler
