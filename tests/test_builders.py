"""Every vli_ builder builds from fixtures (official layouts, invented content) through LAVIS, offline."""

import json
import logging
import shutil
from pathlib import Path
from unittest.mock import ANY

import pytest
import torch
from lavis.common.config import Config
from lavis.common.registry import registry
from omegaconf import OmegaConf
from PIL import Image

import lavis_vislinginstruct.datasets  # noqa: F401  (registers the vli_* builders)
import lavis_vislinginstruct.processors  # noqa: F401  (registers the vli_* processors)
from lavis_vislinginstruct.datasets.datasets.base import ImageLoadError
from lavis_vislinginstruct.datasets.datasets.instruct_datasets import MalformedRecordError, strip_image_token

FIXTURES = Path(__file__).parent / "fixtures" / "annotations"
# ../shared beside the checkout (or beside the folder of git worktrees that holds it)
REAL = next((p / "shared" / "benchmark-samples" for p in Path(__file__).resolve().parents[2:4]
             if (p / "shared" / "benchmark-samples").is_dir()), Path(__file__).resolve().parents[1].parent / "shared")

# builder → (fixture → default storage under cache_root, images under cache_root)
LAYOUTS = {
    "vli_llava_instruct_150k": (
        {"llava_instruct_150k/llava_instruct_150k.json": "llava_instruct_150k/llava_instruct_150k.json"},
        [f"coco/images/train2017/000000000{n}.jpg" for n in (101, 202, 303)],
    ),
    "vli_flickr30k": (
        {"flickr30k/dataset_flickr30k.json": "flickr30k/annotations/dataset_flickr30k.json"},
        [f"flickr30k/images/flickr30k-images/900000000{n}.jpg" for n in (1, 3)],
    ),
    "vli_nocaps": (
        {"nocaps/nocaps_val_4500_captions.json": "nocaps/annotations/nocaps_val_4500_captions.json"},
        [f"nocaps/images/val/aaaa00000000000{n}.jpg" for n in (1, 2, 3)],
    ),
    "vli_vsr": (
        {"vsr/test.jsonl": "vsr/annotations/zeroshot/test.jsonl"},
        [f"vsr/images/00000090000{n}.jpg" for n in (1, 2, 3)],
    ),
    "vli_gqa": (
        {"gqa/testdev_balanced_questions.json": "gqa/annotations/testdev_balanced_questions.json"},
        ["gqa/images/n900001.jpg", "gqa/images/n900002.jpg"],
    ),
    "vli_iconqa": (
        {"iconqa/iconqa": "iconqa/iconqa_data/iconqa"},
        [f"iconqa/iconqa_data/iconqa/test/choose_txt/{pid}/image.png" for pid in (7, 12, 105)],
    ),
    "vli_vizwiz": (
        {"vizwiz/val.json": "vizwiz/annotations/val.json"},
        [f"vizwiz/images/val/VizWiz_val_0000900{n}.jpg" for n in (1, 2, 3)],
    ),
    "vli_textvqa": (
        {
            f"textvqa/{name}": f"textvqa/annotations/{name}"
            for name in ("TextVQA_0.5.1_val.json", "TextVQA_Rosetta_OCR_v0.2_val.json")
        },
        [f"textvqa/images/train_images/f00000000000a00{n}.jpg" for n in (1, 2)],
    ),
    "vli_visdial": (
        {"visdial/visdial_1.0_val.json": "visdial/annotations/visdial_1.0_val.json"},
        [f"visdial/images/VisualDialog_val2018/VisualDialog_val2018_00000090000{n}.jpg" for n in (1, 2)],
    ),
    "vli_scienceqa": (
        {f"scienceqa/{name}": f"scienceqa/data/{name}" for name in ("problems.json", "pid_splits.json")},
        [f"scienceqa/images/test/{pid}/image.png" for pid in (8, 13, 21)],
    ),
    "vli_hateful_memes": (
        {f"hateful_memes/{name}": f"hateful_memes/data/{name}" for name in ("dev_seen.jsonl", "dev_unseen.jsonl")},
        [f"hateful_memes/data/img/9000{n}.png" for n in range(1, 6)],
    ),
}

