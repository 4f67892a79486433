"""Settings, one small class per concern, all read from ``CONNECTIVITY_*`` environment variables.

Every setting is documented once, in the README's configuration table; a test checks that
each name in that table maps to a field here and the other way round.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = PROJECT_ROOT / "data"


class DatabaseSettings(BaseSettings):
    """Where the PostGIS database is, and the embedded cluster the project runs when none is given."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_DB_", extra="ignore", populate_by_name=True)

    url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "CONNECTIVITY_DB_URL"),
        description="Use this PostgreSQL/PostGIS server instead of the embedded cluster.",
    )
    owner_url: str | None = Field(
        default=None,
        description="The URL migrations run with (a role that owns the schema); by default DATABASE_URL.",
    )
    dir: Path = Field(default=PROJECT_ROOT / "var" / "pg", description="Embedded cluster directory.")
    port: int | None = Field(
        default=None,
        ge=1024,
        le=65535,
        description="Loopback port of the embedded cluster; by default the first free port from 55432, "
        "chosen once and remembered.",
    )
    name: str = Field(default="connectivity", description="Database name in the embedded cluster.")
    os_user: str = Field(
        default="postgres", description="Unprivileged OS user that runs the cluster as root."
    )
    pool_min_size: int = Field(default=1, ge=1)
    pool_max_size: int = Field(default=4, ge=1)
    pool_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Longest wait of a request for a pooled connection, in seconds.",
    )
    statement_timeout_ms: int = Field(
        default=30_000, ge=100, description="Longest statement of an API request, in milliseconds."
    )

    @model_validator(mode="after")
    def _pool_sizes(self) -> DatabaseSettings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("CONNECTIVITY_DB_POOL_MIN_SIZE must not exceed CONNECTIVITY_DB_POOL_MAX_SIZE")
        return self


class ApiSettings(BaseSettings):
    """The HTTP service."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    anonymous_read: bool = Field(
        default=True, description="Allow reading the public layers without an API key. Writing never is."
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL the service is reached at, for links; by default taken from the request.",
    )
    max_body_bytes: int = Field(
        default=2**20,
        ge=2**10,
        description="Largest JSON or form body of a request, in bytes (uploads aside).",
    )
    os_user: str = Field(
        default="connectivity",
        description="Unprivileged OS user `connectivity serve` becomes when started as root (root: stay root).",
    )
    cors_origins: tuple[str, ...] = Field(
        default=(), description="Origins allowed to call the API from a browser (JSON list); none by default."
    )


class AssetSettings(BaseSettings):
    """What of an asset everyone may see."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_ASSETS_", extra="ignore")

    public_extra: tuple[str, ...] = Field(
        default=(),
        description="Fields of an asset's extra (its file's unmapped columns) shown to everyone (JSON list); "
        "by default none: only admins and the asset's own borough see extra.",
    )


class TileSettings(BaseSettings):
    """Vector tiles."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_TILES_", extra="ignore")

    raw_min_zoom: int = Field(default=13, ge=1, le=22, description="From this zoom tiles carry raw features.")
    max_zoom: int = Field(default=22, ge=1, le=24)
    max_features: int = Field(default=10_000, ge=1, description="Most features in one raw tile.")
    cache_max_age: int = Field(default=60, ge=0, description="Cache-Control max-age of tiles, in seconds.")
    cache_mb: int = Field(
        default=64, ge=0, description="Memory for finished tiles in each worker process, in MB (0: none)."
    )

    @model_validator(mode="after")
    def _zooms(self) -> TileSettings:
        if self.raw_min_zoom > self.max_zoom:
            raise ValueError("CONNECTIVITY_TILES_RAW_MIN_ZOOM must not exceed CONNECTIVITY_TILES_MAX_ZOOM")
        return self


class UploadSettings(BaseSettings):
    """Borough uploads."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_UPLOAD_", extra="ignore")

    dir: Path = Field(default=PROJECT_ROOT / "var" / "uploads", description="Where received files are kept.")
    max_bytes: int = Field(default=500 * 2**20, ge=1, description="Largest file accepted, in bytes.")
    max_uncompressed_bytes: int = Field(
        default=2 * 2**30, ge=1, description="Largest unzipped size of an archive."
    )
    tolerance_m: float = Field(
        default=50.0, ge=0, le=5000, description="How far outside its borough an asset may lie."
    )
    max_errors: int = Field(default=10_000, ge=1, description="Row errors kept per upload (all are counted).")
    max_columns: int = Field(
        default=500, ge=10, le=100_000, description="Most columns (attributes) a file may have."
    )
    max_line_bytes: int = Field(default=4 * 2**20, ge=2**10, description="Longest line of a CSV, in bytes.")
    max_field_bytes: int = Field(
        default=2**20, ge=2**10, description="Longest attribute value of any file, in bytes (geometry aside)."
    )
    max_spreadsheet_bytes: int = Field(
        default=256 * 2**20, ge=2**20, description="Largest expanded size of an XLSX workbook, in bytes."
    )
    max_memory_mb: int = Field(
        default=2048,
        ge=256,
        description="Most memory reading and applying one upload may take (its own process).",
    )
    max_seconds: int = Field(
        default=1800, ge=10, description="Longest time one upload's job may run, in seconds."
    )
    inspect_seconds: int = Field(
        default=120, ge=5, description="Longest time the first look at a received file may take, in seconds."
    )


