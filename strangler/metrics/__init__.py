"""Metric sources: a Protocol (:mod:`.base`), one module per kind listed in :mod:`.kinds`, and
the gates that judge a bake from their figures (:mod:`.gates`)."""