# builder → (split, sample count, instance_id of the checked sample, extra sample keys)
SPLITS = {
    "vli_flickr30k": ("test", 2, "9000000003", {"captions"}),
    "vli_nocaps": ("val", 3, "1", {"captions", "domain"}),
    "vli_vsr": ("test", 4, "1", {"candidates", "label", "correct_choice_idx"}),
    "vli_gqa": ("val", 3, "20990001", {"answer"}),
    "vli_iconqa": ("test", 3, "7", {"candidates", "correct_choice_idx"}),
    "vli_vizwiz": ("val", 3, "VizWiz_val_00009001", {"answers"}),
    "vli_textvqa": ("val", 3, "90001", {"answers"}),
    "vli_visdial": ("val", 2, "900001_3", {"candidates", "gt_index", "image_id", "round_id"}),  # last rounds
    "vli_scienceqa": ("test", 3, "8", {"candidates", "correct_choice_idx"}),
    "vli_hateful_memes": ("val", 6, "dev_unseen_90002", {"candidates", "label", "correct_choice_idx"}),
}
# the checked sample's text_input: Table 4's instruction filled in
TEXTS = {
    "vli_flickr30k": "A short image description:",
    "vli_nocaps": "A short image description:",
    "vli_vsr": "Based on the image, is this statement true or false? The horse is inside the car.",
    "vli_gqa": "Question: What color is the Table? \n Short answer:",
    "vli_iconqa": "Question: Is the bag heavier or lighter than the box? Options: (a) heavier (b) lighter (c) the same "
    "(d) cannot tell \n Answer:",
    "vli_vizwiz": "Answer the question based on the image. Reply in one phrase/word or say 'unanswerable'. "
    "Question: What flavor is this Soup? \n Short answer:",
    "vli_textvqa": "OCR tokens: STOP, ELM, ST Question: what is written on the red sign? \n Short answer:",
    # the official _predict_class wrappers (my_mmlm_vicuna.py:517-526): caption, then dialog history, around GQA's
    "vli_visdial": 'This image has the caption "two dogs playing in a backyard". Dialog history: q: is the photo in '
    "color a: yes q: how many dogs are there a: 2\n Question: what color is the dog \n Short answer:",
    # "Context: {hint}. {prompt}" verbatim: a hint that ends with a period reads ".."
    "vli_scienceqa": "Context: The red car moved 40 km in 1 hour. The blue car moved 55 km in 1 hour.. "
    "Given the image, choose the correct option for the following question. Question: Which object moved faster? "
    "\n Options: (a) the red car (b) the blue car (c) neither; they moved at the same speed",
    "vli_hateful_memes": "This is an image with: invented hateful caption placeholder written on it. Is it hateful?",
}
# the checked sample's ground truth and other fields
TRUTH = {
    "vli_flickr30k": {"captions": ["A chef slices vegetables in a kitchen.", "A cook chopping carrots."] + [ANY] * 3},
    "vli_nocaps": {
        "captions": ["A jellyfish drifting in blue water.", "A translucent jellyfish.", "A sea creature floating."]
    },
    "vli_vsr": {"candidates": ["true", "false"], "label": 0, "correct_choice_idx": 1},
    "vli_gqa": {"answer": "brown", "keep_spans": ["What color is the Table?"]},
    "vli_iconqa": {"candidates": ["heavier", "lighter", "the same", "cannot tell"], "correct_choice_idx": 1},
    "vli_vizwiz": {"answers": ["tomato", "tomato", "tomato basil", "tomato", "tomato soup"] + ["tomato"] * 5},
    "vli_textvqa": {
        "keep_spans": ["what is written on the red sign?", "STOP, ELM, ST"],
        "answers": [ANY] * 3 + ["stop "] + [ANY] * 6,
    },
    "vli_visdial": {"candidates": ["white", "a red one", "yes", "maybe", "on the left"], "gt_index": 0, "round_id": 3},
    "vli_scienceqa": {"correct_choice_idx": 1, "candidates": ["the red car", "the blue car", ANY]},
    "vli_hateful_memes": {"candidates": ["no", "yes"], "label": 1, "correct_choice_idx": 1},
}
EVAL_KEYS = {"image", "text_input", "instance_id", "keep_spans"}


