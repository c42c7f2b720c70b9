"""The MUCA wire protocol, shared by server and client: framing (``wire``)
and commands as typed values (``messages``). No sockets, no reactor."""
