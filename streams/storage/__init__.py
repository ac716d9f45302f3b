"""One storage interface over two ClickHouse backends: chDB (embedded) and a server."""

from streams.storage.base import Store, StoreError
from streams.storage.factory import open_store

__all__ = ["Store", "StoreError", "open_store"]
