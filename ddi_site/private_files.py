"""Owner-only folders and files under var/ (the SQLite file, the secret key, uploads, models,
the filesystem broker), for the settings module."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def private_dir(path: Path) -> None:
    """Create `path` owner-only (0700), and tighten it if an older install left it open: var/
    holds the SQLite file (password hashes, tokens), the secret key, uploads and models."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except PermissionError:  # not ours (a mounted volume): leave it to the operator
        pass


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if absent (no window where it is world-readable),
    or tighten an existing one."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except PermissionError:
        pass


def development_secret_key(var_dir: Path) -> str:
    """A random key kept in var/ so sessions survive restarts; never committed, never in code."""
    key_file = var_dir / "secret_key"
    if not key_file.exists() or not key_file.read_text().strip():
        private_file(key_file)
        key_file.write_text(secrets.token_urlsafe(50))
    private_file(key_file)
    return key_file.read_text().strip()
