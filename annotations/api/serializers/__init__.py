"""Input and output serializers, kept separate: outputs describe what we return, inputs
validate exactly what a client may send (and nothing else).

core.py: projects, labels, interactions, predictions, rules, runs, queue and export queries;
imports.py: curator uploads; handout.py: the queue hand-out and blind review tasks.
"""

from annotations.api.serializers.core import (
    ExportQueryIn,
    InteractionOut,
    LabelCreateIn,
    LabelOut,
    LabelUpdateIn,
    PredictionOut,
    PreviewMatchOut,
    ProjectOut,
    QueueItemOut,
    QueueQueryIn,
    RuleIn,
    RuleOut,
    RulePreviewIn,
    RulePreviewOut,
    RuleUpdateIn,
    RunOut,
    RunParamsIn,
    RunStartIn,
)
from annotations.api.serializers.handout import (
    BlindAnswerIn,
    BlindTaskRef,
    QueueNextIn,
    QueueNextOut,
    ReviewTaskOut,
)
from annotations.api.serializers.imports import (
    ImportJobOut,
    ImportUploadIn,
)

__all__ = [
    "BlindAnswerIn",
    "BlindTaskRef",
    "ExportQueryIn",
    "ImportJobOut",
    "ImportUploadIn",
    "InteractionOut",
    "LabelCreateIn",
    "LabelOut",
    "LabelUpdateIn",
    "PredictionOut",
    "PreviewMatchOut",
    "ProjectOut",
    "QueueItemOut",
    "QueueNextIn",
    "QueueNextOut",
    "QueueQueryIn",
    "ReviewTaskOut",
    "RuleIn",
    "RuleOut",
    "RulePreviewIn",
    "RulePreviewOut",
    "RuleUpdateIn",
    "RunOut",
    "RunParamsIn",
    "RunStartIn",
]