def make_image(path: Path, color=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), color).save(path)


def lay_out(name: str, root: Path, images: bool = True) -> None:
    """Put the fixture files (and tiny images) where the default YAML of ``name`` expects them."""
    files, image_paths = LAYOUTS[name]
    for src, dst in files.items():
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (FIXTURES / src).is_dir() else shutil.copyfile
        copy(FIXTURES / src, root / dst)
    for rel in image_paths if images else []:
        make_image(root / rel)


def build_local(name: str, split: str, image_root: Path, **files: str):
    """Build one split from explicit (absolute) annotation files and image folder."""
    info = {"annotations": {split: files}, "images": {"storage": str(image_root)}}
    return build(name, build_info=info)[split]


def build(name: str, **overrides):
    """Build ``name`` the way a LAVIS task does: merged dataset config → registered builder → build_datasets()."""
    cfg = Config.build_dataset_config(OmegaConf.create({"datasets": {name: overrides}}))
    return registry.get_builder_class(name)(cfg.datasets[name]).build_datasets()


@pytest.fixture
def cache_root(cache_root):
    """conftest's temporary LAVIS cache_root, created, as a Path."""
    root = Path(cache_root)
    root.mkdir(parents=True, exist_ok=True)
    return root


def test_builders_registered_with_package_configs():
    for name in LAYOUTS:
        builder_cls = registry.get_builder_class(name)
        path = Path(builder_cls.default_config_path())
        assert path.is_file() and "lavis_vislinginstruct" in path.parts
        assert name in OmegaConf.load(path).datasets


@pytest.mark.parametrize("name", sorted(SPLITS))
def test_eval_builder_from_default_layout(cache_root, name):
    split, count, instance_id, extra_keys = SPLITS[name]
    lay_out(name, cache_root)
    datasets = build(name)
    assert list(datasets) == [split]
    dataset = datasets[split]
    assert len(dataset) == count
    samples = [dataset[i] for i in range(len(dataset))]
    ids = [s["instance_id"] for s in samples]
    assert len(set(ids)) == count and all(isinstance(i, str) for i in ids)
    for sample in samples:
        assert set(sample) == EVAL_KEYS | extra_keys
        assert sample["image"].shape == (3, 224, 224)
        assert all(span and span in sample["text_input"] for span in sample["keep_spans"])
    sample = samples[ids.index(instance_id)]
    assert sample["text_input"] == TEXTS[name]
    for key, value in TRUTH[name].items():
        assert sample[key] == value
    batch = dataset.collater(samples[:3])
    assert batch["image"].shape == (min(3, count), 3, 224, 224)
    assert batch["text_input"] == [s["text_input"] for s in samples[:3]]


def test_llava_default_is_the_official_text(cache_root):
    """The default text_format: the official llava_dataset.py:28-39, re-derived by hand from its code."""
    lay_out("vli_llava_instruct_150k", cache_root)
    dataset = build("vli_llava_instruct_150k")["train"]
    assert len(dataset) == 4  # one sample per conversation
    single, multi, long_one, two = (dataset[i] for i in range(4))
    # "<image>" and "\n" removed from questions, "Qusetion" spelled so, "Answer: " cue, nothing stripped
    assert single["text_input"] == "Qusetion: What Colour is the KITE flying over the Beach? \n Answer: "
    assert single["text_output"] == "The kite is Red and Yellow, shaped like a Dragon."
    assert multi["text_input"] == (
        "Qusetion: How many Boats are moored at the pier? \n Answer: There are three boats moored at the pier. \n "
        "Qusetion: What is the weather like? \n Answer: It is overcast, with low grey clouds. \n "
        "Qusetion: Would it be safe to go sailing today? \n Answer: "
    )
    assert multi["text_output"] == "Probably, since the water looks calm; still, check the forecast first."
    assert long_one["text_output"].endswith("\n\n1. The kite is the brightest object.\n2. The towel is striped.")
    assert two["text_input"] == "Qusetion: What is the Dog carrying? \n Answer: The dog is carrying a Frisbee in " \
        "its mouth. \n Qusetion: Where is it running? \n Answer: "
    expanded = build("vli_llava_instruct_150k", options={"expand_turns": True})["train"]
    assert len(expanded) == 1 + 3 + 1 + 2
    assert expanded[1]["text_input"] == "Qusetion: How many Boats are moored at the pier? \n Answer: "
    assert expanded[2]["text_output"] == "It is overcast, with low grey clouds."


