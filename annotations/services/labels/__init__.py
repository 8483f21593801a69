"""Label writes: the one entry point for every human label change (review, accept, flag, undo).

Optimistic locking: every Label carries a `version`; a write names the version it was based on and
lands only through `UPDATE ... WHERE version = expected` (or an INSERT guarded by the one-label-
per-interaction unique constraint). A stale write raises EditConflict and changes nothing. Every
change appends a LabelEvent (who, when, old -> new, what the active model predicted).

Claims: a reviewer working the queue holds a short lease (ReviewClaim) on the item shown to them,
so two reviewers pulling "next" are not handed the same item at the same time.

Layout: reviews.py (the writes), undo.py (taking back one's last change), claims.py (the leases).
"""

from annotations.services.labels.claims import (
    CLAIM_TTL,
    MAX_CLAIMS_PER_USER,
    claim_interaction,
    claim_next_interaction,
    claimed_by_other,
    skip_interaction,
)
from annotations.services.labels.reviews import (
    accept_prediction,
    active_prediction,
    record_review,
    return_to_review,
    validate_label_choice,
)
from annotations.services.labels.undo import UNDO_HISTORY_LIMIT, UndoneAction, undo_last_action

__all__ = [
    "CLAIM_TTL",
    "MAX_CLAIMS_PER_USER",
    "UNDO_HISTORY_LIMIT",
    "UndoneAction",
    "accept_prediction",
    "active_prediction",
    "claim_interaction",
    "claim_next_interaction",
    "claimed_by_other",
    "record_review",
    "return_to_review",
    "skip_interaction",
    "undo_last_action",
    "validate_label_choice",
]
