"""DDI-2013 relation extraction: entity markers, the negative filter, and filtered-pair scoring."""

from __future__ import annotations

import pytest

from modeling.backbones import load_backbone
from modeling.ddi2013 import (
    MARK_A,
    MARK_B,
    POSITIVE_CLASSES,
    DdiPair,
    Entity,
    apply_filter,
    filter_report,
    filter_rule,
    predictions_with_filter,
    render,
)
from modeling.ddi2013_model import RecipeConfig, bucketed_batches, crop_window, encode_pairs
from modeling.ddi2013_scoring import micro_prf
from modeling.ddi2013_training import build, dev_split, predict_pairs, train_recipe


def pair(sentence, first, second, label="negative", types=("drug", "drug"), others=(), pid="p"):
    """A pair whose two mentions are the first occurrences of `first` and `second`."""
    a = sentence.index(first)
    b = sentence.index(second, a + len(first)) if second != first else sentence.rindex(second)
    spans = tuple((sentence.index(o), sentence.index(o) + len(o)) for o in others)
    return DdiPair(
        split="train",
        pair_id=pid,
        sentence_id="d1.s1",
        sentence=sentence,
        e1=Entity(first, types[0], ((a, a + len(first)),)),
        e2=Entity(second, types[1], ((b, b + len(second)),)),
        label=label,
        others=spans,
    )


@pytest.fixture(scope="module")
def tokenizer():
    return load_backbone("all-minilm-l6-v2")[0]


