"""One round trip with the real bundled all-MiniLM-L6-v2 backbone."""

from __future__ import annotations

import numpy as np
import pytest

from modeling.config import TrainConfig
from modeling.inference import Predictor
from modeling.training import train
from tests.modeling.conftest import make_examples


@pytest.mark.slow
def test_train_save_load_predict_with_minilm(tmp_path):
    examples = make_examples(["Synergistic", "Antagonistic"], per_class=6)
    config = TrainConfig(epochs=1, batch_size=6)
    result = train(
        examples, classes=["Synergistic", "Antagonistic"], config=config, out_dir=tmp_path
    )
    assert result.metrics["n_train"] == 12 and result.metrics["evaluated_on"] == "out-of-fold"
    probs = Predictor.load(tmp_path).predict_batch([e.text for e in examples])
    assert probs.shape == (12, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
