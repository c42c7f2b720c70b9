"""Tests of muca.client.config: config files, and muca-chat's answer to bad ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from muca.client.config import ClientConfig, ConfigError, load_config, parse_config
from tests.support.client import temp_folder

CONFIGS = Path(__file__).resolve().parent.parent.parent / "configs"


class ParseConfigTests(SynchronousTestCase):
    def check_error(self, text: str, message: str) -> None:
        with self.assertRaises(ConfigError) as raised:
            parse_config(text, "c.txt")
        self.assertEqual(str(raised.exception), message)

    def test_quoted_config_is_read(self) -> None:
        config = parse_config(
            '{"USERID": "Tony@hku.hk", "NICKNAME": "Tony",'
            ' "SERVER": "127.0.0.1", "SERVER_PORT": 40452}'
        )
        self.assertEqual(
            config, ClientConfig("Tony@hku.hk", "Tony", "127.0.0.1", 40452)
        )

    def test_unquoted_server_address_of_the_original_readme_is_accepted(
        self,
    ) -> None:
        text = (
            "{\n"
            '  "USERID": "henry@hku.hk",\n'
            '  "NICKNAME": "Henry",\n'
            '  "SERVER": 127.0.0.1,\n'
            '  "SERVER_PORT": 40452\n'
            "}\n"
        )
        config = parse_config(text)
        self.assertEqual((config.server, config.port), ("127.0.0.1", 40452))
        unquoted_name = text.replace("127.0.0.1", "localhost")
        self.assertEqual(parse_config(unquoted_name).server, "localhost")

    def test_invalid_json_names_line_and_column(self) -> None:
        self.check_error(
            '{\n  "USERID": "a@b",\n  "NICKNAME" "A"\n}',
            "c.txt: invalid JSON at line 3 column 14: Expecting ':' delimiter",
        )

    def test_error_after_an_unquoted_address_points_at_the_real_problem(
        self,
    ) -> None:
        self.check_error(
            '{\n  "SERVER": 127.0.0.1\n  "SERVER_PORT": 40452\n}',
            "c.txt: invalid JSON at line 3 column 3: Expecting ',' delimiter",
        )

    def test_missing_key_is_named(self) -> None:
        self.check_error(
            '{"USERID": "a@b", "NICKNAME": "A", "SERVER": "h"}',
            "c.txt: missing key SERVER_PORT",
        )

    def test_wrong_types_are_named(self) -> None:
        base = '{"USERID": "a@b", "NICKNAME": "A", "SERVER": "h", "SERVER_PORT": %s}'
        self.check_error(
            base % '"40452"', "c.txt: SERVER_PORT must be a number, not a string"
        )
        self.check_error(
            base % "true", "c.txt: SERVER_PORT must be a number, not true/false"
        )
        self.check_error(
            base % "70000", "c.txt: SERVER_PORT must be between 1 and 65535"
        )
        self.check_error(
            '{"USERID": 5, "NICKNAME": "A", "SERVER": "h", "SERVER_PORT": 1}',
            "c.txt: USERID must be a string, not a number",
        )
        self.check_error("[1, 2]", "c.txt: expected a JSON object {...}")

    def test_nickname_the_server_would_refuse_is_an_error(self) -> None:
        self.check_error(
            '{"USERID": "a@b", "NICKNAME": "A, B", "SERVER": "h", "SERVER_PORT": 1}',
            "c.txt: NICKNAME must not contain a comma",
        )

    def test_tls_ca_and_password_are_optional_keys(self) -> None:
        base = '{"USERID": "a@b", "NICKNAME": "A", "SERVER": "h", "SERVER_PORT": 1'
        config = parse_config(base + ', "TLS": true, "PASSWORD": "s3cret"}')
        self.assertEqual(
            (config.tls, config.password, config.ca_file), (True, "s3cret", None)
        )
        self.check_error(
            base + ', "TLS": "yes"}', "c.txt: TLS must be true or false, not a string"
        )
        self.check_error(
            base + ', "CA": "nowhere.pem"}', "c.txt: CA file nowhere.pem not found"
        )

    def test_ca_path_is_relative_to_the_config_file(self) -> None:
        folder = temp_folder(self)
        (folder / "ca.pem").write_text("not checked here")
        path = folder / "config.txt"
        path.write_text(
            '{"USERID": "a@b", "NICKNAME": "A", "SERVER": "h", "SERVER_PORT": 1,'
            ' "TLS": true, "CA": "ca.pem"}'
        )
        self.assertEqual(
            load_config(str(path)).ca_file, str((folder / "ca.pem").resolve())
        )

    def test_missing_file_is_one_line(self) -> None:
        with self.assertRaises(ConfigError) as raised:
            load_config("no-such-config.txt")
        self.assertEqual(str(raised.exception), "no-such-config.txt: no such file")


class ShippedConfigTests(SynchronousTestCase):
    def test_the_four_users_of_the_original(self) -> None:
        users = [
            (c.nickname, c.uid, c.server, c.port)
            for c in (
                load_config(str(CONFIGS / name))
                for name in ("config.txt", "config1.txt", "config2.txt", "config3.txt")
            )
        ]
        self.assertEqual(
            users,
            [
                ("Tony", "Tony@hku.hk", "127.0.0.1", 40452),
                ("Mary", "mary@hku.hk", "127.0.0.1", 40452),
                ("Henry", "henry@hku.hk", "127.0.0.1", 40452),
                ("Peter", "peter@hku.hk", "127.0.0.1", 40452),
            ],
        )


class CommandLineTests(SynchronousTestCase):
    def run_chat(
        self, *args: str, cwd: str | None = None, module: str = "muca.client.cli"
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.pop("DISPLAY", None)  # a config error must come before any window
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=cwd,
            env=env,
        )

    def test_bad_config_gives_one_line_and_status_2(self) -> None:
        path = temp_folder(self) / "bad-config.txt"
        path.write_text('{"USERID": "a@b",\n "NICKNAME": }')
        result = self.run_chat(str(path))
        self.assertEqual(result.returncode, 2)
        self.assertEqual(
            result.stderr,
            f"muca-chat: {path}: invalid JSON at line 2 column 14: Expecting value\n",
        )
        self.assertEqual(result.stdout, "")

    def test_the_old_module_name_muca_gui_still_runs_the_window(self) -> None:
        folder = temp_folder(self)
        result = self.run_chat(cwd=str(folder), module="muca.gui")
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stderr, "muca-chat: config.txt: no such file\n")

    def test_default_config_is_config_txt_in_the_current_folder(self) -> None:
        folder = temp_folder(self)
        result = self.run_chat(cwd=str(folder))
        self.assertEqual(result.returncode, 2)
        self.assertEqual(result.stderr, "muca-chat: config.txt: no such file\n")

    def test_no_display_gives_one_line_and_status_1(self) -> None:
        path = temp_folder(self) / "config.txt"
        path.write_text(
            '{"USERID": "tony@hku.hk", "NICKNAME": "Tony",'
            ' "SERVER": "127.0.0.1", "SERVER_PORT": 40452}'
        )
        result = self.run_chat(str(path))
        self.assertEqual(result.returncode, 1)
        self.assertRegex(
            result.stderr, r"\Amuca-chat: cannot open a window: [^\n]+\n\Z"
        )
        self.assertEqual(result.stdout, "")

    # Bad options: one line and status 2, before any window opens.

    def run_with_config(self, *options: str) -> subprocess.CompletedProcess[str]:
        path = temp_folder(self) / "config.txt"
        path.write_text(
            '{"USERID": "tony@hku.hk", "NICKNAME": "Tony",'
            ' "SERVER": "127.0.0.1", "SERVER_PORT": 40452}'
        )
        return self.run_chat(str(path), *options)

    def assertUsageLine(
        self, result: subprocess.CompletedProcess[str], line: str
    ) -> None:
        self.assertEqual(
            (result.returncode, result.stderr), (2, f"muca-chat: {line}\n")
        )
        self.assertEqual(result.stdout, "")

    def test_garbage_geometry_is_one_line(self) -> None:
        self.assertUsageLine(
            self.run_with_config("--geometry", "garbage"),
            "argument --geometry: 'garbage' is not WIDTHxHEIGHT[+X+Y],"
            " e.g. 640x500+0+0",
        )

    def test_port_out_of_range_or_not_a_number_is_one_line(self) -> None:
        for port, problem in (
            ("99999", "99999 is not between 1 and 65535"),
            ("0", "0 is not between 1 and 65535"),
            ("abc", "'abc' is not a port number"),
        ):
            self.assertUsageLine(
                self.run_with_config("--port", port), f"argument --port: {problem}"
            )

    def test_unknown_option_is_one_line(self) -> None:
        self.assertUsageLine(
            self.run_with_config("--colour", "red"),
            "unrecognized arguments: --colour red",
        )
