"""The processes hyperhive runs, each composed from the layers."""