class JobSettings(BaseSettings):
    """Background jobs (uploads, applies, coverage reports): how many run, per key, and how their owners are watched."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_JOBS_", extra="ignore")

    workers: int = Field(default=2, ge=1, le=64, description="Jobs one service process runs at once.")
    per_key: int = Field(default=2, ge=1, description="Jobs one API key may have queued or running at once.")
    queue: int = Field(
        default=20, ge=1, description="Jobs one service process holds queued or running at once."
    )
    heartbeat_s: float = Field(
        default=5.0, gt=0, le=60, description="Seconds between heartbeats of running jobs."
    )
    stale_s: float = Field(
        default=60.0,
        gt=0,
        description="A job of another host whose heartbeat is older than this is interrupted.",
    )
    reap_every_s: float = Field(
        default=30.0, gt=0, description="Seconds between checks for interrupted jobs."
    )
    statement_timeout_s: int = Field(
        default=1800, ge=1, description="Longest statement of a job (imports, reports), in seconds."
    )

    @model_validator(mode="after")
    def _stale(self) -> JobSettings:
        if self.stale_s <= 2 * self.heartbeat_s:
            raise ValueError(
                "CONNECTIVITY_JOBS_STALE_S must be more than twice CONNECTIVITY_JOBS_HEARTBEAT_S"
            )
        return self


class WayleaveSettings(BaseSettings):
    """Wayleave clocks: per-status deadlines (working days skip weekends and England and Wales bank
    holidays; statutory notice periods count calendar days) and KPI thresholds."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_WAYLEAVE_", extra="ignore")

    identified_working_days: int = Field(
        default=20, ge=1, description="Working days from identifying a site to requesting the wayleave."
    )
    request_answer_working_days: int = Field(
        default=10, ge=1, description="Working days a landlord has to answer a request before it is overdue."
    )
    chase_interval_working_days: int = Field(
        default=5, ge=1, description="Working days between chases of an unanswered request."
    )
    survey_working_days: int = Field(
        default=15, ge=1, description="Working days from scheduling a survey to its being done."
    )
    terms_working_days: int = Field(
        default=10, ge=1, description="Working days from the survey to issuing the (standard) terms."
    )
    terms_answer_working_days: int = Field(
        default=15, ge=1, description="Working days for the operator to accept or negotiate issued terms."
    )
    negotiation_working_days: int = Field(
        default=40, ge=1, description="Working days of negotiation before it is overdue (8 weeks)."
    )
    approval_working_days: int = Field(
        default=20, ge=1, description="Working days from approval (committee or delegated) to signature."
    )
    installation_start_working_days: int = Field(
        default=60,
        ge=1,
        description="Working days from signature (or rights imposed) to the start of installation.",
    )
    installing_working_days: int = Field(
        default=60, ge=1, description="Working days from the start of installation to going live."
    )
    on_hold_review_working_days: int = Field(
        default=20, ge=1, description="Working days a wayleave may stay on hold before it needs review."
    )
    code_notice_days: int = Field(
        default=28,
        ge=1,
        description="Calendar days after an ECC paragraph 20 notice before the Tribunal can be applied to.",
    )
    tribunal_days: int = Field(
        default=180, ge=1, description="Calendar days a Tribunal case may run before it is flagged."
    )
    signed_within_days: int = Field(
        default=30, ge=1, description="KPI: a request counts as fast when signed within this many days."
    )
    bulk_max_bytes: int = Field(default=5 * 2**20, ge=2**10, description="Largest bulk status CSV, in bytes.")


