"""The DMS control plane through boto3: instance, endpoints, a full-load task, its progress.

Errors are converted here: botocore's client errors become :class:`CheckFailed` naming the
resource and DMS's message, a missing endpoint or credentials :class:`Unreachable`. The
database passwords go to DMS's endpoint API and nowhere else (never into a message).

The load is followed through :class:`TableProgress` (``describe_table_statistics``), which
moto does not implement; tests pass a local stand-in that performs the load the task's rules
describe and reports it the way DMS does.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from psycopg.conninfo import conninfo_to_dict

from strangler.errors import BadInput, CheckFailed, StranglerError, Unreachable
from strangler.secrets import register_secret, scrub

__all__ = [
    "DmsControl",
    "DmsTask",
    "TableProgress",
    "TableStat",
    "boto3_progress",
    "endpoint_settings",
]

# Full load only, into tables strangler created (DO_NOTHING: DMS must not drop or truncate
# them, nor create its own without keys); LOBs in limited mode like DMS's default.
TASK_SETTINGS = {
    "TargetMetadata": {"SupportLobs": True, "FullLobMode": False, "LobMaxSize": 32},
    "FullLoadSettings": {
        "TargetTablePrepMode": "DO_NOTHING",
        "StopTaskCachedChangesApplied": False,
    },
    "Logging": {"EnableLogging": True},
}


@dataclass(frozen=True)
class TableStat:
    """One table of a task, as ``describe_table_statistics`` reports it."""

    schema: str
    table: str
    state: str  # "Before load", "Full load", "Table completed", "Table error", …
    rows: int

    @property
    def done(self) -> bool:
        return self.state == "Table completed"

    @property
    def failed(self) -> bool:
        return self.state in ("Table error", "Table cancelled")


class TableProgress(Protocol):
    """Where a task's per-table progress comes from."""

    def tables(self, task_arn: str) -> list[TableStat]: ...


@dataclass(frozen=True)
class DmsTask:
    arn: str
    identifier: str
    source_endpoint: str
    target_endpoint: str
    instance: str


