"""Makes ``twistd muca`` run the MUCA chat server (see ``muca.server.tap``)."""

from twisted.application.service import ServiceMaker

muca = ServiceMaker(
    "MUCA chat server",
    "muca.server.tap",
    "Multi-user chat server (MUCA protocol).",
    "muca",
)
