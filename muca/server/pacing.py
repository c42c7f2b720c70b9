"""Fake lag: what a connection has read waits for its rate limit and its
login, and nothing read is dropped.

:class:`PacedInput` is the part of every connection (a mixin of
``ChatConnection``) that takes the frames its front-end decoded and hands
them on one at a time, as far as allowed. While a login is under way (its
delay, a password check, a cluster's answer to the join), or while the rate
limit (a :class:`~muca.server.limits.TokenBucket` of ``--rate-limit`` and
``--rate-burst``) has no token, the frames wait and reading from the peer is
paused, so that a flood is slowed to the rate, not cut ("fake lag", as IRC
servers do). The answer to a request costs tokens by its size
(:meth:`PacedInput.charge_answer`). The rest of the connection (commands,
joins, closing) is ``muca.server.connection``.
"""

from __future__ import annotations

import typing
from collections import deque
from typing import Any

from twisted.internet.interfaces import IDelayedCall

from muca.server.limits import TokenBucket, answer_tokens


class PacedInput:
    """The input side of a connection: frames read wait for their turn.

    Mixed into ``muca.server.connection.ChatConnection``, which provides
    ``factory`` (the node: ``config.rate``, ``config.burst``, ``clock``),
    ``_stream`` (the byte transport read from: ``pauseProducing``,
    ``resumeProducing``), ``_closing`` (reads nothing more), ``_logging_in``
    (a ``JOIN``'s login or join is under way) and ``_handle_frame`` (one
    frame, now).
    """

    factory: Any
    _stream: Any

    if typing.TYPE_CHECKING:
        _closing: bool
        _logging_in: bool

        def _handle_frame(self, frame: Any) -> None: ...

    def _init_pacing(self) -> None:
        self._bucket: TokenBucket | None = None
        # Frames read but not handled yet: they wait for a login or for the
        # rate limit, while reading from the peer is paused.
        self._waiting: deque[Any] = deque()
        self._reading_paused = False
        self._rate_call: IDelayedCall | None = None

    def _start_rate(self) -> None:
        """Hold the frames to the node's rate limit from now on (if any)."""
        factory = self.factory
        config = factory.config
        if config.rate is not None:
            self._bucket = TokenBucket(config.rate, config.burst, factory.clock)

    def frames_received(self, frames: list[Any]) -> None:
        """Handle decoded frames (objects, ``muca.protocol.wire``'s
        ``BadFrame`` or ``FrameTooLong``, or ``muca.server.connection``'s
        ``Control``) in order."""
        if self._closing:
            return
        self._waiting.extend(frames)
        self._handle_waiting()

    def charge_answer(self, size: int) -> None:
        """A request's answer of ``size`` bytes went out: it costs tokens of
        the rate limit by its size (``muca.server.limits.answer_tokens``),
        so the frames read after it wait as after as many frames."""
        if self._bucket is not None:
            self._bucket.charge(answer_tokens(size))

    def _handle_waiting(self) -> None:
        """Handle the frames read so far, in order, as far as allowed.

        A frame waits (and reading from the peer is paused, so that what
        waits is at most one read; the kernel's buffers and TCP hold the
        rest back) while a login (its delay, a password check, a cluster's
        answer to the join) is under way, or while the rate limit has no
        token for it: then it is handled when the bucket has one. Every
        frame takes a token, a refused one too (a flood of ``JOIN`` s is
        slowed like any other). Nothing read is dropped ("fake lag", as IRC
        servers do).
        """
        waiting = self._waiting
        bucket = self._bucket
        while waiting and not self._closing:
            if self._logging_in:
                self._pause_reading()
                return
            if bucket is not None and not bucket.take():
                self._pause_reading()
                if self._rate_call is None:
                    self._rate_call = self.factory.clock.callLater(
                        bucket.wait(), self._rate_allows
                    )
                return
            self._handle_frame(waiting.popleft())
        if not self._logging_in and self._rate_call is None:
            self._resume_reading()

    def _rate_allows(self) -> None:
        """The bucket has a token again: go on with the waiting frames."""
        self._rate_call = None
        self._handle_waiting()

    def _cancel_rate(self) -> None:
        if self._rate_call is not None and self._rate_call.active():
            self._rate_call.cancel()
        self._rate_call = None

    def _pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            self._stream.pauseProducing()

    def _resume_reading(self) -> None:
        if self._reading_paused and not self._closing:
            self._reading_paused = False
            self._stream.resumeProducing()
