"""Tests of the demo's generated world (``lavis_vislinginstruct.world``).

Determinism, official formats (also read back by the project's own dataset classes), answers that follow from the
scenes (re-derived here by an independent reader of the question text) and held-out evaluation scenes.
"""

import hashlib
import json
import os
import random
import re
from typing import Any, Dict, List

import pytest
from PIL import Image

from lavis_vislinginstruct.datasets import datasets as D
from lavis_vislinginstruct.processors.templates import TEMPLATES
from lavis_vislinginstruct.processors.text_processors import InstructionProcessor, TextProcessor
from lavis_vislinginstruct.world import instructions as ins
from lavis_vislinginstruct.world.__main__ import main
from lavis_vislinginstruct.world.scenes import COLOR_RGB, COLORS, SHAPES, Scene, render_scene, sample_scene, scene_split
from lavis_vislinginstruct.world.content import content_kept
from lavis_vislinginstruct.world.tasks import PHRASINGS, make_question, make_statement
from lavis_vislinginstruct.world.writer import blind_baselines, generate_world

N_TRAIN, N_EVAL = 150, 40
POSITIONS = {"left": ("col", 0), "right": ("col", 1), "top": ("row", 0), "bottom": ("row", 1)}
REWRITE_PREFIX, REWRITE_SUFFIX = ins.REWRITE_TEMPLATE.split("{}")


def _tree(root: str) -> Dict[str, bytes]:
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, root)] = f.read()
    return files


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    roots = {name: str(tmp_path_factory.mktemp(name)) for name in ("a", "b", "other_seed")}
    assert main(["--out", roots["a"], "--seed", "0", "--n-train", str(N_TRAIN), "--n-eval", str(N_EVAL)]) == 0
    generate_world(roots["b"], seed=0, n_train=N_TRAIN, n_eval=N_EVAL)
    generate_world(roots["other_seed"], seed=1, n_train=N_TRAIN, n_eval=N_EVAL)
    return roots


@pytest.fixture(scope="module")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("demo_world"))
    generate_world(root, seed=0, n_train=200, n_eval=N_EVAL, image_size=32, mix="demo", n_compare=30, n_text=300)
    return root


@pytest.fixture(scope="module")
def world(worlds: Dict[str, str]) -> str:
    return worlds["a"]


@pytest.fixture(scope="module")
def manifest(world: str) -> Dict[str, Any]:
    return _load(world, "manifest.json")


def _load(root: str, rel: str) -> Any:
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return json.load(f)


def _scenes(root: str, manifest: Dict[str, Any], group: str, name: str) -> Dict[str, Dict[str, Any]]:
    return _load(root, manifest[group][name]["scenes"])


# -- an independent reader of questions (common phrasings and user style): filters objects by the colour, shape
# and position words a phrase contains; the user vocabulary is listed here, not imported from the world --

SHAPE_SYNONYMS = {"disc": "circle", "round": "circle", "block": "square", "tile": "square", "wedge": "triangle"}
POSITION_SYNONYMS = {"leftmost": "left", "rightmost": "right", "upper": "top", "lower": "bottom"}


def _canonical_words(phrase: str) -> List[str]:
    words = re.findall(r"[a-z]+", phrase.lower().replace("down below", "bottom").replace("up top", "top"))
    return [SHAPE_SYNONYMS.get(w, POSITION_SYNONYMS.get(w, w)) for w in words]


def _resolve(phrase: str, objects: List[Dict[str, Any]]) -> Dict[str, Any]:
    words = _canonical_words(phrase)
    matches = [
        o
        for o in objects
        if all(
            (w not in COLORS or o["color"] == w)
            and (w not in SHAPES or o["shape"] == w)
            and (w not in POSITIONS or o[POSITIONS[w][0]] == POSITIONS[w][1])
            for w in words
        )
    ]
    assert len(matches) == 1, f"{phrase!r} does not pick out one object of {objects}"
    return matches[0]


