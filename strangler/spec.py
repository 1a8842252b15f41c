"""The migration spec: one YAML file under version control, validated before anything runs.

Why the loader is hand-rolled around ``yaml.compose`` instead of ``yaml.safe_load``: errors
must name the file *and the line*, and ``${VAR}`` must be expanded value by value (never by
pasting text into the YAML, which would let a password containing ``:`` or ``#`` change the
document's meaning). The composed node tree gives both.

Usage::

    spec = load_spec(find_spec_file(None))
    svc = spec.service("order_service")
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from strangler.durations import format_duration, parse_duration
from strangler.errors import SpecError, UnknownService
from strangler.metrics.gates import GateSpec
from strangler.metrics.kinds import SOURCES
from strangler.secrets import dsn_password, register_secret
from strangler.traffic.kinds import ROUTERS

__all__ = [
    "DEFAULT_SPEC_NAME",
    "AlarmsSpec",
    "BackendSpec",
    "CopySpec",
    "DecommissionSpec",
    "DmsSpec",
    "Duration",
    "ForeignKeyPolicy",
    "GateSpec",
    "Identifier",
    "InfraSpec",
    "KubernetesSpec",
    "PreflightSpec",
    "RoleSpec",
    "ServiceSpec",
    "SourceSpec",
    "Spec",
    "SyncSpec",
    "TargetSpec",
    "ThrottleSpec",
    "TrafficSpec",
    "WorkersSpec",
    "find_spec_file",
    "load_spec",
    "parse_spec_text",
]

DEFAULT_SPEC_NAME = "strangler.yaml"
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PASSWD|PWD|CREDENTIAL|KEY", re.I)


def _check_identifier(value: str) -> str:
    # PostgreSQL silently truncates names past 63 bytes; two long names could then collide
    # on the server although they differ in the spec. Refuse rather than guess.
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty name")
    if len(value.encode()) > 63:
        raise ValueError(f"is {len(value.encode())} bytes long; PostgreSQL names are at most 63")
    # PostgreSQL allows any character but NUL in a quoted name (a newline too), and strangler
    # always quotes: refuse only what the server would.
    if "\x00" in value:
        raise ValueError("contains a NUL character; PostgreSQL names cannot")
    return value


Identifier = Annotated[str, BeforeValidator(_check_identifier)]
"""A PostgreSQL name exactly as written (case kept); always quoted when used in SQL."""


def _check_service_name(value: str) -> str:
    # Service names become replication slot, publication and lock names, which PostgreSQL
    # restricts to lower-case letters, digits and underscores.
    if not isinstance(value, str) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,39}", value):
        raise ValueError(
            f"service name {value!r} must be 1-40 lower-case letters, digits or underscores, "
            "starting with a letter or underscore (it names replication slots and locks)"
        )
    return value


ServiceName = Annotated[str, BeforeValidator(_check_service_name)]

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|MB|GB|TB)?\s*$")
_UNITS = {"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def _parse_size(value: Any) -> int:
    # Units as in postgresql.conf (kB, MB, GB, TB: multiples of 1024), so a size copied from
    # max_slot_wal_keep_size means the same here.
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size; write it like 1GB, 512MB or 64kB")
    if isinstance(value, int):
        number, unit = float(value), "B"
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(
                f"{value!r} is not a size; write it like 1GB, 512MB or 64kB "
                "(units as in postgresql.conf: B, kB, MB, GB, TB)"
            )
        number, unit = float(match.group(1)), match.group(2) or "B"
    size = int(number * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"{value!r} must be more than zero")
    return size


Size = Annotated[int, BeforeValidator(_parse_size)]
"""Bytes, written as in postgresql.conf (``1GB``, ``512MB``) or as a plain number of bytes."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleSpec(_Model):
    """The service's own login role (runbook pattern 1, step 1)."""

    name: Identifier
    password: SecretStr | None = Field(
        default=None, description="Usually ${ENV}; never printed, logged or journaled."
    )
    create: bool = Field(default=True, description="Create the role if it does not exist.")


