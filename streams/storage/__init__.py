"""One storage interface over two ClickHouse backends: chDB (embedded) and a server."""

from streams.storage.base import Store, StoreClosed, StoreError
from streams.storage.factory import open_store

__all__ = ["Store", "StoreClosed", "StoreError", "open_store"]