def test_llava_official_text_drops_the_oldest_turns_over_400_words(cache_root):
    lay_out("vli_llava_instruct_150k", cache_root)
    first, second = " ".join(["old"] * 300), " ".join(["new"] * 90)
    conversations = [("human", "<image>\nFirst?"), ("gpt", first), ("human", "Second?"), ("gpt", second),
                     ("human", "Third?"), ("gpt", "The end.")]
    _write_llava(cache_root, [{"id": "x", "image": "000000000101.jpg",
                               "conversations": [{"from": f, "value": v} for f, v in conversations]}])
    (sample,) = build("vli_llava_instruct_150k")["train"]
    # split(" "): 4 ("Qusetion:", "First?", "\n", "Answer:") + 301 (answer, "\n") + 4 + 91 + 4 + 1 (the empty word
    # after the cue) = 405 > 400: the text starts at the second "Qusetion:"
    assert sample["text_input"] == f"Qusetion: Second? \n Answer: {second} \n Qusetion: Third? \n Answer: "
    kept = 400 - (4 + 91 + 4 + 1) - 4 - 1  # the longest first answer that keeps the whole text (400 words)
    _write_llava(cache_root, [{"id": "x", "image": "000000000101.jpg", "conversations": [
        {"from": f, "value": " ".join(["old"] * kept) if v == first else v} for f, v in conversations]}])
    (sample,) = build("vli_llava_instruct_150k")["train"]
    assert len(sample["text_input"].split(" ")) == 400 and sample["text_input"].startswith("Qusetion: First? \n ")


def test_llava_unknown_text_format_is_named(cache_root):
    lay_out("vli_llava_instruct_150k", cache_root)
    with pytest.raises(ValueError, match="text_format must be one of official, qa, got 'QA'"):
        build("vli_llava_instruct_150k", options={"text_format": "QA"})


def test_llava_qa_format_and_conversion(cache_root):
    lay_out("vli_llava_instruct_150k", cache_root)
    dataset = build("vli_llava_instruct_150k", options={"text_format": "qa"})["train"]
    assert len(dataset) == 4  # one sample per conversation
    single, multi, long_one, two = (dataset[i] for i in range(4))
    assert set(single) == {"image", "text_input", "text_output", "instance_id"}
    assert single["image"].shape == (3, 224, 224)
    # single turn, "<image>\n" prefix removed, case kept
    assert single["text_input"] == "What Colour is the KITE flying over the Beach?"
    assert single["text_output"] == "The kite is Red and Yellow, shaped like a Dragon."
    # multi-turn: earlier turns as history + last question; "\n<image>" suffix removed
    assert multi["text_input"] == (
        "Q: How many Boats are moored at the pier?\nA: There are three boats moored at the pier.\n"
        "Q: What is the weather like?\nA: It is overcast, with low grey clouds.\nWould it be safe to go sailing today?"
    )
    assert multi["text_output"] == "Probably, since the water looks calm; still, check the forecast first."
    # no 50-word cap, no punctuation stripping; repeated LLaVA ids stay distinct
    assert len(long_one["text_output"].split()) > 50 and "\n\n1. The kite" in long_one["text_output"]
    assert [dataset[i]["instance_id"] for i in range(4)] == [
        "000000000101_0",
        "000000000202_1",
        "000000000101_2",
        "000000000303_3",
    ]
    assert "<image>" not in two["text_input"]


def test_llava_expand_turns(cache_root):
    lay_out("vli_llava_instruct_150k", cache_root)
    dataset = build("vli_llava_instruct_150k", options={"expand_turns": True, "text_format": "qa"})["train"]
    assert len(dataset) == 1 + 3 + 1 + 2
    assert dataset[1]["text_input"] == "How many Boats are moored at the pier?"
    assert dataset[2]["text_input"].endswith("\nWhat is the weather like?")


