"""The domain model. Fields, constraints and indexes only; workflows live in services/.

Glossary: an *interaction* is one DDI sentence about two drugs; a *label* is the current human or
seed class of an interaction (its history is in LabelEvent); a *prediction* is one model
version's output for one interaction; a *run* is a long job (training, pseudo-labeling, import);
a *rule* maps a text pattern to a class. Celery owns the word "task".
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper

DEFAULT_PROJECT_NAME = "DrugBank DDI"
DEFAULT_LABEL_CLASSES = ["Synergistic", "Antagonistic"]
DEFAULT_GUIDELINE = (
    "Synergistic: the combination increases the affected drug's effect, exposure (serum level, "
    "bioavailability, absorption, active metabolites) or the risk/severity of adverse effects.\n"
    "Antagonistic: the combination decreases the affected drug's effect, exposure or efficacy.\n"
    "Watch the sentences where the verb and the class disagree: less metabolism or excretion "
    "means more drug (Synergistic); more metabolism or excretion means less drug (Antagonistic)."
)


def default_label_classes() -> list[str]:
    return list(DEFAULT_LABEL_CLASSES)


class Project(models.Model):
    """A labeling project: a set of interactions and its ordered class list."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    label_classes = models.JSONField(default=default_label_classes)
    guideline = models.TextField(blank=True, default=DEFAULT_GUIDELINE)
    # Bumped by every amendment (services/flags.py); answers record the revision they were made
    # under, so agreement can be read per revision.
    guideline_revision = models.PositiveIntegerField(default=1)
    guideline_revised_at = models.DateTimeField(null=True, blank=True)
    # A restricted project is visible only to its members (and admins).
    is_restricted = models.BooleanField(default=False)
    # Target error rate for auto-accepting model labels (None: auto-accept off); see audits.
    auto_accept_alpha = models.FloatField(null=True, blank=True)
    # Team review (README "Team review"): the share of reviewed items that get a blind second
    # opinion, and a confidence under which every reviewed item gets one (None: no such floor).
    second_opinion_rate = models.FloatField(default=0.10)
    second_opinion_below_confidence = models.FloatField(null=True, blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="projects")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class ImportJob(models.Model):
    """One import of one file; the sha256 makes re-importing the same file a no-op."""

    class State(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imports")
    file_name = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64)
    file_format = models.CharField(max_length=20)
    state = models.CharField(max_length=20, choices=State.choices, default=State.RUNNING)
    rows_read = models.BigIntegerField(default=0)
    interactions_created = models.BigIntegerField(default=0)
    labels_created = models.BigIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "sha256"],
                condition=Q(state="succeeded"),
                name="one_successful_import_per_file",
            )
        ]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.state})"

    @property
    def rows_already_present(self) -> int:
        """Rows read that added no interaction: already in the project (or twice in the file)."""
        return max(0, self.rows_read - self.interactions_created)


