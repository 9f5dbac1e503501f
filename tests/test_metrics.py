"""Hand-computed checks of the pure metric functions (VQA/EvalAI/GQA accuracy, CIDEr, VisDial ranks, AUC).

Reference values are worked out by hand in the comments; where an independent implementation is installed (LAVIS's
copy of the official VQA normalizer, pycocoevalcap's ``Cider``, sklearn's ``roc_auc_score``) we also compare with it.
No network access: the Java PTB tokenizer runs locally and is skipped when ``java`` is absent.
"""

import importlib.util
import json
import logging
import math
import pathlib
import random
import shutil

import numpy as np
import pytest

from lavis_vislinginstruct.metrics import (
    accuracy,
    caption_scores,
    cider,
    evalai_normalize,
    fallback_ptb_tokenize,
    gqa_exact_match,
    mean_gqa_accuracy,
    mean_textvqa_accuracy,
    mean_vqa_accuracy,
    ndcg,
    normalize_vqa_answer,
    process_digit_article,
    process_punctuation,
    ranks_from_scores,
    roc_auc,
    textvqa_accuracy,
    true_false_answer,
    visdial_metrics,
    vqa_accuracy,
)

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="PTB tokenizer needs java")


# ----------------------------------------------------------------------------------------------------------------
# VQA normalization
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("yes.", "yes"),  # period not before a digit is stripped
        ("3.5", "3.5"),  # decimal point kept
        ("1,000", "1000"),  # digit-comma-digit: every mark is deleted, not spaced
        ("1, 2", "1 2"),  # ", " touches a space: deleted
        ("black/white", "black white"),  # mark inside a word: replaced by a space
        ("dog - cat", "dog  cat"),  # " -" touches a space: deleted (double space stays until word split)
        ("what?!", "what  "),
        ("a.b.c", "abc"),
        ("it's", "it's"),  # apostrophes are not punctuation here
        ("x" + "." * 40, "x" + "." * 8),  # official quirk: re.UNICODE (32) passed as re.sub's count
    ],
)
def test_process_punctuation(raw, expected):
    assert process_punctuation(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Two dogs", "2 dogs"),
        ("none", "0"),
        ("ten", "10"),
        ("a dog", "dog"),
        ("The  End", "end"),
        ("an apple", "apple"),
        ("dont", "don't"),
        ("whats that", "what's that"),
        ("Im", "im"),  # capitalized official key can never match after lower-casing
        ("somebody'd", "somebodyd"),  # official table's reversed entry
    ],
)
def test_process_digit_article(raw, expected):
    assert process_digit_article(raw) == expected


def test_normalize_vqa_answer_chains_whitespace_punctuation_and_words():
    assert normalize_vqa_answer("  The Two\tdogs.\n") == "2 dogs"


def _load_lavis_reference_vqa_eval():
    """LAVIS's copy of the official VQAEval, loaded from its file so ``import lavis`` (slow) is not executed."""
    spec = importlib.util.find_spec("lavis")
    if spec is None or spec.origin is None:
        return None
    path = pathlib.Path(spec.origin).parent / "common" / "vqa_tools" / "vqa_eval.py"
    if not path.exists():
        return None
    module_spec = importlib.util.spec_from_file_location("_reference_vqa_eval", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.VQAEval()


def test_normalizers_match_official_reference_on_random_strings():
    reference = _load_lavis_reference_vqa_eval()
    if reference is None:
        pytest.skip("LAVIS vqa_eval.py not installed")
    rng = random.Random(0)
    pieces = ["a", "the", "An", "two", "Ten", "none", "dont", "whats", "yes", "1", "0", ",", ".", "?", "!", "-",
              "/", "(", ")", "'", "\"", ";", ":", "@", "_", " ", " ", " ", "3.5", "1,000", "dog", "Im"]  # fmt: skip
    for _ in range(500):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert process_punctuation(text) == reference.processPunctuation(text), text
        assert process_digit_article(text) == reference.processDigitArticle(text), text


# ----------------------------------------------------------------------------------------------------------------
# VQA accuracy (official leave-one-out)
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_match, expected",
    [
        # k matching answers out of 10: the k subsets that drop a match see k-1 matches, the 10-k others see k.
        (0, 0.0),
        (1, (1 * 0 + 9 * (1 / 3)) / 10),  # 0.3
        (2, (2 * (1 / 3) + 8 * (2 / 3)) / 10),  # 0.6
        (3, (3 * (2 / 3) + 7 * 1) / 10),  # 0.9 (not 1.0: 3 of the subsets see only 2 matches)
        (4, (4 * 1 + 6 * 1) / 10),  # 1.0
        (10, 1.0),
    ],
)
def test_vqa_accuracy_leave_one_out_counts(n_match, expected):
    gts = ["yes"] * n_match + ["no"] * (10 - n_match)
    assert vqa_accuracy("yes", gts) == pytest.approx(expected)