class PipelineSettings(BaseSettings):
    """LocalGov Digital Pipeline imports."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_PIPELINE_", extra="ignore")

    max_bytes: int = Field(
        default=32 * 2**20, ge=2**10, description="Largest Pipeline export accepted (JSON or CSV), in bytes."
    )


class RetentionSettings(BaseSettings):
    """How long personal data that is not needed for ever is kept (data/personal-data.md)."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_RETENTION_", extra="ignore")

    upload_files_days: int = Field(
        default=30, ge=1, description="Days a received upload file is kept after its upload ended."
    )
    upload_errors_days: int = Field(
        default=90, ge=1, description="Days the row errors of an upload or Pipeline import are kept."
    )
    report_points_days: int = Field(
        default=90, ge=1, description="Days the premises points sent with a coverage report are kept."
    )
    purge_every_hours: float = Field(
        default=24.0, gt=0, description="Hours between the service's purges (the first runs at its start)."
    )


class MapSettings(BaseSettings):
    """The web map's background. Without a tile URL the map draws on a plain light background."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_MAP_", extra="ignore")

    tile_url: str | None = Field(
        default=None,
        description="Background raster tile URL template ({z}/{x}/{y}, optionally {s}); "
        "none means a plain light background, so the map works offline.",
    )
    tile_attribution: str = Field(
        default="", description="Attribution shown for the background tiles (HTML allowed)."
    )


class CoverageSettings(BaseSettings):
    """Coverage analysis and reports: default thresholds and grid, and when a report runs in the background."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_COVERAGE_", extra="ignore")

    thresholds: tuple[float, ...] = Field(
        default=(50.0, 100.0, 200.0),
        description="Default coverage distances in metres (JSON list, for example [50,100,200]).",
    )
    grid_cell_m: float = Field(
        default=100.0, description="Default grid cell size in metres (50, 100 or 250); also the gap grid."
    )
    max_sync_cells: int = Field(
        default=100_000,
        ge=0,
        description="Reports with more demand points plus cells than this run in the background.",
    )
    spacing_m: float = Field(
        default=10.0,
        gt=0,
        le=100,
        description="Duct densify spacing of the index (speed only, never the answer).",
    )
    max_cells: int = Field(
        default=3_000_000,
        ge=1,
        description="Largest number of grid cells one report may make (area / cell²).",
    )
    max_premises: int = Field(default=200_000, ge=1, description="Most premises points one request may send.")
    max_k: int = Field(default=500, ge=1, description="Most assets a prioritisation may choose.")
    priorities_time_limit_s: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="Seconds HiGHS may spend on a prioritisation's LP bound or MILP.",
    )
    cost_by_kind: dict[str, float] = Field(
        default={"street_furniture": 1.0, "duct": 2.0, "public_building": 3.0},
        description="Budgeted prioritisation: the cost of opening up a candidate of each kind (JSON object).",
    )
    cost_by_wayleave_status: dict[str, float] = Field(
        default={
            "signed": 0.0, "installing": 0.0, "live": 0.0, "rights_imposed": 0.0, "approved": 0.5,
            "in_negotiation": 1.0, "tribunal": 1.5, "code_notice_served": 1.5, "terms_issued": 1.0,
            "surveyed": 1.0, "survey_scheduled": 1.0, "requested": 1.5, "identified": 2.0, "none": 2.0,
            "on_hold": 2.0, "refused": 3.0, "withdrawn": 2.5, "expired": 2.0,
        },
        description="Budgeted prioritisation: the cost added by a candidate's best wayleave status "
        "(none: no wayleave yet), JSON object.",
    )  # fmt: skip
    max_body_bytes: int = Field(
        default=32 * 2**20, ge=2**10, description="Largest report request body (with premises), in bytes."
    )

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(t <= 0 or t > 5000 for t in value):
            raise ValueError("CONNECTIVITY_COVERAGE_THRESHOLDS must be distances in (0, 5000] metres")
        return tuple(sorted({float(t) for t in value}))

    @model_validator(mode="after")
    def _grid(self) -> CoverageSettings:
        if self.grid_cell_m not in (50.0, 100.0, 250.0):
            raise ValueError("CONNECTIVITY_COVERAGE_GRID_CELL_M must be 50, 100 or 250")
        return self


