"""AWS Database Migration Service as the bulk engine of a copy (issue 17, ``copy.engine: dms``).

:mod:`.rules` writes the task's table mappings from the spec (the tables, the schema rename)
and checks them against strangler's own model of DMS's rule language, since DMS (and moto)
accept a malformed document and fail later; it also interprets them, so a test can apply
the very rules to a real copy. :mod:`.control` drives the control plane through boto3
(replication instance, endpoints, a task in ``DO_NOTHING`` target-preparation mode) and
follows the load through :class:`.control.TableProgress`, a one-method Protocol over
``describe_table_statistics``.
"""
