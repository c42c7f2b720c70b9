"""Makes ``twistd muca`` run the MUCA chat server (see ``muca.service.tap``)."""

from twisted.application.service import ServiceMaker

muca = ServiceMaker(
    "MUCA chat server",
    "muca.service.tap",
    "Multi-user chat server (MUCA protocol).",
    "muca",
)