def test_entity_markers_are_single_known_tokens_of_the_bundled_vocabulary(tokenizer):
    vocab = tokenizer.get_vocab()
    for mark in (*MARK_A, *MARK_B):
        ids = tokenizer(mark, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, mark
        assert ids[0] == vocab[mark] != tokenizer.unk_token_id


@pytest.mark.parametrize("style", ["markers", "blind-markers", "blind"])
def test_entity_positions_point_at_the_marker_or_placeholder_after_tokenisation(tokenizer, style):
    p = pair("Aspirin increases the effect of warfarin in most patients.", "Aspirin", "warfarin")
    (encoded,) = encode_pairs(tokenizer, [p], style, 128)
    tokens = tokenizer.convert_ids_to_tokens(encoded.ids)
    if style == "blind":
        assert tokens[encoded.e1 : encoded.e1 + 3] == ["drug", "_", "a"]
        assert tokens[encoded.e2 : encoded.e2 + 3] == ["drug", "_", "b"]
    else:
        assert (tokens[encoded.e1], tokens[encoded.e2]) == ("@", "#")
        assert tokens.count("@") == 2 and tokens.count("#") == 2
    assert tokenizer.unk_token not in tokens


def test_rendering_styles_keep_names_or_blind_them_and_the_other_drugs():
    p = pair(
        "Aspirin and ibuprofen raise warfarin levels.",
        "Aspirin",
        "warfarin",
        types=("drug", "group"),
        others=["ibuprofen"],
    )
    assert render(p, "blind").text == "DRUG_A and DRUG_OTHER raise DRUG_B levels."
    assert render(p, "markers").text == (
        "@ * drug * Aspirin @ and ibuprofen raise # ^ group ^ warfarin # levels."
    )
    blinded = render(p, "blind-markers")
    assert blinded.text == ("@ * drug * DRUG_A @ and DRUG_OTHER raise # ^ group ^ DRUG_B # levels.")
    assert blinded.text[blinded.e1_char] == "@" and blinded.text[blinded.e2_char] == "#"
    with pytest.raises(ValueError, match="unknown style"):
        render(p, "bold")


def test_a_long_sentence_is_cropped_around_both_entities(tokenizer):
    filler = " ".join(["the"] * 200)
    p = pair(f"{filler} Aspirin raises warfarin. {filler}", "Aspirin", "warfarin")
    (encoded,) = encode_pairs(tokenizer, [p], "markers", 64)
    tokens = tokenizer.convert_ids_to_tokens(encoded.ids)
    assert len(encoded.ids) == 64
    assert (tokens[encoded.e1], tokens[encoded.e2]) == ("@", "#")
    assert crop_window(10, 2, 4, 20) == 0
    assert crop_window(300, 200, 210, 62) <= 200 and crop_window(300, 200, 210, 62) + 62 > 210


@pytest.mark.parametrize(
    ("sentence", "first", "second", "types", "others", "rule"),
    [
        ("Warfarin levels rise; warfarin is cleared slowly.", "Warfarin", "warfarin",
         ("drug", "drug"), (), "same-drug"),
        ("Acetylsalicylic acid (ASA) is an NSAID.", "Acetylsalicylic acid", "ASA",
         ("drug", "drug"), (), "synonym"),
        ("NSAIDs such as ibuprofen reduce the effect.", "NSAIDs", "ibuprofen",
         ("group", "drug"), (), "special-case"),
        ("Avoid aspirin, ibuprofen, and naproxen with it.", "aspirin", "naproxen",
         ("drug", "drug"), ("ibuprofen",), "coordination"),
        ("Aspirin increases the effect of warfarin.", "Aspirin", "warfarin",
         ("drug", "drug"), (), None),
        # "(e.g., ...)" after a drug that is no group: not a special case of it, kept.
        ("Drugs may induce the metabolism of bupropion (e.g., carbamazepine).", "bupropion",
         "carbamazepine", ("drug", "drug"), (), None),
    ],
)  # fmt: skip
def test_filter_rules_on_hand_made_pairs(sentence, first, second, types, others, rule):
    assert filter_rule(pair(sentence, first, second, types=types, others=others)) == rule


def test_the_filter_counts_every_positive_pair_it_removes_and_applies_to_any_split():
    positive_list = pair(
        "Aspirin, ibuprofen, and warfarin bleed.", "Aspirin", "warfarin", "effect",
        others=["ibuprofen"], pid="pos",
    )  # fmt: skip
    negative_same = pair("Warfarin or warfarin.", "Warfarin", "warfarin", pid="neg")
    kept = pair("Aspirin increases the effect of warfarin.", "Aspirin", "warfarin", "effect")
    test_pair = DdiPair(**{**negative_same.__dict__, "split": "test", "pair_id": "t"})
    report = filter_report([positive_list, negative_same, kept, test_pair])
    assert report["train"]["pairs"] == 3 and report["train"]["kept"] == 1
    assert report["train"]["removed"]["coordination"] == 1
    assert report["train"]["removed"]["same-drug"] == 1
    assert report["train"]["positives"] == {"coordination:effect": 1}
    assert report["train"]["positives_removed"] == 1
    assert report["test"]["removed"]["same-drug"] == 1
    kept_pairs, removed = apply_filter([positive_list, negative_same, kept])
    assert [p.pair_id for p in kept_pairs] == ["p"]
    assert [p.pair_id for p in removed] == ["pos", "neg"]
    # Without rules nothing is removed.
    assert apply_filter([positive_list], rules=())[1] == []


def test_a_filtered_test_pair_counts_as_predicted_negative_in_the_shared_task_score():
    pairs = [
        pair("A raises B.", "A", "B", "effect", pid="1"),
        pair("A (B) is it.", "A", "B", "mechanism", pid="2"),  # a filtered positive: a miss
        pair("B or B.", "B", "B", "negative", pid="3"),  # a filtered negative: counts nowhere
        pair("A lowers B.", "A", "B", "negative", pid="4"),
    ]
    model = {"1": "effect", "4": "advise"}
    guess = predictions_with_filter(pairs, model, removed_ids={"2", "3"})
    assert guess == ["effect", "negative", "negative", "advise"]
    scores = micro_prf([p.label for p in pairs], guess, positive_classes=POSITIVE_CLASSES)
    # TP 1 (effect), FP 1 (advise for a negative), FN 1 (the filtered mechanism pair).
    assert (scores["micro"]["tp"], scores["micro"]["fp"], scores["micro"]["fn"]) == (1, 1, 1)
    assert scores["micro"]["f1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no prediction"):
        predictions_with_filter(pairs, {"1": "effect"}, removed_ids={"2", "3"})


def test_recipe_config_names_every_invalid_field():
    with pytest.raises(ValueError, match=r"invalid RecipeConfig: pooling='cls', epochs=0"):
        RecipeConfig(pooling="cls", epochs=0)


def test_bucketed_batches_cover_every_example_once_with_similar_lengths_and_are_seeded():
    lengths = [(i * 37) % 120 + 8 for i in range(2000)]
    batches = bucketed_batches(lengths, 16, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(2000))
    assert batches == bucketed_batches(lengths, 16, seed=3) != bucketed_batches(lengths, 16, 4)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.1 * sum(lengths)  # random batches of 16 pad to 1.8x here


def test_the_dev_split_takes_whole_documents():
    pairs = [
        DdiPair(**{**pair("A raises B.", "A", "B").__dict__, "sentence_id": f"d{i % 40}.s{i}"})
        for i in range(400)
    ]
    doc = lambda p: p.sentence_id.split(".")[0]  # noqa: E731
    train, dev = dev_split(pairs, 0.1, seed=1, doc_of=doc)
    assert len(train) + len(dev) == 400 and 40 <= len(dev) <= 50
    assert not {doc(p) for p in train} & {doc(p) for p in dev}


def _sentences(n):
    verbs = ["increases", "decreases", "should not be taken with", "is unrelated to"]
    labels = ["mechanism", "effect", "advise", "negative"]
    return [
        DdiPair(
            **{
                **pair(
                    f"Aspirin {verbs[i % 4]} warfarin here {i}.", "Aspirin", "warfarin"
                ).__dict__,
                "label": labels[i % 4],
                "pair_id": str(i),
            }
        )
        for i in range(n)
    ]


def test_the_split_encoder_computes_what_the_whole_encoder_computes(tokenizer):
    import torch

    config = RecipeConfig(backbone="tiny-random-bert", train_layers=1, bf16=False)
    tok, model = build(config)
    model.eval()
    encoded = encode_pairs(tok, _sentences(3), config.style, 64)
    ids = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(e.ids) for e in encoded], True, 0)
    mask = (ids != 0).long()
    whole = model.encoder.peft(input_ids=ids, attention_mask=mask).last_hidden_state
    split = model.encoder.top(model.encoder.bottom(ids, mask).clone(), mask)
    real = mask.bool()
    assert torch.allclose(whole[real], split[real], atol=1e-5)


def test_the_recipe_trains_keeps_the_best_dev_epoch_and_scores_probabilities():
    config = RecipeConfig(backbone="tiny-random-bert", train_layers=1, epochs=2, bf16=False)
    pairs = _sentences(48)
    result = train_recipe(pairs[:32], pairs[32:], config, log=lambda _: None, device="cpu")
    assert [h["epoch"] for h in result.history] == [1, 2]
    best = max(result.history, key=lambda h: h["dev_micro_f1"])
    assert result.best_epoch == best["epoch"]
    assert result.timings["train_loop"]["examples"] == 64
    probs = predict_pairs(result, pairs[32:], config)
    assert probs.shape == (16, 5)
    assert abs(float(probs.sum(axis=1).mean()) - 1.0) < 1e-5


def test_bf16_is_used_only_where_the_hardware_runs_it_natively():
    from modeling.ddi2013_model import resolve_precision
    from modeling.devices import native_bf16

    # Emulated bf16 (a CPU without AVX512-BF16) is many times slower than fp32: not used there.
    assert resolve_precision(RecipeConfig(bf16=True), "cpu").bf16 is native_bf16("cpu")
    assert resolve_precision(RecipeConfig(bf16=False), "cpu").bf16 is False
