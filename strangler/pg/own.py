"""The schemas strangler makes on a database for its own machinery, named once.

``_strangler`` holds the write gate's functions and sync's stored positions; ``strangler_guard``
holds the decommission write guard's function and log. Their triggers sit on the monolith's
tables during a migration, so anything that reads those tables' catalog (the copy's DDL, the
boundary ``strangler plan`` shows) must leave them out: they are not the monolith's.
"""

from __future__ import annotations

__all__ = ["GATE_SCHEMA", "GUARD_SCHEMA", "OWN_SCHEMAS"]

GATE_SCHEMA = "_strangler"
GUARD_SCHEMA = "strangler_guard"
OWN_SCHEMAS = (GATE_SCHEMA, GUARD_SCHEMA)
