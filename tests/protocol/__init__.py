"""Tests of muca.protocol."""
