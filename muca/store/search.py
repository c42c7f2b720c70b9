"""Search queries: what a user types, parsed into terms, and those terms
written as an SQLite FTS5 ``MATCH`` expression or a PostgreSQL ``tsquery``.

The query language (``SEARCH``'s ``Q``):

- words, all of which a message must hold, whole (``plan``) or as a
  prefix (``plan*``);
- ``"quoted phrases"``, whose words must come in that order, side by side
  (``"plan b"*``: its last word a prefix);
- case and accents do not matter (``Café`` finds ``cafe``);
- Chinese and Japanese (text written without spaces) is found by any part
  of three characters or more: ``東京タワー`` finds ``東京タワーに行った``.

A word is a run of letters and digits (anything else separates words, as
SQLite's ``unicode61`` tokenizer does), lowered, its accents removed. A bad
query raises :class:`BadQuery`, whose text says what is wrong.

Everything a user typed reaches the database as quoted tokens made of
letters and digits only: no FTS5 or tsquery operator can come from a query.
The PostgreSQL index holds the same tokens, made here from each message's
text (:func:`document`), so both backends find the same messages.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

#: The longest query, in characters.
MAX_QUERY = 200

#: Terms in one query at most (each is one more index lookup).
MAX_TERMS = 16

#: Characters of a Chinese or Japanese part at least.
CJK_PART = 3

#: Unicode ranges written without spaces between words: CJK ideographs
#: (and extension A, compatibility ideographs), Hiragana, Katakana (and its
#: half-width forms), Hangul syllables.
CJK_RANGES = (
    (0x3040, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFAFF),
    (0xFF66, 0xFF9F),
)

#: The same ranges as an SQLite GLOB class: a message with any of them is
#: put in the trigram index too.
CJK_GLOB = "*[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in CJK_RANGES) + "]*"

#: The longest word kept in PostgreSQL's index: a longer one cannot be
#: searched for (a query is shorter) and tsvector refuses lexemes past 2 KB.
MAX_WORD = MAX_QUERY

#: tsvector positions stop at this one (PostgreSQL's limit).
MAX_POSITION = 16383


class BadQuery(ValueError):
    """A query that cannot be searched for; ``str()`` says why, for the user."""


@dataclass(frozen=True, slots=True)
class Term:
    """Words a message must hold side by side, in this order (one: a
    word); ``prefix``: the last one may go on (``plan*``). ``cjk``: one
    Chinese or Japanese part, found anywhere in a word."""

    words: tuple[str, ...]
    prefix: bool = False
    cjk: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: every term must match."""

    terms: tuple[Term, ...]

    @property
    def word_terms(self) -> tuple[Term, ...]:
        """The terms found through the words index."""
        return tuple(t for t in self.terms if not t.cjk)

    @property
    def cjk_terms(self) -> tuple[Term, ...]:
        """The terms found through the index of three-character parts."""
        return tuple(t for t in self.terms if t.cjk)


def is_cjk(char: str) -> bool:
    """Whether ``char`` is of a script written without spaces (see
    ``CJK_RANGES``)."""
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in CJK_RANGES)