def test_vqa_accuracy_hand_values():
    assert vqa_accuracy("yes", ["yes"] * 2 + ["no"] * 8) == pytest.approx(0.6)
    assert vqa_accuracy("yes", ["yes"] * 3 + ["no"] * 7) == pytest.approx(0.9)


def test_vqa_accuracy_normalizes_the_prediction_always_the_answers_only_by_punctuation():
    # The case: "two" -> "2" matches ten identical "2" (no normalization of identical answers needed).
    assert vqa_accuracy("two", ["2"] * 10) == 1.0
    assert vqa_accuracy("Yes.", ["yes"] * 10) == 1.0
    assert vqa_accuracy("2", ["two"] * 10) == 0.0  # answers are never digit-mapped
    # Mixed answers get processPunctuation only: "two" stays "two", "2" matches 1 -> 0.3; "Two." -> "2" as well.
    assert vqa_accuracy("Two.", ["2", "two"] + ["4"] * 8) == pytest.approx(0.3)
    # "the dog" keeps its article: 3 "dog" match -> 0.9, not 1.0.
    assert vqa_accuracy("a dog", ["dog", "dog", "dog", "the dog"] + ["cat"] * 6) == pytest.approx(0.9)
    # Identical answers are compared raw, mixed ones after punctuation: "yes." matches only in the mixed list.
    assert vqa_accuracy("yes", ["yes."] * 10) == 0.0
    assert vqa_accuracy("yes", ["yes."] * 9 + ["no"]) == 1.0
    # The prediction's whitespace is cleaned, the answers' is not (the official evaluator strips only resAns).
    assert vqa_accuracy(" yes\n", ["yes"] * 10) == 1.0
    assert vqa_accuracy("yes", [" yes"] * 10) == 0.0


class _VQALike:
    """The two attributes ``VQAEval.evaluate`` reads of the official ``VQA`` API: ``qa`` and ``getQuesIds``."""

    def __init__(self, qa):
        self.qa = qa

    def getQuesIds(self):  # noqa: N802  (the official API's name)
        return list(self.qa)


def _generated_vqa_cases(n: int, seed: int = 0):
    """(prediction, answers) pairs: case, punctuation, articles, number words, digit commas, whitespace; identical,
    nearly identical and mixed lists of 10 (or fewer) answers."""
    rng = random.Random(seed)
    bases = ["yes", "no", "2", "two", "Two", "ten", "10", "0", "none", "dog", "a dog", "the dog", "Dog", "1,000",
             "1000", "1, 000", "3.5", "black/white", "black white", "t-shirt", "t shirt", "dont", "don't", "whats up",
             "red car", "the Red car", "unanswerable", "i'm", "im", "left side", "(left)", "yes!", "no?",
             "ok"]  # fmt: skip
    decorations = [lambda t: t, str.upper, str.title, lambda t: t + ".", lambda t: t + "!", lambda t: " " + t,
                   lambda t: t + " ", lambda t: t + "\n", lambda t: "the " + t, lambda t: "a " + t,
                   lambda t: t.replace(" ", "-"), lambda t: t + ",", lambda t: '"' + t + '"']  # fmt: skip
    cases = []
    for _ in range(n):
        pool = rng.sample(bases, rng.randint(1, 3))
        kind = rng.random()
        count = 10 if rng.random() < 0.9 else rng.randint(1, 9)
        if kind < 0.3:  # all identical
            answers = [rng.choice(pool)] * count
        elif kind < 0.5:  # identical but one
            answers = [pool[0]] * (count - 1) + [rng.choice(decorations)(rng.choice(pool))]
            rng.shuffle(answers)
        else:  # mixed, some decorated
            answers = [rng.choice(decorations)(rng.choice(pool)) if rng.random() < 0.3 else rng.choice(pool)
                       for _ in range(count)]  # fmt: skip
        source = rng.choice(pool + [rng.choice(bases)])
        prediction = rng.choice(decorations)(source) if rng.random() < 0.6 else source
        cases.append((prediction, answers))
    return cases