class SourceSpec(_Model):
    dsn: str = Field(
        description="libpq connection string or URI of the monolith; PG* env vars apply"
    )
    schema_: Identifier = Field(default="public", alias="schema")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TargetSpec(_Model):
    dsn: str | None = Field(
        default=None, description="Omit to extract into the monolith's own instance (pattern 1)."
    )
    schema_: Identifier = Field(alias="schema")
    role: RoleSpec | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class BackendSpec(BaseModel):
    """``{kind: …, …options}``: the options are checked against the kind's own model."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _validate_backend(kinds: Mapping[str, Any], family: str, spec: BackendSpec) -> BackendSpec:
    """``spec``'s options against its kind's model (an unknown kind lists the valid ones)."""
    found = kinds.get(spec.kind)
    if found is None:
        raise ValueError(
            f"unknown {family} kind {spec.kind!r}; valid kinds: {', '.join(sorted(kinds))}"
        )
    found.options.model_validate(spec.options())
    return spec


class TrafficSpec(_Model):
    route: str
    router: BackendSpec
    metrics: BackendSpec | None = None
    steps: list[float] = Field(default_factory=lambda: [5.0, 20.0, 50.0, 100.0])
    bake: Duration = timedelta(hours=24)
    final_bake: Duration = timedelta(hours=48)
    gates: list[GateSpec] = Field(default_factory=list)
    interval: Duration = Field(
        default=timedelta(minutes=5), description="Gates are evaluated once per interval."
    )
    failed_intervals: int = Field(
        default=3, ge=1, description="Consecutive failed intervals before the step fails."
    )
    confidence: float = Field(
        default=0.95,
        gt=0.5,
        lt=1,
        description="One-sided confidence of the error-rate tests (Wilson/Newcombe bounds).",
    )
    on_error: Literal["hold", "rollback"] = Field(
        default="hold",
        description="When metrics cannot be read: hold the weight and alert, or roll back.",
    )
    max_extension: Duration | None = Field(
        default=None,
        description="How long 'not enough data' may extend a bake; default: one more bake.",
    )
    approve_before: list[float] = Field(
        default_factory=list,
        description="Steps that wait for 'strangler shift SERVICE --approve' before starting.",
    )

    @field_validator("router")
    @classmethod
    def _router_kind(cls, v: BackendSpec) -> BackendSpec:
        return _validate_backend(ROUTERS, "router", v)

    @field_validator("metrics")
    @classmethod
    def _metrics_kind(cls, v: BackendSpec | None) -> BackendSpec | None:
        return None if v is None else _validate_backend(SOURCES, "metrics", v)

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("needs at least one step, for example [5, 20, 50, 100]")
        if any(not 0 < s <= 100 for s in v):
            raise ValueError("each step is a percentage above 0 and at most 100")
        if v != sorted(set(v)):
            raise ValueError("steps must increase strictly, for example [5, 20, 50, 100]")
        if v[-1] != 100:
            raise ValueError("the last step must be 100 (all traffic on the new service)")
        return v

    @model_validator(mode="after")
    def _timing(self) -> TrafficSpec:
        if self.interval.total_seconds() <= 0:
            raise ValueError("interval must be longer than 0s")
        if self.interval > self.bake:
            raise ValueError(
                f"interval ({format_duration(self.interval)}) is longer than the bake "
                f"({format_duration(self.bake)}); the bake would see no full interval"
            )
        unknown = sorted(set(self.approve_before) - set(self.steps))
        if unknown:
            raise ValueError(f"approve_before names {unknown}, which are not steps {self.steps}")
        return self


class ForeignKeyPolicy(_Model):
    leaving: Literal["drop", "keep"] = Field(
        default="drop",
        description="Foreign keys from moved tables to tables that stay: drop (default) or keep "
        "(same instance only).",
    )


class SequencePolicy(_Model):
    shared: Literal["refuse", "copy"] = Field(
        default="refuse",
        description="A sequence a moved column draws from that a table staying behind draws "
        "from too: refuse (default; 'strangler plan' names it) or copy (the service gets its "
        "own copy, set past the monolith's value; after the cutover each side draws from its "
        "own, so values are unique per side only).",
    )


class ExtensionPolicy(_Model):
    create: bool = Field(
        default=False,
        description="Create the extensions the moved tables need and the target lacks "
        "(CREATE EXTENSION, before any row is copied); false: refuse and print the statement.",
    )


class CodePolicy(_Model):
    reaches_behind: Literal["refuse", "accept"] = Field(
        default="refuse",
        description="A trigger function, default, check or generated expression the service "
        "will run that reads or writes tables staying behind (or calls monolith functions "
        "strangler does not carry): refuse (default; 'strangler plan' names each, and copy "
        "stops before any row) or accept (carried anyway: you have changed it, or accept "
        "that it fails on the service).",
    )


class DecommissionSpec(_Model):
    stable_for: Duration = timedelta(days=14)
    drop_old_tables_after: Duration = timedelta(days=14)
    archive_dir: Path = Field(
        default=Path("archive"),
        description="Where pg_dump archives of the old tables go (relative to the spec).",
    )
    max_latency_ratio: float = Field(default=1.10, gt=0, description="Service p99 / baseline.")
    max_error_rate_increase: float = Field(default=0.0, ge=0, description="Over the baseline.")
    write_window: Duration = Field(
        default=timedelta(days=1),
        description="How long the old tables' write counters and guard must show no write.",
    )


class KubernetesSpec(_Model):
    """Where the service runs in Kubernetes (runbook: validate-service.sh)."""

    namespace: str
    labels: dict[str, str] = Field(default_factory=dict, description="Default: app=<service>.")
    deployment: str | None = Field(default=None, description="Default: the service name.")
    service: str | None = Field(default=None, description="Kubernetes Service; default: name.")
    port: int = Field(default=80, ge=1, le=65535)
    health_path: str = "/health/ready"
    external_secret: str | None = Field(default=None, description="Default: <service>-secrets.")
    kubeconfig: Path | None = Field(default=None, description="Default: $KUBECONFIG or in-cluster.")
    context: str | None = None


class AlarmsSpec(_Model):
    """The monitoring the preflight expects: CloudWatch alarm names or a Prometheus rules file."""

    cloudwatch: list[str] = Field(default_factory=list)
    prometheus_rules: Path | None = None


class PreflightSpec(_Model):
    """Settings of ``strangler preflight``; every item is optional (absent: skipped, saying so)."""

    max_age: Duration = timedelta(hours=24)
    terraform_dir: Path | None = None
    kubernetes: KubernetesSpec | None = None
    health_url: str | None = None
    buckets: list[str] = Field(default_factory=list)
    alarms: AlarmsSpec | None = None
    rehearsal_spec: Path | None = Field(
        default=None,
        description="Spec of the rehearsal environment (dev) whose journal must "
        "show a completed rollback of this service.",
    )
    attestations: list[str] = Field(default_factory=lambda: ["oncall", "change_ticket"])


class InfraSpec(_Model):
    """The infrastructure repository changes are committed to (runbook: git commit -m …)."""

    repo: Path
    env: str = "prod"
    terraform_dir: Path | None = Field(default=None, description="Relative to repo.")
    tag: bool = Field(default=True, description="Tag v1.0.0-<service>-decommissioned at the end.")


class SyncSpec(_Model):
    """Limits of online sync (``strategy: online``)."""

    max_retained_wal: Size | None = Field(
        default=None,
        description="WAL the sync's slot may hold back on the monolith (e.g. 1GB) before "
        "'strangler status' and 'strangler sync --status' warn; unset: no warning.",
    )
    decoder: Identifier | None = Field(
        default=None,
        description="A decoder group: services naming the same group share one slot and one "
        "decoding of the monolith's WAL ('strangler decoder GROUP'); unset: a slot of its own.",
    )
    max_lag: Size = Field(
        default=64 << 20,
        description="WAL not yet applied (e.g. 64MB) above which traffic may not shift: the "
        "evidence an online service's traffic steps require of its reverse sync.",
    )


class WorkersSpec(_Model):
    """The Kubernetes Indexed Job of ``strangler k8s SERVICE`` (issue 17): pods that run
    ``strangler worker SERVICE`` against the chunk queue in the service's database."""

    image: str = Field(description="Container image with strangler installed.")
    namespace: str = "default"
    parallelism: int = Field(default=4, ge=1, le=1000, description="Pods at once (--parallelism).")
    backoff_limit: int = Field(default=6, ge=0, description="Pod failures before the Job fails.")
    secret: str | None = Field(
        default=None,
        description="Secret holding the spec's ${VARS} as keys; default: <service>-strangler.",
    )
    service_account: str | None = None
    requests: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "1", "memory": "512Mi"},
        description="Container resource requests (cpu, memory).",
    )
    limits: dict[str, str] = Field(default_factory=lambda: {"memory": "1Gi"})
    kubeconfig: Path | None = Field(default=None, description="Default: $KUBECONFIG or in-cluster.")
    context: str | None = None


