"""strangler: carve services out of a PostgreSQL monolith, step by step, with evidence."""

__version__ = "0.1.0"
