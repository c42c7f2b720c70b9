"""Tests of muca.session: logins and sessions, whatever the front-end."""