class DmsSpec(_Model):
    """AWS Database Migration Service as the bulk engine (``copy.engine: dms``)."""

    replication_instance: str = Field(
        description="Identifier of the DMS replication instance (created when missing)."
    )
    instance_class: str = "dms.t3.medium"
    region: str | None = None
    endpoint_url: str | None = Field(default=None, description="For tests and VPC endpoints.")
    migration_type: Literal["full-load"] = Field(
        default="full-load",
        description="full-load only: online services keep strangler's own change stream.",
    )
    poll: Duration = Field(default=timedelta(seconds=10), description="How often to ask DMS.")
    timeout: Duration = Field(default=timedelta(hours=48), description="Give up after this.")


class CopySpec(_Model):
    """How the rows move (issue 17): strangler's own threads, a chunk queue that any number of
    ``strangler worker`` processes drain, or AWS DMS for the full load."""

    engine: Literal["builtin", "workers", "dms"] = "builtin"
    chunk_rows: int = Field(default=250_000, ge=1, description="Rows per chunk (key range).")
    max_snapshot_age: Duration | None = Field(
        default=None,
        description="Longest one snapshot of the copy may pin the monolith's xmin horizon. "
        "strategy: copy: past it the copy stops between chunks and a re-run goes on under a new "
        "one. strategy: online: the slot is made first without a snapshot, the copy takes a new "
        "snapshot whenever its current one reaches this age, and sync applies the stream from "
        "the slot's start in catch-up mode until it passes the copy's end.",
    )
    local_threads: int | None = Field(
        default=None,
        ge=0,
        description="engine: workers: threads of 'strangler copy'/'verify' itself that take "
        "chunks (default: --jobs); 0: only coordinate, 'strangler worker' processes do it all.",
    )
    workers: WorkersSpec | None = None
    dms: DmsSpec | None = None

    @model_validator(mode="after")
    def _engine_settings(self) -> CopySpec:
        if self.engine == "dms" and self.dms is None:
            raise ValueError("engine: dms needs a dms: section (replication_instance, …)")
        return self


