"""Several servers sharing one room through Redis (``--cluster``)."""
