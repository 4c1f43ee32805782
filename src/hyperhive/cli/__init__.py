"""``hive``: the operator's command line over ``host.sock``."""