class QueryLimit(_Model):
    """A query of the operator's own on the monolith: one number, compared with ``max``."""

    sql: str = Field(description="SELECT returning one number, e.g. the p99 of a stats view.")
    max: float


class PrometheusLimit(_Model):
    """A PromQL instant query (e.g. the monolith's p99), compared with ``max``."""

    url: str
    query: str
    max: float
    timeout: float = 5.0


class ThrottleSpec(_Model):
    """The monolith's health limits (issue 17). Copy, verify and sync pause between chunks or
    rounds while one is crossed, and stop at ``max_slot_retained_wal`` (gh-ost's critical
    load). Unset limits are not watched."""

    max_replica_lag: Duration | None = Field(default=None, description="Replay lag of replicas.")
    max_wal_rate: Size | None = Field(default=None, description="WAL written per second.")
    max_slot_retained_wal: Size | None = Field(
        default=None, description="WAL held by the oldest slot: above it the work stops."
    )
    max_active_backends: int | None = Field(default=None, ge=1)
    max_lock_waits: int | None = Field(default=None, ge=0)
    max_xmin_age: int | None = Field(
        default=None, ge=1, description="age(backend_xmin) of the oldest snapshot, in xids."
    )
    query: QueryLimit | None = None
    prometheus: PrometheusLimit | None = None
    check_every: Duration = Field(
        default=timedelta(seconds=5), description="Health is read at most this often."
    )
    max_pause: Duration | None = Field(
        default=None, description="Fail instead of waiting longer than this; unset: wait."
    )


