"""The Tk window with passwords and TLS: real Tk windows, real servers."""

from __future__ import annotations

import json
import time

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol

from muca.client.gui import pane_text
from tests.support import start_server
from tests.support.client import (
    TONY,
    listen_loopback,
    make_certificates,
    temp_folder,
    tls_listen,
)
from tests.support.gui import GuiTestCase, first_line


class PasswordServer(Protocol):
    """A server that wants the password 'open sesame' in JOIN's PASS."""

    def connectionMade(self) -> None:
        self.buffer = ""

    def dataReceived(self, data: bytes) -> None:
        # The client writes objects back to back until it knows our framing.
        self.buffer += data.decode("ascii")
        while self.buffer.strip():
            try:
                join, end = json.JSONDecoder().raw_decode(self.buffer.lstrip())
            except ValueError:
                return  # the rest of the object is yet to come
            self.buffer = self.buffer.lstrip()[end:]
            self.factory.passwords.append(join.get("PASS"))
            if join.get("PASS") == "open sesame":
                answers = [
                    {"CMD": "ACK", "TYPE": "OKAY"},
                    {"CMD": "LIST", "DATA": [{"UN": join["UN"], "UID": join["UID"]}]},
                ]
            else:
                answers = [
                    {
                        "CMD": "ACK",
                        "TYPE": "FAIL",
                        "CODE": "AUTH_FAILED",
                        "REASON": "wrong or missing password",
                    }
                ]
            for answer in answers:
                self.transport.write(json.dumps(answer).encode() + b"\n")


class PasswordTests(GuiTestCase):
    async def password_server(self) -> tuple[int, list[str | None]]:
        factory = Factory.forProtocol(PasswordServer)
        factory.passwords = []
        port = await listen_loopback(self, factory)
        return port, factory.passwords

    async def test_auth_failure_asks_for_the_password_inside_the_window(
        self,
    ) -> None:
        port, passwords = await self.password_server()
        tony = self.window(TONY, port=port)
        tony.master.deiconify()
        await tony.do_join()
        await self.until(tony.password_entry.winfo_ismapped, "the password field")
        # The field is between the message box and the console: above the
        # console's newest line, and the prompt says so.
        self.assertLess(tony.password_entry.winfo_rooty(), tony.console.winfo_rooty())
        console = pane_text(tony.console).splitlines()
        self.assertEqual(
            console[:2],
            [
                "the server wants a password: type it in the PASSWORD field"
                " above and press Enter",
                "[ERROR] join refused: wrong or missing password",
            ],
        )
        await self.until(lambda: not tony.client.connected, "refused client closes")
        self.assertEqual(pane_text(tony.console).splitlines()[:2], console[:2])
        tony.password_entry.insert(0, "open sesame")
        tony.password_entry.focus_force()
        self.root.update()
        tony.password_entry.event_generate("<Return>")
        await self.until(lambda: tony.client.joined, "join with password")
        self.assertEqual(passwords, [None, "open sesame"])
        self.root.update()
        self.assertFalse(tony.password_entry.winfo_ismapped())
        self.assertIn("joined the chat room as Tony", pane_text(tony.console))

    async def test_password_from_the_config_is_sent_with_join(self) -> None:
        port, passwords = await self.password_server()
        tony = self.window(TONY, port=port, password="open sesame")
        await tony.do_join()
        self.assertTrue(tony.client.joined)
        self.assertEqual(passwords, ["open sesame"])


class AuthWindowTests(GuiTestCase):
    async def test_password_asked_in_the_window_joins_a_tls_server_with_auth(
        self,
    ) -> None:
        files = make_certificates(temp_folder(self) / "tls")
        port = await start_server(
            self, "--auth", "memory:Tony@hku.hk:open sesame", listen=tls_listen(files)
        )
        tony = self.window(TONY, port=port, tls=True, ca_file=files["ca"])
        await tony.do_join()
        self.assertIn(
            "[ERROR] join refused: wrong or missing password", pane_text(tony.console)
        )
        self.assertEqual(tony.password_entry.winfo_manager(), "grid")
        await self.until(lambda: not tony.client.connected, "refused client closes")
        tony.password_entry.insert(0, "wrong")
        await tony.do_join()
        self.assertFalse(tony.client.joined)
        tony.password_entry.delete(0, "end")
        tony.password_entry.insert(0, "open sesame")
        tony.join_button.invoke()
        await self.until(lambda: tony.client.joined, "join with the password")
        await self.until_in("Tony (Tony@hku.hk)", tony.peer_list)
        self.assertEqual(tony.password_entry.winfo_manager(), "")


class DeafAfterJoin(Protocol):
    """Answers the first JOIN, then stops reading: a TLS close_notify from the
    client is never read, so the client's TLS close never completes."""

    def connectionMade(self) -> None:
        self.factory.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        join = json.loads(data.split(b"\n")[0])
        peers = [{"UN": join["UN"], "UID": join["UID"]}]
        self.transport.write(b'{"CMD": "ACK", "TYPE": "OKAY"}\n')
        self.transport.write(json.dumps({"CMD": "LIST", "DATA": peers}).encode())
        self.transport.write(b"\n")
        self.transport.pauseProducing()


class TlsWindowTests(GuiTestCase):
    async def test_window_joins_over_tls_with_the_configs_ca(self) -> None:
        files = make_certificates(temp_folder(self) / "tls")
        port = await start_server(self, listen=tls_listen(files))
        tony = self.window(TONY, port=port, tls=True, ca_file=files["ca"])
        await tony.do_join()
        self.assertTrue(tony.client.joined)
        self.assertIn("over TLS", pane_text(tony.console))

    async def test_untrusted_certificate_is_reported_in_the_console(self) -> None:
        files = make_certificates(temp_folder(self) / "tls")
        other = make_certificates(temp_folder(self) / "tls")
        port = await start_server(self, listen=tls_listen(files))
        tony = self.window(TONY, port=port, tls=True, ca_file=other["ca"])
        await tony.do_join()
        self.assertFalse(tony.client.joined)
        line, tags = first_line(tony.console)
        self.assertEqual(
            line,
            "[ERROR] connection closed before JOIN was answered:"
            " TLS failed: certificate verify failed",
        )
        self.assertIn("error", tags)

    async def test_closing_gives_up_on_a_tls_peer_that_never_answers(self) -> None:
        files = make_certificates(temp_folder(self) / "tls")
        factory = Factory.forProtocol(DeafAfterJoin)
        factory.connections = []
        endpoint = serverFromString(reactor, tls_listen(files))
        listening = await endpoint.listen(factory)
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port
        tony = self.window(TONY, port=port, tls=True, ca_file=files["ca"])
        # Cleanups run last first: the server drops the connection before
        # the window's own cleanup waits for it to close.
        self.addCleanup(
            lambda: [c.transport.abortConnection() for c in factory.connections]
        )
        await tony.do_join()
        self.assertTrue(tony.client.joined)
        closed: list[float] = []
        tony.on_close = lambda: closed.append(time.monotonic())
        started = time.monotonic()
        tony.close()
        await self.until(lambda: closed, "on_close")
        self.assertTrue(0.9 <= closed[0] - started < 3.0, closed[0] - started)
        self.assertEqual(len(closed), 1)