@pytest.mark.parametrize("value", ["<image>\nWhat is this?", "What is this?\n<image>", "  <image>\nWhat is this?  "])
def test_strip_image_token(value):
    assert strip_image_token(value) == "What is this?"


def _write_llava(root: Path, records) -> None:
    path = root / "llava_instruct_150k" / "llava_instruct_150k.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))


@pytest.mark.parametrize(
    "conversations",
    [
        [],
        [{"from": "human", "value": "<image>\nQ?"}],
        [{"from": "gpt", "value": "A."}, {"from": "human", "value": "<image>\nQ?"}],
        [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "A."}],
        [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt"}],
    ],
)
def test_malformed_llava_record_names_its_id(cache_root, conversations):
    lay_out("vli_llava_instruct_150k", cache_root)
    _write_llava(cache_root, [{"id": "bad_777", "image": "000000000101.jpg", "conversations": conversations}])
    with pytest.raises(MalformedRecordError, match="bad_777"):
        build("vli_llava_instruct_150k")


def test_llava_missing_image_names_path_or_is_skipped(cache_root, caplog):
    lay_out("vli_llava_instruct_150k", cache_root)
    missing = cache_root / "coco/images/train2017/000000000202.jpg"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build("vli_llava_instruct_150k")
    with caplog.at_level(logging.WARNING):
        dataset = build("vli_llava_instruct_150k", options={"skip_missing_images": True})["train"]
    assert len(dataset) == 3 and dataset.num_skipped_missing_images == 1
    assert "skipped 1 of 4" in caplog.text


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_missing_annotation_file_names_path_and_source(cache_root, name):
    lay_out(name, cache_root)
    files, _ = LAYOUTS[name]
    first = cache_root / next(iter(files.values()))
    shutil.rmtree(first) if first.is_dir() else first.unlink()
    with pytest.raises(FileNotFoundError, match=str(first)) as err:
        build(name)
    assert "comes from" in str(err.value) and "never downloads" in str(err.value)


def test_missing_image_folder_names_it(cache_root):
    lay_out("vli_gqa", cache_root, images=False)
    with pytest.raises(FileNotFoundError, match=str(cache_root / "gqa/images")):
        build("vli_gqa")


def test_eval_missing_or_corrupt_image_names_path(cache_root):
    lay_out("vli_vizwiz", cache_root)
    missing = cache_root / "vizwiz/images/val/VizWiz_val_00009002.jpg"
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=str(missing)):
        build("vli_vizwiz")
    missing.write_bytes(b"not an image")
    dataset = build("vli_vizwiz")["val"]
    with pytest.raises(ImageLoadError, match=str(missing)):
        dataset[1]


def test_flickr30k_lavis_layout_absolute_path(cache_root):
    for n in (1, 3, 5):
        make_image(cache_root / f"flickr30k/images/flickr30k-images/900000000{n}.jpg")
    lavis_file = str(FIXTURES / "flickr30k" / "flickr30k_test.json")
    dataset = build("vli_flickr30k", build_info={"annotations": {"test": {"storage": lavis_file}}})["test"]
    assert [dataset[i]["instance_id"] for i in range(3)] == ["9000000001", "9000000003", "9000000005"]
    assert len(dataset[2]["captions"]) == 5


def test_iconqa_problems_json_layout(cache_root):
    lay_out("vli_iconqa", cache_root)
    test = {
        "storage": str(FIXTURES / "iconqa/problems.json"),
        "pid_splits_storage": str(FIXTURES / "iconqa/pid_splits.json"),
    }
    dataset = build("vli_iconqa", build_info={"annotations": {"test": test}})["test"]
    assert [dataset[i]["instance_id"] for i in range(3)] == ["7", "12", "105"]
    assert dataset[2]["correct_choice_idx"] == 2
    batch = dataset.collater([dataset[i] for i in range(3)])  # 4, 2 and 3 candidates
    assert [len(c) for c in batch["candidates"]] == [4, 2, 3]