def test_vqa_accuracy_equals_the_official_evaluator_on_generated_cases(capsys):
    spec = importlib.util.find_spec("lavis")
    if spec is None:
        pytest.skip("LAVIS not installed")
    module_spec = importlib.util.spec_from_file_location(
        "_official_vqa_eval", pathlib.Path(spec.origin).parent / "common" / "vqa_tools" / "vqa_eval.py"
    )
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    cases = _generated_vqa_cases(3000)
    # VQA v2 answer records carry an answer_id, so the evaluator's leave-one-out removes one entry at a time
    gts = {
        qid: {"question_type": "t", "answer_type": "a",
              "answers": [{"answer": a, "answer_id": k + 1, "answer_confidence": "yes"} for k, a in enumerate(answers)]}
        for qid, (_, answers) in enumerate(cases)
    }  # fmt: skip
    res = {qid: {"question_id": qid, "answer": prediction} for qid, (prediction, _) in enumerate(cases)}
    official = module.VQAEval(_VQALike(gts), _VQALike(res), n=8)
    official.evaluate()
    capsys.readouterr()  # the evaluator prints its progress
    ours = [vqa_accuracy(prediction, answers) for prediction, answers in cases]
    assert len({round(v, 4) for v in ours}) > 5  # the cases cover many score levels, not only 0 and 1
    assert 0.1 < sum(v > 0 for v in ours) / len(ours) < 0.9
    for qid, (prediction, answers) in enumerate(cases):
        assert official.evalQA[qid] == pytest.approx(round(100 * ours[qid], 8), abs=1e-9), (prediction, answers)
    assert official.accuracy["overall"] == pytest.approx(round(mean_vqa_accuracy(*zip(*cases)), 8), abs=1e-9)


def test_vqa_accuracy_identical_answers_are_enumerated_not_deduplicated():
    # vqaEval.py's dict comparison would drop all 10 identical VizWiz answer dicts and score 0.
    assert vqa_accuracy("unanswerable", ["unanswerable"] * 10) == 1.0


def test_vqa_accuracy_fewer_than_ten_answers():
    # i=0,1 ("cat"): others hold one "cat" -> 1/3; i=2 ("dog"): others hold two "cat" -> 2/3; mean = 4/9.
    assert vqa_accuracy("cat", ["cat", "cat", "dog"]) == pytest.approx(4 / 9)
    assert vqa_accuracy("cat", ["cat"]) == 0.0  # no other answers to agree with


def test_vqa_accuracy_rejects_bad_answers():
    with pytest.raises(ValueError, match="empty"):
        vqa_accuracy("yes", [])
    with pytest.raises(TypeError):
        vqa_accuracy("yes", "yes")


def test_mean_vqa_accuracy_percent():
    preds = ["yes", "2"]
    gts = [["yes"] + ["no"] * 9, ["two", "2", "2", "2"] + ["3"] * 6]  # 0.3, and 0.9 ("two" is not a match)
    assert mean_vqa_accuracy(preds, gts) == pytest.approx(60.0)
    with pytest.raises(ValueError, match="2 predictions but 1"):
        mean_vqa_accuracy(preds, gts[:1])
    with pytest.raises(ValueError):
        mean_vqa_accuracy([], [])


# ----------------------------------------------------------------------------------------------------------------
# EvalAI / m4c (TextVQA, VizWiz)
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("The dog's bone.", "dog 's bone"),  # possessive split off, article dropped, period stripped
        ("What's up?", "what 's up"),
        ("1,000", "1000"),
        ("Two,", "2"),
        ("two,three", "twothree"),  # commas are deleted before words are split (VQA rule gives "two three")
        ("Coca-Cola", "coca cola"),
        ("Unanswerable", "unanswerable"),
        ("  STOP\tsign ", "stop sign"),
    ],
)
def test_evalai_normalize(raw, expected):
    assert evalai_normalize(raw) == expected


