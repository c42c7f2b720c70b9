"""Tests of muca.client."""