class DaskSettings(BaseSettings):
    """Where large coverage reports run: in process, on a local Dask cluster or on an existing one."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_DASK_", extra="ignore")

    scheduler: str | None = Field(
        default=None,
        description="Unset: reports run in process; local: a LocalCluster with the machine's cores; "
        "tcp://host:8786: an existing Dask cluster.",
    )
    partition_m: float = Field(
        default=10_000.0, ge=500, le=200_000, description="Edge of the square partitions, in metres."
    )
    min_area_sq_km: float = Field(
        default=100.0, ge=0, description="Areas smaller than this stay in process even with a scheduler."
    )


class OfdsSettings(BaseSettings):
    """The Open Fibre Data Standard export: the network's identity and how duct ends meet nodes."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_OFDS_", extra="ignore")

    network_id: uuid.UUID = Field(
        # uuid5(NAMESPACE_URL, "urn:connectivity:ofds:network"): a deployment publishing its own
        # network sets its own, once, and keeps it.
        default=uuid.uuid5(uuid.NAMESPACE_URL, "urn:connectivity:ofds:network"),
        description="The network's UUID, the same in every export (OFDS: consistent across versions); "
        "node and span ids are derived from it.",
    )
    network_name: str = Field(
        default="London public-sector candidate fibre infrastructure",
        min_length=1,
        description="Network name.",
    )
    publisher_name: str = Field(
        default="Greater London Authority", min_length=1, description="Publisher name."
    )
    website: str | None = Field(default=None, description="URL of the network's website (OFDS website).")
    snap_m: float = Field(
        default=5.0,
        ge=0,
        le=100,
        description="How near a duct end must be to an asset to start or end there, m.",
    )
    max_spans: int = Field(default=200_000, ge=1, description="Most spans (duct parts) one export may hold.")


class WebhookSettings(BaseSettings):
    """Webhook deliveries: what may be registered, and how the sender posts and retries."""

    model_config = SettingsConfigDict(env_prefix="CONNECTIVITY_WEBHOOK_", extra="ignore")

    sender: bool = Field(default=True, description="Whether the service's processes run the sender.")
    allow_private: bool = Field(
        default=False,
        description="Allow URLs on loopback, private and link-local addresses (tests, closed networks).",
    )
    poll_s: float = Field(
        default=1.0, gt=0, le=60, description="Seconds between the sender's rounds when idle."
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="Seconds one delivery attempt may take.")
    max_response_bytes: int = Field(
        default=64 * 2**10, ge=0, description="Bytes of an answer read before the connection is closed."
    )
    backoff_base_s: float = Field(default=30.0, gt=0, description="Seconds before the first retry.")
    backoff_max_s: float = Field(default=3600.0, gt=0, description="Longest wait between two attempts.")
    max_age_hours: float = Field(
        default=24.0, gt=0, le=24 * 7, description="Hours a delivery is retried before it is failed."
    )
    batch: int = Field(default=50, ge=1, le=1000, description="Deliveries claimed per round.")
    concurrency: int = Field(default=8, ge=1, le=100, description="Deliveries posted at once per process.")
    max_per_key: int = Field(default=20, ge=1, description="Live webhooks one key may have.")
    retention_days: int = Field(default=30, ge=1, description="Days finished deliveries stay in the log.")

    @model_validator(mode="after")
    def _backoff(self) -> WebhookSettings:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(
                "CONNECTIVITY_WEBHOOK_BACKOFF_MAX_S must not be below CONNECTIVITY_WEBHOOK_BACKOFF_BASE_S"
            )
        return self


class Settings(BaseModel):
    """All settings, grouped by concern. ``Settings()`` reads them all from the environment."""

    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    tiles: TileSettings = Field(default_factory=TileSettings)
    assets: AssetSettings = Field(default_factory=AssetSettings)
    upload: UploadSettings = Field(default_factory=UploadSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    wayleave: WayleaveSettings = Field(default_factory=WayleaveSettings)
    map: MapSettings = Field(default_factory=MapSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    coverage: CoverageSettings = Field(default_factory=CoverageSettings)
    dask: DaskSettings = Field(default_factory=DaskSettings)
    ofds: OfdsSettings = Field(default_factory=OfdsSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)


def env_names() -> set[str]:
    """Every environment variable a setting is read from."""
    names: set[str] = set()
    for group in Settings.model_fields.values():
        cls = group.annotation
        assert isinstance(cls, type) and issubclass(cls, BaseSettings)
        prefix = cls.model_config.get("env_prefix", "")
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(str(choice) for choice in alias.choices)
            else:
                names.add(f"{prefix}{field_name}".upper())
    return names
