"""Durable state: the store contract and its backends."""

from __future__ import annotations

from urllib.parse import urlparse

from accessproof.store.base import (
    ExportKind,
    IncidentQuery,
    OutboxEntry,
    Store,
    Subject,
    Transaction,
)

DEFAULT_STORE_URL = "sqlite:///./accessproof.db"


def redacted_url(url: str) -> str:
    """A store URL fit for logs and errors: no user, password or query string."""
    parts = urlparse(url)
    if parts.scheme == "sqlite" or not parts.netloc:
        return url if parts.scheme == "sqlite" else f"{parts.scheme}://..."
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class StoreURLError(ValueError):
    """A ``--store`` URL this engine cannot open."""


def open_store(url: str) -> Store:
    """Open the store a URL names.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` and
    ``sqlite:///:memory:`` open the embedded store; ``postgresql://...`` opens
    the shared one (needs the ``postgresql`` extra).
    """
    scheme = urlparse(url).scheme
    if scheme == "sqlite":
        from accessproof.store.sqlite import SqliteStore

        path = url.removeprefix("sqlite://")
        if not path.startswith("/"):
            raise StoreURLError(f"store URL {url!r}: write sqlite:///PATH")
        path = path[1:]
        if not path:
            raise StoreURLError(f"store URL {url!r} names no file")
        return SqliteStore(path)
    if scheme in ("postgresql", "postgres"):
        try:
            from accessproof.store.postgresql import PostgresStore
        except ModuleNotFoundError as error:
            if error.name is None or error.name.partition(".")[0] != "psycopg":
                raise
            raise StoreURLError(
                f"store URL {redacted_url(url)!r} needs psycopg: "
                "pip install 'accessproof[postgresql]'"
            ) from None

        return PostgresStore(url)
    raise StoreURLError(
        f"store URL {redacted_url(url)!r}: the scheme must be sqlite:// or "
        "postgresql://"
    )


__all__ = [
    "DEFAULT_STORE_URL",
    "ExportKind",
    "IncidentQuery",
    "OutboxEntry",
    "Store",
    "StoreURLError",
    "Subject",
    "Transaction",
    "open_store",
    "redacted_url",
]
