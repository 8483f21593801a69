"""Scenario 13, the static half: the templates' escape hatches and inline code, and the
production settings' cookies and HSTS (tests/reliability/test_xss_and_headers.py renders every page
with hostile data)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from tests.harness.processes import ROOT

# Matches of the grep below that are reviewed and allowed: (file, stripped line).
ESCAPE_HATCH_ALLOWLIST = {
    (
        "annotations/services/highlighting.py",
        "The HTML is built from escaped pieces with format_html (never mark_safe on raw text), so a",
    ),
    (
        "annotations/services/highlighting.py",
        "from django.utils.html import format_html, format_html_join",
    ),
    ("annotations/services/highlighting.py", "return format_html_join("),
    (
        "annotations/services/highlighting.py",
        'format_html(\'<mark class="drug drug-{}" title="{}">{}</mark>\', kind, title, chunk)',
    ),
    ("annotations/services/highlighting.py", 'else format_html("{}", chunk),'),
}


def test_escape_hatches_match_only_the_reviewed_allowlist():
    result = subprocess.run(
        [
            "grep",
            "-rn",
            r"|safe\|mark_safe\|autoescape off\|format_html",
            "templates/",
            "annotations/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    found = set()
    for line in result.stdout.splitlines():
        path, _, rest = line.partition(":")
        _, _, text = rest.partition(":")
        if "/__pycache__/" in path:
            continue
        found.add((path, text.strip()))
    assert found == ESCAPE_HATCH_ALLOWLIST


def test_templates_have_no_inline_scripts_styles_or_handlers():
    """Data for JavaScript goes through json_script; behaviour lives in static/js."""
    bad = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = re.sub(r"\{#.*?#\}", "", path.read_text())  # template comments
        for match in re.finditer(r"<script(?![^>]*\bsrc=)[^>]*>", text):
            bad.append(f"{path.name}: {match.group(0)}")
        for match in re.finditer(r"\s(on[a-z]+|hx-on[:\w-]*|style)\s*=", text):
            bad.append(f"{path.name}: {match.group(0).strip()}")
        if re.search(r"<style[\s>]", text):
            bad.append(f"{path.name}: <style>")
    assert bad == []


# --- Production settings: cookies and HSTS ------------------------------------------------------
PROD_PROBE = r"""
import json, django
django.setup()
from django.conf import settings
from django.test.utils import setup_test_environment, override_settings
from django.db import connection
setup_test_environment()
connection.creation.create_test_db(verbosity=0)
from django.test import Client
from tests.factories import UserFactory
UserFactory(username="rita", role="Reviewer")
# Production serves hashed static names from collectstatic's manifest; this probe checks
# headers and cookies, so it renders with plain static names instead.
with override_settings(STORAGES={**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}):
    client = Client(enforce_csrf_checks=True)
    plain = client.get("/accounts/login/")
    page = client.get("/accounts/login/", secure=True)
    token = page.cookies["csrftoken"].value
    login = client.post("/accounts/login/", {"username": "rita",
        "password": "correct horse battery staple", "csrfmiddlewaretoken": token}, secure=True,
        HTTP_REFERER="https://testserver/accounts/login/")
def cookie(response, name):
    morsel = response.cookies[name]
    return {"secure": bool(morsel["secure"]), "httponly": bool(morsel["httponly"]),
            "samesite": morsel["samesite"]}
print(json.dumps({
    "plain_status": plain.status_code, "plain_location": plain.get("Location", ""),
    "page_status": page.status_code, "hsts": page.get("Strict-Transport-Security", ""),
    "csp": page.get("Content-Security-Policy", ""), "login_status": login.status_code,
    "csrf": cookie(page, "csrftoken"), "session": cookie(login, "sessionid"),
}))
"""


def test_production_settings_send_hsts_and_secure_cookies(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DDI_", "DATABASE_", "SECURE_", "DEBUG", "ALLOWED_HOSTS"))
    }
    env.update(
        DDI_ENV="production",
        SECRET_KEY="x" * 20 + "production-probe-not-a-real-secret-0123456789",
        ALLOWED_HOSTS="testserver",
        DDI_VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        DJANGO_SETTINGS_MODULE="ddi_site.settings",
    )
    done = subprocess.run(
        [sys.executable, "-c", PROD_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["plain_status"] == 301 and result["plain_location"].startswith("https://")
    assert result["page_status"] == 200
    assert "max-age=" in result["hsts"] and "includeSubDomains" in result["hsts"]
    assert "unsafe-inline" not in result["csp"] and "default-src 'self'" in result["csp"]
    assert result["login_status"] == 302
    assert result["session"] == {"secure": True, "httponly": True, "samesite": "Lax"}
    assert result["csrf"]["secure"] and result["csrf"]["samesite"] == "Lax"