def _is_word_char(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "LNM" or category == "Co"


def fold(text: str) -> str:
    """``text`` lowered, the accents (combining marks) of its letters
    removed; Chinese and Japanese characters stay as they are (a Japanese
    voicing mark is no accent)."""
    kept: list[str] = []
    for char in text.lower():
        if char.isascii() or is_cjk(char):
            kept.append(char)
        else:
            kept.extend(
                c
                for c in unicodedata.normalize("NFKD", char)
                if unicodedata.category(c) != "Mn"
            )
    return "".join(kept)


def words(text: str) -> list[str]:
    """The words of ``text`` (folded), in order."""
    found: list[str] = []
    current: list[str] = []
    for char in fold(text):
        if _is_word_char(char):
            current.append(char)
        elif current:
            found.append("".join(current))
            current = []
    if current:
        found.append("".join(current))
    return found


def parse(text: str) -> Query:
    """Parse a user's query; raises :class:`BadQuery`."""
    if not isinstance(text, str):
        raise BadQuery("the query must be text")
    if len(text) > MAX_QUERY:
        raise BadQuery(f"the query is longer than {MAX_QUERY} characters")
    if text.count('"') % 2:
        raise BadQuery('a quote (") is not closed')
    terms: list[Term] = []
    pieces = text.split('"')
    # Outside quotes (even pieces) every blank-separated chunk is a term;
    # inside (odd pieces) the whole piece is one phrase, whose last word is
    # a prefix when a star follows the closing quote ("plan b"*).
    for index, piece in enumerate(pieces):
        if index % 2:
            starred = pieces[index + 1].startswith("*")
            terms += _chunk_terms(piece, starred)
        else:
            if index:
                piece = piece.removeprefix("*")
            for chunk in piece.split():
                terms += _chunk_terms(chunk.rstrip("*"), chunk.endswith("*"))
    if not terms:
        raise BadQuery("the query has no words to search for")
    if len(terms) > MAX_TERMS:
        raise BadQuery(f"the query has more than {MAX_TERMS} words or phrases")
    return Query(tuple(dict.fromkeys(terms)))


def _chunk_terms(chunk: str, prefix: bool) -> list[Term]:
    """The terms of one chunk (a blank-separated one, or a phrase): its
    words side by side; with Chinese or Japanese among them, each word a
    term of its own (those found as parts)."""
    found = words(chunk)
    if not any(is_cjk(c) for word in found for c in word):
        return [Term(tuple(found), prefix)] if found else []
    terms: list[Term] = []
    for position, word in enumerate(found, 1):
        if not any(map(is_cjk, word)):
            terms.append(Term((word,), prefix and position == len(found)))
        elif len(word) < CJK_PART:
            raise BadQuery(
                f"{word!r}: Chinese and Japanese are searched for by parts of"
                f" {CJK_PART} characters or more"
            )
        else:
            terms.append(Term((word,), cjk=True))
    return terms


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def fts5_match(terms: tuple[Term, ...]) -> str:
    """The FTS5 MATCH expression of ``terms`` (all words terms, or all
    Chinese and Japanese ones): every term quoted, joined with AND."""
    parts = []
    for term in terms:
        phrase = _quote(" ".join(term.words))
        parts.append(phrase + " *" if term.prefix else phrase)
    return " AND ".join(parts)


def _lexeme(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def _trigrams(word: str) -> list[str]:
    return [word[i : i + CJK_PART] for i in range(len(word) - CJK_PART + 1)]


def tsquery(terms: tuple[Term, ...]) -> str:
    """The tsquery text of ``terms`` (cast with ``::tsquery``): a phrase's
    words and a Chinese or Japanese part's three-character pieces follow
    each other (``<->``), terms are joined with ``&``."""
    parts = []
    for term in terms:
        if term.cjk:
            pieces = [_lexeme(p) for p in _trigrams(term.words[0])]
        else:
            pieces = [_lexeme(w) for w in term.words]
            if term.prefix:
                pieces[-1] += ":*"
        parts.append("(" + " <-> ".join(pieces) + ")")
    return " & ".join(parts)


def document(text: str) -> str:
    """The tsvector text (cast with ``::tsvector``) of a message for
    PostgreSQL's index: each word at its position; a word with Chinese or
    Japanese in it as its three-character pieces, at positions of their own
    one after the other."""
    positions: dict[str, list[int]] = {}
    position = 1
    for word in words(text):
        if any(map(is_cjk, word)):
            pieces = _trigrams(word)
        else:
            pieces = [word] if len(word) <= MAX_WORD else []
        for piece in pieces:
            positions.setdefault(piece, []).append(min(position, MAX_POSITION))
            position += 1
        if not pieces:
            position += 1
    return " ".join(
        _lexeme(lexeme) + ":" + ",".join(map(str, sorted(set(at))))
        for lexeme, at in positions.items()
    )
