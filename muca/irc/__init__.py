"""The IRC listener (``--irc``): IRC clients as one more front-end of the
session layer (see ``muca.irc.peer``)."""
