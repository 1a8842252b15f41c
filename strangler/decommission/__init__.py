"""The runbook's post-migration decommission: evidence first, then route, archive, rename, drop."""
