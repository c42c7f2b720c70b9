"""``python -m muca.gui``: the old name of the Tk window, kept working.

The window lives in ``muca.client.gui``; ``muca-chat`` is the same command.
"""

from muca.client.gui import main

if __name__ == "__main__":
    raise SystemExit(main())
