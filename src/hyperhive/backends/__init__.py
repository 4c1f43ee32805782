"""Container backends: turn an agent's applied config into a running container."""
