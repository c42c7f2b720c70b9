"""Tests of several servers sharing one room through Redis."""
