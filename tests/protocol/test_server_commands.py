"""What a client makes of what a server sends: every field read, every
ill-typed one refused with the code and reason the client reports, and the
optional ones falling back to what an original server means."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from muca.protocol.messages import (
    BAD_COMMAND,
    Ack,
    Message,
    Peer,
    PeerList,
    Presence,
    ProtocolError,
    ServerError,
    parse_server_command,
)

TONY = {"UN": "Tony", "UID": "t"}


class ServerCommandRefusalTests(SynchronousTestCase):
    def refused(self, obj: dict[str, Any]) -> tuple[str, str]:
        """The code and reason with which ``obj`` is refused."""
        with self.assertRaises(ProtocolError) as caught:
            parse_server_command(obj)
        return caught.exception.code, caught.exception.reason

    def test_msg_without_its_strings_is_refused(self) -> None:
        reason = "MSG needs TYPE, MSG and FROM strings"
        good = {"CMD": "MSG", "TYPE": "ALL", "MSG": "hi", "FROM": "t"}
        for field in ("TYPE", "MSG", "FROM"):
            for value in (None, 1):
                obj = {**good, field: value}
                with self.subTest(field=field, value=value):
                    self.assertEqual(self.refused(obj), (BAD_COMMAND, reason))

    def test_list_that_is_not_a_list_of_peers_is_refused(self) -> None:
        self.assertEqual(
            self.refused({"CMD": "LIST"}), (BAD_COMMAND, "peer list must be a list")
        )
        self.assertEqual(
            self.refused({"CMD": "LIST", "DATA": {"UN": "a", "UID": "b"}}),
            (BAD_COMMAND, "peer list must be a list"),
        )
        for entry in ("Tony", {"UN": "a"}, {"UID": "b"}, {"UN": 1, "UID": "b"}):
            with self.subTest(entry=entry):
                self.assertEqual(
                    self.refused({"CMD": "LIST", "DATA": [TONY, entry]}),
                    (BAD_COMMAND, "peer entry needs UN and UID strings"),
                )
        self.assertEqual(
            self.refused({"CMD": "LIST", "DATA": [{"UN": "a", "UID": 2}]}),
            (BAD_COMMAND, "peer entry needs UN and UID strings"),
        )

    def test_presence_with_ill_typed_left_or_joined_is_refused(self) -> None:
        reason = "PRESENCE LEFT must be a list of ids"
        self.assertEqual(
            self.refused({"CMD": "PRESENCE", "LEFT": "t"}), (BAD_COMMAND, reason)
        )
        self.assertEqual(
            self.refused({"CMD": "PRESENCE", "LEFT": ["t", 2]}), (BAD_COMMAND, reason)
        )
        self.assertEqual(
            self.refused({"CMD": "PRESENCE", "JOINED": "Tony"}),
            (BAD_COMMAND, "peer list must be a list"),
        )

    def test_ack_of_an_unknown_type_is_refused(self) -> None:
        for kind in (None, "MAYBE", "okay"):
            with self.subTest(kind=kind):
                self.assertEqual(
                    self.refused({"CMD": "ACK", "TYPE": kind}),
                    (BAD_COMMAND, "ACK needs TYPE OKAY or FAIL"),
                )


class ServerCommandFieldTests(SynchronousTestCase):
    def test_msg_reads_every_field(self) -> None:
        obj = {
            "CMD": "MSG",
            "TYPE": "GROUP",
            "MSG": "hi",
            "FROM": "t",
            "TS": 1700000000000,
            "TO": ["m", "h"],
        }
        self.assertEqual(
            parse_server_command(obj),
            Message("GROUP", "hi", "t", 1700000000000, ("m", "h")),
        )

    def test_msg_from_an_original_server_has_no_time_and_no_list(self) -> None:
        obj = {"CMD": "MSG", "TYPE": "ALL", "MSG": "hi", "FROM": "t"}
        self.assertEqual(parse_server_command(obj), Message("ALL", "hi", "t", None, ()))

    def test_msg_ignores_ill_typed_time_and_recipients(self) -> None:
        obj = {
            "CMD": "MSG",
            "TYPE": "GROUP",
            "MSG": "hi",
            "FROM": "t",
            "TS": "yesterday",
            "TO": ["m", 3, "h"],
        }
        self.assertEqual(
            parse_server_command(obj), Message("GROUP", "hi", "t", None, ("m", "h"))
        )
        obj["TO"] = "m"
        self.assertEqual(parse_server_command(obj).to, ())

    def test_presence_without_left_or_joined_means_nobody(self) -> None:
        self.assertEqual(
            parse_server_command({"CMD": "PRESENCE", "JOINED": [TONY]}),
            Presence((Peer("Tony", "t"),), ()),
        )
        self.assertEqual(
            parse_server_command({"CMD": "PRESENCE", "LEFT": ["m"]}),
            Presence((), ("m",)),
        )

    def test_list_keeps_the_servers_order(self) -> None:
        mary = {"UN": "Mary", "UID": "m"}
        self.assertEqual(
            parse_server_command({"CMD": "LIST", "DATA": [mary, TONY]}),
            PeerList((Peer("Mary", "m"), Peer("Tony", "t"))),
        )

    def test_ack_fail_keeps_code_and_reason(self) -> None:
        obj = {"CMD": "ACK", "TYPE": "FAIL", "CODE": "UID_TAKEN", "REASON": "taken"}
        self.assertEqual(parse_server_command(obj), Ack(False, "UID_TAKEN", "taken"))

    def test_ack_from_an_original_server_has_no_code_nor_reason(self) -> None:
        self.assertEqual(
            parse_server_command({"CMD": "ACK", "TYPE": "FAIL"}), Ack(False)
        )
        self.assertEqual(
            parse_server_command({"CMD": "ACK", "TYPE": "OKAY", "CODE": 1}),
            Ack(True, None, None),
        )
        self.assertEqual(
            parse_server_command(
                {"CMD": "ACK", "TYPE": "FAIL", "CODE": 7, "REASON": ["x"]}
            ),
            Ack(False, None, None),
        )

    def test_error_keeps_code_reason_and_ref(self) -> None:
        obj = {"CMD": "ERROR", "CODE": "NOT_JOINED", "REASON": "join", "REF": "SEND"}
        self.assertEqual(
            parse_server_command(obj), ServerError("NOT_JOINED", "join", "SEND")
        )

    def test_error_with_ill_typed_fields_still_reaches_the_user(self) -> None:
        self.assertEqual(
            parse_server_command({"CMD": "ERROR"}), ServerError("ERROR", "", None)
        )
        self.assertEqual(
            parse_server_command({"CMD": "ERROR", "CODE": 4, "REASON": None, "REF": 5}),
            ServerError("ERROR", "", None),
        )

    def test_unknown_or_missing_commands_are_ignored(self) -> None:
        for obj in ({"CMD": "FUTURE"}, {}, {"CMD": 3}, {"CMD": "msg"}):
            with self.subTest(obj=obj):
                self.assertIsNone(parse_server_command(obj))
