"""Web forms: queue filters, review actions, run parameters. Validation only; no writes."""

from __future__ import annotations

from django import forms

from annotations.models import ImportJob, Label, Project
from annotations.selectors.consistency import KINDS as CONSISTENCY_KINDS
from annotations.selectors.queue import QueueFilters
from annotations.services.jobs.params import (
    PARAMS_BY_NAME,
    RUN_PARAMS,
    RunParam,
    get_train_defaults,
)
from annotations.services.jobs.schedules import WEEKDAYS


class QueueFilterForm(forms.Form):
    """The review queue's filters (GET). Unknown or bad values fall back to 'no filter'."""

    predicted_class = forms.ChoiceField(required=False, label="Predicted class")
    min_confidence = forms.FloatField(
        required=False, min_value=0, max_value=1, label="Confidence from"
    )
    max_confidence = forms.FloatField(required=False, min_value=0, max_value=1, label="to")
    reviewed = forms.ChoiceField(
        required=False,
        label="Show",
        choices=[("unreviewed", "Not yet reviewed"), ("all", "All interactions")],
    )
    disagrees_with_rule = forms.BooleanField(required=False, label="Model disagrees with a rule")
    drug = forms.CharField(required=False, max_length=500, label="Drug name")
    text = forms.CharField(required=False, max_length=200, label="Text contains")
    source = forms.CharField(required=False, max_length=500, label="Source file")
    consistency = forms.ChoiceField(
        required=False,
        label="Consistency check",
        choices=[("", "Any item"), *CONSISTENCY_KINDS.items()],
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["predicted_class"].choices = [("", "Any class")] + [
            (name, name) for name in project.label_classes
        ]
        # Source files come from the (small) import log, not a DISTINCT over every interaction.
        sources = (
            ImportJob.objects.filter(project=project, state=ImportJob.State.SUCCEEDED)
            .values_list("file_name", flat=True)
            .order_by("file_name")
            .distinct()[:200]
        )
        self.source_files = list(sources)
        self.fields["source"].widget.attrs["list"] = "source-files"

    def to_filters(self) -> QueueFilters:
        if not self.is_valid():
            return QueueFilters()
        data = self.cleaned_data
        return QueueFilters(
            predicted_class=data["predicted_class"] or "",
            min_confidence=data["min_confidence"],
            max_confidence=data["max_confidence"],
            # A check lists labeled items: filtering to one shows them whatever "Show" says.
            unreviewed_only=data["reviewed"] != "all" and not data["consistency"],
            disagrees_with_rule=bool(data["disagrees_with_rule"]),
            drug=data["drug"] or "",
            text=data["text"] or "",
            source=data["source"] or "",
            consistency=data["consistency"] or "",
        )


class ReviewActionForm(forms.Form):
    """One reviewer action on one interaction; `version` is the Label.version the page showed."""

    ACTIONS = ("accept", "label", "flag")

    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    label_class = forms.CharField(required=False, max_length=100)
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea)
    version = forms.IntegerField(required=False, min_value=1)

    def clean(self):
        data = super().clean()
        if data.get("action") == "flag" and not (data.get("note") or "").strip():
            self.add_error("note", "Say what is unclear, so the next person knows.")
        if data.get("action") == "label" and not data.get("label_class"):
            self.add_error("label_class", "Choose a class.")
        return data

    @property
    def status(self) -> str:
        if self.cleaned_data["action"] == "flag":
            return Label.Status.UNCLEAR
        return Label.Status.LABELED


def _run_param_field(param: RunParam) -> forms.Field:
    """The form field of a run parameter (services/jobs/params.py RUN_PARAMS); never required."""
    if param.kind is bool:
        return forms.BooleanField(required=False, label=param.label)
    field = forms.IntegerField if param.kind is int else forms.FloatField
    low, high = param.bounds or (None, None)
    return field(
        required=False, min_value=low, max_value=high, label=param.label, help_text=param.form_help
    )


class _RunStartBase(forms.Form):
    """Parameters of a train / pseudo-label / retrain run (the main knobs only)."""

    kind = forms.ChoiceField(
        choices=[
            ("retrain", "Retrain (train, then pseudo-label with it if promoted)"),
            ("train", "Train only (the queue keeps the previous model's predictions)"),
            ("pseudolabel", "Pseudo-label with the active model"),
        ],
        label="Job",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Empty means TrainConfig's default, shown as the placeholder (never pre-filled, so the
        # form cannot drift from the defaults the CLI and the API use).
        for name, default in get_train_defaults().items():
            if name in self.fields:
                self.fields[name].widget.attrs["placeholder"] = f"{default:g}"
                self.fields[name].help_text = f"Empty: the default, {default:g}."

    def params(self) -> dict:
        """The run's params: the filled fields, and every yes/no field (pseudo-labeling: none)."""
        data = self.cleaned_data
        if data["kind"] == "pseudolabel":
            return {}
        params = {}
        for param in FORM_PARAMS:
            value = data[param.name]
            if param.kind is bool:
                params[param.name] = bool(value)
            elif value is not None:
                params[param.name] = value
        return params


# The run parameters the form offers (those with a label), in RUN_PARAMS order.
FORM_PARAMS = tuple(param for param in RUN_PARAMS if param.label)
RunStartForm = type(
    "RunStartForm",
    (_RunStartBase,),
    {
        "__module__": __name__,
        "__doc__": _RunStartBase.__doc__,
        **{param.name: _run_param_field(param) for param in FORM_PARAMS},
    },
)


class ScheduleForm(forms.Form):
    """The project's retrain schedule (Schedule page): when, and on which labels."""

    mode = forms.ChoiceField(
        choices=[
            ("off", "Off (retrain only when an admin starts it)"),
            ("nightly", "Every night at"),
            ("weekly", "Every week on"),
            ("reviews", "After a number of new reviews"),
        ],
        widget=forms.RadioSelect,
        label="Retrain automatically",
    )
    weekday = forms.TypedChoiceField(
        coerce=int, choices=list(enumerate(WEEKDAYS)), initial=1, label="Day (weekly)"
    )
    time = forms.TimeField(
        initial="02:00", label="Time of day", widget=forms.TimeInput(attrs={"type": "time"})
    )
    min_new_reviews = forms.IntegerField(
        min_value=1, max_value=1_000_000, initial=50, label="New reviews before a retrain"
    )
    include_pseudo_labels_above = _run_param_field(PARAMS_BY_NAME["include_pseudo_labels_above"])


class SecondOpinionSettingsForm(forms.Form):
    """Team review settings of a project (curators)."""

    percent = forms.FloatField(
        min_value=0, max_value=100, label="Second reviewer for this % of reviewed items"
    )
    below_confidence = forms.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        label="Always a second opinion below model confidence (blank: never)",
    )


class DecisionForm(forms.Form):
    """A curator's decision (adjudication or flag inbox); `version` is the label version seen."""

    label_class = forms.CharField(max_length=100)
    note = forms.CharField(required=False, max_length=5000)
    version = forms.IntegerField(required=False, min_value=0, max_value=2**31 - 1)


class ReturnToReviewForm(forms.Form):
    comment = forms.CharField(max_length=2000)
    version = forms.IntegerField(min_value=0, max_value=2**31 - 1)


class GuidelineForm(forms.Form):
    guideline = forms.CharField(max_length=20_000, widget=forms.Textarea)