def test_evalai_and_vqa_rules_differ_on_commas_and_possessives():
    assert normalize_vqa_answer("two,three") == "2 3"
    assert normalize_vqa_answer("dog's") == "dog's"
    assert evalai_normalize("dog's") == "dog 's"


def test_textvqa_accuracy_normalizes_everything():
    # Unlike the official VQA rule, identical answers are still normalized, and so is the prediction.
    assert textvqa_accuracy("Yes.", ["yes"] * 10) == 1.0
    # "Coca-Cola" x2 and "coca cola" all normalize to "coca cola": 3 matches -> 0.9.
    gts = ["Coca-Cola", "Coca-Cola", "coca cola"] + ["pepsi"] * 7
    assert textvqa_accuracy("coca cola", gts) == pytest.approx(0.9)
    assert textvqa_accuracy("sprite", gts) == 0.0


def test_textvqa_accuracy_vizwiz_unanswerable_is_an_ordinary_answer():
    gts = ["unanswerable"] * 5 + ["blue"] * 5
    assert textvqa_accuracy("Unanswerable.", gts) == 1.0
    assert textvqa_accuracy("unanswerable", ["unanswerable"] * 2 + ["blue"] * 8) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        textvqa_accuracy("blue", [])


def test_mean_textvqa_accuracy_percent():
    # 1.0 and 0.3
    assert mean_textvqa_accuracy(["Blue", "red"], [["blue"] * 10, ["red"] + ["x"] * 9]) == pytest.approx(65.0)


# ----------------------------------------------------------------------------------------------------------------
# GQA
# ----------------------------------------------------------------------------------------------------------------


def test_gqa_exact_match():
    assert gqa_exact_match("Yes.", "yes")
    assert gqa_exact_match("the table", "table")
    assert gqa_exact_match("two", "2")
    assert not gqa_exact_match("tables", "table")
    assert not gqa_exact_match("left side", "left")
    # LAVIS normalizes the prediction only: an answer the normalizer changes is never matched ...
    assert not gqa_exact_match("t-shirt", "t-shirt")
    # ... unless the answer is normalized too (reported beside LAVIS's number)
    assert gqa_exact_match("T-shirt", "t-shirt", normalize_answer=True)


def test_gqa_exact_match_equals_lavis_gqa_task(tmp_path, monkeypatch):
    from lavis.common.registry import registry
    from lavis.tasks.vqa import GQATask

    rng = random.Random(1)
    answers = ["yes", "no", "left", "right", "table", "t-shirt", "white", "2", "man", "tan", "black and white"]
    decorations = [lambda t: t, str.title, str.upper, lambda t: t + ".", lambda t: "the " + t, lambda t: " " + t,
                   lambda t: t + "\n", lambda t: t.replace("-", " "), lambda t: t + "!",
                   lambda t: "a " + t]  # fmt: skip
    records = []
    for _ in range(2000):
        gt = rng.choice(answers)
        pred = rng.choice(decorations)(gt if rng.random() < 0.7 else rng.choice(answers + ["two", "none"]))
        records.append({"question_id": len(records), "pred_ans": pred, "gt_ans": gt})
    result_file = tmp_path / "val_vqa_result.json"
    result_file.write_text(json.dumps(records))
    monkeypatch.setitem(registry.mapping["paths"], "output_dir", str(tmp_path))
    task = GQATask(num_beams=1, max_len=10, min_len=1, evaluate=True, num_ans_candidates=128,
                   inference_method="generate")  # fmt: skip
    lavis = task._report_metrics(str(result_file), "val")["acc"]
    ours = mean_gqa_accuracy([r["pred_ans"] for r in records], [r["gt_ans"] for r in records])
    assert 20 < ours < 95 and ours == pytest.approx(lavis, abs=1e-9)


def test_mean_gqa_accuracy_percent():
    assert mean_gqa_accuracy(["yes", "no", "Left."], ["yes", "yes", "left"]) == pytest.approx(200 / 3)
    with pytest.raises(ValueError):
        mean_gqa_accuracy(["yes"], [])


# ----------------------------------------------------------------------------------------------------------------
# CIDEr
# ----------------------------------------------------------------------------------------------------------------

