"""The service's settings: defaults that need nothing set up, each overridable from the environment."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Settings"]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    data_dir: Path = Field(Path("nospy-data"), description="Uploaded files and, by default, the SQLite database.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL (postgresql+psycopg://...); default: SQLite in data_dir."
    )
    max_upload_bytes: int = Field(1 << 30, ge=1, description="Largest request body accepted (all files together).")
    max_files: int = Field(64, ge=1, description="Most evidence files in one check.")
    max_attempts: int = Field(
        2, ge=1, description="Runs of one check, counting runs a server restart interrupted, before it is failed."
    )
    workers: int = Field(
        1, ge=1, description="Checks and diffs run at the same time, each in a worker process of its own."
    )
    time_limit: float = Field(
        900.0, gt=0, description="Seconds a check or diff may run before its worker is killed and it is failed."
    )
    public_read: bool = Field(
        False,
        description=(
            "Let anyone who reaches the server read checks, findings, reports and diffs; by default"
            " reading needs an API token (or the login cookie) like writing."
        ),
    )
    witness_keys: tuple[Path, ...] = Field(
        (), description="Witnesses' cosigner keys: the log page verifies the checkpoint's cosignatures by them."
    )

    log: str | None = Field(
        None, description="A transparency log (directory or http(s) URL) to show under /log; needs log_key."
    )
    log_key: Path | None = Field(None, description="The log's verifier key (.vkey); its checkpoint must verify.")

    @model_validator(mode="after")
    def _log_pair(self) -> Settings:
        if (self.log is None) != (self.log_key is None):
            raise ValueError("a log and its key go together: give both or neither")
        return self

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'nospy.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from the ``NOSPY_*`` variables named below, then ``overrides``."""
        values: dict[str, object] = {}
        env = {
            "data_dir": "NOSPY_DATA_DIR",
            "database_url": "NOSPY_DATABASE_URL",
            "max_upload_bytes": "NOSPY_MAX_UPLOAD_BYTES",
            "max_files": "NOSPY_MAX_FILES",
            "workers": "NOSPY_WORKERS",
            "log": "NOSPY_LOG",
            "log_key": "NOSPY_LOG_KEY",
            "time_limit": "NOSPY_TIME_LIMIT",
            "public_read": "NOSPY_PUBLIC_READ",
        }
        for field, name in env.items():
            if os.environ.get(name):
                values[field] = os.environ[name]
        if os.environ.get("NOSPY_WITNESS_KEYS"):  # several files, separated as in PATH
            values["witness_keys"] = os.environ["NOSPY_WITNESS_KEYS"].split(os.pathsep)
        values.update({k: v for k, v in overrides.items() if v is not None and v != ()})
        return cls.model_validate(values)
