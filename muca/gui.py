"""``python -m muca.gui``: the old name of the Tk window, kept working.

The window lives in ``muca.client.gui`` and its command line in
``muca.client.cli``; ``muca-chat`` is the same command.
"""

from muca.client.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