def test_scienceqa_selects_test_problems_with_image(cache_root):
    lay_out("vli_scienceqa", cache_root)
    dataset = build("vli_scienceqa")["test"]
    by_id = {dataset[i]["instance_id"]: dataset[i] for i in range(len(dataset))}
    assert sorted(by_id) == ["13", "21", "8"]  # "9" has no image, "3" is train
    assert by_id["13"]["text_input"].startswith("Given the image")  # empty hint → no context
    assert by_id["21"]["keep_spans"][0] == "Look at the models of molecules below."


def test_hateful_memes_shared_ids(cache_root):
    lay_out("vli_hateful_memes", cache_root)
    both = build("vli_hateful_memes")["val"]
    ids = [both[i]["instance_id"] for i in range(len(both))]
    assert {"dev_seen_90002", "dev_unseen_90002"} <= set(ids)
    deduped = build("vli_hateful_memes", options={"dedupe_shared_ids": True})["val"]
    assert len(deduped) == 5
    with pytest.raises(TypeError):
        build("vli_hateful_memes", options={"dedupe_shared_idz": True})


def test_textvqa_plain_ocr_mapping(cache_root):
    lay_out("vli_textvqa", cache_root)
    mapping = cache_root / "ocr_map.json"
    mapping.write_text(json.dumps({"f00000000000a002": ["NO", "23"]}))
    dataset = build("vli_textvqa", build_info={"annotations": {"val": {"ocr_storage": str(mapping)}}})["val"]
    assert dataset[1]["text_input"] == "OCR tokens: NO, 23 Question: what number is on the jersey? \n Short answer:"
    assert dataset[0]["keep_spans"] == ["what is written on the red sign?"]  # no OCR entry → no tokens


def test_textvqa_prompt_has_the_first_30_ocr_tokens(cache_root):
    lay_out("vli_textvqa", cache_root)
    tokens = [f"TOK{i}" for i in range(42)]
    mapping = cache_root / "ocr_map.json"
    mapping.write_text(json.dumps({"f00000000000a002": tokens}))
    dataset = build("vli_textvqa", build_info={"annotations": {"val": {"ocr_storage": str(mapping)}}})["val"]
    listed = ", ".join(tokens[:30])
    assert dataset[1]["text_input"] == f"OCR tokens: {listed} Question: what number is on the jersey? \n Short answer:"
    assert dataset[1]["keep_spans"] == ["what number is on the jersey?", listed]


def test_visdial_default_is_the_last_round_of_each_dialog(cache_root):
    """Appendix D's 2064 Visual Dialog samples: one per val dialog, its last round (configs/datasets/visdial)."""
    lay_out("vli_visdial", cache_root)
    last = build("vli_visdial")["val"]
    every = build("vli_visdial", options={"rounds": "all"})["val"]
    assert len(every) == 3 * len(last) == 6
    assert [last[i]["instance_id"] for i in range(len(last))] == ["900001_3", "900002_3"]
    full = {every[i]["instance_id"]: every[i] for i in range(len(every))}
    for i in range(len(last)):
        sample = last[i]
        assert {k: v for k, v in sample.items() if k != "image"} == {
            k: v for k, v in full[sample["instance_id"]].items() if k != "image"}
        assert sample["text_input"].count(" a: ") == 2  # rounds 1 and 2 as its history
    with pytest.raises(ValueError, match="rounds must be one of last, all, got 'first'"):
        build("vli_visdial", options={"rounds": "first"})


def test_visdial_first_round_has_the_caption_and_no_history(cache_root):
    lay_out("vli_visdial", cache_root)
    dataset = build("vli_visdial", options={"rounds": "all"})["val"]
    first = next(dataset[i] for i in range(len(dataset)) if dataset[i]["round_id"] == 1)
    assert first["text_input"].startswith('This image has the caption "')
    assert "dialog history" not in first["text_input"]
    assert all(span in first["text_input"] for span in first["keep_spans"]) and len(first["keep_spans"]) == 2


# ---- the real records in ../shared/benchmark-samples (research-only data, never copied into the project) ----

needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real benchmark samples not found at {REAL}")


def _images(root: Path, rel_paths) -> None:
    for rel in set(rel_paths):
        make_image(root / rel)


