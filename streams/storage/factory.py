"""Pick the backend from the settings: a server when MS_CLICKHOUSE_URL is set, else chDB."""

from __future__ import annotations

from streams.settings import Settings
from streams.storage.base import Store


def open_store(settings: Settings) -> Store:
    if settings.clickhouse_url is not None:
        from streams.storage.server_store import ServerStore

        return ServerStore(
            settings.clickhouse_url.get_secret_value(), settings.clickhouse_database, settings.clickhouse_cluster
        )
    from streams.storage.chdb_store import ChdbStore

    return ChdbStore(settings.chdb_path, settings.clickhouse_database)
