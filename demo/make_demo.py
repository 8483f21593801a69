"""Regenerate the demo data set shipped with the app (demo/interactions.csv, demo/seed_labels.csv).

Written by the team: DrugBank-style sentence templates with hand-picked, pharmacologically plausible
drug pairs and the class each template gets under the labeling guideline. Deterministic. Run:
    python demo/make_demo.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (template, class under the guideline, plausible pairs); {a} acts on {b}.
TEMPLATES = [
    (
        "{a} may increase the anticoagulant activities of {b}.",
        "Synergistic",
        [
            ("Aspirin", "Warfarin"),
            ("Clopidogrel", "Warfarin"),
            ("Ibuprofen", "Warfarin"),
            ("Naproxen", "Apixaban"),
            ("Fluconazole", "Warfarin"),
            ("Celecoxib", "Rivaroxaban"),
        ],
    ),
    (
        "{a} may decrease the antihypertensive activities of {b}.",
        "Antagonistic",
        [
            ("Ibuprofen", "Lisinopril"),
            ("Naproxen", "Losartan"),
            ("Prednisone", "Amlodipine"),
            ("Pseudoephedrine", "Lisinopril"),
            ("Indomethacin", "Enalapril"),
        ],
    ),
    (
        "The metabolism of {b} can be decreased when combined with {a}.",
        "Synergistic",
        [
            ("Ketoconazole", "Simvastatin"),
            ("Clarithromycin", "Atorvastatin"),
            ("Fluconazole", "Tacrolimus"),
            ("Verapamil", "Simvastatin"),
            ("Diltiazem", "Cyclosporine"),
            ("Ritonavir", "Midazolam"),
            ("Cimetidine", "Theophylline"),
        ],
    ),
    (
        "The metabolism of {b} can be increased when combined with {a}.",
        "Antagonistic",
        [
            ("Rifampicin", "Cyclosporine"),
            ("Carbamazepine", "Apixaban"),
            ("Phenytoin", "Quetiapine"),
            ("Rifampicin", "Tacrolimus"),
            ("St. John's Wort", "Ethinylestradiol"),
            ("Phenobarbital", "Warfarin"),
        ],
    ),
    (
        "The serum concentration of {b} can be increased when it is combined with {a}.",
        "Synergistic",
        [
            ("Amiodarone", "Digoxin"),
            ("Verapamil", "Digoxin"),
            ("Clarithromycin", "Colchicine"),
            ("Ketoconazole", "Quetiapine"),
            ("Cyclosporine", "Rosuvastatin"),
        ],
    ),
    (
        "The serum concentration of {b} can be decreased when it is combined with {a}.",
        "Antagonistic",
        [
            ("Rifampicin", "Dabigatran etexilate"),
            ("Carbamazepine", "Quetiapine"),
            ("Phenytoin", "Valproic acid"),
            ("Efavirenz", "Atorvastatin"),
        ],
    ),
    (
        "The risk or severity of adverse effects can be increased when {a} is combined with {b}.",
        "Synergistic",
        [
            ("Tramadol", "Sertraline"),
            ("Methotrexate", "Trimethoprim"),
            ("Spironolactone", "Lisinopril"),
            ("Ciprofloxacin", "Tizanidine"),
            ("Linezolid", "Fluoxetine"),
            ("Sildenafil", "Nitroglycerin"),
        ],
    ),
    (
        "{a} may decrease the excretion rate of {b} which could result in a higher serum level.",
        "Synergistic",
        [
            ("Probenecid", "Methotrexate"),
            ("Ibuprofen", "Lithium"),
            ("Naproxen", "Methotrexate"),
            ("Hydrochlorothiazide", "Lithium"),
        ],
    ),
    (
        "The therapeutic efficacy of {b} can be decreased when used in combination with {a}.",
        "Antagonistic",
        [
            ("Omeprazole", "Clopidogrel"),
            ("Rifampicin", "Ethinylestradiol"),
            ("Haloperidol", "Levodopa"),
            ("Propranolol", "Salbutamol"),
            ("Metoclopramide", "Pramipexole"),
        ],
    ),
    (
        "{a} may increase the hypotensive activities of {b}.",
        "Synergistic",
        [
            ("Furosemide", "Lisinopril"),
            ("Amlodipine", "Metoprolol"),
            ("Tamsulosin", "Sildenafil"),
            ("Clonidine", "Hydralazine"),
        ],
    ),
    (
        "{a} can cause a decrease in the absorption of {b} resulting in a reduced serum concentration "
        "and potentially a decrease in efficacy.",
        "Antagonistic",
        [
            ("Calcium carbonate", "Ciprofloxacin"),
            ("Magnesium hydroxide", "Doxycycline"),
            ("Aluminium hydroxide", "Levofloxacin"),
            ("Calcium carbonate", "Levothyroxine"),
            ("Sucralfate", "Ciprofloxacin"),
        ],
    ),
    (
        "The bioavailability of {b} can be increased when combined with {a}.",
        "Synergistic",
        [
            ("Ritonavir", "Saquinavir"),
            ("Ketoconazole", "Tacrolimus"),
            ("Itraconazole", "Buspirone"),
        ],
    ),
    (
        "{a} may increase the QTc-prolonging activities of {b}.",
        "Synergistic",
        [
            ("Ondansetron", "Citalopram"),
            ("Haloperidol", "Methadone"),
            ("Azithromycin", "Amiodarone"),
            ("Levofloxacin", "Sotalol"),
        ],
    ),
    (
        "{a} may increase the hypoglycemic activities of {b}.",
        "Synergistic",
        [
            ("Fluconazole", "Glipizide"),
            ("Ciprofloxacin", "Glyburide"),
            ("Enalapril", "Insulin glargine"),
        ],
    ),
    (
        "{a} may decrease the sedative activities of {b}.",
        "Antagonistic",
        [("Caffeine", "Zolpidem"), ("Modafinil", "Lorazepam"), ("Methylphenidate", "Diazepam")],
    ),
    (
        "{a} may increase the excretion rate of {b} which could result in a lower serum level and "
        "potentially a reduction in efficacy.",
        "Antagonistic",
        [
            ("Sodium bicarbonate", "Lithium"),
            ("Acetazolamide", "Aspirin"),
            ("Theophylline", "Lithium"),
        ],
    ),
    (
        "The risk or severity of bleeding can be increased when {a} is combined with {b}.",
        "Synergistic",
        [("Ibrutinib", "Warfarin"), ("Fluoxetine", "Apixaban"), ("Alteplase", "Heparin")],
    ),
    (
        "The serum concentration of the active metabolites of {b} can be reduced when {b} is used in "
        "combination with {a} resulting in a loss in efficacy.",
        "Antagonistic",
        [
            ("Omeprazole", "Clopidogrel"),
            ("Rifampicin", "Mycophenolate mofetil"),
            ("Esomeprazole", "Clopidogrel"),
        ],
    ),
]
# The seed set covers only some patterns (12 of 18), like real seed sets.
SEED_TEMPLATES = {0, 1, 2, 4, 5, 6, 8, 10, 12, 13, 14, 16}


def main() -> None:
    rows, seeds = [], []
    for index, (template, label, pairs) in enumerate(TEMPLATES):
        for a, b in pairs:
            row = [a, b, template.format(a=a, b=b)]
            rows.append(row)
            if index in SEED_TEMPLATES and a != pairs[-1][0]:  # hold one pair back per pattern
                seeds.append([*row, label])
    random.Random(20261125).shuffle(rows)
    header = ["Drug 1", "Drug 2", "Interaction Description"]
    with (HERE / "interactions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    with (HERE / "seed_labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*header, "label"])
        writer.writerows(seeds)
    print(f"{len(rows)} interactions, {len(seeds)} seed labels")


if __name__ == "__main__":
    main()
