"""The demo world's wordings: user-style questions, the content reader, AIO comparison data from model scores."""

import json
import os
import random

import pytest

from lavis_vislinginstruct.aio.config import AIOCfg
from lavis_vislinginstruct.aio.prompts import comparison_prompt
from lavis_vislinginstruct.world import comparison
from lavis_vislinginstruct.world import instructions as ins
from lavis_vislinginstruct.world.content import content_kept, read_content
from lavis_vislinginstruct.world.scenes import sample_scene, scene_split
from lavis_vislinginstruct.world.tasks import PHRASINGS, make_choice, make_question, make_statement
from lavis_vislinginstruct.world.user_style import user_question, user_reference, user_statement
from lavis_vislinginstruct.world.writer import (
    generate_world,
    read_comparison_candidates,
    write_comparison_training,
)

CFG = AIOCfg()


def _items(n: int, seed: int = 0):
    rng = random.Random(seed)
    for _ in range(n):
        scene = sample_scene(rng, "train", min_objects=2)
        for family in ins.available_families(scene):
            if family != "flickr30k":
                yield ins.benchmark_item(scene, family, rng), rng


def test_user_style_keeps_content_and_leaves_the_common_phrasings():
    common = {text for item, _ in _items(1) for text in item.phrasings}
    n = 0
    for item, rng in _items(300):
        user = item.user_instruction(rng)
        assert user != item.instruction and not any(item.wrap(p) == user for p in item.phrasings)
        assert content_kept(item.instruction, user) and content_kept(item.canonical, user), (item.instruction, user)
        assert content_kept(item.instruction, item.rewritten)
        n += 1
    assert n > 500 and common


def test_user_reference_keeps_colour_position_and_shape():
    rng = random.Random(1)
    assert user_reference("the red circle", rng).split()[1] == "red"
    for _ in range(20):
        left = user_reference("the left object", rng)
        assert "left" in left and "object" not in left
        circle = user_reference("the circle", rng)
        assert any(w in circle for w in ("circle", "disc", "round one")), circle
    with pytest.raises(ValueError, match="referring expression"):
        user_reference("a red circle", rng)


def test_content_reader_distinguishes_what_is_asked():
    gqa = ins.gqa_instruction
    assert read_content(gqa("What color is the left object?")) == read_content(gqa("hey, what colour is the thing on "
                                                                                   "the left?"))
    assert not content_kept(gqa("What color is the left object?"), gqa("What color is the right object?"))
    assert not content_kept(gqa("What color is the left object?"), gqa("What size is the left object?"))
    assert not content_kept(gqa("Is there a red circle?"), gqa("Is there a red square?"))
    choice = ins.scienceqa_instruction("What color is the circle?", ["red", "blue"])
    assert content_kept(choice, ins.scienceqa_instruction("Which color does the circle have?", ["red", "blue"]))
    assert not content_kept(choice, ins.scienceqa_instruction("What color is the circle?", ["red", "green"]))
    ocr = ins.textvqa_instruction("What word is written in the image?", ["cat"])
    assert not content_kept(ocr, ins.textvqa_instruction("What word is written in the image?", ["dog"]))
    vsr = ins.vsr_instruction("The red circle is left of the blue square.")
    assert content_kept(vsr, ins.vsr_instruction("ok so the red disc is further left than the blue block."))
    assert not content_kept(vsr, ins.vsr_instruction("The blue square is left of the red circle."))
    assert not content_kept(vsr, ins.vsr_instruction("The red circle is right of the blue square."))
    # answers, empty and garbled texts are not instructions of the world: never "kept"
    for text in ("red", "", "Question: \n Short answer:", "Instruction: Score: 1.00"):
        assert read_content(text) is None and not content_kept(text, text)


def test_user_statements_and_questions_of_every_type_are_read_back():
    rng = random.Random(3)
    for _ in range(200):
        scene = sample_scene(rng, "train", min_objects=2, word=rng.random() < 0.5)
        statement = make_statement(scene, rng.randrange(2), rng)
        assert content_kept(ins.vsr_instruction(statement.text), ins.vsr_instruction(user_statement(statement, rng)))
        for qtype in PHRASINGS:
            if qtype == "text" and scene.word is None:
                continue
            question = make_question(scene, qtype, rng)
            assert content_kept(ins.gqa_instruction(question.text), ins.gqa_instruction(user_question(question, rng)))
        problem = make_choice(scene, "color", rng)
        assert content_kept(ins.scienceqa_instruction(problem.question.text, problem.choices),
                            ins.scienceqa_instruction(user_question(problem.question, rng), problem.choices))


def test_comparison_records_use_the_model_scores_and_the_aio_format():
    pairs = [
        {"id": "a", "image": "1.jpg", "family": "gqa", "initial": "I1", "rewritten": "R1", "user": True},
        {"id": "b", "image": "2.jpg", "family": "gqa", "initial": "I2", "rewritten": "R2", "user": False},
    ]
    scores = {"a": (2.5, 1.25), "b": (0.5, 3.0)}
    records = comparison.comparison_records(pairs, scores, CFG.compare_template, CFG.compare_cue)
    for record, pair, better in zip(records, pairs, ("R1", "I2")):
        human = record["conversations"][0]["value"].replace("<image>", "").strip()
        expected = comparison_prompt([(pair["initial"], scores[pair["id"]][0]),
                                      (pair["rewritten"], scores[pair["id"]][1])],
                                     CFG.compare_template, CFG.compare_cue)
        assert human == expected
        assert record["conversations"][1]["value"] == better  # the lower IAS, listed last
        assert expected.splitlines()[-2].startswith(f"Instruction: {better} Score:")
    assert records[0]["conversations"][0]["value"].count("Score: ") == 2
    with pytest.raises(KeyError):
        comparison.comparison_records(pairs, {"a": (1.0, 2.0)}, CFG.compare_template, CFG.compare_cue)


