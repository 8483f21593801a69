"""Temperature scaling (Guo et al., 2017): one scalar T dividing the logits, fit on validation."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

_MIN_T, _MAX_T = 0.05, 20.0


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 100) -> float:
    """T minimising validation NLL of softmax(logits / T), by LBFGS on log T; 1.0 without data."""
    if len(labels) == 0:
        return 1.0
    logits_t = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    labels_t = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    # Optimising log T keeps T positive without constraints.
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits_t / log_t.exp(), labels_t)
        loss.backward()
        return loss

    optimizer.step(closure)
    temperature = float(log_t.detach().exp().item())
    if not np.isfinite(temperature):
        return 1.0
    # A perfectly separated validation set pushes T toward 0; bound it to stay usable.
    return float(min(max(temperature, _MIN_T), _MAX_T))


def softmax_with_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities as float32, rows summing to 1."""
    scaled = torch.as_tensor(np.asarray(logits), dtype=torch.float32) / temperature
    return torch.softmax(scaled, dim=-1).numpy()