def _derive_answer(question: str, scene: Dict[str, Any]) -> str:
    q, objects = question.lower(), scene["objects"]
    words = _canonical_words(q)
    if any(cue in q for cue in ("how many", "number", "count")):
        return str(len(objects))
    if any(cue in q for cue in ("word", "text", "written", "writing")):
        return scene["word"]
    if re.search(r"\bwhere\b|where's|which part|corner|spot is", q):
        target = _resolve(q.replace("part of the image", ""), objects)
        return f"{target['vertical']} {target['horizontal']}"
    if any(cue in q for cue in ("is there", "can you see", "spot", "any ", "visible")):
        color = next(w for w in words if w in COLORS)
        shape = next(w for w in words if w in SHAPES)
        return "yes" if any(o["color"] == color and o["shape"] == shape for o in objects) else "no"
    phrase = q.replace("small or large", "").replace("tiny or big", "").replace("little or large", "")
    target = _resolve(phrase, objects)
    if any(cue in q for cue in ("color", "colour", "hue", "shade")):
        return target["color"]
    if any(cue in q for cue in ("shape", "form", "figure", "outline")):
        return target["shape"]
    return target["size"]


def _statement_holds(caption: str, scene: Dict[str, Any]) -> bool:
    words = _canonical_words(caption)
    named = [(words[i], words[i + 1]) for i in range(len(words) - 1) if words[i] in COLORS and words[i + 1] in SHAPES]
    assert len(named) == 2, caption
    subj, obj = (next(o for o in scene["objects"] if (o["color"], o["shape"]) == n) for n in named)
    if "left" in words:
        return subj["col"] < obj["col"]
    if "right" in words:
        return subj["col"] > obj["col"]
    if any(w in words for w in ("above", "over", "higher", "up")):
        return subj["row"] < obj["row"]
    assert any(w in words for w in ("below", "under", "bottom", "beneath", "down")), caption
    return subj["row"] > obj["row"]


# -- determinism and manifest --


def test_same_seed_is_byte_identical(worlds: Dict[str, str]) -> None:
    first, second = _tree(worlds["a"]), _tree(worlds["b"])
    assert sorted(first) == sorted(second)
    assert all(first[k] == second[k] for k in first)


def test_other_seed_differs(worlds: Dict[str, str]) -> None:
    first, other = _tree(worlds["a"]), _tree(worlds["other_seed"])
    annotations = [
        k for k in first if k.endswith((".json", ".jsonl")) and not k.endswith(("manifest.json", "pid_splits.json"))
    ]
    assert all(first[k] != other[k] for k in annotations)


