"""Create the three role groups and the default project."""

from django.db import migrations

ROLES = ["Reviewer", "Curator", "Admin"]
GUIDELINE = (
    "Synergistic: the combination increases the affected drug's effect, exposure (serum level, "
    "bioavailability, absorption, active metabolites) or the risk/severity of adverse effects.\n"
    "Antagonistic: the combination decreases the affected drug's effect, exposure or efficacy.\n"
    "Watch the sentences where the verb and the class disagree: less metabolism or excretion "
    "means more drug (Synergistic); more metabolism or excretion means less drug (Antagonistic)."
)


def create(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Project = apps.get_model("annotations", "Project")
    for name in ROLES:
        Group.objects.get_or_create(name=name)
    Project.objects.get_or_create(
        name="DrugBank DDI",
        defaults={"label_classes": ["Synergistic", "Antagonistic"], "guideline": GUIDELINE},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("annotations", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
