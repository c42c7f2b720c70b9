"""Tests of muca.server."""
