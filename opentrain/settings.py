"""Settings for every role, read from the environment (prefix ``OPENTRAIN_``) or a ``.env`` file.

The embedded defaults (in-process chain, local content store, SQLite) make one command work
anywhere; pointing ``rpc_url``, ``ipfs_api`` or ``database_url`` elsewhere switches the same
code to a Hardhat node or any RPC, to kubo, and to PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

IN_PROCESS = "inprocess"


class Settings(BaseSettings):
    """One place for every knob; secrets are ``SecretStr`` so they never print."""

    model_config = SettingsConfigDict(env_prefix="OPENTRAIN_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".opentrain"), description="state folder of this machine")
    rpc_url: str = Field(default=IN_PROCESS, description="JSON-RPC URL, or 'inprocess'")
    deployment_file: Path | None = Field(default=None, description="contract addresses (JSON)")
    private_key: SecretStr | None = Field(
        default=None, description="signing key (prefer a keystore)"
    )
    keystore: Path | None = Field(default=None, description="eth-account encrypted keystore")
    keystore_password: SecretStr | None = None
    store_dir: Path | None = Field(default=None, description="embedded content store folder")
    ipfs_api: str | None = Field(
        default=None, description="kubo RPC URL, e.g. http://127.0.0.1:5001"
    )
    gateways: str = Field(
        default="",
        description="comma-separated trustless gateway URLs (a node's `opentrain store serve`, "
        "any IPFS gateway) to fetch content the embedded store lacks, verified by CID",
    )
    max_content_bytes: int = Field(default=2 << 30, gt=0, description="largest object accepted")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite by default")
    confirmations: int = Field(default=0, ge=0, description="indexer confirmation depth")
    rpc_retries: int = Field(default=5, ge=0, description="attempts before an RPC error is final")

    @property
    def resolved_store_dir(self) -> Path:
        return self.store_dir or self.home / "store"

    @property
    def resolved_deployment_file(self) -> Path:
        return self.deployment_file or self.home / "deployment.json"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'opentrain.db').resolve()}"
