"""Tests of muca.protocol.messages: parsing client and server commands, payloads."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from muca.protocol import messages
from muca.protocol.messages import (
    BAD_COMMAND,
    BAD_JOIN,
    Ack,
    Join,
    JoinRefused,
    Message,
    Peer,
    PeerList,
    Presence,
    ProtocolError,
    Send,
    ServerError,
    parse_client_command,
    parse_server_command,
)
from muca.protocol.wire import Framing, encode

LONE_SURROGATE = "\ud800"


def join(**fields: Any) -> dict[str, Any]:
    """A valid ``JOIN`` with some fields replaced (``None`` removes one)."""
    obj = {"CMD": "JOIN", "UN": "Tony", "UID": "tony@hku.hk", **fields}
    return {key: value for key, value in obj.items() if value is not None}


def send(**fields: Any) -> dict[str, Any]:
    """A valid ``SEND`` with some fields replaced (``None`` removes one)."""
    obj = {"CMD": "SEND", "MSG": "hi", "TO": [], "FROM": "tony@hku.hk", **fields}
    return {key: value for key, value in obj.items() if value is not None}


class ParseJoinTests(SynchronousTestCase):
    def test_original_join_parses_with_defaults(self) -> None:
        self.assertEqual(
            parse_client_command(join()), Join("Tony", "tony@hku.hk", version=1)
        )

    def test_extensions_are_read(self) -> None:
        command = parse_client_command(
            join(V=2, PASS="secret", CAPS=["presence-delta", 3, "x"])
        )
        self.assertEqual(command.version, 2)
        self.assertEqual(command.password, "secret")
        self.assertEqual(command.caps, frozenset({"presence-delta", "x"}))

    def test_ill_typed_optional_extensions_fall_back_to_defaults(self) -> None:
        command = parse_client_command(join(V="2", CAPS="presence-delta"))
        self.assertEqual((command.version, command.caps), (1, frozenset()))
        self.assertEqual(parse_client_command(join(V=True)).version, 1)

    def test_names_are_kept_in_nfc_and_ascii_as_it_is(self) -> None:
        command = parse_client_command(join(UN="Zoe\u0301", UID="zoe\u0301@x"))
        self.assertEqual((command.nickname, command.uid), ("Zo\u00e9", "zo\u00e9@x"))
        # Other letters and spaces inside are fine: Chinese, emoji, NBSP.
        for nickname in ("\u5c0f\u660e", "Tony \U0001f600", "To\u00a0ny"):
            self.assertEqual(parse_client_command(join(UN=nickname)).nickname, nickname)

    def test_every_invalid_field_is_bad_join_saying_what_is_wrong(self) -> None:
        cases = [
            (join(UN=None), "UN must be a string"),
            (join(UID=None), "UID must be a string"),
            (join(UN=""), "UN must not be empty"),
            (join(UID=""), "UID must not be empty"),
            (join(UN=5), "UN must be a string"),
            (join(UN=["Tony"]), "UN must be a string"),
            (join(UID=None) | {"UID": 12}, "UID must be a string"),
            (join() | {"UID": None}, "UID must be a string"),
            (join(UN="x" * 65), "UN must be at most 64 characters"),
            (join(UID="x" * 255), "UID must be at most 254 characters"),
            (join(UN=" Tony"), "UN must not start or end with a space"),
            (join(UN="Tony "), "UN must not start or end with a space"),
            (join(UN="To,ny"), "UN must not contain a comma"),
            (join(UN=" "), "UN must not be blank"),
            (join(UID="t\u3000"), "UID must not start or end with a space"),
            (
                join(UN="To\u200bny"),
                "UN must not contain format characters (U+200B at position 3)",
            ),
            (
                join(UN="\u2066Tony"),
                "UN must not contain format characters (U+2066 at position 1)",
            ),
            (
                join(UN="Tony\x7f"),
                "UN must not contain control characters (U+007F at position 5)",
            ),
            (
                join(UN="To\u2028ny"),
                "UN must not contain line separator characters (U+2028 at position 3)",
            ),
            (
                join(UID="t\tx"),
                "UID must not contain control characters (U+0009 at position 2)",
            ),
            (
                join(UID="t\u0085x"),
                "UID must not contain control characters (U+0085 at position 2)",
            ),
            (join(UN="ALL"), "UN 'ALL' is reserved for broadcasts"),
            (join(UID="ALL"), "UID 'ALL' is reserved for broadcasts"),
            (join(UN="T" + LONE_SURROGATE), "UN must be a string"),
            (join(UID="t" + LONE_SURROGATE), "UID must be a string"),
            (join(PASS=1234), "PASS must be a string"),
            (join(PASS=LONE_SURROGATE), "PASS must be a string"),
            # The nickname is checked first.
            (join(UN="", UID=""), "UN must not be empty"),
        ]
        for obj, reason in cases:
            with self.subTest(obj=obj):
                with self.assertRaises(JoinRefused) as caught:
                    parse_client_command(obj)
                self.assertEqual(
                    (caught.exception.code, caught.exception.reason),
                    (BAD_JOIN, reason),
                )
                self.assertEqual(str(caught.exception), f"BAD_JOIN: {reason}")

    def test_longest_valid_fields_are_accepted(self) -> None:
        command = parse_client_command(join(UN="é" * 64, UID="u" * 254))
        self.assertEqual((len(command.nickname), len(command.uid)), (64, 254))

    def test_nickname_with_inner_space_and_unicode_is_valid(self) -> None:
        self.assertEqual(
            parse_client_command(join(UN="Tony Ü 😀")).nickname, "Tony Ü 😀"
        )


class ParseSendTests(SynchronousTestCase):
    def test_send_parses(self) -> None:
        self.assertEqual(
            parse_client_command(send(TO=["a", "b"], MSG="}{ ü")),
            Send("}{ ü", ("a", "b"), "tony@hku.hk"),
        )

    def test_every_missing_or_ill_typed_field_is_bad_command_naming_it(
        self,
    ) -> None:
        needs_msg = "SEND needs MSG, a string"
        needs_to = "SEND needs TO, a list of user ids"
        needs_from = "SEND needs FROM, a string"
        cases = [
            (send(MSG=None), needs_msg),
            (send(MSG=3), needs_msg),
            (send(MSG=LONE_SURROGATE), needs_msg),
            (send(TO=None), needs_to),
            (send(TO="a"), needs_to),
            (send(TO=["a", 1]), needs_to),
            (send(TO=[["a"]]), needs_to),
            (send(TO=[LONE_SURROGATE]), needs_to),
            (send(FROM=None), needs_from),
            (send(FROM=["a"]), needs_from),
            # MSG is checked first, then TO.
            (send(MSG=None, TO=None, FROM=None), needs_msg),
            (send(TO=None, FROM=None), needs_to),
        ]
        for obj, reason in cases:
            with self.subTest(obj=obj):
                with self.assertRaises(ProtocolError) as caught:
                    parse_client_command(obj)
                error = caught.exception
                self.assertEqual(
                    (error.code, error.reason, error.ref), (BAD_COMMAND, reason, "SEND")
                )
                self.assertEqual(str(error), f"BAD_COMMAND: {reason}")


class ParseOtherCommandTests(SynchronousTestCase):
    def refusal(self, obj: dict[str, Any]) -> tuple[str, str, str | None]:
        """The code, reason and ``REF`` with which ``obj`` is refused."""
        with self.assertRaises(ProtocolError) as caught:
            parse_client_command(obj)
        return caught.exception.code, caught.exception.reason, caught.exception.ref

    def test_missing_cmd_is_bad_command(self) -> None:
        self.assertEqual(
            self.refusal({"UN": "Tony"}), (BAD_COMMAND, "missing CMD", None)
        )

    def test_cmd_not_a_string_is_bad_command(self) -> None:
        for cmd in (1, ["JOIN"], {"a": 1}, True):
            with self.subTest(cmd=cmd):
                self.assertEqual(
                    self.refusal({"CMD": cmd}),
                    (BAD_COMMAND, "CMD must be a string", None),
                )

    def test_unknown_cmd_is_bad_command_naming_it(self) -> None:
        self.assertEqual(
            self.refusal({"CMD": "DANCE"}),
            (BAD_COMMAND, "unknown command 'DANCE'", "DANCE"),
        )

    def test_a_long_unknown_cmd_is_named_by_its_first_40_characters(self) -> None:
        name = "X" * 40
        self.assertEqual(
            self.refusal({"CMD": name + "YZ"}),
            (BAD_COMMAND, f"unknown command '{name}'", name),
        )

    def test_commands_are_case_sensitive(self) -> None:
        self.assertEqual(
            self.refusal({"CMD": "join", "UN": "Tony", "UID": "t"}),
            (BAD_COMMAND, "unknown command 'join'", "join"),
        )

    def test_server_commands_from_a_client_are_bad_commands(self) -> None:
        for cmd in ("ACK", "LIST", "MSG", "ERROR", "PRESENCE"):
            with self.subTest(cmd=cmd):
                self.assertEqual(
                    self.refusal({"CMD": cmd}),
                    (BAD_COMMAND, f"unknown command {cmd!r}", cmd),
                )

    def test_unknown_cmd_error_can_always_be_encoded(self) -> None:
        # A lone surrogate cannot be written as UTF-8: the error must not echo it.
        for cmd in (LONE_SURROGATE, "x" * 1000, "ü\n"):
            with self.assertRaises(ProtocolError) as caught:
                parse_client_command({"CMD": cmd})
            error = caught.exception
            payload = messages.error_payload(error.code, error.reason, error.ref)
            for framing in Framing:
                encode(payload, framing)
            self.assertLessEqual(len(error.reason), 100)


class PayloadTests(SynchronousTestCase):
    def test_ack_payloads(self) -> None:
        self.assertEqual(messages.ack_okay_payload(), {"CMD": "ACK", "TYPE": "OKAY"})
        self.assertEqual(
            messages.ack_fail_payload("UID_TAKEN", "taken"),
            {"CMD": "ACK", "TYPE": "FAIL", "CODE": "UID_TAKEN", "REASON": "taken"},
        )

    def test_error_payload_has_ref_only_when_given(self) -> None:
        self.assertEqual(
            messages.error_payload("BAD_JSON", "bad"),
            {"CMD": "ERROR", "CODE": "BAD_JSON", "REASON": "bad"},
        )
        self.assertEqual(messages.error_payload("X", "y", "SEND")["REF"], "SEND")

    def test_message_payload_extensions_are_optional(self) -> None:
        self.assertEqual(
            messages.message_payload("PRIVATE", "hi", "a"),
            {"CMD": "MSG", "TYPE": "PRIVATE", "MSG": "hi", "FROM": "a"},
        )
        group = messages.message_payload("GROUP", "hi", "a", 1234, ["b", "c"])
        self.assertEqual((group["TS"], group["TO"]), (1234, ["b", "c"]))

    def test_list_and_presence_payloads(self) -> None:
        entry = {"UN": "Tony", "UID": "t"}
        self.assertEqual(
            messages.list_payload(iter([entry])), {"CMD": "LIST", "DATA": [entry]}
        )
        self.assertEqual(
            messages.presence_payload([entry], ["m"]),
            {"CMD": "PRESENCE", "JOINED": [entry], "LEFT": ["m"]},
        )

    def test_client_payloads_parse_as_client_commands(self) -> None:
        self.assertEqual(
            parse_client_command(messages.join_payload("Tony", "t", "pw")),
            Join("Tony", "t", 2, "pw", frozenset({"presence-delta", "history"})),
        )
        self.assertEqual(
            parse_client_command(messages.join_payload("Tony", "t", since=7)).since, 7
        )
        self.assertEqual(
            parse_client_command(messages.send_payload("hi", ["m"], "t")),
            Send("hi", ("m",), "t"),
        )


class ParseServerCommandTests(SynchronousTestCase):
    def test_server_payloads_parse_back(self) -> None:
        entry = {"UN": "Tony", "UID": "t"}
        cases = [
            (messages.ack_okay_payload(), Ack(True)),
            (
                messages.ack_fail_payload("NICK_TAKEN", "r"),
                Ack(False, "NICK_TAKEN", "r"),
            ),
            (messages.list_payload([entry]), PeerList((Peer("Tony", "t"),))),
            (
                messages.presence_payload([entry], ["m"]),
                Presence((Peer("Tony", "t"),), ("m",)),
            ),
            (
                messages.message_payload("GROUP", "hi", "t", 5, ["m", "h"]),
                Message("GROUP", "hi", "t", 5, ("m", "h")),
            ),
            (messages.error_payload("X", "y", "SEND"), ServerError("X", "y", "SEND")),
        ]
        for payload, expected in cases:
            self.assertEqual(parse_server_command(payload), expected)

    def test_unknown_server_command_is_ignored(self) -> None:
        self.assertIsNone(parse_server_command({"CMD": "FUTURE", "X": 1}))

    def test_malformed_known_server_commands_raise_saying_what_is_wrong(
        self,
    ) -> None:
        cases = [
            (
                {"CMD": "MSG", "TYPE": "ALL", "MSG": 1, "FROM": "a"},
                "MSG needs TYPE, MSG and FROM strings",
            ),
            ({"CMD": "LIST", "DATA": "x"}, "peer list must be a list"),
            (
                {"CMD": "LIST", "DATA": [{"UN": "a"}]},
                "peer entry needs UN and UID strings",
            ),
            ({"CMD": "ACK", "TYPE": "MAYBE"}, "ACK needs TYPE OKAY or FAIL"),
            ({"CMD": "PRESENCE", "LEFT": [1]}, "PRESENCE LEFT must be a list of ids"),
        ]
        for obj, reason in cases:
            with self.subTest(obj=obj):
                with self.assertRaises(ProtocolError) as caught:
                    parse_server_command(obj)
                self.assertEqual(
                    (caught.exception.code, caught.exception.reason),
                    (BAD_COMMAND, reason),
                )


class HistoryCommandTests(SynchronousTestCase):
    """``HISTORY BEFORE`` and ``JOIN SINCE`` as the server parses them, and
    the replayed ``MSG`` and ``HISTORY`` as the client does."""

    def test_history_before_parses_with_its_limit(self) -> None:
        self.assertEqual(
            parse_client_command(messages.history_request_payload(40, 200)),
            messages.History(40, 200),
        )
        self.assertEqual(
            parse_client_command({"CMD": "HISTORY", "BEFORE": 9}),
            messages.History(9, 50),
        )

    def test_bad_history_requests_say_what_is_wrong(self) -> None:
        cases = [
            ({"CMD": "HISTORY"}, "HISTORY needs BEFORE"),
            ({"CMD": "HISTORY", "BEFORE": "5"}, "HISTORY needs BEFORE"),
            ({"CMD": "HISTORY", "BEFORE": 0}, "HISTORY needs BEFORE"),
            ({"CMD": "HISTORY", "BEFORE": True}, "HISTORY needs BEFORE"),
            ({"CMD": "HISTORY", "BEFORE": 5, "LIMIT": 201}, "from 1 to 200"),
            ({"CMD": "HISTORY", "BEFORE": 5, "LIMIT": 0}, "from 1 to 200"),
            ({"CMD": "HISTORY", "BEFORE": 5, "LIMIT": 2.5}, "from 1 to 200"),
        ]
        for obj, reason in cases:
            with self.assertRaises(ProtocolError) as raised:
                parse_client_command(obj)
            self.assertEqual(raised.exception.code, "BAD_COMMAND")
            self.assertEqual(raised.exception.ref, "HISTORY")
            self.assertIn(reason, raised.exception.reason)

    def test_a_bad_since_refuses_the_join(self) -> None:
        for since in (-1, "3", 1.5, True):
            obj = {"CMD": "JOIN", "UN": "T", "UID": "t", "SINCE": since}
            with self.assertRaises(JoinRefused) as raised:
                parse_client_command(obj)
            self.assertEqual(
                (raised.exception.code, raised.exception.reason),
                ("BAD_JOIN", "SINCE must be a message id (a whole number >= 0)"),
            )

    def test_a_since_beyond_64_bits_refuses_the_join(self) -> None:
        ok = {"CMD": "JOIN", "UN": "T", "UID": "t", "SINCE": 2**63 - 1}
        self.assertEqual(parse_client_command(ok).since, 2**63 - 1)
        for since in (2**63, 2**70):
            obj = {"CMD": "JOIN", "UN": "T", "UID": "t", "SINCE": since}
            with self.assertRaises(JoinRefused) as raised:
                parse_client_command(obj)
            self.assertEqual(
                (raised.exception.code, raised.exception.reason),
                ("BAD_JOIN", "SINCE is out of range: message ids are below 2**63"),
            )

    def test_replayed_messages_and_the_end_marker_parse_back(self) -> None:
        stored = messages.ChatMessage(12, 1_700_000_000_000, "t", "ALL", (), "hi")
        self.assertEqual(
            messages.parse_server_command(stored.history_payload()),
            messages.Message("ALL", "hi", "t", 1_700_000_000_000, (), 12, True),
        )
        self.assertEqual(
            messages.parse_server_command(stored.payload()),
            messages.Message("ALL", "hi", "t", 1_700_000_000_000, (), 12, False),
        )
        self.assertEqual(
            messages.parse_server_command(messages.history_payload(True)),
            messages.HistoryEnd(True),
        )
