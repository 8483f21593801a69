"""Audits in the app: the draw, the estimate on the dashboard and in the card, auto-accept and
its export filter, the rubber-stamp check, the API and the page (real PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from annotations import audit_stats
from annotations.exceptions import AuditCannotStart
from annotations.models import Audit, AuditItem, Label, LabelEvent, ModelVersion
from annotations.selectors.audit import (
    get_audit_summary,
    get_auto_accept,
    get_rubber_stamp_checks,
)
from annotations.services import audit as audit_service
from annotations.services import blind as blind_service
from annotations.services import rules as rule_service
from annotations.services.export import build_export_card, make_filters, stream_export
from tests.factories import InteractionFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db

# (pattern, class, confidence, rows)
PATTERNS = [
    ("DRUG_A may increase the anticoagulant activities of DRUG_B.", "Synergistic", 0.995, 120),
    ("DRUG_A may decrease the diuretic activities of DRUG_B.", "Antagonistic", 0.97, 50),
    (
        "The metabolism of DRUG_B can be increased when combined with DRUG_A.",
        "Synergistic",
        0.6,
        30,
    ),
]


@pytest.fixture
def model_project(project, reviewer_rita):
    """200 model-labeled rows over three patterns, plus one seed, one review and one rule row."""
    version = ModelVersionFactory(project=project, is_active=True, metrics={"macro_f1": 0.9})
    n = 0
    for text, cls, conf, rows in PATTERNS:
        for _ in range(rows):
            n += 1
            interaction = InteractionFactory(
                project=project,
                drug_a=f"Alpha{n}",
                drug_b=f"Beta{n}",
                description=text.replace("DRUG_A", f"Alpha{n}").replace("DRUG_B", f"Beta{n}"),
                blinded_text=text,
                pattern_hash=str(hash(text)),
            )
            probs = [conf, 1 - conf] if cls == "Synergistic" else [1 - conf, conf]
            PredictionFactory(
                interaction=interaction,
                model_version=version,
                predicted_class=cls,
                confidence=conf,
                uncertainty=1 - conf,
                margin=abs(probs[0] - probs[1]),
                probabilities=probs,
            )
    seeded, reviewed = project.interactions.all()[:2]
    Label.objects.create(interaction=seeded, label_class="Synergistic", source="seed")
    Label.objects.create(
        interaction=reviewed, label_class="Antagonistic", source="review", author=reviewer_rita
    )
    return project


def _answer(project, user, pick=lambda item: item.shown_class, status="labeled", limit=None):
    """`user` asks the queue for blind items and answers each with pick(audit item)."""
    answered = 0
    while limit is None or answered < limit:
        task = blind_service.claim_blind_task(project=project, user=user)
        if task is None:
            return answered
        item = AuditItem.objects.filter(task=task).order_by("-audit_id").first()
        blind_service.answer_blind_task(
            task=task, user=user, label_class=pick(item) or None, status=status
        )
        answered += 1
    return answered


def _flip(cls: str) -> str:
    return "Antagonistic" if cls == "Synergistic" else "Synergistic"


def _right_except_unsure(item) -> str:
    """Right, except the unsure pattern (confidence 0.6), which the model gets wrong."""
    return _flip(item.shown_class) if (item.confidence or 1) < 0.7 else item.shown_class


def test_the_draw_is_stratified_over_model_rows_only_with_inclusion_probabilities(
    model_project, curator_carl
):
    # Free text: every row its own sentence, so no pattern is taken whole.
    for n, interaction in enumerate(model_project.interactions.all()):
        interaction.pattern_hash = f"distinct-{n}"
        interaction.save(update_fields=["pattern_hash"])
    audit = audit_service.start_audit(project=model_project, user=curator_carl, size=40, seed=7)
    items = list(audit.items.all())
    assert len(items) == 40 and audit.population == 198  # 200 minus the seed and the review
    assert audit.model_version.is_active and audit.started_by == curator_carl
    labeled = set(Label.objects.values_list("interaction_id", flat=True))
    assert not labeled & {i.interaction_id for i in items}
    assert sum(s["size"] for s in audit.strata.values()) == 198
    assert not any(item.cluster_rows for item in items)
    for item in items:
        info = audit.strata[item.stratum]
        assert item.inclusion_probability == pytest.approx(info["sample"] / info["size"])
        cls, band = audit_stats.parse_stratum(item.stratum)
        assert cls == item.shown_class and band == audit_stats.band_of(item.confidence)
    # The unsure pattern (30 rows at 0.6) gets well over its 15 % share (6) of the 40 items.
    unsure = [i for i in items if i.confidence == 0.6]
    assert len(unsure) >= 9


def test_a_sentence_pattern_as_large_as_the_step_is_taken_whole(
    model_project, curator_carl, reviewer_rita
):
    # Templated text: each stratum is one sentence pattern, so each is taken with certainty;
    # the spare items go to the patterns by size and test the same-sentence assumption.
    audit = audit_service.start_audit(project=model_project, user=curator_carl, size=40, seed=7)
    items = list(audit.items.select_related("interaction"))
    assert len(items) == 40
    for key, info in audit.strata.items():
        assert info["clusters"] == 1 and info["cluster_rows"] == info["size"]
        members = [i for i in items if i.stratum == key]
        assert len(members) == info["sample"] >= 1
        assert len({i.interaction.pattern_hash for i in members}) == 1
        assert all(i.cluster_rows == info["size"] for i in members)
        assert all(
            i.inclusion_probability == pytest.approx(info["sample"] / info["size"]) for i in members
        )
    biggest = max(audit.strata.values(), key=lambda info: info["size"])
    assert biggest["sample"] >= 40 * biggest["size"] / 198 - 1
    assert _answer(model_project, reviewer_rita, limit=3) == 3
    summary = get_audit_summary(project=model_project)
    assert summary.cluster_items == 3 and summary.cluster_rows == 198
    assert "same blinded sentence" in summary.cluster_assumption


def test_a_plain_census_counts_every_row_once(model_project, curator_carl, reviewer_rita):
    # Rows only, as many items as rows: every row drawn with probability 1, none standing for
    # others, so the estimate is exact over the 198 rows.
    audit = audit_service.start_audit(
        project=model_project, user=curator_carl, size=500, seed=4, by_pattern=False
    )
    assert audit.items.count() == 198 and not audit.items.filter(cluster_rows__isnull=False)
    assert all(info["cluster_rows"] == 0 for info in audit.strata.values())
    assert _answer(model_project, reviewer_rita) == 198
    estimate = get_audit_summary(project=model_project).estimate
    assert estimate.audited == 198 and estimate.population == 198
    assert estimate.value == estimate.low == estimate.high == 1.0


def test_rule_labels_are_audited_separately(model_project, curator_carl):
    rule_service.create_rule(
        project=model_project,
        user=curator_carl,
        name="diuretic",
        kind="regex",
        field="blinded",
        pattern=r"diuretic",
        label_class="Antagonistic",
        priority=0,
        is_active=True,
    )
    audit = audit_service.start_audit(
        project=model_project, user=curator_carl, size=10, source=Audit.Source.RULE
    )
    assert audit.population == 50 and audit.items.count() == 10
    assert all(i.rule_id is not None for i in audit.items.all())
    model_audit = audit_service.start_audit(project=model_project, user=curator_carl, size=10)
    assert model_audit.population == 148  # the rule's rows are no longer the model's


def test_an_audit_without_model_labels_says_why_it_cannot_start(project, curator_carl):
    with pytest.raises(AuditCannotStart, match="no active model version"):
        audit_service.start_audit(project=project, user=curator_carl)
    ModelVersionFactory(project=project, is_active=True)
    with pytest.raises(AuditCannotStart, match="No rows to audit"):
        audit_service.start_audit(project=project, user=curator_carl)
    with pytest.raises(AuditCannotStart, match="between 1 and"):
        audit_service.start_audit(project=project, user=curator_carl, size=0)


def test_the_estimate_matches_the_truth_per_class_and_in_the_card(
    model_project, curator_carl, reviewer_rita
):
    audit = audit_service.start_audit(project=model_project, user=curator_carl, size=60, seed=3)
    assert _answer(model_project, reviewer_rita, _right_except_unsure) == audit.items.count()
    summary = get_audit_summary(project=model_project)
    # Truth: the 30 rows at 0.6 are wrong, the rest right. Each stratum is one sentence
    # pattern taken whole and its answers agree, so the estimate is exact.
    assert summary.answered == 60 and not summary.stale
    assert summary.estimate.value == pytest.approx(168 / 198)
    assert summary.estimate.low == pytest.approx(168 / 198) == summary.estimate.high
    assert summary.per_class["Antagonistic"].value > 0.95
    assert summary.per_class["Synergistic"].high < 0.9
    card = build_export_card(project=model_project, filters=make_filters(project=model_project))
    assert card["audit"]["model"] == json.loads(json.dumps(summary.as_dict()))
    # Another version becomes active: the estimate is marked stale, with the reason.
    ModelVersion.objects.filter(project=model_project).update(is_active=False)
    ModelVersionFactory(project=model_project, is_active=True)
    stale = get_audit_summary(project=model_project)
    assert stale.stale and "active now" in stale.stale_reason


def test_an_unclear_answer_is_not_counted_as_right_or_wrong(
    model_project, curator_carl, reviewer_rita
):
    audit = audit_service.start_audit(project=model_project, user=curator_carl, size=5, seed=1)
    _answer(model_project, reviewer_rita, lambda item: "", status="unclear", limit=1)
    label = Label.objects.get(interaction__audit_items__audit=audit, source="audit")
    assert label.status == "unclear"
    summary = get_audit_summary(project=model_project)
    assert summary.answered == 1 and summary.unclear == 1 and summary.estimate.value is None


def test_auto_accept_thresholds_and_the_export_filter(model_project, curator_carl, reviewer_rita):
    with pytest.raises(AuditCannotStart, match=r"between 0 and 0\.5"):
        audit_service.set_auto_accept_alpha(project=model_project, alpha=0.7)
    audit_service.set_auto_accept_alpha(project=model_project, alpha="0.2")
    assert get_auto_accept(project=model_project).reason.startswith("no audit yet")
    audit = audit_service.start_audit(project=model_project, user=curator_carl, size=60, seed=2)
    assert _answer(model_project, reviewer_rita, _right_except_unsure) == 60
    accept = get_auto_accept(project=model_project)
    thresholds = accept.threshold_map()
    # At 20 % a band needs 14 error-free items: the Synergistic top band (0.995) has them; its
    # 0.6 band (all wrong) is refused, so the sequence stops there.
    assert audit_stats.items_needed(0.2) == 14
    assert audit.items.filter(stratum="Synergistic|6").count() >= 14
    assert thresholds["Synergistic"] == audit_stats.BAND_EDGES[6]
    syn = next(t for t in accept.thresholds if t.predicted_class == "Synergistic")
    assert syn.bands_accepted == [6] and "not certified" in syn.note
    assert accept.rows_accepted == sum(
        audit.strata[f"{t.predicted_class}|{b}"]["size"]
        for t in accept.thresholds
        for b in t.bands_accepted
    )
    filters = make_filters(project=model_project, auto_accepted=True)
    data = b"".join(stream_export(project=model_project, export_format="jsonl", filters=filters))
    rows = [json.loads(line) for line in data.splitlines()]
    model_rows = [r for r in rows if r["source"] == "model"]
    assert model_rows and all(r["confidence"] >= thresholds[r["final_label"]] for r in model_rows)
    assert not [r for r in rows if r["source"] == "model" and r["confidence"] == 0.6]
    assert {r["source"] for r in rows} >= {"seed", "review"}  # human labels always kept
    card = build_export_card(project=model_project, filters=filters)
    assert card["auto_accept"]["alpha"] == 0.2
    assert card["filters"]["auto_accepted"]["thresholds"] == thresholds
    assert "exchangeable" in card["auto_accept"]["assumption"]


def test_the_export_filter_needs_auto_accept_on(model_project):
    from annotations.exceptions import InvalidExportFilter

    with pytest.raises(InvalidExportFilter, match="Audit page"):
        make_filters(project=model_project, auto_accepted=True)


def test_rubber_stamp_check_flags_a_reviewer_who_agrees_only_when_the_answer_shows(
    model_project, curator_carl, reviewer_rita, reviewer_rob
):
    audit_service.start_audit(project=model_project, user=curator_carl, size=20, seed=5)
    # rita disagrees with the model on every other blind item...
    turn = iter(range(100))
    half = lambda item: item.shown_class if next(turn) % 2 else _flip(item.shown_class)  # noqa: E731
    assert _answer(model_project, reviewer_rita, half) == 20
    interactions = list(model_project.interactions.filter(label__isnull=True)[:30])
    for interaction in interactions:  # ...and always agrees when the model's answer is shown
        LabelEvent.objects.create(
            interaction=interaction,
            actor=reviewer_rita,
            action="accept",
            source="review",
            new_class="Synergistic",
            new_status="labeled",
            version=1,
            predicted_class="Synergistic",
        )
    checks = {c.username: c for c in get_rubber_stamp_checks(project=model_project)}
    assert checks["rita"].flagged
    assert checks["rita"].blind.rate == pytest.approx(0.5)
    assert checks["rita"].assisted.rate == 1.0


def test_audit_api_roles_and_messages(model_project, reviewer_rita, curator_carl):
    client = APIClient()
    url = f"/api/projects/{model_project.pk}/audit/"
    client.force_authenticate(reviewer_rita)
    assert client.get(url).json()["audit"]["model"] is None
    assert client.post(url, {"size": 5}, format="json").status_code == 403
    client.force_authenticate(curator_carl)
    created = client.post(url, {"size": 5}, format="json")
    assert created.status_code == 201 and created.json()["drawn"] == 5
    bad = client.put(url + "auto-accept/", {"alpha": 0.9}, format="json")
    assert bad.status_code == 400 and "between 0 and 0.5" in json.dumps(bad.json())
    ok = client.put(url + "auto-accept/", {"alpha": 0.01}, format="json")
    assert ok.status_code == 200 and ok.json()["alpha"] == 0.01
    assert client.post(url, {"size": 0}, format="json").status_code == 400
    # by_pattern false: a plain draw of rows, no pattern taken whole, so no assumption.
    plain = client.post(url, {"size": 12, "by_pattern": False}, format="json").json()
    assert plain["pattern_items"] == 0 and plain["pattern_assumption"] == ""
    audit = Audit.objects.get(pk=plain["audit_id"])
    assert audit.items.count() == 12 and not audit.items.filter(cluster_rows__isnull=False)
    whole = client.post(url, {"size": 12}, format="json").json()
    assert whole["pattern_items"] == 3 and "same blinded sentence" in whole["pattern_assumption"]


def test_the_audit_page_starts_an_audit_and_shows_errors_not_500s(
    client, model_project, curator_carl, reviewer_rita, admin_ada
):
    url = reverse("annotations:audit", args=[model_project.pk])
    client.force_login(reviewer_rita)
    assert client.get(url).status_code == 403
    client.force_login(curator_carl)
    assert "No audit of the model labels yet" in client.get(url).content.decode()
    response = client.post(url, {"action": "start", "source": "model", "size": "12"})
    assert response.status_code == 302
    assert AuditItem.objects.filter(audit__project=model_project).count() == 12
    page = client.get(url).content.decode()
    assert "no answers yet" in page and "Rubber-stamp" not in page
    bad = client.post(url, {"action": "alpha", "alpha": "abc"})
    assert bad.status_code == 422 and "must be a number" in bad.content.decode()
    client.force_login(admin_ada)
    assert "Rubber-stamp check" in client.get(url).content.decode()
    dashboard = client.get(reverse("annotations:dashboard", args=[model_project.pk]))
    assert "What nobody reviewed" in dashboard.content.decode()


def test_audit_items_are_blind_on_the_page_the_fragment_and_every_api_endpoint(
    client, model_project, curator_carl, reviewer_rob
):
    rule_service.create_rule(
        project=model_project,
        user=curator_carl,
        name="zzz-rule-marker",
        pattern=r"diuretic",
        label_class="Antagonistic",
    )
    audit = audit_service.start_audit(
        project=model_project, user=curator_carl, size=3, source=Audit.Source.RULE, seed=4
    )
    client.force_login(reviewer_rob)
    response = client.get(reverse("annotations:review_next", args=[model_project.pk]))
    page = client.get(response["Location"]).content.decode()
    item = AuditItem.objects.get(audit=audit, task__assignee=reviewer_rob)
    assert "Blind review" in page
    for secret in ("zzz-rule-marker", "0.97", "Antagonistic</strong>", "uncertainty"):
        assert secret not in page, secret
    fragment = client.get(
        reverse("annotations:review_item", args=[item.interaction_id]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert (
        "Blind review" in fragment and "zzz-rule-marker" not in fragment and "0.97" not in fragment
    )
    api = APIClient()
    api.force_authenticate(reviewer_rob)
    ids = [p["interaction"] for p in api.get("/api/predictions/").json()["results"]]
    assert item.interaction_id not in ids
    detail = api.get(f"/api/interactions/{item.interaction_id}/").json()
    assert detail["label"] is None and "0.97" not in json.dumps(detail)
    listed = api.get(f"/api/projects/{model_project.pk}/queue/").json()
    assert item.interaction_id not in [row["interaction"]["id"] for row in listed]
    # The answer is saved as the label (source audit), then the reviewer sees the comparison.
    url = reverse("annotations:review_action", args=[item.interaction_id])
    after = client.post(
        url, {"action": "label", "label_class": "Synergistic", "version": ""}, follow=True
    ).content.decode()
    assert "differs from" in after or "disagrees" in after
    label = Label.objects.get(interaction_id=item.interaction_id)
    assert (label.source, label.label_class) == ("audit", "Synergistic")
    summary = get_audit_summary(project=model_project, source=Audit.Source.RULE)
    assert summary.answered == 1 and summary.estimate.value is not None


def test_the_audit_command_starts_reports_and_names_problems(model_project, capsys):
    from django.core.management import CommandError, call_command

    call_command("audit", project=model_project.name, start=True, size=10, alpha="0.05")
    out = capsys.readouterr().out
    assert "10 items drawn from 198 model-labeled rows" in out
    assert "auto-accept at alpha 0.05" in out
    with pytest.raises(CommandError, match=r"between 0 and 0\.5"):
        call_command("audit", project=model_project.name, alpha="2")
    with pytest.raises(CommandError, match="No project named"):
        call_command("audit", project="nope")
