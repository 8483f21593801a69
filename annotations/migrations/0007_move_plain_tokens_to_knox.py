"""Move DRF's plain-text API tokens into knox's hashed table, then delete the plain keys.

A client holding a token from before keeps working until the token's expiry (created + the
API token TTL, as before); what is stored from now on is the SHA-512 digest knox checks, never
the key. The DRF table is read with SQL because its app is no longer installed; a database
that never had it (a fresh install) has nothing to move.
"""

import hashlib
from datetime import UTC, timedelta

from django.conf import settings
from django.db import migrations
from django.utils import timezone
from django.utils.dateparse import parse_datetime

PLAIN_TABLE = "authtoken_token"


def move_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if PLAIN_TABLE not in connection.introspection.table_names():
        return
    AuthToken = apps.get_model("knox", "AuthToken")
    ttl = timedelta(hours=getattr(settings, "DDI_API_TOKEN_TTL_HOURS", 24))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {PLAIN_TABLE}")  # noqa: S608
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        if isinstance(created, str):  # SQLite returns the stored text
            created = parse_datetime(created)
        if timezone.is_naive(created):
            created = timezone.make_aware(created, UTC)
        digest = hashlib.sha512(key.encode()).hexdigest()  # knox.crypto.hash_token(key)
        AuthToken.objects.bulk_create(
            [AuthToken(digest=digest, token_key=key[:15], user_id=user_id, expiry=created + ttl)]
        )
        # auto_now_add set `created` to now; keep the original time (the expiry counts from it).
        AuthToken.objects.filter(digest=digest).update(created=created)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {PLAIN_TABLE}")  # noqa: S608


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0006_rule_matches"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunPython(move_tokens, migrations.RunPython.noop)]
