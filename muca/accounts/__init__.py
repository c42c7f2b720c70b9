"""Accounts: password hashes, registration, invitations and muca-admin."""
