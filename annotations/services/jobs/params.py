"""The run parameters, defined once (RUN_PARAMS): names, types, limits, labels and help; the
check of a params dict, the TrainConfig they make."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from annotations.exceptions import InvalidRunParams
from annotations.services.ml import TrainConfig


@dataclass(frozen=True)
class RunParam:
    """One run parameter, spelled once: its check here, and what the Runs page form
    (annotations/forms.py), the API serializer (api/serializers/core.py) and the
    `manage.py train|retrain` options (management/commands/_jobs.py) build from it."""

    name: str
    kind: type  # int, float, bool or str (a float also takes an int)
    check: Callable[[Any], bool]
    expected: str  # the error message: "<name> must be <expected>"
    bounds: tuple[float, float] | None = None  # min/max of the form's and the API's field
    nullable: bool = False  # None (an empty field, a JSON null) is a value
    max_chars: int | None = None  # the API's length cap of a str parameter
    label: str = ""  # the form's label; "" keeps the parameter off the form
    form_help: str = ""
    in_api: bool = True
    cli_help: str = ""  # "" keeps it off the command line; "{default}": TrainConfig's default
    cli_metavar: str | None = None
    tunable: bool = False  # a TrainConfig field: empty means TrainConfig's default

    @property
    def types(self) -> tuple[type, ...]:
        accepted = (int, float) if self.kind is float else (self.kind,)
        return accepted + ((type(None),) if self.nullable else ())

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


# Unknown keys are refused: a typo must not silently do nothing.
RUN_PARAMS: tuple[RunParam, ...] = (
    # A name from settings.DDI_BACKBONES only: a free string let any user probe the server's
    # file system through the "not found" errors.
    RunParam(
        "backbone",
        str,
        lambda v: v in allowed_backbones(),
        "a backbone from DDI_BACKBONES",
        max_chars=500,
        cli_help="default: settings.DDI_BACKBONE",
    ),
    RunParam(
        "epochs",
        int,
        lambda v: 1 <= v <= 1000,
        "an integer from 1 to 1000",
        bounds=(1, 1000),
        label="Epochs",
        cli_help="default {default}",
        tunable=True,
    ),
    RunParam(
        "learning_rate",
        float,
        lambda v: 0 < v < 1,
        "a number between 0 and 1",
        bounds=(1e-9, 0.999999),
        label="Learning rate",
        cli_help="default {default:g}",
        tunable=True,
    ),
    RunParam(
        "lora_r",
        int,
        lambda v: 1 <= v <= 256,
        "an integer from 1 to 256",
        bounds=(1, 256),
        label="LoRA rank",
        cli_help="default {default}",
        tunable=True,
    ),
    # Free-text corpora (DDI-2013) need more than the DrugBank default of 64 tokens.
    RunParam(
        "max_length",
        int,
        lambda v: 8 <= v <= 512,
        "an integer from 8 to 512",
        bounds=(8, 512),
        in_api=False,
        cli_help="tokens per text (default {default}; free text: 128)",
        tunable=True,
    ),
    RunParam(
        "include_pseudo_labels_above",
        float,
        lambda v: v is None or 0 <= v <= 1,
        "a confidence between 0 and 1 (or empty)",
        bounds=(0, 1),
        nullable=True,
        label="Also train on pseudo-labels above confidence",
        form_help="Leave empty to train on human labels only.",
        cli_help="also train on the active version's predictions at or above CONFIDENCE",
        cli_metavar="CONFIDENCE",
    ),
    RunParam(
        "force_promote",
        bool,
        lambda v: True,
        "true or false",
        label="Promote even if the metrics are worse",
        cli_help="make the new version active even if its validation macro-F1 is worse",
    ),
)
PARAMS_BY_NAME: dict[str, RunParam] = {param.name: param for param in RUN_PARAMS}


def allowed_backbones() -> list[str]:
    """The backbone names runs may ask for (settings.DDI_BACKBONES, the default always in)."""
    return list(dict.fromkeys([settings.DDI_BACKBONE, *settings.DDI_BACKBONES]))


def validate_params(params: dict | None) -> dict:
    """The params dict checked against the known keys; raises InvalidRunParams."""
    params = dict(params or {})
    problems = []
    for key, value in params.items():
        rule = PARAMS_BY_NAME.get(key)
        if rule is None:
            problems.append(
                f"unknown parameter {key!r} (known: {', '.join(sorted(PARAMS_BY_NAME))})"
            )
            continue
        # bool is an int in Python; epochs=True is a mistake, not 1 epoch.
        is_bool_for_number = isinstance(value, bool) and rule.kind is not bool
        if is_bool_for_number or not isinstance(value, rule.types) or not rule.check(value):
            if key == "backbone":
                # Neutral: says nothing about the server beyond the configured names.
                problems.append(f"unknown backbone; use one of: {', '.join(allowed_backbones())}")
                continue
            problems.append(f"{key} must be {rule.expected}, got {value!r}")
    if problems:
        raise InvalidRunParams("; ".join(problems))
    return params


# The run parameters whose defaults are TrainConfig's, read here so no page or command spells
# the numbers again.
TUNABLE_PARAMS = tuple(param.name for param in RUN_PARAMS if param.tunable)


def get_train_defaults() -> dict:
    """TrainConfig's defaults of the tunable run parameters (what an empty field means)."""
    defaults = TrainConfig()
    return {key: getattr(defaults, key) for key in TUNABLE_PARAMS}


def build_train_config(params: dict):
    """TrainConfig from the defaults, settings.DDI_BACKBONE and the run's params."""
    values = {
        "backbone": params.get("backbone") or settings.DDI_BACKBONE,
        "checkpoint_every_steps": settings.DDI_TRAIN_CHECKPOINT_EVERY,
    }
    for key in TUNABLE_PARAMS:
        if params.get(key) is not None:
            values[key] = params[key]
    return TrainConfig(**values)
