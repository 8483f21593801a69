"""Give the Admin group the Django admin permissions an admin needs (annotations.roles).

Permissions are created here first: Django makes them only after migrate, and a fresh database
would otherwise have none to grant.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from annotations.roles import grant_admin_permissions


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    grant_admin_permissions(
        group_model=apps.get_model("auth", "Group"),
        permission_model=apps.get_model("auth", "Permission"),
    )


def revoke(apps, schema_editor):
    for group in apps.get_model("auth", "Group").objects.filter(name="Admin"):
        group.permissions.clear()


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0003_interaction_drug_upper_indexes"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
