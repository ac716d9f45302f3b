"""The data directory (broker segments, the engine's files, the secrets) is closed to other
users: made 0700, and an existing one opened wider is closed again."""

from __future__ import annotations

import stat

from streams.settings import Settings, private_dir
from streams.web_token import WEB_TOKEN, ensure_token


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_directory_is_private(tmp_path):
    settings = Settings(data_dir=tmp_path / "a" / "data")
    ensure_token(settings, WEB_TOKEN)
    assert mode(settings.data_dir) == 0o700
    assert mode(settings.data_dir / "web-token") == 0o600


def test_an_open_data_directory_is_closed_again(tmp_path):
    d = tmp_path / "open"
    d.mkdir()
    d.chmod(0o755)
    assert private_dir(d) == d and mode(d) == 0o700
    d.chmod(0o750)
    private_dir(d)
    assert mode(d) == 0o700
