"""Write the demo world to disk in the official file formats of the datasets it stands in for.

The output folder is laid out as a LAVIS ``cache_root`` for the packaged ``vli_*`` dataset configs
(``configs/datasets/<name>/defaults.yaml``), so pointing ``cache_root`` at it is all a run needs::

    manifest.json                                      files, seed, counts, chance levels, instructions
    llava_instruct_150k/llava_instruct_150k.json       LLaVA-Instruct-150K conversations (training)
    coco/images/train2017/<12 digits>.jpg              their images
    flickr30k/annotations/dataset_flickr30k.json       Karpathy split file, 5 references per image, split "test"
    flickr30k/images/flickr30k-images/<id>.jpg
    gqa/annotations/testdev_balanced_questions.json    GQA questions1.2: dict qid -> question
    gqa/images/<imageId>.jpg
    vsr/annotations/zeroshot/test.jsonl                VSR split file (one JSON object per line)
    vsr/images/<image>
    scienceqa/data/problems.json, pid_splits.json      ScienceQA (all problems in split "test", all with an image)
    scienceqa/images/test/<pid>/image.png
    textvqa/annotations/TextVQA_0.5.1_val.json         TextVQA questions (10 answers each)
    textvqa/annotations/TextVQA_Rosetta_OCR_v0.2_val.json   Rosetta-layout OCR: the rendered word, a perfect OCR
    textvqa/images/train_images/<image_id>.jpg

Beside each annotation file lies ``scenes.json`` (not an official file): the scene behind each image, keyed by the
record's image reference (LLaVA ``image``, Flickr ``filename``, GQA ``imageId``, VSR ``image``, ScienceQA pid,
TextVQA ``image_id``), for tests and debugging. Invented URLs use the reserved ``.invalid`` domain.

Record layouts are built by :mod:`.formats`. Each dataset draws from its own random stream
(``vli-world/<seed>/<dataset>``), so the sets do not shift when another count changes. JSON is written with sorted
keys and no timestamps; images are encoded deterministically. Output is byte-identical for a seed within one
environment; the JSON is also identical across environments, image bytes may differ across Pillow/zlib/libjpeg builds.
"""

import hashlib
import json
import logging
import os
import random
import shutil
from collections import Counter, defaultdict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from lavis_vislinginstruct.processors.templates import TEMPLATES

from . import comparison, formats, user_style
from . import instructions as ins
from .scenes import (
    COLORS,
    DEFAULT_IMAGE_SIZE,
    SHAPES,
    SIZES,
    WORDS,
    Scene,
    encode_image,
    render_scene,
    sample_scene,
    word_box,
)
from .tasks import Question, Statement, captions, make_choice, make_question, make_statement
from .user_style import user_question, user_statement

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
WORDINGS = ("user", "common")
DATASET_DIRS = ("llava_instruct_150k", "coco", "flickr30k", "gqa", "vsr", "scienceqa", "textvqa")


