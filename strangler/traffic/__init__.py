"""Traffic routers: a Protocol (:mod:`.base`) and one module per kind, listed in :mod:`.kinds`."""
