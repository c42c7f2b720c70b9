"""MUCA clients: the client library (``client``), its config files
(``config``), the Tk window (``gui``) and the four-window demo (``demo``)."""
