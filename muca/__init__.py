"""MUCA: a multi-user chat server and client on Twisted."""

__version__ = "0.1.0"
