"""hive-m1nd: the manager agent — the harness with the manager's tools and prompt."""
