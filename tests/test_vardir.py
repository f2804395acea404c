from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shared import vardir
from shared.settings import WEBHOOK_SECRET_FILE, load


def test_secret_is_created_once_with_mode_0600_and_then_kept(tmp_path: Path) -> None:
    first = vardir.ensure_secret(tmp_path / "var", WEBHOOK_SECRET_FILE)
    second = vardir.ensure_secret(tmp_path / "var", WEBHOOK_SECRET_FILE)
    assert first.created
    assert not second.created
    assert first.value == second.value
    assert len(first.value) >= 32
    assert stat.S_IMODE(os.stat(first.path).st_mode) == 0o600


def test_settings_read_the_generated_secret(tmp_path: Path) -> None:
    secret = vardir.ensure_secret(tmp_path, WEBHOOK_SECRET_FILE)
    assert load({"FLASHSALE_VAR_DIR": str(tmp_path)}).webhook_secret == secret.value


def test_served_url_falls_back_to_the_default_until_up_records_one(tmp_path: Path) -> None:
    assert vardir.served_url(tmp_path) == vardir.DEFAULT_URL
    vardir.write_state(tmp_path, url="http://127.0.0.1:8123", pid=1)
    assert vardir.served_url(tmp_path) == "http://127.0.0.1:8123"


def test_lock_refuses_a_second_holder_until_the_first_lets_go(tmp_path: Path) -> None:
    held = vardir.lock(tmp_path)
    with pytest.raises(vardir.AlreadyRunning):
        vardir.lock(tmp_path)
    held.close()
    vardir.lock(tmp_path).close()
