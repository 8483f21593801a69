"""Entity blinding: edge cases and properties."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeling.blinding import (
    PLACEHOLDER_A,
    PLACEHOLDER_B,
    PLACEHOLDER_OTHER,
    blind,
    blind_spans,
    mentions,
)


def test_replaces_both_names_case_insensitively():
    text = "ASPIRIN may increase the anticoagulant activities of warfarin."
    assert blind(text, "Aspirin", "Warfarin") == (
        "DRUG_A may increase the anticoagulant activities of DRUG_B."
    )


def test_longest_name_wins_when_one_name_contains_the_other():
    text = "Estradiol valerate may decrease the effect of Estradiol."
    assert blind(text, "Estradiol", "Estradiol valerate") == (
        "DRUG_B may decrease the effect of DRUG_A."
    )
    assert blind(text, "Estradiol valerate", "Estradiol") == (
        "DRUG_A may decrease the effect of DRUG_B."
    )


def test_regex_metacharacters_and_parentheses_are_literal():
    text = "Ca2+ (as salt) reduces (S)-Warfarin.* levels; Ca2 is unrelated."
    assert blind(text, "Ca2+ (as salt)", "(S)-Warfarin.*") == (
        "DRUG_A reduces DRUG_B levels; Ca2 is unrelated."
    )


def test_name_occurring_twice_is_replaced_each_time():
    text = "The serum concentration of the active metabolites of Codeine can be increased when Codeine is used with Quinidine."
    assert blind(text, "Quinidine", "Codeine").count(PLACEHOLDER_B) == 2


def test_absent_name_leaves_text_unchanged():
    text = "Nothing about those drugs here."
    assert blind(text, "Aspirin", "Warfarin") == text
    assert blind("Aspirin alone.", "Aspirin", "Warfarin") == "DRUG_A alone."


def test_word_boundaries_protect_longer_words():
    assert blind("Ironic iron intake", "Iron", "Zinc") == "Ironic DRUG_A intake"


def test_same_drug_on_both_sides_does_not_crash():
    assert blind("Aspirin and aspirin.", "Aspirin", "ASPIRIN") == "DRUG_A and DRUG_A."


def test_empty_names_are_ignored():
    assert blind("Aspirin.", "", "  ") == "Aspirin."


def test_flexible_whitespace_inside_names():
    assert blind("Magnesium  hydroxide reduces X.", "Magnesium hydroxide", "X") == (
        "DRUG_A reduces DRUG_B."
    )


def test_mentions_returns_spans_for_highlighting():
    text = "Aspirin with warfarin and aspirin."
    spans_a, spans_b = mentions(text, "Aspirin", "Warfarin")
    assert spans_a == [(0, 7), (26, 33)]
    assert spans_b == [(13, 21)]
    assert [text[s:e] for s, e in spans_a] == ["Aspirin", "aspirin"]


def test_blind_spans_uses_exclusive_ends_and_other_placeholder():
    text = "Plenaxis lowers testosterone unlike MTX."
    assert blind_spans(text, [(0, 8)], [(16, 28)], other_spans=[(36, 39)]) == (
        f"{PLACEHOLDER_A} lowers {PLACEHOLDER_B} unlike {PLACEHOLDER_OTHER}."
    )


def test_blind_spans_resolves_overlaps_and_rejects_bad_spans():
    text = "abc def"
    assert blind_spans(text, [(0, 7)], [(4, 7)]) == PLACEHOLDER_A
    with pytest.raises(ValueError, match="outside"):
        blind_spans(text, [(0, 99)], [])


# Letters whose upper case is one letter (str.upper of "ŉ" is two characters, which is about
# Unicode, not blinding), digits, regex metacharacters, parentheses and spaces.
names = st.text(
    alphabet=string.ascii_letters + string.digits + "éüÉÜ()+-.*[]? ",
    min_size=1,
    max_size=20,
).filter(lambda s: s.strip() and s == s.strip() and "  " not in s)
filler = st.sampled_from([" may increase the effect of ", " and ", ": ", " with ", " - "])


@given(drug_a=names, drug_b=names, glue=filler)
def test_property_constructed_sentence_blinds_to_placeholders(drug_a, drug_b, glue):
    a_key, b_key = drug_a.casefold(), drug_b.casefold()
    # Only when neither name occurs inside the other's text at a word boundary is the answer
    # unambiguous; the other cases are covered by the example tests above.
    rest = glue.casefold() + "."  # the sentence's own words and its final full stop
    if a_key in b_key or b_key in a_key or a_key in rest or b_key in rest:
        return
    text = drug_a + glue + drug_b.upper() + "."
    assert blind(text, drug_a, drug_b) == PLACEHOLDER_A + glue + PLACEHOLDER_B + "."


@given(drug_a=names, drug_b=names, text=st.text(max_size=80))
def test_property_never_crashes_and_is_idempotent(drug_a, drug_b, text):
    once = blind(text, drug_a, drug_b)
    assert blind(once, drug_a, drug_b) == once or re.search(
        re.escape(drug_a) + "|" + re.escape(drug_b), once, flags=re.IGNORECASE
    )


@given(drug_a=names, drug_b=names, text=st.text(max_size=80))
def test_property_spans_point_at_the_names(drug_a, drug_b, text):
    spans_a, spans_b = mentions(text, drug_a, drug_b)
    for start, end in spans_a:
        assert text[start:end].split() == [w for w in text[start:end].split()]
        assert " ".join(text[start:end].split()).casefold() == drug_a.casefold()
    for start, end in spans_b:
        assert " ".join(text[start:end].split()).casefold() in {
            drug_b.casefold(),
            drug_a.casefold(),
        }
