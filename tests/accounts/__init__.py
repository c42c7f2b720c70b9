"""Accounts: --auth db, REGISTER and PASSWORD, muca-admin, login slow-down."""