class ServiceSpec(_Model):
    tables: list[Identifier]
    target: TargetSpec
    strategy: Literal["copy", "online", "move"] = Field(
        default="copy",
        description="copy (runbook patterns 1, 2) | online (pattern 3) | move (same instance: "
        "ALTER TABLE … SET SCHEMA, compatibility views left for the monolith, nothing copied)",
    )
    sync: SyncSpec | None = None
    foreign_keys: ForeignKeyPolicy = ForeignKeyPolicy()
    sequences: SequencePolicy = SequencePolicy()
    extensions: ExtensionPolicy = ExtensionPolicy()
    code: CodePolicy = CodePolicy()
    traffic: TrafficSpec | None = None
    decommission: DecommissionSpec = DecommissionSpec()
    preflight: PreflightSpec | None = None
    infra: InfraSpec | None = None
    copy_: CopySpec = Field(default=CopySpec(), alias="copy")  # issue 17: the bulk engine
    throttle: ThrottleSpec | None = None  # issue 17: the monolith's health limits

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _engine_fits_strategy(self) -> ServiceSpec:
        if self.copy_.engine == "dms" and self.strategy == "online":
            raise ValueError(
                "copy.engine: dms cannot serve strategy: online: DMS reads the monolith at its "
                "own moments, not at the replication slot's snapshot, so sync would miss or "
                "double rows; use engine: builtin or workers for an online service"
            )
        return self

    @field_validator("tables")
    @classmethod
    def _tables(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("list at least one table to move")
        dup = sorted({t for t in v if v.count(t) > 1})
        if dup:
            raise ValueError(f"lists {', '.join(dup)} more than once")
        return v


class Spec(_Model):
    version: Literal[1]
    state: str = Field(
        default="sqlite:///.strangler/state.db",
        description="Journal location: sqlite:///relative/or/absolute.db or a postgresql:// URL.",
    )
    source: SourceSpec
    services: dict[ServiceName, ServiceSpec]

    # Where the spec was read from; relative paths (the state file) resolve against its folder.
    base_dir: Path = Field(default=Path("."), exclude=True)
    path: Path | None = Field(default=None, exclude=True)

    @field_validator("services")
    @classmethod
    def _services(cls, v: dict[str, ServiceSpec]) -> dict[str, ServiceSpec]:
        if not v:
            raise ValueError("declare at least one service")
        return v

    @field_validator("state")
    @classmethod
    def _state(cls, v: str) -> str:
        if not (v.startswith("sqlite:///") or v.startswith(("postgresql://", "postgres://"))):
            raise ValueError("must be sqlite:///path/to/state.db or a postgresql:// URL")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> Spec:
        # One monolith table, one new home: two services moving it would both gate its
        # writes, cut them over and retire it (issue 15's bad-input suite found this taken).
        movers: dict[str, list[str]] = {}
        homes: dict[tuple[str | None, str], list[str]] = {}
        for name, svc in self.services.items():
            for table in svc.tables:
                movers.setdefault(table, []).append(name)
            homes.setdefault((svc.target.dsn, svc.target.schema_), []).append(name)
        shared = {t: names for t, names in movers.items() if len(names) > 1}
        if shared:
            table, names = sorted(shared.items())[0]
            raise ValueError(
                f"table {table!r} is moved by services {' and '.join(names)}; a table of the "
                "monolith moves to one service only: list it under one of them"
            )
        crowded = [names for names in homes.values() if len(names) > 1]
        if crowded:
            raise ValueError(
                f"services {' and '.join(crowded[0])} share one target schema in one database; "
                "give each service its own target.schema"
            )
        for name, svc in self.services.items():
            same_instance = svc.target.dsn is None
            if same_instance and svc.target.schema_ == self.source.schema_:
                raise ValueError(
                    f"services.{name}.target.schema is {svc.target.schema_!r}, the monolith's own "
                    "schema on the same instance; choose a new schema such as "
                    f"{name!r} or give target.dsn"
                )
            if svc.sync is not None and svc.strategy != "online":
                raise ValueError(
                    f"services.{name}.sync applies to strategy: online only, and {name} uses "
                    f"strategy: {svc.strategy}; remove sync: or set strategy: online"
                )
            if svc.copy_.max_snapshot_age is not None and svc.strategy == "move":
                raise ValueError(
                    f"services.{name}.copy.max_snapshot_age applies to strategy: copy or "
                    f"online, and {name} uses strategy: move, which copies nothing; remove "
                    "copy.max_snapshot_age"
                )
            if (
                svc.copy_.max_snapshot_age is not None
                and svc.strategy == "online"
                and (svc.sync is not None and svc.sync.decoder is not None)
            ):
                # A catch-up copy's first changes are applied by the service's own sync
                # (steps/online_copy.py); a shared decoder does not know that mode.
                raise ValueError(
                    f"services.{name}.copy.max_snapshot_age with sync.decoder: a copy in "
                    "chunks under fresh snapshots catches up through the service's own slot; "
                    "remove sync.decoder for the copy; once 'strangler sync "
                    f"{name} --until-caught-up' has run, put it back and run 'strangler decoder "
                    f"{svc.sync.decoder} --join'"
                )
            if (
                svc.copy_.max_snapshot_age is not None
                and svc.strategy == "online"
                and svc.copy_.engine == "workers"
            ):
                # Workers read the coordinator's one snapshot from the queue; a catch-up copy
                # changes snapshots between chunks, which the queue does not carry yet.
                raise ValueError(
                    f"services.{name}.copy.max_snapshot_age with copy.engine: workers on an "
                    "online service is not supported: chunk workers read one snapshot; use "
                    "engine: builtin (its threads) for a copy under fresh snapshots, or remove "
                    "copy.max_snapshot_age"
                )
            if svc.strategy == "move" and not same_instance:
                raise ValueError(
                    f"services.{name}.strategy is 'move', which changes the tables' schema in "
                    "place on the monolith's own instance, but target.dsn names another "
                    "database; remove target.dsn, or use strategy: copy or online"
                )
            if (
                svc.strategy == "move"
                and "leaving" in svc.foreign_keys.model_fields_set
                and svc.foreign_keys.leaving == "drop"
            ):
                raise ValueError(
                    f"services.{name}.foreign_keys.leaving is 'drop', but strategy 'move' keeps "
                    "the moved tables' foreign keys (the monolith still writes through the "
                    "compatibility views and relies on them); remove foreign_keys.leaving or "
                    "set it to 'keep'"
                )
            if svc.foreign_keys.leaving == "keep" and not same_instance:
                raise ValueError(
                    f"services.{name}.foreign_keys.leaving is 'keep', but the service has its own "
                    "instance (target.dsn); a foreign key cannot cross instances: use 'drop'"
                )
        return self

    def service(self, name: str) -> ServiceSpec:
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services))
            raise UnknownService(
                f"no service {name!r} in {self.path or 'the spec'}; it declares: {known}",
                hint="check the name, or add the service under services: in the spec",
            ) from None

    def target_dsn(self, name: str) -> str:
        """The DSN of the service's database: its own, or the monolith's for pattern 1."""
        return self.service(name).target.dsn or self.source.dsn

    def resolve(self, path: Path) -> Path:
        """A path from the spec, relative to the spec's folder unless absolute."""
        return path if path.is_absolute() else self.base_dir / path

    def state_url(self) -> str:
        if self.state.startswith("sqlite:///"):
            raw = Path(self.state.removeprefix("sqlite:///"))
            return "sqlite:///" + str(raw if raw.is_absolute() else (self.base_dir / raw))
        return self.state


