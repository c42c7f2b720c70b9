"""Reading and checking a client config file.

The format is the original MUCA client's: a JSON object with ``USERID``,
``NICKNAME``, ``SERVER`` and ``SERVER_PORT``. The original README prints the
address unquoted (``"SERVER": 127.0.0.1,``), so that form is accepted too.
Optional keys: ``"TLS": true``, ``"CA"`` (a PEM CA certificate file,
relative to the config file) and ``"PASSWORD"``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from muca.protocol.messages import nickname_problem, uid_problem

DEFAULT_CONFIG = "config.txt"

# "SERVER": followed by a bare token such as 127.0.0.1 or localhost.
_BARE_SERVER = re.compile(r'("SERVER"\s*:\s*)([^\s",{}\[\]]+)')


class ConfigError(Exception):
    """A config file that cannot be used; ``str()`` is one readable line."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """One user's settings: who they are and where the server is."""

    uid: str
    nickname: str
    server: str
    port: int
    tls: bool = False
    ca_file: str | None = None
    password: str | None = None


def load_config(path: str) -> ClientConfig:
    """Read and check a config file; raises :class:`ConfigError`."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror or error}") from None
    return parse_config(text, path)


def parse_config(text: str, path: str = DEFAULT_CONFIG) -> ClientConfig:
    """Check a config's text; ``path`` names it in errors and anchors ``CA``."""
    data = _decode(text, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object {{...}}")
    for key in ("USERID", "NICKNAME", "SERVER", "SERVER_PORT"):
        if key not in data:
            raise ConfigError(f"{path}: missing key {key}")
    uid = _string(data, "USERID", path)
    nickname = _string(data, "NICKNAME", path)
    server = _string(data, "SERVER", path)
    problem = uid_problem(uid) or nickname_problem(nickname)
    if problem:
        problem = problem.replace("UID", "USERID").replace("UN", "NICKNAME", 1)
        raise ConfigError(f"{path}: {problem}")
    if not server.strip():
        raise ConfigError(f"{path}: SERVER must not be empty")
    port = data["SERVER_PORT"]
    if not isinstance(port, int) or isinstance(port, bool):
        raise ConfigError(f"{path}: SERVER_PORT must be a number, not {_kind(port)}")
    if not 0 < port < 65536:
        raise ConfigError(f"{path}: SERVER_PORT must be between 1 and 65535")
    tls = data.get("TLS", False)
    if not isinstance(tls, bool):
        raise ConfigError(f"{path}: TLS must be true or false, not {_kind(tls)}")
    ca_file = None
    if data.get("CA") is not None:
        ca_file = _string(data, "CA", path)
        ca_file = os.path.join(os.path.dirname(os.path.abspath(path)), ca_file)
        if not os.path.isfile(ca_file):
            raise ConfigError(f"{path}: CA file {data['CA']} not found")
    password = None
    if data.get("PASSWORD") is not None:
        password = _string(data, "PASSWORD", path)
    return ClientConfig(uid, nickname, server.strip(), port, tls, ca_file, password)


def _decode(text: str, path: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        first = error
    # The original README's form: an unquoted address after "SERVER".
    quoted = _BARE_SERVER.sub(_quote_bare, text, count=1)
    if quoted != text:
        try:
            return json.loads(quoted)
        except json.JSONDecodeError as error:
            # The address was meant unquoted: the next problem is the real one.
            first = error
    raise ConfigError(
        f"{path}: invalid JSON at line {first.lineno} column {first.colno}: {first.msg}"
    ) from None


def _quote_bare(match: re.Match[str]) -> str:
    token = match.group(2)
    try:
        json.loads(token)
    except ValueError:
        return f'{match.group(1)}"{token}"'
    return match.group(0)  # already valid JSON (a number, true, ...)


def _string(data: dict[str, Any], key: str, path: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {key} must be a string, not {_kind(value)}")
    return value


def _kind(value: object) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", str: "a string"}
    if value is None:
        return "null"
    return names.get(type(value), "a list" if isinstance(value, list) else "an object")