def test_world_writes_scoreable_pairs_and_the_comparison_training_file(tmp_path):
    root = str(tmp_path / "w")
    manifest = generate_world(root, seed=0, n_train=40, n_eval=4, image_size=32, mix="demo", n_compare=12)
    entry = manifest["train"]["llava_instruct_150k"]["comparison"]
    with open(os.path.join(root, entry["candidates"]), encoding="utf-8") as handle:
        pairs = json.load(handle)
    assert len(pairs) == 12 and 0 < entry["user_share"] < 1
    for pair in pairs:
        assert os.path.isfile(os.path.join(root, "coco/images/train2017", pair["image"]))
        assert content_kept(pair["initial"], pair["rewritten"]) and pair["initial"] != pair["rewritten"]
    scores = {p["id"]: (1.0 + i, 2.0) for i, p in enumerate(pairs)}
    out = write_comparison_training(root, scores, CFG.compare_template, CFG.compare_cue, replay=10)
    with open(os.path.join(root, out["train"]), encoding="utf-8") as handle:
        records = json.load(handle)
    assert (out["comparison"], out["replay"], len(records)) == (12, 10, 22)
    assert sum("Score: " in r["conversations"][0]["value"] for r in records) == 12
    assert read_comparison_candidates(root) == pairs
    read = write_comparison_training(root, scores, CFG.compare_template, CFG.compare_cue, name="read.json")
    handed = write_comparison_training(root, scores, CFG.compare_template, CFG.compare_cue, name="handed.json",
                                       pairs=pairs)
    texts = []
    for written in (read, handed):
        with open(os.path.join(root, written["train"]), encoding="utf-8") as handle:
            texts.append(handle.read())
    assert texts[0] == texts[1] and len(json.loads(texts[0])) == 12  # no replay: the comparison records only


def _files(root):
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if name != "manifest.json":
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, root)] = handle.read()
    return found


def test_focus_round_files_leave_the_rest_of_the_world_unchanged(tmp_path):
    sizes = dict(seed=3, n_train=30, n_eval=4, image_size=32, mix="demo", n_compare=10, n_text=20)
    plain, focused = str(tmp_path / "plain"), str(tmp_path / "focused")
    generate_world(plain, **sizes)
    manifest = generate_world(focused, **sizes, n_focus_compare=40, n_focus_text=60)
    before, after = _files(plain), _files(focused)
    assert all(after[path] == data for path, data in before.items())  # stage A's and A2's data are the same bytes
    added = sorted(set(after) - set(before))
    assert "llava_instruct_150k/focus.json" in added and "llava_instruct_150k/focus_candidates.json" in added
    assert sum(path.startswith("coco/images/train2017/") for path in added) == 100  # their own images, numbered after
    pairs = read_comparison_candidates(focused, "focus")
    assert len(pairs) == 40 and manifest["train"]["llava_instruct_150k"]["focus_comparison"]["count"] == 40
    for pair in pairs:
        assert os.path.isfile(os.path.join(focused, "coco/images/train2017", pair["image"]))
        assert int(pair["image"][:-4]) > 30 + 10 + 20 and content_kept(pair["initial"], pair["rewritten"])
    families = [p["family"] for p in pairs]
    assert families.count("vsr") + families.count("scienceqa") > len(pairs) / 2  # what the mix weighs most
    kinds = manifest["train"]["focus"]["kinds"]
    assert {k.split("/")[0] for k in kinds} == {"benchmark", "user_benchmark", "user_rewrite"}
    scores = {p["id"]: (1.0, 2.0) for p in pairs}
    out = write_comparison_training(focused, scores, CFG.compare_template, CFG.compare_cue, replay=5, pairs=pairs,
                                    text="focus", name="focus_round.json")
    assert (out["comparison"], out["text"], out["replay"]) == (40, 60, 5)
    with open(os.path.join(focused, out["train"]), encoding="utf-8") as handle:
        assert len(json.load(handle)) == 105
    with pytest.raises(FileNotFoundError, match="n_focus_compare"):
        read_comparison_candidates(plain, "focus")


def test_comparison_training_needs_a_world_with_pairs(tmp_path):
    root = str(tmp_path / "w")
    generate_world(root, seed=0, n_train=4, n_eval=1, image_size=32, mix="demo")
    with pytest.raises(FileNotFoundError, match="n_compare"):
        write_comparison_training(root, {}, CFG.compare_template, CFG.compare_cue)


def test_validation_world_draws_from_training_scenes(tmp_path):
    root = str(tmp_path / "v")
    manifest = generate_world(root, seed=5, n_train=0, n_eval=6, image_size=32, eval_scenes="train")
    from lavis_vislinginstruct.world.scenes import Scene

    with open(os.path.join(root, manifest["eval"]["gqa"]["scenes"]), encoding="utf-8") as handle:
        scenes = json.load(handle)
    assert all(scene_split(Scene.from_dict(d)) == "train" for d in scenes.values())
    assert manifest["eval"]["gqa"]["scenes_from"] == "train" and manifest["eval"]["gqa"]["wording"] == "user"
    with pytest.raises(ValueError, match="eval_scenes"):
        generate_world(str(tmp_path / "x"), n_train=0, n_eval=1, eval_scenes="test")
    with pytest.raises(ValueError, match="eval_wording"):
        generate_world(str(tmp_path / "x"), n_train=0, n_eval=1, eval_wording="shouting")