# ----------------------------------------------------------------------------------- loading


def find_spec_file(explicit: str | Path | None) -> Path:
    """``-f/--file``, else ``$STRANGLER_SPEC``, else ``./strangler.yaml``."""
    if explicit:
        chosen, how = Path(explicit), "given with -f/--file"
    elif os.environ.get("STRANGLER_SPEC"):
        chosen, how = Path(os.environ["STRANGLER_SPEC"]), "named by $STRANGLER_SPEC"
    else:
        chosen, how = Path(DEFAULT_SPEC_NAME), "the default"
    if not chosen.is_file():
        raise SpecError(
            f"spec file {chosen} ({how}) does not exist",
            hint="run 'strangler init' to write an example, or pass -f PATH",
        )
    return chosen


def load_spec(path: str | Path, env: Mapping[str, str] | None = None) -> Spec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror}") from exc
    return parse_spec_text(text, name=str(path), env=env, base_dir=path.resolve().parent)


def parse_spec_text(
    text: str,
    *,
    name: str = "<spec>",
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Spec:
    env = os.environ if env is None else env
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: not valid YAML: {problem}") from None
    if root is None:
        raise SpecError(f"{name}: the spec is empty", hint="run 'strangler init' for an example")
    lines: dict[tuple[str | int, ...], int] = {}
    problems: list[str] = []
    data = _build(root, (), lines, env, problems, name)
    if problems:
        raise SpecError(f"{name}: the spec cannot be used:", problems=problems)
    if not isinstance(data, dict):
        raise SpecError(f"{name}:1: the spec must be a mapping with version, source and services")
    data["base_dir"] = base_dir or Path(".")
    data["path"] = Path(name) if name != "<spec>" else None
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(
            f"{name}: the spec is not valid:",
            problems=[_describe(err, lines, name) for err in exc.errors(include_input=False)],
        ) from None
    for svc in spec.services.values():
        if svc.target.role and svc.target.role.password:
            register_secret(svc.target.role.password.get_secret_value())
        if svc.target.dsn:
            register_secret(dsn_password(svc.target.dsn))
    register_secret(dsn_password(spec.source.dsn))
    return spec


def _build(
    node: yaml.Node,
    path: tuple[str | int, ...],
    lines: dict[tuple[str | int, ...], int],
    env: Mapping[str, str],
    problems: list[str],
    name: str,
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in out:
                problems.append(
                    f"  {name}:{key_node.start_mark.line + 1}: {_dotted((*path, key))}: "
                    "appears twice; keep one"
                )
            out[key] = _build(value_node, (*path, key), lines, env, problems, name)
            # A key's line is where the operator looks, not where its nested value starts.
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(n, (*path, i), lines, env, problems, name) for i, n in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    if "${" in node.value or "$$" in node.value:
        return _interpolate(node.value, path, lines[path], env, problems, name)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _interpolate(
    raw: str,
    path: tuple[str | int, ...],
    line: int,
    env: Mapping[str, str],
    problems: list[str],
    name: str,
) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        var, default = m.group(1), m.group(2)
        value = env.get(var)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            problems.append(
                f"  {name}:{line}: {_dotted(path)}: environment variable {var} is not set; "
                f"export it, or write ${{{var}:-default}}"
            )
            return ""
        if _SECRET_NAME.search(var) or str(path[-1]).lower() == "password":
            register_secret(value)
        return value

    return _ENV_REF.sub(sub, raw)


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(err: Any, lines: dict[tuple[str | int, ...], int], name: str) -> str:
    loc: tuple[str | int, ...] = tuple(
        p for p in err["loc"] if not str(p).startswith("function-") and p != "[key]"
    )
    line = next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), 1)
    kind = err["type"]
    msg = err["msg"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        msg = f"unknown key {loc[-1]!r}" + (
            f"; allowed here: {', '.join(allowed)}" if allowed else ""
        )
    elif kind == "missing":
        msg = "is required but missing"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    if kind == "missing":
        line = next((lines[loc[:i]] for i in range(len(loc) - 1, -1, -1) if loc[:i] in lines), 1)
    return f"  {name}:{line}: {_dotted(loc)}: {msg}"


def _allowed_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The keys a mapping at ``loc`` accepts, found by walking the models along the path."""
    model: Any = Spec
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        if model is dict:
            model = ServiceSpec
            continue
        fields = getattr(model, "model_fields", {})
        field = next(
            (f for n, f in fields.items() if (f.alias or n) == part or n == part),
            None,
        )
        if field is None:
            return []
        model = _model_of(field.annotation)
    fields = getattr(model, "model_fields", None)
    if not fields:
        return []
    return sorted((f.alias or n) for n, f in fields.items() if n not in ("base_dir", "path"))


def _model_of(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is dict:
        return dict
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
