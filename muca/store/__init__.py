"""The message store: accepted chat messages, kept and read back per reader.

``open_store(spec)`` picks a backend (SQLite file or PostgreSQL);
``MessageStore`` is the interface every backend implements.
"""

from muca.store.base import (
    ChatMessage,
    MessageStore,
    Page,
    StoreError,
    may_read,
)
from muca.store.open import open_store

__all__ = [
    "ChatMessage",
    "MessageStore",
    "Page",
    "StoreError",
    "may_read",
    "open_store",
]
