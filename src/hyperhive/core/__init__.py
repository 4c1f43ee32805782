"""hive-c0re: the host daemon (store, broker, registry, sockets)."""
