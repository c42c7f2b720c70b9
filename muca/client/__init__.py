"""MUCA clients: the client library (``client``, with what it raises in
``errors``, what it reports in ``observer`` and where it connects in
``endpoint``), its config files (``config``), the Tk window (``gui``), the
``muca-chat`` command line (``cli``) and the four-window demo (``demo``)."""
