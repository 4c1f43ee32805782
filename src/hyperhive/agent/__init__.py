"""hive-ag3nt / hive-m1nd: the harness that runs one agent inside its container."""