class _Output:
    """Writes files under one root and remembers annotation files (with their sha256) for the manifest."""

    def __init__(self, root: str, image_size: int) -> None:
        self.root = root
        self.image_size = image_size
        self.annotation_files: Dict[str, str] = {}
        self.n_images = 0

    def _path(self, rel: str) -> str:
        full = os.path.join(self.root, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return full

    def image(self, rel: str, scene: Scene) -> None:
        """Render ``scene`` and save it at ``rel`` (format from the extension)."""
        with open(self._path(rel), "wb") as f:
            f.write(encode_image(render_scene(scene, self.image_size), rel.rsplit(".", 1)[-1]))
        self.n_images += 1

    def text(self, rel: str, content: str, annotation: bool = True) -> None:
        """Write UTF-8 text; ``annotation`` files are listed in the manifest."""
        data = content.encode("utf-8")
        with open(self._path(rel), "wb") as f:
            f.write(data)
        if annotation:
            self.annotation_files[rel] = hashlib.sha256(data).hexdigest()

    def json(self, rel: str, obj: Any, annotation: bool = True) -> None:
        """Write ``obj`` as JSON with sorted keys (byte-stable)."""
        self.text(rel, json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n", annotation)


def _stream(seed: int, name: str) -> random.Random:
    # A str seed is hashed with SHA-512 by `random`, independent of PYTHONHASHSEED and the platform.
    return random.Random(f"vli-world/{seed}/{name}")


class _EvalSpec:
    """How the evaluation sets are drawn: which slice of the scene space and in which wording; collects the
    filled instructions so that training can avoid them."""

    def __init__(self, scenes: str, wording: str) -> None:
        if scenes not in ("eval", "train"):
            raise ValueError(f"eval_scenes must be 'eval' (held out) or 'train' (a validation world), got {scenes!r}")
        if wording not in WORDINGS:
            raise ValueError(f"eval_wording must be one of {WORDINGS}, got {wording!r}")
        self.scenes = scenes
        self.wording = wording
        self.instructions: List[str] = []

    def question_text(self, question: Question, rng: random.Random) -> str:
        """The question as the set asks it."""
        return user_question(question, rng) if self.wording == "user" else question.text

    def statement_text(self, statement: Statement, rng: random.Random) -> str:
        """The statement as the set words it."""
        return user_statement(statement, rng) if self.wording == "user" else statement.text


def _eval_scenes(rng: random.Random, n: int, split: str = "eval", **constraints: Any) -> List[Scene]:
    """``n`` scenes of the ``split`` slice, distinct within the set while the slice of the scene space allows."""
    seen: set = set()
    scenes = []
    for _ in range(n):
        scene = sample_scene(rng, split, exclude=seen, **constraints)
        seen.add(scene.key())
        scenes.append(scene)
    return scenes


Guess = Tuple[str, str, Sequence[str]]  # (question type, correct answer, options) of one evaluation record


def blind_baselines(guesses: List[Guess]) -> Dict[str, float]:
    """Accuracy of two blind guessers on a set of records.

    ``chance`` picks uniformly among a record's options. ``answer_prior`` knows how often each answer occurs per
    question type in the set and always picks the most frequent of the record's options: the floor for a model that
    reads only the question.
    """
    counts: Dict[str, Counter] = defaultdict(Counter)
    for qtype, answer, _ in guesses:
        counts[qtype][answer] += 1
    chance = sum(1.0 / len(options) for _, _, options in guesses)
    prior = sum(max(options, key=lambda o: counts[qtype][o]) == answer for qtype, answer, options in guesses)
    n = max(len(guesses), 1)
    return {"chance": round(chance / n, 6), "answer_prior": round(prior / n, 6)}


def _entry(
    builder: str,
    fmt: str,
    annotations: Dict[str, str],
    images: str,
    scenes: str,
    count: int,
    metric: Optional[str] = None,
    guesses: Optional[List[Guess]] = None,
    **extra: Any,
) -> Dict[str, Any]:
    """A manifest entry; evaluation sets name their ``metric`` and, for accuracy metrics, the blind baselines."""
    entry = {"builder": builder, "format": fmt, "annotations": annotations, "images": images, "scenes": scenes}
    entry.update(count=count, **extra)
    if metric is not None:
        entry.update(metric=metric, **(blind_baselines(guesses) if guesses else {"chance": None, "answer_prior": None}))
    return entry


def write_llava(
    out: _Output,
    rng: random.Random,
    n: int,
    mix: str = "default",
    forbidden: Sequence[str] = (),
    name: str = "llava_instruct_150k",
    first_id: int = 1,
) -> Dict[str, Any]:
    """Training conversations in LLaVA-Instruct-150K format (one image per record), drawn from the named ``mix``;
    no instruction equals one of ``forbidden`` (the evaluation sets'). ``name`` is the file's stem under
    ``llava_instruct_150k/``; images are numbered from ``first_id``."""
    records, scenes, kinds = [], {}, {}
    for i in range(n):
        scene = sample_scene(rng, "train")
        record = ins.build_training_record(scene, rng, mix, forbidden)
        name_i = f"{first_id + i:012d}.jpg"
        out.image(f"coco/images/train2017/{name_i}", scene)
        records.append({"id": name_i[:-4], "image": name_i, "conversations": record.conversations()})
        scenes[name_i] = scene.to_dict()
        label = record.kind if record.family is None else f"{record.kind}/{record.family}"
        kinds[label] = kinds.get(label, 0) + 1
    stem = "" if name == "llava_instruct_150k" else f"{name}_"
    scenes_file = f"llava_instruct_150k/{stem}scenes.json"
    out.json(f"llava_instruct_150k/{name}.json", records)
    out.json(scenes_file, scenes, annotation=False)
    annotations = {"train": f"llava_instruct_150k/{name}.json"}
    return _entry(
        "vli_llava_instruct_150k",
        "llava_instruct_150k",
        annotations,
        "coco/images/train2017",
        scenes_file,
        n,
        mix=mix,
        kinds=dict(sorted(kinds.items())),
        shares={k: round(v / max(n, 1), 4) for k, v in sorted(kinds.items())},
    )


def write_comparison_candidates(out: _Output, rng: random.Random, n: int, first_id: int, mix: str,
                                forbidden: Sequence[str], name: str = "comparison") -> Dict[str, Any]:
    """The (initial, rewritten) pairs AIO's comparison data is made of (:func:`.comparison.candidates`), with their
    images among the training images (ids after the conversations'), in ``llava_instruct_150k/<name>_*.json``."""
    named = []
    for i in range(n):
        scene = sample_scene(rng, "train")
        image = f"{first_id + i:012d}.jpg"
        out.image(f"coco/images/train2017/{image}", scene)
        named.append((image, scene))
    pairs = comparison.candidates(named, rng, mix, forbidden)
    candidates = f"llava_instruct_150k/{name}_candidates.json"
    out.json(candidates, pairs, annotation=False)
    out.json(f"llava_instruct_150k/{name}_scenes.json", {image: sc.to_dict() for image, sc in named}, annotation=False)
    return {"candidates": candidates, "count": n,
            "user_share": round(sum(p["user"] for p in pairs) / max(n, 1), 4)}


def write_flickr30k(out: _Output, rng: random.Random, n: int, spec: _EvalSpec) -> Dict[str, Any]:
    """Captioning set in the Karpathy ``dataset_flickr30k.json`` format, all images in split ``test``."""
    images, scenes = [], {}
    for i, scene in enumerate(_eval_scenes(rng, n, spec.scenes)):
        filename = f"{1000000 + i}.jpg"
        out.image(f"flickr30k/images/flickr30k-images/{filename}", scene)
        images.append(formats.karpathy_image(filename, i, captions(scene)))
        scenes[filename] = scene.to_dict()
    out.json("flickr30k/annotations/dataset_flickr30k.json", {"images": images, "dataset": "flickr30k"})
    out.json("flickr30k/annotations/scenes.json", scenes, annotation=False)
    annotations = {"test": "flickr30k/annotations/dataset_flickr30k.json"}
    return _entry(
        "vli_flickr30k",
        "karpathy_dataset_json",
        annotations,
        "flickr30k/images",
        "flickr30k/annotations/scenes.json",
        n,
        "CIDEr",
        None,
        image_subdir="flickr30k-images",
        instruction=TEMPLATES["flickr30k"],
    )


def write_gqa(out: _Output, rng: random.Random, n: int, spec: _EvalSpec) -> Dict[str, Any]:
    """Short-answer VQA in the official GQA ``testdev_balanced_questions.json`` layout (one question per image)."""
    questions, scenes, guesses = {}, {}, []
    for i, scene in enumerate(_eval_scenes(rng, n, spec.scenes)):
        image_id, qid = f"n{100000 + i}", str(200000000 + i)
        question = make_question(scene, ins.GQA_TYPES[i % len(ins.GQA_TYPES)], rng)
        text = spec.question_text(question, rng)
        spec.instructions.append(ins.gqa_instruction(text))
        out.image(f"gqa/images/{image_id}.jpg", scene)
        questions[qid] = formats.gqa_question(question, image_id, qid, text)
        scenes[image_id] = scene.to_dict()
        guesses.append((question.qtype, question.answer, question.answer_space))
    out.json("gqa/annotations/testdev_balanced_questions.json", questions)
    out.json("gqa/annotations/scenes.json", scenes, annotation=False)
    annotations = {"val": "gqa/annotations/testdev_balanced_questions.json"}
    return _entry(
        "vli_gqa",
        "gqa_questions1.2",
        annotations,
        "gqa/images",
        "gqa/annotations/scenes.json",
        n,
        "exact-match accuracy",
        guesses,
        instruction=TEMPLATES["gqa"],
    )


def write_vsr(out: _Output, rng: random.Random, n: int, spec: _EvalSpec) -> Dict[str, Any]:
    """Spatial statements in the VSR jsonl format; labels balanced (half true, in shuffled order)."""
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    lines, scenes = [], {}
    for i, (scene, label) in enumerate(zip(_eval_scenes(rng, n, spec.scenes, min_objects=2), labels)):
        name = f"{i + 1:012d}.jpg"
        statement = make_statement(scene, label, rng)
        caption = spec.statement_text(statement, rng)
        spec.instructions.append(ins.vsr_instruction(caption))
        voters = tuple(rng.sample(range(1, 60), 3))
        out.image(f"vsr/images/{name}", scene)
        record = formats.vsr_line(name, statement, rng.randrange(60), voters, caption)
        lines.append(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
        scenes[name] = scene.to_dict()
    out.text("vsr/annotations/zeroshot/test.jsonl", "".join(lines))
    out.json("vsr/annotations/zeroshot/scenes.json", scenes, annotation=False)
    return _entry(
        "vli_vsr",
        "vsr_jsonl",
        {"test": "vsr/annotations/zeroshot/test.jsonl"},
        "vsr/images",
        "vsr/annotations/zeroshot/scenes.json",
        n,
        "accuracy",
        [("vsr", ins.VSR_ANSWERS[label], ins.VSR_ANSWERS) for label in labels],
        label_balance=round(sum(labels) / max(n, 1), 6),
        candidates=list(ins.VSR_ANSWERS),
        instruction=TEMPLATES["vsr"],
    )


def write_scienceqa(out: _Output, rng: random.Random, n: int, spec: _EvalSpec) -> Dict[str, Any]:
    """Multiple choice in the official ScienceQA ``problems.json`` + ``pid_splits.json`` layout (split test)."""
    problems, scenes, guesses = {}, {}, []
    for i, scene in enumerate(_eval_scenes(rng, n, spec.scenes)):
        pid = str(i + 1)
        types = [t for t in ins.SCIENCEQA_TYPES if t != "text" or scene.word is not None]
        problem = make_choice(scene, types[i % len(types)], rng)
        text = spec.question_text(problem.question, rng)
        hint = ins.scienceqa_hint(problem)
        spec.instructions.append(ins.scienceqa_instruction(text, problem.choices, hint))
        out.image(f"scienceqa/images/test/{pid}/image.png", scene)
        problems[pid] = formats.scienceqa_problem(problem, hint, text=text)
        scenes[pid] = scene.to_dict()
        guesses.append((problem.question.qtype, problem.question.answer, problem.choices))
    out.json("scienceqa/data/problems.json", problems)
    out.json("scienceqa/data/pid_splits.json", formats.scienceqa_pid_splits(list(problems)))
    out.json("scienceqa/data/scenes.json", scenes, annotation=False)
    annotations = {"problems": "scienceqa/data/problems.json", "pid_splits": "scienceqa/data/pid_splits.json"}
    return _entry(
        "vli_scienceqa",
        "scienceqa_problems",
        annotations,
        "scienceqa/images",
        "scienceqa/data/scenes.json",
        n,
        "accuracy",
        guesses,
        instruction=TEMPLATES["scienceqa"],
    )


def write_textvqa(out: _Output, rng: random.Random, n: int, spec: _EvalSpec, seed: int) -> Dict[str, Any]:
    """Text reading in the TextVQA 0.5.1 val format plus a Rosetta-layout OCR file holding the rendered word."""
    data, ocr, scenes, guesses = [], [], {}, []
    size = out.image_size
    for i, scene in enumerate(_eval_scenes(rng, n, spec.scenes, word=True)):
        image_id = hashlib.sha256(f"vli-world/{seed}/textvqa/{i}".encode()).hexdigest()[:16]
        question = make_question(scene, "text", rng)
        text = spec.question_text(question, rng)
        spec.instructions.append(ins.textvqa_instruction(text, [scene.word]))
        out.image(f"textvqa/images/train_images/{image_id}.jpg", scene)
        data.append(formats.textvqa_question(question, scene, image_id, 34602 + i, size, text))
        ocr.append(formats.rosetta_ocr(image_id, scene.word, word_box(scene, size), size))
        scenes[image_id] = scene.to_dict()
        guesses.append(("text", question.answer, WORDS))
    header = {"dataset_type": "val", "dataset_name": "textvqa"}
    out.json("textvqa/annotations/TextVQA_0.5.1_val.json", {**header, "dataset_version": "0.5.1", "data": data})
    out.json("textvqa/annotations/TextVQA_Rosetta_OCR_v0.2_val.json", {**header, "dataset_version": "0.2", "data": ocr})
    out.json("textvqa/annotations/scenes.json", scenes, annotation=False)
    annotations = {
        "val": "textvqa/annotations/TextVQA_0.5.1_val.json",
        "ocr": "textvqa/annotations/TextVQA_Rosetta_OCR_v0.2_val.json",
    }
    return _entry(
        "vli_textvqa",
        "textvqa_0.5.1",
        annotations,
        "textvqa/images/train_images",
        "textvqa/annotations/scenes.json",
        n,
        "VQA accuracy",
        guesses,
        instruction=TEMPLATES["textvqa"],
    )


def _prepare(out_dir: str) -> None:
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        if not os.path.isfile(os.path.join(out_dir, "manifest.json")):
            raise FileExistsError(f"{out_dir} is not empty and holds no world manifest.json; refusing to write")
        for name in DATASET_DIRS:  # a previous world: replace it whole so no stale image survives
            shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)
    os.makedirs(out_dir, exist_ok=True)


def generate_world(
    out_dir: str,
    seed: int = 0,
    n_train: int = 2000,
    n_eval: int = 200,
    image_size: int = DEFAULT_IMAGE_SIZE,
    mix: str = "default",
    eval_wording: str = "user",
    eval_scenes: str = "eval",
    n_compare: int = 0,
    text_mix: str = "demo_text",
    n_text: int = 0,
    focus_mix: str = "demo_focus",
    n_focus_compare: int = 0,
    n_focus_text: int = 0,
) -> Dict[str, Any]:
    """Generate the training set and the five evaluation sets and write ``manifest.json``.

    Args:
        out_dir: Output folder (then usable as LAVIS ``cache_root``); must be empty, absent, or hold a previous
            world (which is replaced).
        seed: Seed of every random stream; equal seeds give byte-identical output.
        n_train: Number of training conversations (one image each).
        n_eval: Number of records (and images) in each evaluation set.
        image_size: Side of the square images in pixels.
        mix: Training mix, a key of :data:`.instructions.MIXES` (the evaluation sets do not depend on it).
        eval_wording: ``user``: the evaluation sets ask in user style (:mod:`.user_style`); ``common``: in the
            common phrasings training uses.
        eval_scenes: ``eval``: the held-out slice of the scene space; ``train``: the training slice, for a
            validation world (its own seed) whose numbers may steer design choices that held-out numbers must not.
        n_compare: (initial, rewritten) pairs for AIO's comparison data (:mod:`.comparison`), written with their
            images; the caller scores them with the model and writes the conversations
            (:func:`write_comparison_training`).
        text_mix: Mix of the second training file (``llava_instruct_150k/phase2.json``).
        n_text: Its conversations (0: no second file); :func:`write_comparison_training` adds the comparison ones.
        focus_mix: Mix of a later training round's data (``focus_candidates.json``, ``focus.json``):
            the families and kinds the earlier files teach least.
        n_focus_compare: Comparison pairs of that round (0: none).
        n_focus_text: Conversations of that round (0: none).

    Returns:
        The manifest (also written to ``<out_dir>/manifest.json``).
    """
    for name in (mix, text_mix, focus_mix):
        if name not in ins.MIXES:
            raise ValueError(f"unknown training mix {name!r}; choose one of {sorted(ins.MIXES)}")
    spec = _EvalSpec(eval_scenes, eval_wording)  # checks both before anything is written
    _prepare(out_dir)
    out = _Output(out_dir, image_size)
    writers: List[Tuple[str, Callable[..., Dict[str, Any]]]] = [
        ("flickr30k", write_flickr30k),
        ("gqa", write_gqa),
        ("vsr", write_vsr),
        ("scienceqa", write_scienceqa),
    ]
    # evaluation first: training avoids its instructions (each set has its own stream, so the order changes nothing)
    evaluation = {name: write(out, _stream(seed, name), n_eval, spec) for name, write in writers}
    evaluation["textvqa"] = write_textvqa(out, _stream(seed, "textvqa"), n_eval, spec, seed)
    for entry in evaluation.values():
        entry.update(wording=eval_wording, scenes_from=eval_scenes)
    forbidden = set(spec.instructions)
    llava = write_llava(out, _stream(seed, "llava_instruct_150k"), n_train, mix, forbidden)
    if n_compare:
        llava["comparison"] = write_comparison_candidates(
            out, _stream(seed, "comparison"), n_compare, n_train + 1, mix, forbidden
        )
    train = {"llava_instruct_150k": llava}
    if n_text:
        train["phase2"] = write_llava(out, _stream(seed, "phase2"), n_text, text_mix, forbidden, name="phase2",
                                      first_id=n_train + n_compare + 1)
    # the focus round's files: streams of their own and images after the others', so every file above stays the same
    first_id = n_train + n_compare + n_text + 1
    if n_focus_compare:
        llava["focus_comparison"] = write_comparison_candidates(
            out, _stream(seed, "focus_comparison"), n_focus_compare, first_id, focus_mix, forbidden, name="focus"
        )
    if n_focus_text:
        train["focus"] = write_llava(out, _stream(seed, "focus"), n_focus_text, focus_mix, forbidden, name="focus",
                                     first_id=first_id + n_focus_compare)
    manifest = {
        "generator": "lavis_vislinginstruct.world",
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "image_size": image_size,
        "n_train": n_train,
        "n_eval": n_eval,
        "vocabulary": {"shapes": list(SHAPES), "colors": list(COLORS), "sizes": list(SIZES), "words": list(WORDS)},
        "templates": {name: TEMPLATES[name] for name in ins.BENCHMARKS},
        "caption_prompts": list(ins.CAPTION_PROMPTS),
        "rewrite_template": ins.REWRITE_TEMPLATE,
        "user_style": {"structures": list(user_style.STRUCTURES), "sign_off_prob": user_style.SIGN_OFF_PROB},
        "train": train,
        "eval": evaluation,
        "files": dict(sorted(out.annotation_files.items())),
        "n_images": out.n_images,
    }
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False) + "\n")
    return manifest