class Interaction(models.Model):
    """One drug-drug interaction sentence. Immutable once imported; changed text is a new row."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="interactions")
    drug_a = models.CharField(max_length=500)
    drug_b = models.CharField(max_length=500)
    description = models.TextField()
    # The description with the two drugs replaced by placeholders (what the model sees).
    blinded_text = models.TextField()
    # sha256 of blinded_text: groups rows by sentence pattern (DrugBank has a few dozen).
    pattern_hash = models.CharField(max_length=64)
    # sha256 of (drug_a, drug_b, description): the idempotency key of imports.
    content_hash = models.CharField(max_length=64)
    source_file = models.CharField(max_length=500, blank=True)
    source_line = models.BigIntegerField(null=True, blank=True)
    external_id_a = models.CharField(max_length=100, blank=True)
    external_id_b = models.CharField(max_length=100, blank=True)
    # A corpus split such as train/test (DDI-2013); blank for most data.
    split = models.CharField(max_length=20, blank=True)
    extra = models.JSONField(default=dict, blank=True)
    import_job = models.ForeignKey(ImportJob, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "content_hash"], name="unique_interaction_per_project"
            )
        ]
        indexes = [
            models.Index(fields=["project", "pattern_hash"], name="interaction_pattern_idx"),
            models.Index(fields=["project", "drug_a"], name="interaction_drug_a_idx"),
            models.Index(fields=["project", "drug_b"], name="interaction_drug_b_idx"),
            # The review queue's case-insensitive drug filter (UPPER(drug) = UPPER(%s)): without
            # these, PostgreSQL walks the confidence index for a rare drug (12 s on 1M rows).
            models.Index(Upper("drug_a"), name="interaction_drug_a_upper_idx"),
            models.Index(Upper("drug_b"), name="interaction_drug_b_upper_idx"),
            models.Index(fields=["project", "split"], name="interaction_split_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.drug_a} + {self.drug_b}"


class Label(models.Model):
    """The current human (or seed/imported) label of an interaction.

    Written only through services.labels; `version` implements optimistic locking and every
    change appends a LabelEvent.
    """

    class Source(models.TextChoices):
        SEED = "seed"
        REVIEW = "review"
        IMPORT = "import"
        # A blind audit's answer (issue 14) and a curator's decision between disagreeing
        # reviewers: both are human reviews (HUMAN_SOURCES).
        AUDIT = "audit"
        ADJUDICATION = "adjudication"

    class Status(models.TextChoices):
        LABELED = "labeled"
        UNCLEAR = "unclear"

    interaction = models.OneToOneField(Interaction, on_delete=models.CASCADE, related_name="label")
    label_class = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.LABELED)
    source = models.CharField(max_length=20, choices=Source.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    note = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["source", "updated_at"], name="label_source_time_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="unclear") | ~Q(label_class=""),
                name="labeled_needs_class",
            )
        ]

    def __str__(self) -> str:
        return f"{self.interaction_id}: {self.label_class or self.status}"


# Label sources written by a person looking at the item (final labels, stats and exports count
# them as reviews).
HUMAN_SOURCES = frozenset({Label.Source.REVIEW, Label.Source.AUDIT, Label.Source.ADJUDICATION})


class LabelEvent(models.Model):
    """Append-only history of label changes: who, when, old -> new (and what the model said)."""

    class Action(models.TextChoices):
        CREATE = "create"
        ACCEPT = "accept"
        CHANGE = "change"
        FLAG = "flag"
        UNDO = "undo"
        AUDIT = "audit"
        ADJUDICATE = "adjudicate"
        # A curator sent a flagged item back to the review queue (its note is the comment).
        REOPEN = "reopen"

    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    source = models.CharField(max_length=20, choices=Label.Source.choices)
    old_class = models.CharField(max_length=100, blank=True)
    new_class = models.CharField(max_length=100, blank=True)
    old_status = models.CharField(max_length=20, blank=True)
    new_status = models.CharField(max_length=20, blank=True)
    note = models.TextField(blank=True)
    version = models.PositiveIntegerField()
    # What the model predicted when the reviewer acted: the basis of the online agreement estimate.
    model_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL
    )
    predicted_class = models.CharField(max_length=100, blank=True)
    guideline_revision = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["actor", "created_at"], name="event_actor_time_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.old_class!r}->{self.new_class!r}"


class ReviewSkip(models.Model):
    """A reviewer chose to skip an interaction; the queue hides it from that reviewer."""

    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["interaction", "user"], name="one_skip_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} skipped {self.interaction_id}"


class ReviewTask(models.Model):
    """A blind answer requested from one more reviewer: a second opinion or an audit item.

    Blind: while a reviewer holds the open row (assignee, unanswered), every page and endpoint
    hides the model's answer, rules' classes and earlier answers of the interaction
    (selectors/blind.py). The item's earlier answerers (its LabelEvent actors and the answerers
    of its other rows) never get it; the constraints keep one open row per (interaction, kind)
    and one answer per person per interaction. Written only through services/blind.py.
    """

    class Kind(models.TextChoices):
        SECOND_OPINION = "second_opinion", "second opinion"
        AUDIT = "audit"

    class Reason(models.TextChoices):
        SAMPLE = "sample", "random share of reviewed items"
        LOW_CONFIDENCE = "low_confidence", "model confidence below the project's floor"
        REQUESTED = "requested", "requested by a curator"

    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="review_tasks"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    reason = models.CharField(max_length=20, choices=Reason.choices, default=Reason.SAMPLE)
    # Who holds it: set by the queue's hand-out (with a lease, claim_expires_at) or up front by
    # whoever created it (no expiry). NULL: anyone eligible may be handed it.
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_review_tasks",
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="created_review_tasks",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="answered_review_tasks",
    )
    answered_at = models.DateTimeField(null=True, blank=True)
    answer_class = models.CharField(max_length=100, blank=True)
    answer_status = models.CharField(max_length=20, choices=Label.Status.choices, blank=True)
    note = models.TextField(blank=True)
    # What the answer is compared with, as it stood when the answer came in: the label being
    # checked (second opinion: the first reviewer's) and the serving model's class.
    first_class = models.CharField(max_length=100, blank=True)
    first_status = models.CharField(max_length=20, blank=True)
    first_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    first_source = models.CharField(max_length=20, blank=True)
    predicted_class = models.CharField(max_length=100, blank=True)
    model_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    guideline_revision = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["interaction", "kind"],
                condition=Q(answered_at__isnull=True),
                name="one_open_review_task_per_kind",
            ),
            models.UniqueConstraint(
                fields=["interaction", "answered_by"],
                condition=Q(answered_by__isnull=False),
                name="one_blind_answer_per_person",
            ),
            models.CheckConstraint(
                condition=Q(answered_at__isnull=True) | ~Q(answer_status=""),
                name="answered_task_has_status",
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "answered_at"], name="review_task_open_idx"),
            models.Index(fields=["assignee", "answered_at"], name="review_task_assignee_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.interaction_id}"

    @property
    def is_open(self) -> bool:
        return self.answered_at is None

    @property
    def agrees_with_first(self) -> bool | None:
        """Same class and status as the label it checks (None: not answered or nothing to
        compare with)."""
        if self.answered_at is None or not self.first_status:
            return None
        return (self.answer_status, self.answer_class) == (self.first_status, self.first_class)

    @property
    def agrees_with_model(self) -> bool | None:
        if self.answered_at is None or not self.predicted_class:
            return None
        return self.answer_status == Label.Status.LABELED and (
            self.answer_class == self.predicted_class
        )


class Adjudication(models.Model):
    """An interaction whose reviewers disagree, waiting for (or decided by) a curator.

    The decision is written as the interaction's Label with source "adjudication" through
    services/adjudication.py (optimistic locking on the Label's version).
    """

    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="adjudications"
    )
    review_task = models.ForeignKey(
        ReviewTask, null=True, blank=True, on_delete=models.SET_NULL, related_name="adjudications"
    )
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_class = models.CharField(max_length=100, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["interaction"],
                condition=Q(decided_at__isnull=True),
                name="one_open_adjudication_per_interaction",
            )
        ]

    def __str__(self) -> str:
        return f"adjudication of {self.interaction_id}"

    @property
    def is_open(self) -> bool:
        return self.decided_at is None


class ReviewClaim(models.Model):
    """A short lease on an interaction handed to one reviewer, so no item goes to two at once."""

    interaction = models.OneToOneField(Interaction, on_delete=models.CASCADE, related_name="claim")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.interaction_id} claimed by {self.user_id}"


class ModelVersionQuerySet(models.QuerySet):
    def active(self) -> ModelVersionQuerySet:
        """Active versions: at most one per project (the one_active_version constraint)."""
        return self.filter(is_active=True)

    def active_for(self, project: Project | int) -> ModelVersion | None:
        """The project's (or project id's) active version, or None before the first promotion."""
        return self.active().filter(project=project).first()


class ModelVersion(models.Model):
    """A trained model: artifact folder, parameters, validation metrics, promotion decision."""

    class Status(models.TextChoices):
        TRAINING = "training"
        READY = "ready"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField()
    backbone = models.CharField(max_length=500)
    artifact_path = models.CharField(max_length=1000, blank=True)
    train_config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    data_fingerprint = models.CharField(max_length=64, blank=True)
    n_train_examples = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TRAINING)
    is_active = models.BooleanField(default=False)
    promotion_decision = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["project", "number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="unique_version_number"),
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_active=True), name="one_active_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project} v{self.number}"


class Prediction(models.Model):
    """One model version's calibrated output for one interaction (all of them are kept)."""

    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="predictions"
    )
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="predictions"
    )
    predicted_class = models.CharField(max_length=100)
    confidence = models.FloatField()
    # Top-1 minus top-2 probability: the "smallest margin first" queue order.
    margin = models.FloatField()
    # One probability per class, in the project's class order (a committee's mean).
    probabilities = models.JSONField()
    # 1 - confidence, higher = less sure (confidence is the version's calibrated P(correct),
    # modeling.uncertainty); its own column so exports and API clients need no arithmetic.
    uncertainty = models.FloatField(default=0.0)
    # The signals behind the confidence: seen, novelty, direction, agreement (may be empty).
    signals = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["interaction", "model_version"], name="one_prediction_per_version"
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1),
                name="confidence_is_probability",
            ),
        ]
        indexes = [
            # Keyset pagination "lowest confidence first": (confidence, id) per version.
            models.Index(
                fields=["model_version", "confidence", "interaction"], name="pred_confidence_idx"
            ),
            models.Index(fields=["model_version", "margin", "interaction"], name="pred_margin_idx"),
            models.Index(
                fields=["model_version", "predicted_class", "confidence"], name="pred_class_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.interaction_id}@{self.model_version_id}: {self.predicted_class}"


class Run(models.Model):
    """A long job (training, pseudo-labeling, retrain, import). The UI reads this row."""

    class Kind(models.TextChoices):
        TRAIN = "train"
        PSEUDOLABEL = "pseudolabel"
        RETRAIN = "retrain"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    # Last interaction id whose prediction is committed (sequential runs), or training step.
    cursor = models.BigIntegerField(default=0)
    stage = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    lease_owner = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Single flight for scheduled/"run now" triggers: one run per key.
    # NULL (not "") for runs without a key, so the unique constraint ignores them.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key"], name="unique_run_idempotency_key"),
            models.UniqueConstraint(
                fields=["model_version"],
                condition=Q(kind="pseudolabel", state__in=["queued", "running"]),
                name="one_active_pseudolabel_run_per_version",
            ),
            models.CheckConstraint(
                condition=Q(progress_done__gte=0) & Q(progress_total__gte=0),
                name="progress_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["project", "state"], name="run_state_idx")]

    def __str__(self) -> str:
        return f"{self.kind} run {self.pk} ({self.state})"

    @property
    def percent(self) -> int:
        if not self.progress_total:
            return 0
        return min(100, round(100 * self.progress_done / self.progress_total))

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def started_by(self) -> str:
        """Who started the run: its user, else its parent's (a retrain's pseudo-label step),
        else what did (the scheduler, setup_demo, a manage.py command)."""
        root = self
        while root.created_by_id is None and root.parent_id is not None:
            root = root.parent
        if root.created_by_id is not None:
            return root.created_by.get_username()
        key = root.idempotency_key or ""
        if key.startswith("schedule:"):
            return "the scheduler"
        if key.startswith("demo:"):
            return "setup_demo (the first demo model)"
        return "a manage.py command"


class RunChunk(models.Model):
    """A slice of interaction ids of a fanned-out pseudo-labeling run, processed by one worker."""

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    # Last interaction id committed inside this chunk (same transaction as its rows).
    cursor = models.BigIntegerField(default=0)
    rows_written = models.BigIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="unique_chunk_per_run")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} chunk {self.index} ({self.state})"


class Rule(models.Model):
    """A curator's pattern -> class rule, applied after reviews and seeds, before the model."""

    class Kind(models.TextChoices):
        REGEX = "regex"
        KEYWORD = "keyword"

    class Field(models.TextChoices):
        BLINDED = "blinded", "blinded text"
        RAW = "raw", "raw description"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="rules")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.REGEX)
    field = models.CharField(max_length=20, choices=Field.choices, default=Field.BLINDED)
    pattern = models.TextField()
    label_class = models.CharField(max_length=100)
    priority = models.IntegerField(default=0)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Stored matches (RuleMatch) cover every interaction of the project with id <= this; 0 for a
    # rule never matched yet (saved before matches were stored): see services/rules.py.
    matched_through_id = models.BigIntegerField(default=0)
    # The rule went over its cost budget while being matched: it stores no matches and decides
    # nothing until its pattern is edited (the rules page says so).
    is_too_costly = models.BooleanField(default=False)

    class Meta:
        ordering = ["-priority", "id"]
        indexes = [models.Index(fields=["project", "is_active"], name="rule_active_idx")]

    def __str__(self) -> str:
        return self.name