# Two images with disjoint vocabularies and 4-word captions: every n-gram (n = 1..4) has document frequency 1,
# so every weight is log(2 images) - log(1) = log 2 and cosine similarities reduce to counting.
_REFS = {"img1": ["red car parked outside"], "img2": ["small dog sleeping inside"]}
_PERFECT = {"img1": "red car parked outside", "img2": "small dog sleeping inside"}
_PARTIAL = {"img1": "red car", "img2": "small dog sleeping inside"}
_UNRELATED = {"img1": "blue sky above hills", "img2": "small dog sleeping inside"}
# Hand value for "red car" vs "red car parked outside": n=1 cos = 2/(sqrt2*2) = 1/sqrt2, n=2 cos = 1/sqrt3, n=3,4
# the candidate has no n-grams -> 0; length (bigram count) delta = 1 - 3 -> penalty exp(-4 / (2 * 6^2)); x10.
_PARTIAL_IMG1 = 10 * (1 / math.sqrt(2) + 1 / math.sqrt(3)) / 4 * math.exp(-4 / 72)


@pytest.fixture
def no_java(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)


def test_cider_fallback_hand_values(no_java, caplog):
    with caplog.at_level(logging.WARNING, logger=caption_scores.__name__):
        perfect = cider(_PERFECT, _REFS, return_per_image=True)
    assert perfect["tokenizer"] == "fallback" and perfect["official"] is False
    assert "NOT official" in caplog.text
    assert perfect["CIDEr_raw"] == pytest.approx(10.0)  # every n-gram order has cosine 1, no length penalty
    assert perfect["CIDEr"] == pytest.approx(1000.0)
    assert perfect["num_images"] == 2

    partial = cider(_PARTIAL, _REFS, return_per_image=True)
    assert partial["per_image"]["img1"] == pytest.approx(100 * _PARTIAL_IMG1)
    assert partial["per_image"]["img2"] == pytest.approx(1000.0)
    assert partial["CIDEr_raw"] == pytest.approx((_PARTIAL_IMG1 + 10.0) / 2)

    unrelated = cider(_UNRELATED, _REFS, return_per_image=True)
    assert unrelated["per_image"]["img1"] == 0.0
    assert perfect["CIDEr"] > partial["CIDEr"] > unrelated["CIDEr"]


def test_cider_averages_over_references(no_java):
    # Two references for img1: the identical one gives 10, the disjoint one 0, and CIDEr divides by 2 refs.
    # The extra reference adds img1-only n-grams, so img1's own n-grams keep df 1 and weight log 2.
    refs = {"img1": ["red car parked outside", "tiny boat floating away"], "img2": _REFS["img2"]}
    result = cider(_PERFECT, refs, return_per_image=True)
    assert result["per_image"]["img1"] == pytest.approx(100 * 10.0 / 2)


def test_cider_fallback_matches_pycocoevalcap_on_pretokenized_input(no_java):
    from pycocoevalcap.cider.cider import Cider

    preds = {1: "A man's hat (red).", 2: "Two dogs don't play.", 3: "a cat on a mat"}
    refs = {1: ["a man 's hat is red", "red hat"], 2: ["two dogs do n't play", "dogs play"], 3: ["a cat sits"]}
    expected, _ = Cider().compute_score(refs, {k: [fallback_ptb_tokenize(v)] for k, v in preds.items()})
    assert cider(preds, refs)["CIDEr_raw"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("A man's hat (red).", "a man 's hat -lrb- red -rrb-"),  # official keeps lower-cased bracket tokens
        ("Don't stop--now...", "do n't stop now"),
        ("I cannot, gonna wait!!!", "i can not gon na wait !!!"),
        ("The U.S. flag e.g. here", "the u.s. flag e.g. here"),
        ('He said "hi", then left; ok!', "he said hi then left ok"),
        ("3.5 inches, 1,000 t-shirts", "3.5 inches 1,000 t-shirts"),
    ],
)
def test_fallback_ptb_tokenize(raw, expected):
    assert fallback_ptb_tokenize(raw) == expected


