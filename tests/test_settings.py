"""The settings module: embedded defaults, environment switches, production hardening."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    # DJANGO_ALLOW_ASYNC_UNSAFE may be set by the Playwright tests in this process; it is not
    # part of the deployment under test.
    prefixes = ("DDI_", "DATABASE_", "CELERY_", "DJANGO_ALLOW_ASYNC")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    clean.update({"DDI_VAR_DIR": str(tmp_path / "var"), **env})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRINT_SETTINGS = (
    "from django.conf import settings as s; "
    "print(s.DATABASES['default']['ENGINE']); print(s.CELERY_BROKER_URL); print(s.DDI_BACKBONE)"
)


def test_defaults_need_no_server_sqlite_filesystem_broker_bundled_backbone(tmp_path):
    result = run_manage("shell", "-c", PRINT_SETTINGS, env={}, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    engine, broker, backbone = result.stdout.split()[-3:]
    assert engine == "django.db.backends.sqlite3"
    assert broker == "filesystem://"
    assert backbone == "all-minilm-l6-v2"
    assert (tmp_path / "var" / "broker" / "queue").is_dir()


def test_environment_switches_to_postgresql_and_redis_without_code_changes(tmp_path):
    env = {
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/ddi_curate",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    }
    result = run_manage("shell", "-c", PRINT_SETTINGS, env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    engine, broker, _ = result.stdout.split()[-3:]
    assert engine == "django.db.backends.postgresql"
    assert broker == "redis://127.0.0.1:6379/0"


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_manage(
        "check", env={"DDI_ENV": "production", "ALLOWED_HOSTS": "x.org"}, tmp_path=tmp_path
    )
    assert result.returncode != 0
    assert "DDI_ENV=production needs SECRET_KEY" in result.stderr


def test_production_settings_pass_check_deploy_at_warning_level(tmp_path):
    env = {
        "DDI_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "ddi.example.org",
    }
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_an_unknown_environment_name_is_a_clear_error(tmp_path):
    result = run_manage("check", env={"DDI_ENV": "prod"}, tmp_path=tmp_path)
    assert "DDI_ENV must be 'development' or 'production', not 'prod'" in result.stderr


def test_passwords_are_hashed_with_pbkdf2_at_owasps_iteration_count_or_more():
    from django.contrib.auth.hashers import get_hasher

    hasher = get_hasher()
    # OWASP's 2023 figure for PBKDF2-HMAC-SHA256 is 600,000; Django 5.2's default is 1,000,000
    # (0.23 s per login on the 2-core build machine, measured; see README).
    assert hasher.algorithm == "pbkdf2_sha256"
    assert hasher.iterations >= 600_000
