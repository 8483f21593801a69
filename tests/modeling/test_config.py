"""TrainConfig: saved configs of older versions still load."""

from __future__ import annotations

import dataclasses

import pytest

from modeling.config import TrainConfig


def test_a_saved_config_with_the_removed_balance_repeated_texts_option_still_loads():
    # Measured worse and removed (README "Loop"); model folders that recorded it must load.
    saved = {**TrainConfig().to_dict(), "balance_repeated_texts": False}
    assert TrainConfig.from_dict(saved) == TrainConfig()
    assert "balance_repeated_texts" not in {f.name for f in dataclasses.fields(TrainConfig)}
    with pytest.raises(ValueError, match="unknown TrainConfig fields: balance_typo"):
        TrainConfig.from_dict({"balance_typo": True})
