"""The MUCA server: the room, this server's node (peers, rosters, fan-out),
one connection, the bus between them, output, limits, auth, and ``twistd
muca``: its command line (``options``), the service built from it (``tap``)
and the listeners' helpers (``listeners``)."""
