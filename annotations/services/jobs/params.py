"""The run parameters: their names, types and limits, and the check of a params dict."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from annotations.exceptions import InvalidRunParams
from annotations.services.ml import TrainConfig

# name -> (type, check, message). Unknown keys are refused: a typo must not silently do nothing.
_PARAM_RULES: dict[str, tuple[type | tuple[type, ...], Any, str]] = {
    # A name from settings.DDI_BACKBONES only: a free string let any user probe the server's
    # file system through the "not found" errors.
    "backbone": (str, lambda v: v in allowed_backbones(), "a backbone from DDI_BACKBONES"),
    "epochs": (int, lambda v: 1 <= v <= 1000, "an integer from 1 to 1000"),
    "learning_rate": ((int, float), lambda v: 0 < v < 1, "a number between 0 and 1"),
    "lora_r": (int, lambda v: 1 <= v <= 256, "an integer from 1 to 256"),
    # Free-text corpora (DDI-2013) need more than the DrugBank default of 64 tokens.
    "max_length": (int, lambda v: 8 <= v <= 512, "an integer from 8 to 512"),
    "include_pseudo_labels_above": (
        (int, float, type(None)),
        lambda v: v is None or 0 <= v <= 1,
        "a confidence between 0 and 1 (or empty)",
    ),
    "force_promote": (bool, lambda v: True, "true or false"),
}


def allowed_backbones() -> list[str]:
    """The backbone names runs may ask for (settings.DDI_BACKBONES, the default always in)."""
    return list(dict.fromkeys([settings.DDI_BACKBONE, *settings.DDI_BACKBONES]))


def validate_params(params: dict | None) -> dict:
    """The params dict checked against the known keys; raises InvalidRunParams."""
    params = dict(params or {})
    problems = []
    for key, value in params.items():
        rule = _PARAM_RULES.get(key)
        if rule is None:
            problems.append(f"unknown parameter {key!r} (known: {', '.join(sorted(_PARAM_RULES))})")
            continue
        kind, check, expected = rule
        # bool is an int in Python; epochs=True is a mistake, not 1 epoch.
        is_bool_for_number = isinstance(value, bool) and kind is not bool
        if is_bool_for_number or not isinstance(value, kind) or not check(value):
            if key == "backbone":
                # Neutral: says nothing about the server beyond the configured names.
                problems.append(f"unknown backbone; use one of: {', '.join(allowed_backbones())}")
                continue
            problems.append(f"{key} must be {expected}, got {value!r}")
    if problems:
        raise InvalidRunParams("; ".join(problems))
    return params


# The run parameters a person can set in the form, the API and `manage.py train`; their
# defaults are TrainConfig's, read here so no page or command spells the numbers again.
TUNABLE_PARAMS = ("epochs", "learning_rate", "lora_r", "max_length")


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