@needs_java
def test_cider_official_ptb_matches_hand_value_and_pycocoevalcap():
    from pycocoevalcap.cider.cider import Cider

    # Case and punctuation must be removed by the Java tokenizer; the empty caption must not shift line pairing.
    preds = {"img1": "Red car.", "img2": "Small dog, sleeping inside!", "img3": ""}
    refs = {**_REFS, "img3": ["green tree near river"]}
    result = cider(preds, refs, return_per_image=True)
    assert result["tokenizer"] == "ptb" and result["official"] is True
    pretokenized = {"img1": ["red car"], "img2": ["small dog sleeping inside"], "img3": [""]}
    expected, _ = Cider().compute_score(refs, pretokenized)
    assert result["CIDEr_raw"] == pytest.approx(expected)
    assert result["per_image"]["img2"] == pytest.approx(1000.0)
    assert result["per_image"]["img3"] == 0.0


@needs_java
def test_fallback_tokenizer_agrees_with_ptb_on_common_captions():
    captions = {
        0: ["A man's hat (red).", "Two dogs don't play.", "A woman in a t-shirt, holding 3.5 apples!"],
        1: ['The "big" cat sits; the dog runs.', "People are walking--slowly--down the street..."],
        2: ["Tom & Jerry cost $5 at 50% #1", "I can't, won't; cannot: gonna!!! what??", "{curly} [square] x/y a+b"],
        3: [
            "The U.S. flag, e.g. here.",
            "It's 1,000 o'clock: dogs' bones",
            "Two people (a man and a woman) sit.",
            "Café naïve résumé.",
        ],
    }
    official = caption_scores._ptb_tokenize(captions)
    assert official == {k: [fallback_ptb_tokenize(c) for c in caps] for k, caps in captions.items()}


def test_cider_falls_back_when_ptb_tokenizer_cannot_run(monkeypatch, caplog):
    def read_only_package_dir(captions):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: "/usr/bin/java")
    monkeypatch.setattr(caption_scores, "_ptb_tokenize", read_only_package_dir)
    with caplog.at_level(logging.WARNING, logger=caption_scores.__name__):
        result = cider(_PERFECT, _REFS)
    assert result["tokenizer"] == "fallback" and result["official"] is False
    assert "read-only" in caplog.text
    assert result["CIDEr_raw"] == pytest.approx(10.0)


@needs_java
def test_ptb_tokenize_keeps_blank_captions_in_place():
    # pycocoevalcap pairs output lines with ids by position; blank captions must not shift that pairing.
    captions = {0: ["", "A dog."], 1: ["Cat!", "", "Two\nlines\u2028here"]}
    assert caption_scores._ptb_tokenize(captions) == {0: ["", "a dog"], 1: ["cat", "", "two lines here"]}


def test_cider_validation():
    with pytest.raises(ValueError, match="identical ids"):
        cider({"a": "x", "b": "y"}, {"a": ["x"], "c": ["y"]})
    with pytest.raises(ValueError, match="non-empty"):
        cider({"a": "x", "b": "y"}, {"a": ["x"], "b": []})
    with pytest.raises(ValueError, match="non-empty"):
        cider({"a": "x"}, {"a": "x"})
    with pytest.raises(ValueError, match="no predictions"):
        cider({}, {})


# ----------------------------------------------------------------------------------------------------------------
# Visual Dialog ranking
# ----------------------------------------------------------------------------------------------------------------


def test_ranks_from_scores():
    assert ranks_from_scores([0.1, 0.7, 0.3, 0.9], gt_index=2) == 3  # 0.9 and 0.7 rank above 0.3
    assert ranks_from_scores([0.1, 0.7, 0.3, 0.9], gt_index=3) == 1
    # LM losses: lower is better; option 1 has the lowest loss.
    assert ranks_from_scores([2.0, 0.5, 1.0, 3.0], gt_index=1, higher_is_better=False) == 1
    assert ranks_from_scores([2.0, 0.5, 1.0, 3.0], gt_index=3, higher_is_better=False) == 4


def test_ranks_from_scores_ties():
    scores = [0.5, 0.5, 0.5, 0.1]
    assert ranks_from_scores(scores, gt_index=1) == 3  # pessimistic: both other 0.5s rank first
    assert ranks_from_scores(scores, gt_index=1, tie_break="index") == 2  # only option 0 precedes it
    assert ranks_from_scores([1.0] * 100, gt_index=0) == 100  # a constant scorer gets no lucky rank
    assert ranks_from_scores([1.0] * 100, gt_index=0, tie_break="index") == 1


