"""The web listener: the browser client, the protocol over WebSocket, health
and metrics pages, all from one ``twisted.web`` site."""
