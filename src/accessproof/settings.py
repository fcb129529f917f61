"""The engine's settings: command-line flags over ``ACCESSPROOF_*`` variables.

Every field can be set from the environment as ``ACCESSPROOF_<FIELD>`` (for
example ``ACCESSPROOF_API_TOKEN``); a flag given on the command line wins.
Settings are checked once at start-up, and a bad one stops the engine with a
message naming it.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from accessproof.store import DEFAULT_STORE_URL


def split_host_port(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:4318`` for IPv6); raises ValueError if malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{value!r} is not HOST:PORT")
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: port out of range")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """Return whether a listen host only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServeSettings(BaseSettings):
    """How ``accessproof serve`` runs; defaults are the DESIGN.md defaults."""

    model_config = SettingsConfigDict(env_prefix="ACCESSPROOF_", extra="ignore")

    config: Path | None = None
    store: str = DEFAULT_STORE_URL
    otlp_http: str = "127.0.0.1:4318"
    otlp_grpc: str = "127.0.0.1:4317"
    http: str = "127.0.0.1:8080"
    api_token: str | None = Field(default=None, repr=False)
    otlp_token: str | None = Field(default=None, repr=False)
    behind_proxy: bool = False
    logs_endpoint: str | None = None
    logs_protocol: str = "grpc"
    retention_seconds: float = Field(default=7 * 24 * 3600, gt=0)
    max_body_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_pending_requests: int = Field(default=64, gt=0)
    tick_interval: float = Field(default=0.25, gt=0)
    public_url: str | None = None
    ready_file: Path | None = None

    @field_validator("otlp_http", "otlp_grpc", "http")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("logs_protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        if value not in ("grpc", "http"):
            raise ValueError("must be 'grpc' or 'http'")
        return value

    @model_validator(mode="after")
    def _tokens_off_loopback(self) -> ServeSettings:
        """Refuse to listen beyond loopback without a token, unless behind a proxy."""
        if self.behind_proxy:
            return self
        for name, token in (
            ("otlp_http", self.otlp_token),
            ("otlp_grpc", self.otlp_token),
            ("http", self.api_token),
        ):
            host, _ = split_host_port(getattr(self, name))
            if not is_loopback(host) and not token:
                token_name = "otlp_token" if name.startswith("otlp") else "api_token"
                raise ValueError(
                    f"--{name.replace('_', '-')} {getattr(self, name)} listens beyond "
                    f"loopback without a token: set ACCESSPROOF_{token_name.upper()} "
                    "or pass --behind-proxy if an authenticating proxy is in front"
                )
        return self

    @property
    def base_url(self) -> str:
        """Where people reach the operator pages (for links in incidents)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host, port = split_host_port(self.http)
        if host in ("0.0.0.0", "::"):  # noqa: S104
            host = "127.0.0.1"
        return f"http://{host}:{port}"