@contextmanager
def _aws(what: str) -> Iterator[None]:
    """botocore's exceptions, converted where they enter."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise CheckFailed(
            f"DMS refused to {what}: {err.get('Code', '?')}: {scrub(str(err.get('Message')))}",
            hint="check the IAM permissions (dms:*) and the spec's copy.dms section",
        ) from exc
    except NoCredentialsError as exc:
        raise Unreachable(
            f"no AWS credentials to {what}", hint="set AWS_PROFILE or the AWS_* variables"
        ) from exc
    except BotoCoreError as exc:
        raise Unreachable(f"cannot reach DMS to {what}: {scrub(str(exc))}") from exc


def endpoint_settings(dsn: str, role: str) -> dict[str, Any]:
    """The endpoint fields DMS needs, from a libpq DSN (PG* variables fill the gaps)."""
    parts = conninfo_to_dict(dsn)
    host = parts.get("host") or os.environ.get("PGHOST")
    user = parts.get("user") or os.environ.get("PGUSER")
    password = parts.get("password") or os.environ.get("PGPASSWORD")
    dbname = parts.get("dbname") or os.environ.get("PGDATABASE") or user
    missing = [n for n, v in (("host", host), ("user", user), ("password", password)) if not v]
    if missing:
        raise BadInput(
            f"the {role} DSN gives DMS no {', '.join(missing)}; a DMS endpoint needs them all",
            hint="write them in the DSN (the password through ${VAR}) or set PGHOST/PGUSER/"
            "PGPASSWORD",
        )
    register_secret(str(password))
    return {
        "ServerName": str(host),
        "Port": int(parts.get("port") or os.environ.get("PGPORT") or 5432),
        "DatabaseName": str(dbname),
        "Username": str(user),
        "Password": str(password),
    }


class DmsControl:
    """The calls a DMS full load needs; ``client`` is a boto3 ``dms`` client."""

    def __init__(
        self,
        client: Any,
        *,
        poll: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.poll = poll
        self.sleep = sleep

    def instance(self, identifier: str, instance_class: str, timeout: float) -> str:
        """The replication instance's ARN, created when missing, once it is available."""
        flt = [{"Name": "replication-instance-id", "Values": [identifier]}]
        deadline = time.monotonic() + timeout
        created = False
        while True:
            with _aws(f"describe replication instance {identifier}"):
                try:
                    found = self.client.describe_replication_instances(Filters=flt)
                    items = found.get("ReplicationInstances", [])
                except self.client.exceptions.ResourceNotFoundFault:
                    items = []
            if not items and not created:
                with _aws(f"create replication instance {identifier}"):
                    self.client.create_replication_instance(
                        ReplicationInstanceIdentifier=identifier,
                        ReplicationInstanceClass=instance_class,
                        Tags=[{"Key": "created-by", "Value": "strangler"}],
                    )
                created = True
                continue
            if items and items[0].get("ReplicationInstanceStatus") == "available":
                return str(items[0]["ReplicationInstanceArn"])
            if time.monotonic() > deadline:
                raise CheckFailed(
                    f"DMS replication instance {identifier} is not available after {timeout:.0f}s",
                    hint="see its status in the DMS console, then run the copy again",
                )
            self.sleep(self.poll)

    def endpoint(self, identifier: str, kind: str, settings: dict[str, Any]) -> str:
        """A postgres endpoint (``source``/``target``), replaced when one of that name exists."""
        with _aws(f"describe endpoint {identifier}"):
            try:
                old = self.client.describe_endpoints(
                    Filters=[{"Name": "endpoint-id", "Values": [identifier]}]
                ).get("Endpoints", [])
            except self.client.exceptions.ResourceNotFoundFault:
                old = []
        for e in old:
            with _aws(f"delete endpoint {identifier}"):
                self.client.delete_endpoint(EndpointArn=e["EndpointArn"])
        with _aws(f"create {kind} endpoint {identifier}"):
            made = self.client.create_endpoint(
                EndpointIdentifier=identifier, EndpointType=kind, EngineName="postgres", **settings
            )
        return str(made["Endpoint"]["EndpointArn"])

    def create_task(
        self,
        identifier: str,
        *,
        instance: str,
        source: str,
        target: str,
        mappings: dict[str, Any],
    ) -> DmsTask:
        """A full-load task (an older one of the same name is removed first)."""
        self.delete_task(identifier)
        with _aws(f"create replication task {identifier}"):
            made = self.client.create_replication_task(
                ReplicationTaskIdentifier=identifier,
                SourceEndpointArn=source,
                TargetEndpointArn=target,
                ReplicationInstanceArn=instance,
                MigrationType="full-load",
                TableMappings=json.dumps(mappings),
                ReplicationTaskSettings=json.dumps(TASK_SETTINGS),
            )
        arn = str(made["ReplicationTask"]["ReplicationTaskArn"])
        return DmsTask(arn, identifier, source, target, instance)

    def _tasks(self, identifier: str) -> list[dict[str, Any]]:
        with _aws(f"describe replication task {identifier}"):
            try:
                found = self.client.describe_replication_tasks(
                    Filters=[{"Name": "replication-task-id", "Values": [identifier]}]
                )
            except self.client.exceptions.ResourceNotFoundFault:
                return []
        return list(found.get("ReplicationTasks", []))

    def status(self, identifier: str) -> dict[str, Any]:
        found = self._tasks(identifier)
        if not found:
            raise CheckFailed(f"DMS replication task {identifier} disappeared")
        return found[0]

    def start(self, task: DmsTask, timeout: float) -> None:
        """Start the task once DMS has finished creating it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with _aws(f"start replication task {task.identifier}"):
                    self.client.start_replication_task(
                        ReplicationTaskArn=task.arn, StartReplicationTaskType="start-replication"
                    )
                return
            except CheckFailed as exc:
                if "InvalidResourceStateFault" not in exc.message or time.monotonic() > deadline:
                    raise
            self.sleep(self.poll)

    def follow(
        self,
        task: DmsTask,
        tables: Sequence[tuple[str, str]],
        progress: TableProgress,
        *,
        timeout: float,
        on_table: Callable[[TableStat], None] = lambda _t: None,
    ) -> list[TableStat]:
        """Until every table of ``tables`` (source schema, table) is loaded; ``on_table`` once
        per table as it completes. CheckFailed on a table error or a task that fails."""
        deadline = time.monotonic() + timeout
        seen: set[tuple[str, str]] = set()
        while True:
            stats = {(s.schema, s.table): s for s in progress.tables(task.arn)}
            for key in tables:
                stat = stats.get(key)
                if stat is not None and stat.failed:
                    raise CheckFailed(
                        f"DMS could not load {key[0]}.{key[1]} ({stat.state})",
                        hint="see the task's CloudWatch log; the copy can be run again",
                    )
                if stat is not None and stat.done and key not in seen:
                    seen.add(key)
                    on_table(stat)
            if len(seen) == len(tables):
                return [stats[k] for k in tables]
            state = self.status(task.identifier)
            if state.get("Status") in ("failed", "stopped") and len(seen) < len(tables):
                raise CheckFailed(
                    f"DMS task {task.identifier} ended ({state.get('Status')}: "
                    f"{state.get('StopReason') or state.get('LastFailureMessage') or '?'}) with "
                    f"{len(tables) - len(seen)} table(s) not loaded",
                    hint="see the task's CloudWatch log; the copy can be run again",
                )
            if time.monotonic() > deadline:
                raise CheckFailed(
                    f"DMS task {task.identifier} did not finish within {timeout:.0f}s",
                    hint="raise copy.dms.timeout, or see the task in the DMS console",
                )
            self.sleep(self.poll)

    def delete_task(self, identifier: str) -> None:
        for found in self._tasks(identifier):
            if found.get("Status") in ("running", "starting"):
                with _aws(f"stop replication task {identifier}"):
                    self.client.stop_replication_task(
                        ReplicationTaskArn=found["ReplicationTaskArn"]
                    )
            with _aws(f"delete replication task {identifier}"):
                self.client.delete_replication_task(ReplicationTaskArn=found["ReplicationTaskArn"])

    def delete_endpoints(self, *arns: str) -> None:
        for arn in arns:
            try:
                with _aws("delete endpoint"):
                    self.client.delete_endpoint(EndpointArn=arn)
            except StranglerError:
                pass  # best effort after the load: an endpoint left over holds nothing


def boto3_progress(client: Any) -> TableProgress:
    """``describe_table_statistics`` of the real service."""

    class _Progress:
        def tables(self, task_arn: str) -> list[TableStat]:
            out: list[TableStat] = []
            with _aws("describe table statistics"):
                pages = client.get_paginator("describe_table_statistics").paginate(
                    ReplicationTaskArn=task_arn
                )
                for page in pages:
                    for t in page.get("TableStatistics", []):
                        out.append(
                            TableStat(
                                t["SchemaName"],
                                t["TableName"],
                                t.get("TableState", "?"),
                                int(t.get("FullLoadRows", 0)),
                            )
                        )
            return out

    return _Progress()
