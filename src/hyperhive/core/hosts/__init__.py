"""Hosts: the cores sharing one store, each naming itself and beating (DESIGN: several
machines, one hive). ``status`` judges rows, ``table`` keeps them, ``heartbeat`` writes
this core's."""