def test_manifest_lists_files_with_hashes_and_counts(world: str, manifest: Dict[str, Any]) -> None:
    assert manifest["seed"] == 0 and manifest["n_train"] == N_TRAIN and manifest["n_eval"] == N_EVAL
    for rel, digest in manifest["files"].items():
        with open(os.path.join(world, rel), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest
    assert set(manifest["eval"]) == {"flickr30k", "gqa", "vsr", "scienceqa", "textvqa"}
    for name, entry in manifest["eval"].items():
        assert entry["count"] == N_EVAL
        assert all(os.path.isfile(os.path.join(world, p)) for p in entry["annotations"].values())
        assert entry["chance"] is None if name == "flickr30k" else 0 < entry["chance"] <= entry["answer_prior"] < 1
    assert manifest["eval"]["vsr"]["chance"] == 0.5
    assert manifest["eval"]["textvqa"]["chance"] == pytest.approx(1 / 6, abs=1e-5)
    n_files = sum(1 for k in _tree(world) if k.endswith((".jpg", ".png")))
    assert n_files == manifest["n_images"] == N_TRAIN + 5 * N_EVAL


def test_regenerating_replaces_a_previous_world_and_refuses_foreign_folders(tmp_path: Any) -> None:
    generate_world(str(tmp_path / "w"), seed=3, n_train=20, n_eval=6)
    manifest = generate_world(str(tmp_path / "w"), seed=3, n_train=5, n_eval=2)
    assert sum(1 for k in _tree(str(tmp_path / "w")) if k.endswith((".jpg", ".png"))) == manifest["n_images"] == 15
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        generate_world(str(tmp_path / "foreign"), n_train=1, n_eval=1)


# -- training data (LLaVA-Instruct-150K format) --


def test_llava_records_alternate_and_carry_the_image_marker(world: str, manifest: Dict[str, Any]) -> None:
    entry = manifest["train"]["llava_instruct_150k"]
    records = _load(world, entry["annotations"]["train"])
    assert isinstance(records, list) and len(records) == N_TRAIN
    prefixed = suffixed = multi_turn = 0
    for record in records:
        assert set(record) == {"id", "image", "conversations"} and "/" not in record["image"]
        assert os.path.isfile(os.path.join(world, entry["images"], record["image"]))
        turns = record["conversations"]
        assert len(turns) >= 2 and len(turns) % 2 == 0
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert all(isinstance(t["value"], str) and t["value"] for t in turns)
        first = turns[0]["value"]
        prefixed += first.startswith("<image>\n")
        suffixed += first.endswith("\n<image>")
        assert first.count("<image>") == 1 and all("<image>" not in t["value"] for t in turns[1:])
        multi_turn += len(turns) > 2
    assert prefixed + suffixed == N_TRAIN and prefixed > 0 and suffixed > 0 and multi_turn > 0


def _first_human(record: Dict[str, Any]) -> str:
    value = record["conversations"][0]["value"]
    return value[len("<image>\n") :] if value.startswith("<image>\n") else value[: -len("\n<image>")]


def _question_of(instruction: str) -> str:
    """The question (or statement) inside a filled benchmark instruction."""
    if "true or false? " in instruction:
        return instruction.split("true or false? ", 1)[1]
    question = instruction.split("Question: ", 1)[1]
    return question.split(" \n ", 1)[0]


def _meaning(instruction: str, scene: Dict[str, Any]) -> Any:
    """What an instruction asks, read independently: the answer it has in the scene plus the options/OCR."""
    question = _question_of(instruction)
    if "true or false? " in instruction:
        return ("vsr", _statement_holds(question, scene))
    extras = instruction.split(" \n ", 1)[1] if "Options:" in instruction else ""
    ocr = instruction.split("Question: ")[0]
    return (_derive_answer(question, scene), extras, ocr)


def test_llava_holds_benchmark_instructions_and_rewrite_pairs(world: str, manifest: Dict[str, Any]) -> None:
    records = _load(world, manifest["train"]["llava_instruct_150k"]["annotations"]["train"])
    scenes = _scenes(world, manifest, "train", "llava_instruct_150k")
    gqa_prefix, gqa_suffix = TEMPLATES["gqa"].split("{question}")
    seen = {"gqa": 0, "rewrite": 0, "caption": 0}
    for record in records:
        human, answer = _first_human(record), record["conversations"][1]["value"]
        if human.startswith(REWRITE_PREFIX):
            assert human.endswith(REWRITE_SUFFIX) and len(record["conversations"]) == 2
            original = human[len(REWRITE_PREFIX) : -len(REWRITE_SUFFIX)]
            assert answer != original
            if original.startswith(gqa_prefix):  # same template, same keywords, question re-phrased
                assert answer.startswith(gqa_prefix) and answer.endswith(gqa_suffix)
                assert _derive_answer(
                    original[len(gqa_prefix) : -len(gqa_suffix)], scenes[record["image"]]
                ) == _derive_answer(answer[len(gqa_prefix) : -len(gqa_suffix)], scenes[record["image"]])
            if "Options: " in original:  # options (and the context before the question) are kept verbatim
                assert answer.split("Options: ")[1] == original.split("Options: ")[1]
                assert answer.split("Question: ")[0] == original.split("Question: ")[0]
            seen["rewrite"] += 1
        elif human.startswith(gqa_prefix) and human.endswith(gqa_suffix):
            question = human[len(gqa_prefix) : -len(gqa_suffix)]
            assert answer == _derive_answer(question, scenes[record["image"]])
            seen["gqa"] += 1
        elif human == TEMPLATES["flickr30k"]:
            seen["caption"] += 1
    assert all(seen.values()), seen


def test_demo_mix_user_style_kinds_keep_the_content(demo_world: str) -> None:
    manifest = _load(demo_world, "manifest.json")
    first = manifest["train"]["llava_instruct_150k"]
    assert {k.split("/")[0] for k in first["kinds"]} == {"benchmark"}  # stage A: common phrasings only
    entry = manifest["train"]["phase2"]
    records = _load(demo_world, entry["annotations"]["train"])
    scenes = _scenes(demo_world, manifest, "train", "phase2")
    kinds = {k.split("/")[0] for k in entry["kinds"]}
    assert kinds == {"benchmark", "user_benchmark", "rewrite", "user_rewrite"}
    assert abs(sum(entry["shares"].values()) - 1) < 1e-3
    checked = 0
    for record in records:
        human, answer = _first_human(record), record["conversations"][1]["value"]
        scene = scenes[record["image"]]
        if not human.startswith(REWRITE_PREFIX) or "Question: " not in human and "true or false" not in human:
            continue
        original = human[len(REWRITE_PREFIX) : -len(REWRITE_SUFFIX)]
        # a rewrite never changes what is asked, whatever the wording (read by this file's own reader)
        assert _meaning(original, scene) == _meaning(answer, scene), (original, answer)
        assert content_kept(original, answer)
        if "true or false" not in original:  # targets are common phrasings; a user-style input gets the first one
            assert _phrasing_of(_question_of(answer)) is not None, answer
            if _phrasing_of(_question_of(original)) is None:
                assert _phrasing_of(_question_of(answer)) == 0, (original, answer)
        checked += 1
    assert checked > 20


def _phrasing_of(question: str) -> Any:
    """Index of the common phrasing ``question`` is written in, or None (user style)."""
    for phrasings in PHRASINGS.values():
        for k, template in enumerate(phrasings):
            pattern = re.escape(template).replace(r"\{ref\}", "the [a-z ]+").replace(r"\{thing\}", "[a-z]+ [a-z]+")
            if re.fullmatch(pattern, question):
                return k
    return None


def test_training_never_shows_an_evaluation_instruction(demo_world: str) -> None:
    manifest = _load(demo_world, "manifest.json")
    records = [r for part in ("llava_instruct_150k", "phase2")
               for r in _load(demo_world, manifest["train"][part]["annotations"]["train"])]
    taught = set()
    for record in records:  # every instruction a conversation shows, inside a rewrite prompt or not
        human, answer = _first_human(record), record["conversations"][1]["value"]
        if human.startswith(REWRITE_PREFIX):
            taught |= {human[len(REWRITE_PREFIX) : -len(REWRITE_SUFFIX)], answer}
        else:
            taught.add(human)
    evaluation = [ins.gqa_instruction(q["question"]) for q in _load(demo_world, manifest["eval"]["gqa"]["annotations"]
                                                                      ["val"]).values()]
    with open(os.path.join(demo_world, manifest["eval"]["vsr"]["annotations"]["test"]), encoding="utf-8") as f:
        evaluation += [ins.vsr_instruction(json.loads(line)["caption"]) for line in f]
    assert len(evaluation) == 2 * N_EVAL and not taught & set(evaluation)
    # and the held-out questions are user style: none is a common phrasing
    assert all(_phrasing_of(q["question"]) is None for q in _load(demo_world, manifest["eval"]["gqa"]["annotations"]
                                                                   ["val"]).values())


# -- evaluation sets --


def test_flickr30k_karpathy_format_and_captions_match_scene(world: str, manifest: Dict[str, Any]) -> None:
    entry = manifest["eval"]["flickr30k"]
    data = _load(world, entry["annotations"]["test"])
    scenes = _scenes(world, manifest, "eval", "flickr30k")
    assert data["dataset"] == "flickr30k" and len(data["images"]) == N_EVAL
    for image in data["images"]:
        assert image["split"] == "test" and len(image["sentences"]) == 5
        assert image["sentids"] == [s["sentid"] for s in image["sentences"]]
        assert os.path.isfile(os.path.join(world, entry["images"], entry["image_subdir"], image["filename"]))
        scene = scenes[image["filename"]]
        for sentence in image["sentences"]:
            assert sentence["imgid"] == image["imgid"] and sentence["tokens"] == re.findall(
                r"[a-z0-9]+", sentence["raw"].lower()
            )
            for obj in scene["objects"]:
                assert f"{obj['size']} {obj['color']} {obj['shape']}" in sentence["raw"]
            assert scene["word"] is None or f"the word {scene['word']}" in sentence["raw"]


def test_gqa_format_and_answers_follow_from_scene(world: str, manifest: Dict[str, Any]) -> None:
    entry = manifest["eval"]["gqa"]
    questions = _load(world, entry["annotations"]["val"])
    scenes = _scenes(world, manifest, "eval", "gqa")
    assert isinstance(questions, dict) and len(questions) == N_EVAL
    required = set("question imageId answer fullAnswer isBalanced groups types semantic semanticStr".split())
    required |= {"entailed", "equivalent", "annotations"}  # GQA questions1.2
    for qid, q in questions.items():
        assert required <= set(q) and isinstance(qid, str) and q["isBalanced"] is True
        assert os.path.isfile(os.path.join(world, entry["images"], f"{q['imageId']}.jpg"))
        assert q["answer"] == _derive_answer(q["question"], scenes[q["imageId"]])
    assert len({q["types"]["detailed"] for q in questions.values()}) == len(ins.GQA_TYPES)


def test_vsr_format_balanced_and_labels_follow_from_scene(world: str, manifest: Dict[str, Any]) -> None:
    entry = manifest["eval"]["vsr"]
    with open(os.path.join(world, entry["annotations"]["test"]), encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    scenes = _scenes(world, manifest, "eval", "vsr")
    fields = set("image image_link caption label relation subj obj annotator_id".split())
    fields |= {"vote_true_validator_id", "vote_false_validator_id"}  # VSR
    assert len(lines) == N_EVAL and sum(r["label"] for r in lines) == N_EVAL // 2
    for r in lines:
        assert set(r) == fields and r["label"] in (0, 1) and isinstance(r["annotator_id"], int)
        assert isinstance(json.loads(r["vote_true_validator_id"]), list)  # strings like "[18, 2]", as in the real file
        assert os.path.isfile(os.path.join(world, entry["images"], r["image"]))
        # user style: the subject comes first, then the object, both by colour (the shape may be a synonym)
        caption = r["caption"].lower()
        assert r["subj"].split()[0] in caption and r["obj"].split()[0] in caption
        assert _statement_holds(r["caption"], scenes[r["image"]]) == bool(r["label"])


def test_scienceqa_format_and_answers_follow_from_scene(world: str, manifest: Dict[str, Any]) -> None:
    entry = manifest["eval"]["scienceqa"]
    problems = _load(world, entry["annotations"]["problems"])
    splits = _load(world, entry["annotations"]["pid_splits"])
    scenes = _scenes(world, manifest, "eval", "scienceqa")
    assert sorted(splits["test"]) == sorted(problems) and splits["train"] == []
    fields = set(
        "question choices answer hint image task grade subject topic category skill lecture solution split".split()
    )  # ScienceQA
    for pid, p in problems.items():
        assert set(p) == fields and p["split"] == "test" and p["image"] == "image.png"
        assert 0 <= p["answer"] < len(p["choices"]) and len(set(p["choices"])) == len(p["choices"]) >= 2
        assert os.path.isfile(os.path.join(world, entry["images"], "test", pid, "image.png"))
        assert p["choices"][p["answer"]] == _derive_answer(p["question"], scenes[pid])


def test_textvqa_format_ocr_and_answers_follow_from_scene(world: str, manifest: Dict[str, Any]) -> None:
    entry = manifest["eval"]["textvqa"]
    data = _load(world, entry["annotations"]["val"])
    ocr = {r["image_id"]: r for r in _load(world, entry["annotations"]["ocr"])["data"]}
    scenes = _scenes(world, manifest, "eval", "textvqa")
    assert data["dataset_type"] == "val" and len(data["data"]) == N_EVAL
    for r in data["data"]:
        assert len(r["answers"]) == 10 and all(isinstance(a, str) for a in r["answers"])
        assert r["set_name"] == "val" and isinstance(r["question_id"], int)
        path = os.path.join(world, entry["images"], f"{r['image_id']}.jpg")
        with Image.open(path) as image:
            assert image.size == (r["image_width"], r["image_height"])
        word = scenes[r["image_id"]]["word"]
        assert r["answers"][0] == word == _derive_answer(r["question"], scenes[r["image_id"]])
        assert ocr[r["image_id"]]["ocr_tokens"] == [word]
        box = ocr[r["image_id"]]["ocr_info"][0]["bounding_box"]
        assert 0 <= box["top_left_x"] and box["top_left_x"] + box["width"] <= 1
        assert 0 <= box["top_left_y"] and box["top_left_y"] + box["height"] <= 1


# -- the project's own readers parse the world, and evaluation instructions are what training taught --


def _reader(root: str, manifest: Dict[str, Any], group: str, name: str, cls: Any, split: str) -> Any:
    entry = manifest[group][name]
    extra = {k: os.path.join(root, v) for k, v in entry["annotations"].items() if k in ("ocr", "pid_splits")}
    main = [os.path.join(root, v) for k, v in entry["annotations"].items() if k not in extra]
    text = TextProcessor() if group == "train" else InstructionProcessor(name)
    demo_format = {"text_format": "qa"} if group == "train" else {}  # as projects/vislinginstruct/demo/stage_*.yaml
    return cls(
        vis_processor=lambda image: image.size,
        text_processor=text,
        vis_root=os.path.join(root, entry["images"]),
        ann_paths=main,
        split=split,
        files=extra,
        **demo_format,
    )


def test_project_readers_load_the_world_with_in_distribution_instructions(world: str, manifest: Dict[str, Any]) -> None:
    llava = _reader(world, manifest, "train", "llava_instruct_150k", D.LLaVAInstructDataset, "train")
    assert len(llava) == N_TRAIN and llava[0]["image"] == (manifest["image_size"],) * 2
    taught = {" ".join(llava.annotation[i]["text_input"].split()) for i in range(len(llava))}
    readers = {
        "flickr30k": (D.Flickr30kEvalDataset, "test"),
        "gqa": (D.GQAEvalDataset, "val"),
        "vsr": (D.VSREvalDataset, "test"),
        "scienceqa": (D.ScienceQAEvalDataset, "test"),
        "textvqa": (D.TextVQAEvalDataset, "val"),
    }
    for name, (cls, split) in readers.items():
        dataset = _reader(world, manifest, "eval", name, cls, split)
        assert len(dataset) == N_EVAL, name
        samples = [dataset[i] for i in range(N_EVAL)]
        assert all(s["image"] == (manifest["image_size"],) * 2 for s in samples)
        if name == "flickr30k":  # the one fixed instruction is taught verbatim (up to whitespace)
            assert " ".join(samples[0]["text_input"].split()) in taught
        if name == "vsr":  # ranking candidates are the answers training uses
            assert all(s["candidates"][s["correct_choice_idx"]] == ins.VSR_ANSWERS[s["label"]] for s in samples)
        if name == "gqa":  # training writes the same instruction the evaluation reader formats
            assert [s["text_input"] for s in samples] == [
                ins.gqa_instruction(q) for q in (s["keep_spans"][0] for s in samples)
            ]


# -- held-out scenes, rendering, tasks --


def test_eval_scenes_are_held_out_from_training(worlds: Dict[str, str], manifest: Dict[str, Any]) -> None:
    train_keys = set()
    for root in (worlds["a"], worlds["other_seed"]):
        for d in _scenes(root, manifest, "train", "llava_instruct_150k").values():
            scene = Scene.from_dict(d)
            assert scene_split(scene) == "train"
            train_keys.add(scene.key())
    for name in manifest["eval"]:
        keys = [Scene.from_dict(d).key() for d in _scenes(worlds["a"], manifest, "eval", name).values()]
        assert not train_keys & set(keys), name
        assert len(set(keys)) == len(keys), f"{name} repeats a scene"


def test_rendered_pixels_match_the_scene(world: str, manifest: Dict[str, Any]) -> None:
    entry = manifest["eval"]["scienceqa"]  # PNG, so pixels are exact
    size = manifest["image_size"]
    for pid, d in list(_scenes(world, manifest, "eval", "scienceqa").items())[:10]:
        with Image.open(os.path.join(world, entry["images"], "test", pid, "image.png")) as image:
            pixels = image.convert("RGB")
            for o in d["objects"]:
                centre = ((o["col"] + 0.5) * size / 2 + o["jitter"][0], (o["row"] + 0.5) * size / 2 + o["jitter"][1])
                assert pixels.getpixel((int(centre[0]), int(centre[1]))) == COLOR_RGB[o["color"]]
        assert render_scene(Scene.from_dict(d), size).tobytes() == pixels.tobytes()


def test_blind_baselines_hand_computed() -> None:
    colors, words = ("red", "blue"), ("cat", "dog", "sun")
    guesses = [("color", "red", colors), ("color", "red", colors), ("color", "blue", colors), ("text", "sun", words)]
    # chance: (1/2 + 1/2 + 1/2 + 1/3) / 4; prior: "red" for colour (2 of 3 right), "sun" for text (1 of 1)
    assert blind_baselines(guesses) == {"chance": round((1.5 + 1 / 3) / 4, 6), "answer_prior": 0.75}


def test_rephrasing_keeps_keywords_and_statements_have_requested_truth() -> None:
    rng = random.Random(0)
    for _ in range(50):
        scene = sample_scene(rng, "train", min_objects=2)
        question = make_question(scene, "color", rng)
        other = question.rephrased()
        assert other.text != question.text and other.slots == question.slots and other.answer == question.answer
        assert dict(other.slots)["ref"] in other.text
        for label in (0, 1):
            statement = make_statement(scene, label, rng)
            assert _statement_holds(statement.text, scene.to_dict()) == bool(label)
            assert statement.rephrased().text != statement.text


def test_demo_scienceqa_evaluation_wraps_hints_as_the_world_trains() -> None:
    """The demo keeps LAVIS main's ``context:`` wrapper on both sides while the evaluation default is the official
    ``Context:`` (a changed default must not split the demo's training and evaluation text)."""
    from omegaconf import OmegaConf

    path = os.path.join(os.path.dirname(__file__), os.pardir, "projects", "vislinginstruct", "demo",
                        "eval_scienceqa.yaml")
    proc = InstructionProcessor.from_config(OmegaConf.load(path).datasets.vli_scienceqa.text_processor.eval)
    hint = ins.SCIENCEQA_HINTS["count"]
    question, choices = "How many circles are there?", ["1", "2", "3"]
    assert proc(question=question, choices=choices, context=hint) == ins.scienceqa_instruction(question, choices, hint)
    assert ins.scienceqa_instruction(question, choices, hint).startswith(f"context: {hint}. ")


def test_demo_trains_on_the_qa_text_format() -> None:
    """The official training text became the default; the demo's stages keep the format it was built and measured
    with (a world conversation's earlier turns as ``Q: ..\\nA: ..\\n``, then the question)."""
    from lavis.common.config import Config
    from omegaconf import OmegaConf

    folder = os.path.join(os.path.dirname(__file__), os.pardir, "projects", "vislinginstruct", "demo")
    for stage in ("stage_a", "stage_a2", "stage_b"):
        cfg = OmegaConf.load(os.path.join(folder, f"{stage}.yaml"))
        merged = Config.build_dataset_config(cfg).datasets.vli_llava_instruct_150k  # over the dataset's defaults
        assert merged.options.text_format == "qa", stage
    default = Config.build_dataset_config(OmegaConf.create({"datasets": {"vli_llava_instruct_150k": {}}}))
    assert default.datasets.vli_llava_instruct_150k.options.text_format == "official"
