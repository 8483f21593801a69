"""The reference ("oracle") of the simulated loop: a blinded sentence pattern -> its class."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from annotations.exceptions import InvalidReferenceFile
from annotations.models import Interaction, Label, Project


@dataclass(frozen=True)
class Reference:
    """Blinded sentence pattern -> reference class; `source` says where it came from."""

    classes_by_pattern: dict[str, str]
    source: str

    def answer(self, interaction: Interaction) -> str | None:
        return self.classes_by_pattern.get(interaction.blinded_text)


def load_reference_csv(*, path: Path, project: Project) -> Reference:
    """Read a `pattern,label` CSV (other columns ignored); classes must be the project's."""
    path = Path(path)
    if not path.is_file():
        raise InvalidReferenceFile(f"reference file {path} does not exist")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"pattern", "label"} - set(reader.fieldnames or [])
        if missing:
            raise InvalidReferenceFile(
                f"{path.name}: needs the columns pattern,label "
                f"(missing: {', '.join(sorted(missing))})"
            )
        mapping = {}
        for line, row in enumerate(reader, start=2):
            if row["label"] not in project.label_classes:
                raise InvalidReferenceFile(
                    f"{path.name} line {line}: {row['label']!r} is not a class of project "
                    f"{project.name!r} (classes: {', '.join(project.label_classes)})"
                )
            mapping[row["pattern"]] = row["label"]
    return Reference(mapping, source=str(path))


def reference_from_current_labels(*, project: Project) -> Reference:
    """The project's own labels (seed, import and review; status labeled) as the oracle.

    Per blinded pattern, the majority class of its labeled interactions (ties: the class that
    comes first in project.label_classes). Patterns with no labeled interaction stay unknown:
    the simulated reviewer skips their items. Read-only.
    """
    votes: dict[str, Counter] = {}
    rows = Label.objects.filter(
        interaction__project=project, status=Label.Status.LABELED
    ).values_list("interaction__blinded_text", "label_class")
    for text, label_class in rows.iterator(chunk_size=5000):
        votes.setdefault(text, Counter())[label_class] += 1
    order = {name: i for i, name in enumerate(project.label_classes)}
    mapping = {
        text: min(counts, key=lambda c: (-counts[c], order.get(c, len(order))))
        for text, counts in votes.items()
    }
    return Reference(mapping, source=f"current labels of {project.name!r}")