def read_comparison_candidates(world: str, name: str = "comparison") -> List[Dict[str, Any]]:
    """The (initial, rewritten) pairs a world was written with (``llava_instruct_150k/<name>_candidates.json``;
    ``name`` ``focus``: the focus round's).

    Raises:
        FileNotFoundError: If the world holds none (it was generated without ``n_compare`` / ``n_focus_compare``).
    """
    path = os.path.join(world, "llava_instruct_150k", f"{name}_candidates.json")
    if not os.path.isfile(path):
        option = "n_focus_compare" if name == "focus" else "n_compare"
        raise FileNotFoundError(f"{path} not found (generate the world with {option})")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_comparison_training(
    world: str,
    scores: Dict[str, Tuple[float, float]],
    template: str,
    cue: str,
    replay: int = 0,
    name: str = "phase2_comparison.json",
    seed: int = 0,
    pairs: Optional[Sequence[Dict[str, Any]]] = None,
    text: str = "phase2",
) -> Dict[str, Any]:
    """Write a later round's training file: the comparison conversations (scored by the model), the world's
    ``<text>.json`` conversations (``phase2``: rewrites and questions; ``focus``: the focus round's) and ``replay``
    conversations of the first file.

    Args:
        world: A world written with ``n_compare > 0`` (``n_focus_compare > 0`` for the focus round's pairs).
        scores: ``pair id -> (IAS initial, IAS rewritten)`` for every candidate pair.
        template: ``aio.compare_template`` of the model config.
        cue: ``aio.compare_cue``.
        replay: Conversations of the first training file to mix in (a seeded sample, at most all of them).
        name: File name under ``llava_instruct_150k/``.
        seed: Seed of the replay sample and of the order.
        pairs: The world's candidate pairs when the caller has read them already
            (:func:`read_comparison_candidates`).
        text: Stem of the world's conversation file to include (absent: none).

    Returns:
        ``{"train": <path relative to the world>, "comparison": n, "text": n, "replay": n}``.
    """
    folder = os.path.join(world, "llava_instruct_150k")

    def load(file: str) -> List[Dict[str, Any]]:
        path = os.path.join(folder, file)
        if not os.path.isfile(path):
            return []
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    if pairs is None:
        pairs = read_comparison_candidates(world)
    rng = _stream(seed, "comparison_training")
    records = comparison.comparison_records(pairs, scores, template, cue, seed)
    conversations = load(f"{text}.json")
    first = load("llava_instruct_150k.json") if replay else []  # read only when a replay is asked for
    replayed = rng.sample(first, min(replay, len(first)))
    records += conversations + replayed
    rng.shuffle(records)
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        f.write(json.dumps(records, sort_keys=True, ensure_ascii=False) + "\n")
    return {"train": f"llava_instruct_150k/{name}", "comparison": len(pairs), "text": len(conversations),
            "replay": len(replayed)}
