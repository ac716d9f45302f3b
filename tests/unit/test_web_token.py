"""streams/web_token.py: the secret the first worker writes is read whole by every worker that
starts at the same moment (two workers starting together once crashed on a half-written file)."""

from __future__ import annotations

import stat
import threading

from streams.settings import Settings
from streams.web_token import CATALOG_KEY, WEB_TOKEN, ensure_token, token_path


def test_workers_starting_together_all_read_the_one_whole_secret(tmp_path):
    for attempt in range(20):
        settings = Settings(data_dir=tmp_path / str(attempt), web_token=None, catalog_key=None)
        start = threading.Barrier(12)
        got: list[object] = []

        def worker() -> None:
            start.wait()
            try:
                got.append(ensure_token(settings, WEB_TOKEN).get_secret_value())
            except Exception as exc:  # noqa: BLE001 - the test reports it
                got.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(map(str, got))) == 1 and isinstance(got[0], str) and len(got[0]) >= 43, got
        path = token_path(settings, WEB_TOKEN)
        assert path.read_text() == got[0] and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in path.parent.iterdir()] == ["web-token"]  # no temporary file left


def test_each_secret_has_its_own_file(tmp_path):
    settings = Settings(data_dir=tmp_path, web_token=None, catalog_key=None)
    web, key = ensure_token(settings, WEB_TOKEN), ensure_token(settings, CATALOG_KEY)
    assert web.get_secret_value() != key.get_secret_value()
    assert ensure_token(settings, WEB_TOKEN) == web  # read back, not made again