def test_ranks_from_scores_errors():
    with pytest.raises(ValueError, match="out of range"):
        ranks_from_scores([0.1, 0.2], gt_index=2)
    with pytest.raises(ValueError, match="NaN"):
        ranks_from_scores([0.1, float("nan")], gt_index=0)
    with pytest.raises(ValueError, match="tie_break"):
        ranks_from_scores([0.1, 0.2], gt_index=0, tie_break="random")


def test_visdial_metrics_worked_example():
    # ranks 1, 2, 5, 10, 50: R@1 = 1/5, R@5 = 3/5, R@10 = 4/5, mean = 68/5, MRR = (1 + .5 + .2 + .1 + .02)/5.
    metrics = visdial_metrics([1, 2, 5, 10, 50])
    assert metrics == pytest.approx({"r@1": 20.0, "r@5": 60.0, "r@10": 80.0, "mean_rank": 13.6, "mrr": 36.4})


def test_visdial_metrics_from_scores():
    rounds = [([0.9, 0.1, 0.2], 0), ([0.3, 0.8, 0.1], 2), ([0.2, 0.6, 0.4], 2)]  # gt ranks 1, 3, 2
    ranks = [ranks_from_scores(scores, gt) for scores, gt in rounds]
    assert ranks == [1, 3, 2]
    assert visdial_metrics(ranks)["mrr"] == pytest.approx(100 * (1 + 1 / 3 + 1 / 2) / 3)
    with pytest.raises(ValueError):
        visdial_metrics([])
    with pytest.raises(ValueError, match="1-based"):
        visdial_metrics([0, 1])


def test_ndcg_hand_value():
    # k = 2 relevant options. Predicted order: 1 (rel 0), 2 (rel .5) -> DCG = 0 + .5/log2(3);
    # ideal order 0 (rel 1), 2 (rel .5) -> 1 + .5/log2(3).
    scores, relevance = [0.1, 0.9, 0.5, 0.3], [1.0, 0.0, 0.5, 0.0]
    expected = (0.5 / math.log2(3)) / (1 + 0.5 / math.log2(3))
    assert ndcg(scores, relevance) == pytest.approx(expected)
    assert ndcg([-s for s in scores], relevance, higher_is_better=False) == pytest.approx(expected)
    assert ndcg([0.9, 0.1, 0.5, 0.3], relevance) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="relevant"):
        ndcg(scores, [0.0] * 4)


# ----------------------------------------------------------------------------------------------------------------
# Classification: accuracy, ROC-AUC
# ----------------------------------------------------------------------------------------------------------------


def test_accuracy():
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 75.0
    assert accuracy(["yes", "no"], ["yes", "yes"]) == 50.0
    with pytest.raises(ValueError):
        accuracy([1], [1, 2])
    with pytest.raises(ValueError):
        accuracy([], [])


@pytest.mark.parametrize(
    "text, expected",
    [("true", 1), ("True.", 1), (" YES!", 1), ("yes,", 1), ("False", 0), ("no.", 0), ('"false"', 0),
     ("it is true", None), ("true or false", None), ("truee", None), ("", None), ("maybe", None), ("1", None)],
)  # fmt: skip
def test_true_false_answer(text, expected):
    assert true_false_answer(text) == expected


def test_roc_auc_hand_values():
    # Positive/negative pairs: (.35 > .1), (.35 < .4), (.8 > .1), (.8 > .4) -> 3 of 4.
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # Ties count 1/2: (.5 = .5) -> .5, (.5 > .2), (.9 > .5), (.9 > .2) -> 3.5 / 4.
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)
    assert roc_auc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert roc_auc([1, 1, 0, 0], [1, 2, 3, 4]) == 0.0
    assert roc_auc([True, False, True], [0.3, 0.3, 0.3]) == 0.5


def test_roc_auc_matches_sklearn_on_seeded_random_data():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    for n in (5, 37, 500, 2000):
        labels = rng.integers(0, 2, size=n)
        labels[:2] = [0, 1]  # both classes present
        scores = rng.normal(size=n) + 0.7 * labels
        assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        tied = np.round(scores, 1)  # many ties
        assert roc_auc(labels, tied) == pytest.approx(roc_auc_score(labels, tied), abs=1e-12)


def test_roc_auc_errors():
    with pytest.raises(ValueError, match="only one class"):
        roc_auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="binary"):
        roc_auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="aligned"):
        roc_auc([0, 1], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [0.1, float("nan")])
