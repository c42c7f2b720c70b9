"""The composition root: ``twistd muca``'s command line, its listeners, and
the one startup sequence that opens the store and builds the bus and the
node on it. Above every other package; nothing imports it but the twistd
plugin and the tests."""
