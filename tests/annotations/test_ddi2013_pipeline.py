"""Five DDI-2013 classes through the services: import -> train -> pseudo-label -> evaluate."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from annotations.exceptions import EvaluationError, NoActiveModelVersion
from annotations.models import Interaction, Label, ModelVersion, Prediction, Project, Run
from annotations.services.evaluation import (
    default_positive_classes,
    evaluate_model_version,
)
from annotations.services.import_formats import DDI2013, DDI2013_CLASSES, DDI2013_POSITIVE_CLASSES
from annotations.services.importing import import_interactions
from annotations.services.jobs.pseudolabel import run_pseudolabel_inline
from annotations.services.jobs.starting import start_pseudolabel_run, start_train_run
from annotations.services.jobs.training import run_training_job
from modeling.ddi2013_scoring import micro_prf
from tests.annotations.test_ddi2013_import import offsets, pair, write_pairs

# One cue per class, so even a tiny random model has something to find.
TEMPLATES = {
    "mechanism": "{a} raises the plasma levels of {b} and {c}.",
    "effect": "{a} potentiates the sedative effect of {b} and {c}.",
    "advise": "{a} should not be given with {b} or {c}.",
    "int": "{a} interacts with {b} and {c}.",
    "negative": "{a} was studied alongside {b} and {c}.",
}


def corpus(n_per_class: int, *, split: str, start: int = 0) -> list[dict]:
    """Sentences with three drugs (three pairs); only the (a, b) pair carries the class."""
    rows = []
    for k in range(start, start + n_per_class):
        for cls, template in TEMPLATES.items():
            names = {"a": f"Alfa{k}zol", "b": f"Beta{k}mab", "c": f"Gamma{k}pril"}
            sentence = template.format(**names)
            sid = f"D.{split}{k}.{cls}.s0"
            spots = {key: offsets(sentence, name) for key, name in names.items()}
            a, b, c = names["a"], names["b"], names["c"]
            rows.append(pair(sid, 0, a, spots["a"], b, spots["b"], cls, sentence, split=split))
            rows.append(pair(sid, 1, a, spots["a"], c, spots["c"], "negative", sentence, split))
            rows.append(pair(sid, 2, b, spots["b"], c, spots["c"], "negative", sentence, split))
    return rows


@pytest.fixture
def tiny(settings, tmp_path):
    settings.DDI_BACKBONE = "tiny-random-bert"
    settings.DDI_ARTIFACTS_DIR = tmp_path / "models"
    return settings


@pytest.fixture
def ddi_project(db, tmp_path) -> Project:
    project = Project.objects.create(name="DDI 2013", label_classes=list(DDI2013_CLASSES))
    rows = corpus(6, split="train") + corpus(2, split="test", start=100)
    import_interactions(project=project, path=write_pairs(tmp_path, rows), mapping=DDI2013)
    return project


@pytest.fixture
def trained(ddi_project, tiny) -> ModelVersion:
    run = start_train_run(
        project=ddi_project,
        params={"epochs": 2, "backbone": "tiny-random-bert", "max_length": 96},
        enqueue=False,
    )
    run = run_training_job(run_id=run.pk, enqueue=False)
    assert run.state == Run.State.SUCCEEDED, run.error
    return run.model_version


@pytest.mark.django_db
def test_training_uses_only_the_train_split_labels_with_all_five_classes(ddi_project, trained):
    assert Label.objects.filter(interaction__project=ddi_project).count() == 6 * 5 * 3
    assert not Label.objects.filter(interaction__split="test").exists()
    assert trained.n_train_examples == 90
    assert set(trained.metrics["per_class"]) == set(DDI2013_CLASSES)
    assert len(trained.metrics["confusion_matrix"]) == 5
    assert trained.train_config["max_length"] == 96  # free text needs more than the default 64


@pytest.mark.django_db
def test_pseudo_labels_then_evaluation_score_the_test_split_the_ddi2013_way(ddi_project, trained):
    run = start_pseudolabel_run(project=ddi_project, enqueue=False)
    run = run_pseudolabel_inline(run_id=run.pk)
    assert run.state == Run.State.SUCCEEDED, run.error
    test_rows = Interaction.objects.filter(project=ddi_project, split="test")
    predictions = Prediction.objects.filter(model_version=trained, interaction__in=test_rows)
    assert predictions.count() == 30
    assert all(len(p.probabilities) == 5 for p in predictions)

    scores = evaluate_model_version(project=ddi_project, split="test")

    assert scores["n_scored"] == scores["n_references"] == 30
    assert scores["missing_predictions"] == 0
    assert scores["positive_classes"] == DDI2013_POSITIVE_CLASSES
    assert set(scores["per_class"]) == set(DDI2013_POSITIVE_CLASSES)
    by_id = {p.interaction_id: p.predicted_class for p in predictions}
    truth = {i.pk: i.extra["reference_label"] for i in test_rows}
    expected = micro_prf(
        [truth[i] for i in sorted(truth)],
        [by_id[i] for i in sorted(truth)],
        positive_classes=DDI2013_POSITIVE_CLASSES,
    )
    assert scores["micro"] == expected["micro"]
    assert scores["per_class"] == expected["per_class"]
    assert sum(map(sum, scores["confusion_matrix"])) == 30

    out = io.StringIO()
    call_command("evaluate", "--project", "DDI 2013", "--split", "test", stdout=out)
    assert json.loads(out.getvalue())["micro"] == expected["micro"]


@pytest.mark.django_db
def test_unscored_rows_are_counted_and_a_project_without_a_version_is_refused(ddi_project, trained):
    with pytest.raises(EvaluationError, match="no reference labels in split 'dev'"):
        evaluate_model_version(project=ddi_project, split="dev")
    with pytest.raises(EvaluationError, match="positive classes synergy are not classes"):
        evaluate_model_version(project=ddi_project, positive_classes=["synergy"])

    scores = evaluate_model_version(project=ddi_project, split="test")

    assert scores["missing_predictions"] == 30 and scores["micro"] is None

    other = Project.objects.create(name="empty", label_classes=list(DDI2013_CLASSES))
    with pytest.raises(NoActiveModelVersion):
        evaluate_model_version(project=other)
    with pytest.raises(CommandError, match="has no active model version"):
        call_command("evaluate", "--project", "empty")


def test_the_default_positive_classes_leave_out_only_a_negative_class():
    assert default_positive_classes(DDI2013_CLASSES) == DDI2013_POSITIVE_CLASSES
    assert default_positive_classes(["Synergistic", "Antagonistic"]) == [
        "Synergistic",
        "Antagonistic",
    ]
