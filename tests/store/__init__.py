"""Tests of muca.store."""
