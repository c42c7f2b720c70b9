"""The MUCA server: the room, this server's node (peers, rosters, fan-out),
one connection, the bus between them, output, limits, auth and the twistd
service (``tap``)."""
