"""Run defaults: an empty field means TrainConfig's default, in the form, the API and the CLI."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from django.core.management import call_command
from django.urls import reverse

from annotations.api.serializers import RunParamsIn
from annotations.forms import RunStartForm
from annotations.models import Run
from annotations.services.jobs.params import build_train_config
from modeling.config import TrainConfig

DEFAULTS = TrainConfig()


def test_the_start_form_pre_fills_nothing_and_shows_the_defaults_as_placeholders(
    client, project, admin_ada
):
    client.force_login(admin_ada)
    page = client.get(reverse("annotations:runs", args=[project.pk])).content.decode()
    form = RunStartForm()
    for name, default in (
        ("epochs", DEFAULTS.epochs),
        ("learning_rate", DEFAULTS.learning_rate),
        ("lora_r", DEFAULTS.lora_r),
    ):
        assert form[name].value() is None
        assert f'placeholder="{default:g}"' in page
        assert not form.fields[name].required


def test_the_form_submitted_as_pre_filled_trains_with_the_trainconfig_defaults(
    client, project, admin_ada
):
    client.force_login(admin_ada)
    response = client.post(
        reverse("annotations:run_start", args=[project.pk]),
        {"kind": "train", "epochs": "", "learning_rate": "", "lora_r": ""},
    )
    assert response.status_code == 302
    run = Run.objects.get()
    assert run.params == {"force_promote": False}
    config = build_train_config(run.params)
    assert (config.epochs, config.learning_rate, config.lora_r) == (
        DEFAULTS.epochs,
        DEFAULTS.learning_rate,
        DEFAULTS.lora_r,
    )


def test_the_api_and_the_cli_name_the_same_defaults():
    fields = RunParamsIn().fields
    assert str(DEFAULTS.epochs) in fields["epochs"].help_text
    assert f"{DEFAULTS.learning_rate:g}" in fields["learning_rate"].help_text
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            call_command("train", "--help")
    except SystemExit:
        pass
    text = " ".join(out.getvalue().split())
    assert f"--epochs EPOCHS default {DEFAULTS.epochs}" in text
    assert f"default {DEFAULTS.learning_rate:g}" in text
