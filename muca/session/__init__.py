"""The protocol-neutral session layer: what a logged-in user may do
(``IChatUser``), and what every front-end must do for its peer
(``IChatClient``). Each front-end (TCP framings, WebSocket, later IRC) is a
wire adapter between its frames and these two interfaces."""
