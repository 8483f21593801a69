"""Issue 18, point 8: var/ holds the SQLite file (password hashes, tokens), the secret key,
uploads and the broker: files 0600, folders 0700, also when an older install left them open.

Runs settings in a child interpreter with a fresh DDI_VAR_DIR (settings act at import)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load_settings(var_dir: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "SECRET_KEY", "CELERY_BROKER_URL", "FILE_UPLOAD_TEMP_DIR")
    }
    env.update(
        DDI_VAR_DIR=str(var_dir), DDI_ENV="development", DJANGO_SETTINGS_MODULE="ddi_site.settings"
    )
    subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_var_folder_is_owner_only(tmp_path):
    var = tmp_path / "var"
    _load_settings(var)
    assert _mode(var) == 0o700
    assert _mode(var / "ddi.sqlite3") == 0o600
    assert _mode(var / "secret_key") == 0o600
    for folder in ("uploads", "broker", "broker/queue"):
        assert _mode(var / folder) == 0o700, folder


def test_an_older_world_readable_install_is_tightened(tmp_path):
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    var.chmod(0o755)
    (var / "ddi.sqlite3").write_bytes(b"")
    (var / "ddi.sqlite3").chmod(0o644)
    (var / "secret_key").write_text("k" * 60)
    (var / "secret_key").chmod(0o644)
    _load_settings(var)
    assert _mode(var) == 0o700
    assert _mode(var / "ddi.sqlite3") == 0o600
    assert _mode(var / "secret_key") == 0o600
    assert (var / "secret_key").read_text() == "k" * 60
