"""The review loop, simulated: pick items the way a strategy would, answer them from a reference,
retrain, pseudo-label, and score the final labels after every round.

Shared by `bench/loop.py` (an empty database, the DrugBank sample, three strategies compared) and
`manage.py loop` (a read-only preview against the live database). Every step goes through the
app's own code paths: the review queue selector picks the items, `services.labels.record_review`
writes the answers (as a user with the Reviewer role), `services.jobs.starting.start_retrain_run`
+ `services.jobs.inline.run_job_inline` train and pseudo-label (the promotion rule applies: a
version that is not promoted leaves the previous one active, so the next round's queue and the
final labels still come from the previous version), and `selectors.final_labels.iter_final_labels`
resolves the final labels that are scored.

The reference ("oracle") maps a blinded sentence pattern to a class: DrugBank sentences repeat a
few dozen patterns and the model only sees the blinded text, so one class per pattern is enough.

Model versions go to an explicit artifacts folder (``artifacts_dir``; the preview uses a
temporary one): nothing swaps a setting at run time.

Layout: reference.py (the oracle), reviewer.py (picking and answering), scoring.py (the final
labels against the reference), loop.py (rounds, simulate, preview_loop).
"""

from annotations.simulation.loop import (
    RoundResult,
    Training,
    preview_loop,
    retrain,
    run_round,
    simulate,
)
from annotations.simulation.reference import (
    Reference,
    load_reference_csv,
    reference_from_current_labels,
)
from annotations.simulation.reviewer import (
    SIMULATED_REVIEWER,
    STRATEGIES,
    answer_items,
    get_simulated_reviewer,
    pick_items,
)
from annotations.simulation.scoring import Score, score_final_labels

__all__ = [
    "SIMULATED_REVIEWER",
    "STRATEGIES",
    "Reference",
    "RoundResult",
    "Score",
    "Training",
    "answer_items",
    "get_simulated_reviewer",
    "load_reference_csv",
    "pick_items",
    "preview_loop",
    "reference_from_current_labels",
    "retrain",
    "run_round",
    "score_final_labels",
    "simulate",
]
