"""``muca-demo``: a server and four chat windows, as the original's start-OSX.sh.

Starts ``twistd -n muca`` on loopback and one ``muca-chat`` window per config
(by default the four users shipped in the package, ``muca/client/configs/``,
which the checkout's ``configs/`` links to), tiled two by two. Ctrl+C, or
closing the last window, stops everything, even in a process started with
SIGINT ignored (a shell script's background job).
"""

from __future__ import annotations

import argparse
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import IO

from muca.client.config import ConfigError, load_config

DEFAULT_CONFIGS = ("config.txt", "config1.txt", "config2.txt", "config3.txt")
PLACES = ("640x480+0+0", "640x480+660+0", "640x480+0+510", "640x480+660+510")
STARTUP_LIMIT = 15.0
STOP_LIMIT = 5.0

# The server logs "muca: listening on 127.0.0.1:40452" once the port is open.
_LISTENING = re.compile(r"muca: listening on [^ ]*:(\d+)")


def default_configs() -> list[str]:
    """The paths of the four demo users' configs shipped in the package,
    wherever the program is run from."""
    folder = resources.files("muca.client").joinpath("configs")
    # An installed or checked-out package is a folder on disk: its files
    # have paths that the window processes can open.
    return [str(folder.joinpath(name)) for name in DEFAULT_CONFIGS]


def _say(text: str) -> None:
    print(f"muca-demo: {text}", flush=True)


def _twistd_command() -> list[str]:
    script = Path(sys.executable).with_name("twistd")
    if script.exists():
        return [str(script)]
    found = shutil.which("twistd")
    if found:
        return [found]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def _forward(stream: IO[str], lines: queue.Queue[str]) -> None:
    """Echo the server's log and hand each line to the main thread; draining
    the pipe keeps the server from blocking on a full one."""
    for line in stream:
        print(f"server: {line.rstrip()}", flush=True)
        lines.put(line)
    lines.put("")


def _stop(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(STOP_LIMIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_LIMIT)


def _start_server(port: int) -> tuple[subprocess.Popen[str], int] | None:
    command = _twistd_command() + [
        "-n",
        "--pidfile=",
        "muca",
        "--listen",
        f"tcp:{port}:interface=127.0.0.1",
        # The demo's windows are Tk clients; no web port to collide on.
        "--web",
        "none",
    ]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert server.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_forward, args=(server.stdout, lines), daemon=True).start()
    deadline = time.monotonic() + STARTUP_LIMIT
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if server.poll() is not None:
                    break
                continue
            if not line:  # the server's output ended: it has stopped
                break
            found = _LISTENING.search(line)
            if found:
                return server, int(found.group(1))
    except KeyboardInterrupt:
        _stop(server)
        raise
    _stop(server)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``muca-demo [CONFIG ...]``: run a server and one window per config."""
    parser = argparse.ArgumentParser(
        prog="muca-demo",
        description="Start a MUCA server on loopback and one chat window per config.",
    )
    parser.add_argument(
        "configs",
        nargs="*",
        help="config files (default: the four demo users shipped with MUCA: "
        "Tony, Mary, Henry and Peter)",
    )
    parser.add_argument(
        "--port",
        type=int,
        help="server port (default: the first config's SERVER_PORT; 0: any free one)",
    )
    args = parser.parse_args(argv)
    paths = args.configs or default_configs()
    try:
        configs = [load_config(path) for path in paths]
    except ConfigError as error:
        print(f"muca-demo: {error}", file=sys.stderr)
        return 2
    port = configs[0].port if args.port is None else args.port

    # Ctrl+C stops everything from here on, and SIGTERM the same way. SIGINT
    # is set too: Python makes it KeyboardInterrupt only if it was not
    # ignored at start, and a shell script's background job starts with it
    # ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        started = _start_server(port)
    except KeyboardInterrupt:
        _say("interrupted while the server started; stopped")
        return 0
    if started is None:
        print(
            "muca-demo: the server did not start (see its log above)", file=sys.stderr
        )
        return 1
    server, port = started
    _say(f"server listening on 127.0.0.1:{port} (pid {server.pid})")

    windows: list[subprocess.Popen[bytes]] = []
    try:
        for index, path in enumerate(paths):
            place = PLACES[index % len(PLACES)]
            command = [
                sys.executable,
                "-m",
                "muca.client.cli",
                path,
                "--port",
                str(port),
                "--join",
            ]
            window = subprocess.Popen(command + ["--geometry", place])
            windows.append(window)
            _say(f"window for {configs[index].nickname} (pid {window.pid})")
        # The program's main loop: it ends with the windows or the server.
        # Every window is polled on every round, so that each one closed is
        # reaped at once, not left a zombie until the others close.
        live = dict(zip(windows, configs, strict=False))
        while live:
            for window, config in list(live.items()):
                if window.poll() is not None:
                    del live[window]
                    _say(f"window for {config.nickname} closed")
            if server.poll() is not None:
                _say("the server stopped; closing the windows")
                break
            if live:
                time.sleep(0.2)
        else:
            _say("all windows closed; stopping the server")
    except KeyboardInterrupt:
        _say("interrupted; stopping everything")
    finally:
        for window in windows:
            _stop(window)
        _stop(server)
    _say("stopped")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