class RuleMatch(models.Model):
    """One interaction a rule's pattern matches, computed once (when the rule is saved, when
    interactions are imported) so exports and the queue join instead of rescanning regexes."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="matches")
    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="rule_matches"
    )

    class Meta:
        constraints = [
            # Also the index of the per-interaction "winning rule" subquery.
            models.UniqueConstraint(fields=["interaction", "rule"], name="unique_rule_match")
        ]

    def __str__(self) -> str:
        return f"rule {self.rule_id} matches {self.interaction_id}"


class RetrainPolicy(models.Model):
    """When to retrain a project automatically (checked by a periodic beat task)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="retrain_policy")
    enabled = models.BooleanField(default=False)
    # Retrain when at least this many reviews arrived since the active version was trained.
    min_new_reviews = models.PositiveIntegerField(default=50)
    include_pseudo_labels_above = models.FloatField(null=True, blank=True)
    last_triggered_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"retrain policy for {self.project}"


class Audit(models.Model):
    """A blind random sample of the rows whose final label nobody reviewed (see audit_stats).

    Drawn from one source (the model's labels, or the rules'), stratified by predicted class x
    confidence band; `strata` records each stratum's population size, sample size and expected
    error at draw time, so the estimate can be recomputed from the answered items alone.
    """

    class Source(models.TextChoices):
        MODEL = "model"
        RULE = "rule"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="audits")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.MODEL)
    requested_size = models.PositiveIntegerField()
    population = models.PositiveIntegerField()
    model_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="audits"
    )
    strata = models.JSONField(default=dict)
    seed = models.BigIntegerField()
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"audit {self.pk} of {self.project} ({self.source})"


class AuditItem(models.Model):
    """One drawn row: what the model (or rule) said at draw time and the blind answer."""

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="items")
    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, related_name="audit_items"
    )
    stratum = models.CharField(max_length=200)
    inclusion_probability = models.FloatField()
    shown_class = models.CharField(max_length=100)
    confidence = models.FloatField(null=True, blank=True)
    rule_id = models.BigIntegerField(null=True, blank=True)
    # Set when the item's sentence pattern was taken with certainty (audit_stats.plan_stratum):
    # the rows of the stratum with this blinded text, all of which the one answer stands for.
    cluster_rows = models.PositiveIntegerField(null=True, blank=True)
    # The blind review row the item was handed out as; its answer is the audit's answer.
    task = models.ForeignKey(
        "ReviewTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_items"
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["audit", "interaction"], name="one_item_per_audit")
        ]

    def __str__(self) -> str:
        return f"audit {self.audit_id} item {self.interaction_id}"