@needs_real
def test_real_samples_parse(cache_root):
    vsr = [json.loads(line) for line in (REAL / "vsr/test.jsonl").read_text().splitlines() if line.strip()]
    _images(cache_root / "vsr", [r["image"] for r in vsr])
    ds = build_local("vli_vsr", "test", cache_root / "vsr", storage=str(REAL / "vsr/test.jsonl"))
    assert len(ds) == len(vsr) and ds[0]["correct_choice_idx"] == (0 if vsr[0]["label"] == 1 else 1)

    hm_files = [str(REAL / f"hateful_memes/{f}") for f in ("dev_seen.jsonl", "dev_unseen.jsonl")]
    memes = [json.loads(line) for f in hm_files for line in Path(f).read_text().splitlines() if line.strip()]
    _images(cache_root / "hm", [m["img"] for m in memes])
    assert len(build_local("vli_hateful_memes", "val", cache_root / "hm", storage=hm_files)) == len(memes)
    hm_cfg = {"annotations": {"val": {"storage": hm_files}}, "images": {"storage": str(cache_root / "hm")}}
    deduped = build("vli_hateful_memes", build_info=hm_cfg, options={"dedupe_shared_ids": True})["val"]
    assert len(deduped) == len({m["id"] for m in memes})

    icon_root = cache_root / "iconqa"
    shutil.copytree(REAL / "iconqa/iconqa", icon_root)
    pids = [p.name for p in (icon_root / "test/choose_txt").iterdir()]
    _images(icon_root, [f"test/choose_txt/{pid}/image.png" for pid in pids])
    ds = build_local("vli_iconqa", "test", icon_root, storage=str(icon_root / "test/choose_txt"))
    assert len(ds) == len(pids) and all(ds[i]["candidates"] for i in range(len(ds)))

    problems = json.loads((REAL / "scienceqa/problems.json").read_text())
    test_pids = json.loads((REAL / "scienceqa/pid_splits.json").read_text())["test"]
    with_image = [pid for pid in test_pids if problems[pid]["image"]]
    _images(cache_root / "sqa", [f"test/{pid}/image.png" for pid in with_image])
    sqa = {
        "storage": str(REAL / "scienceqa/problems.json"),
        "pid_splits_storage": str(REAL / "scienceqa/pid_splits.json"),
    }
    ds = build_local("vli_scienceqa", "test", cache_root / "sqa", **sqa)
    assert len(ds) == len(with_image) > 0
    assert all(span in ds[i]["text_input"] for i in range(len(ds)) for span in ds[i]["keep_spans"])


@needs_real
def test_real_visdial_flickr_textvqa_llava(cache_root):
    visdial = json.loads((REAL / "visdial/visdial_1.0_val.json").read_text())["data"]["dialogs"]
    _images(cache_root / "vd", [f"VisualDialog_val2018/VisualDialog_val2018_{d['image_id']:012d}.jpg" for d in visdial])
    vd = {"annotations": {"val": {"storage": str(REAL / "visdial/visdial_1.0_val.json")}},
          "images": {"storage": str(cache_root / "vd")}}
    ds = build("vli_visdial", build_info=vd, options={"rounds": "all"})["val"]
    assert len(ds) == 10 * len(visdial)
    first, second = ds[0], ds[1]
    assert len(first["candidates"]) == 100 and first["instance_id"] == f"{visdial[0]['image_id']}_1"
    assert first["text_input"] != second["text_input"] and second["round_id"] == 2  # no shared mutated dict
    last = build_local("vli_visdial", "val", cache_root / "vd", storage=str(REAL / "visdial/visdial_1.0_val.json"))
    assert len(last) == len(visdial) and {last[i]["round_id"] for i in range(len(last))} == {10}
    assert last[0]["text_input"] == ds[9]["text_input"] and last[0]["text_input"].count(" a: ") == 9

    flickr = json.loads((REAL / "flickr30k/flickr30k_test.json").read_text())
    _images(cache_root / "fl", [r["image"] for r in flickr])
    ds = build_local("vli_flickr30k", "test", cache_root / "fl", storage=str(REAL / "flickr30k/flickr30k_test.json"))
    assert len(ds) == len(flickr) and ds[0]["captions"] == flickr[0]["caption"]

    # TextVQA: the transcribed val records wrapped as the official {"data": [...]}; OCR tokens from LLaVA's file
    records = json.loads((REAL / "textvqa/textvqa_val_records.json").read_text())
    (cache_root / "tv.json").write_text(json.dumps({"data": records}))
    llava = [json.loads(line) for line in (REAL / "textvqa/llava_textvqa_val_v051_ocr.jsonl").read_text().splitlines()]
    ocr = {r["question_id"]: r["text"].split("\nReference OCR token: ")[1].split("\n")[0].split(", ") for r in llava}
    (cache_root / "ocr.json").write_text(json.dumps(ocr))
    _images(cache_root / "tvi", [f"{r['image_id']}.jpg" for r in records])
    tv = {"storage": str(cache_root / "tv.json"), "ocr_storage": str(cache_root / "ocr.json")}
    ds = build_local("vli_textvqa", "val", cache_root / "tvi", **tv)
    assert len(ds) == len(records) and ds[0]["text_input"].startswith("OCR tokens: DAKOTA, DIGITAL")

    excerpt_path = REAL / "llava_instruct_150k/llava_instruct_150k.excerpt.json"
    excerpt = json.loads(excerpt_path.read_text())
    _images(cache_root / "coco", [r["image"] for r in excerpt])
    ds = build_local("vli_llava_instruct_150k", "train", cache_root / "coco", storage=str(excerpt_path))
    assert len(ds) == len(excerpt)
    assert all("<image>" not in ds[i]["text_input"] for i in range(len(ds)))
    assert isinstance(ds.collater([ds[0], ds[1]])["image"], torch.Tensor)


