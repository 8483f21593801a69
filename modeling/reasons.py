"""Why a prediction is unsure, in a pharmacist's words, from its stored signals
(modeling.uncertainty, modeling.mirror)."""

from __future__ import annotations


def reasons(
    seen_value: float,
    novelty_value: float,
    direction_value: float,
    agreement_value: float,
    *,
    mirror: str | None = None,
    committee: str | None = None,
    mixed: bool = False,
) -> list[str]:
    """Why an item is unsure, in a pharmacist's words (empty when nothing stands out).

    Disagreement is reported only for texts nobody labelled: on a labelled text the one member
    that held it out of training disagrees by design of the cross-fitting. ``mirror``: the class
    a labelled mirror sentence implies, reported when the committee (``committee``: its class)
    reads the text the other way.
    """
    out = []
    if seen_value >= 1.0:
        return out
    if mirror is not None and committee is not None and mirror != committee:
        out.append(
            f"its mirror sentence (increase/decrease swapped) is labeled, which makes this one "
            f"{mirror}; the models alone say {committee}"
        )
    if mixed:
        out.append(
            "its direction words point both ways (e.g. decrease ... higher) and no labeled "
            "sentence does: the class depends on which one is about the drug's effect"
        )
    if novelty_value >= 0.15:
        out.append(f"unlike any labeled sentence ({novelty_value:.0%} of its wording is new)")
    if direction_value >= 0.5:
        out.append(
            "the model gives the same class when increase/decrease (higher/lower) are swapped: "
            "it may not be reading the direction"
        )
    if agreement_value < 1.0:
        out.append(f"the models disagree (only {agreement_value:.0%} vote for this class)")
    return out
