"""Accounts (``--auth db``): password hashing, the running server's
registration, password changes and account checks, and what it notices of
``muca-admin``'s changes (``muca.service.admin``)."""
