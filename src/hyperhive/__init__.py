"""hyperhive: a swarm of Claude Code agents on one Linux host, under human control."""

__version__ = "0.1.0"