def _official_llava_text(conversations):
    """The official ``LLAVA150kDataset.__getitem__`` text (Zhudongsheng75/VisLingInstruct
    vislinginstruct/datasets/datasets/llava_dataset.py:28-39), transcribed from its code: it is not available
    offline, and the test must not derive the expectation from the code under test."""
    import re

    text_input = ''
    for dialog in conversations[:-1]:
        if dialog['from'] == 'human':
            text_input += 'Qusetion: {} \n '.format(dialog['value'].replace('<image>', '').replace('\n', ''))
        else:
            text_input += 'Answer: {} \n '.format(dialog['value'])
    text_input += 'Answer: '
    text_output = conversations[-1]['value']
    while len(text_input.split(' ')) > 400:
        indices = [s.start() for s in re.finditer('Qusetion:', text_input)]
        text_input = text_input[indices[1]:]
    return text_input, text_output


@needs_real
def test_real_llava_records_get_the_official_text(cache_root):
    excerpt_path = REAL / "llava_instruct_150k/llava_instruct_150k.excerpt.json"
    excerpt = json.loads(excerpt_path.read_text())
    _images(cache_root / "coco", [r["image"] for r in excerpt])
    ds = build_local("vli_llava_instruct_150k", "train", cache_root / "coco", storage=str(excerpt_path))
    first = ds[0]
    assert excerpt[0]["id"] == "000000033471"  # "<image>\n" prefix, three turns; written out by hand:
    assert first["text_input"] == (
        "Qusetion: What are the colors of the bus in the image? \n "
        "Answer: The bus in the image is white and red. \n "
        "Qusetion: What feature can be seen on the back of the bus? \n "
        "Answer: The back of the bus features an advertisement. \n "
        "Qusetion: Is the bus driving down the street or pulled off to the side? \n "
        "Answer: "
    )
    assert first["text_output"] == (
        "The bus is driving down the street, which is crowded with people and other vehicles.")
    for i, record in enumerate(excerpt):  # the "\n<image>" suffix record too
        assert (ds[i]["text_input"], ds[i]["text_output"]) == _official_llava_text(record["conversations"])
    qa = build("vli_llava_instruct_150k", options={"text_format": "qa"}, build_info={
        "annotations": {"train": {"storage": str(excerpt_path)}}, "images": {"storage": str(cache_root / "coco")}})
    assert qa["train"][1]["text_input"] == (
        "Q: Where is the cat positioned in the image?\n"
        "A: The cat is positioned on top of the back of the couch in the living room.\n"
        "What is the cat doing in the image?"
    )
