"""Identity's use cases over small ports (see each module)."""
