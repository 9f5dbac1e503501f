"""Seeded scenes of the demo's visual world and their PIL renderer.

A scene is a 2x2 grid of cells (left/right x top/bottom) on a plain dark background. It holds 1-3 flat shapes, each
with a shape (circle, square, triangle), a colour (red, green, blue, yellow), a size (small, large) and a cell, and
optionally one short word drawn with PIL's built-in bitmap font. When a word is present it fills one horizontal half
(a "band", scaled by an integer factor so it stays readable) and the objects share the other half.

Everything is chosen for learnability by a tiny model: few attributes, big high-contrast shapes, no anti-aliasing,
no overlap, and at most a couple of pixels of positional jitter. Held-out evaluation scenes are a fixed slice of the
scene space (:func:`scene_split` hashes the scene's semantic key), so train and eval never share a scene whatever the
seeds. Nothing here depends on LAVIS; the world can be generated without the model stack.
"""

import functools
import hashlib
import io
import random
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

from PIL import Image, ImageDraw, ImageFont

SHAPES = ("circle", "square", "triangle")
COLORS = ("red", "green", "blue", "yellow")
SIZES = ("small", "large")
WORDS = ("cat", "dog", "sun", "go", "stop", "box")
HORIZONTAL = ("left", "right")  # indexed by SceneObject.col
VERTICAL = ("top", "bottom")  # indexed by SceneObject.row

COLOR_RGB = {"red": (230, 40, 40), "green": (40, 190, 60), "blue": (40, 100, 250), "yellow": (245, 215, 30)}
BACKGROUND_RGB = (24, 24, 24)
TEXT_RGB = (255, 255, 255)
DIAMETER = {"small": 0.45, "large": 0.8}  # fraction of the cell side
MAX_JITTER = 2  # pixels at the 64 px reference size, scaled with the image
EVAL_PER_MILLE = 200  # share of the scene space held out for evaluation (20 %)
DEFAULT_IMAGE_SIZE = 64


@dataclass(frozen=True)
class SceneObject:
    """One shape in a scene.

    Attributes:
        shape: One of :data:`SHAPES`.
        color: One of :data:`COLORS`.
        size: One of :data:`SIZES`.
        col: 0 for the left half, 1 for the right half.
        row: 0 for the top half, 1 for the bottom half.
        jitter: Offset ``(dx, dy)`` of the centre in reference pixels (rendering only, not part of the scene key).
    """

    shape: str
    color: str
    size: str
    col: int
    row: int
    jitter: Tuple[int, int] = (0, 0)

    @property
    def horizontal(self) -> str:
        """``"left"`` or ``"right"``."""
        return HORIZONTAL[self.col]

    @property
    def vertical(self) -> str:
        """``"top"`` or ``"bottom"``."""
        return VERTICAL[self.row]

    @property
    def name(self) -> str:
        """Colour and shape, e.g. ``"red circle"`` (unique within a scene)."""
        return f"{self.color} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A sampled scene.

    Attributes:
        objects: The shapes in reading order (top row first, then left to right); (shape, colour) pairs are unique.
        word: The rendered word, or ``None``.
        word_row: The half (0 top, 1 bottom) the word occupies, or ``None``.
        word_jitter: Offset of the word in reference pixels.
    """

    objects: Tuple[SceneObject, ...]
    word: Optional[str] = None
    word_row: Optional[int] = None
    word_jitter: Tuple[int, int] = (0, 0)

    def key(self) -> str:
        """Semantic identity of the scene (everything but jitter); equal keys mean the same scene."""
        objs = "|".join(f"{o.shape}:{o.color}:{o.size}:{o.col}{o.row}" for o in self.objects)
        return f"{objs};word={self.word}@{self.word_row}"

    def to_dict(self) -> Dict[str, Any]:
        """JSON-serialisable form (inverse of :meth:`from_dict`)."""
        return {
            "objects": [
                {
                    "shape": o.shape,
                    "color": o.color,
                    "size": o.size,
                    "col": o.col,
                    "row": o.row,
                    "horizontal": o.horizontal,
                    "vertical": o.vertical,
                    "jitter": list(o.jitter),
                }
                for o in self.objects
            ],
            "word": self.word,
            "word_row": self.word_row,
            "word_jitter": list(self.word_jitter),
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Scene":
        """Rebuild a scene written by :meth:`to_dict`."""
        objects = tuple(
            SceneObject(o["shape"], o["color"], o["size"], o["col"], o["row"], tuple(o.get("jitter", (0, 0))))
            for o in d["objects"]
        )
        return cls(objects, d.get("word"), d.get("word_row"), tuple(d.get("word_jitter", (0, 0))))


def scene_split(scene: Scene) -> str:
    """``"eval"`` for the held-out slice of the scene space, else ``"train"`` (stable sha256 of :meth:`Scene.key`)."""
    digest = hashlib.sha256(scene.key().encode("utf-8")).digest()
    return "eval" if int.from_bytes(digest[:8], "big") % 1000 < EVAL_PER_MILLE else "train"


def _sample_unconstrained(
    rng: random.Random, min_objects: int, max_objects: int, word: Optional[bool], word_prob: float
) -> Scene:
    has_word = rng.random() < word_prob if word is None else word
    if has_word and min_objects > 2:
        raise ValueError("a scene with a word holds at most 2 objects")
    if has_word:
        word_row = rng.randrange(2)
        cells = [(col, 1 - word_row) for col in (0, 1)]
        max_objects = min(max_objects, 2)
    else:
        word_row = None
        cells = [(col, row) for row in (0, 1) for col in (0, 1)]
    n = rng.randint(min_objects, max_objects)
    chosen_cells = rng.sample(cells, n)
    kinds = rng.sample([(s, c) for s in SHAPES for c in COLORS], n)
    objects = []
    for (col, row), (shape, color) in zip(chosen_cells, kinds):
        jitter = (rng.randint(-MAX_JITTER, MAX_JITTER), rng.randint(-MAX_JITTER, MAX_JITTER))
        objects.append(SceneObject(shape, color, rng.choice(SIZES), col, row, jitter))
    objects.sort(key=lambda o: (o.row, o.col))
    if not has_word:
        return Scene(tuple(objects))
    word_jitter = (rng.randint(-MAX_JITTER, MAX_JITTER), rng.randint(-MAX_JITTER, MAX_JITTER))
    return Scene(tuple(objects), rng.choice(WORDS), word_row, word_jitter)


def sample_scene(
    rng: random.Random,
    split: str,
    *,
    min_objects: int = 1,
    max_objects: int = 3,
    word: Optional[bool] = None,
    word_prob: float = 0.5,
    exclude: Optional[Set[str]] = None,
    max_tries: int = 500,
) -> Scene:
    """Draw a scene from the ``split`` ("train" or "eval") slice of the scene space.

    Args:
        rng: The random stream; the result depends only on its state.
        split: Which slice of the scene space to draw from (see :func:`scene_split`).
        min_objects: Fewest objects (1-3).
        max_objects: Most objects (1-3; at most 2 when a word is drawn).
        word: ``True``/``False`` forces a word on/off; ``None`` draws one with probability ``word_prob``.
        word_prob: Probability of a word when ``word`` is ``None``.
        exclude: Scene keys to avoid (e.g. scenes already in the same evaluation set); a repeat is accepted only
            after ``max_tries`` draws, so tiny scene slices still terminate.
        max_tries: Draws before a repeat from ``exclude`` is accepted.

    Returns:
        The scene.
    """
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    if not 1 <= min_objects <= max_objects <= 3:
        raise ValueError(f"need 1 <= min_objects <= max_objects <= 3, got {min_objects}, {max_objects}")
    fallback = None
    for _ in range(max_tries):
        scene = _sample_unconstrained(rng, min_objects, max_objects, word, word_prob)
        if scene_split(scene) != split:
            continue
        if exclude is None or scene.key() not in exclude:
            return scene
        fallback = fallback or scene
    if fallback is None:
        raise RuntimeError(f"no {split} scene found in {max_tries} draws")
    return fallback


@functools.lru_cache(maxsize=1)
def _bitmap_font() -> ImageFont.ImageFont:
    # Pillow >= 10.1 returns a FreeType font from load_default() when FreeType is present; the bitmap font is the
    # one that renders identically everywhere.
    if hasattr(ImageFont, "load_default_imagefont"):
        return ImageFont.load_default_imagefont()
    return ImageFont.load_default()


@functools.lru_cache(maxsize=64)
def _word_mask(word: str, image_size: int) -> Image.Image:
    """The word as an "L" mask, scaled by the largest integer factor that fits 85 % x 80 % of a half-image band."""
    font = _bitmap_font()
    left, top, right, bottom = font.getbbox(word)
    width, height = right - left, bottom - top
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).text((-left, -top), word, fill=255, font=font)
    scale = max(1, min(int(0.85 * image_size) // width, int(0.4 * image_size) // height))
    return mask.resize((width * scale, height * scale), Image.NEAREST)


def _object_polygon(obj: SceneObject, image_size: int) -> Tuple[str, List[Tuple[float, float]]]:
    cell = image_size / 2
    unit = image_size / DEFAULT_IMAGE_SIZE
    cx = (obj.col + 0.5) * cell + obj.jitter[0] * unit
    cy = (obj.row + 0.5) * cell + obj.jitter[1] * unit
    r = DIAMETER[obj.size] * cell / 2
    if obj.shape == "circle":
        return "ellipse", [(cx - r, cy - r), (cx + r, cy + r)]
    if obj.shape == "square":
        h = 0.88 * r  # a slightly smaller square matches the circle's visual weight
        return "rectangle", [(cx - h, cy - h), (cx + h, cy + h)]
    return "polygon", [(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)]


def word_box(scene: Scene, image_size: int = DEFAULT_IMAGE_SIZE) -> Optional[Tuple[int, int, int, int]]:
    """Pixel box ``(x, y, width, height)`` of the rendered word (a perfect OCR detection), or ``None``."""
    if scene.word is None:
        return None
    mask = _word_mask(scene.word, image_size)
    unit = image_size / DEFAULT_IMAGE_SIZE
    band_cy = (scene.word_row + 0.5) * image_size / 2
    x = round(image_size / 2 - mask.width / 2 + scene.word_jitter[0] * unit)
    y = round(band_cy - mask.height / 2 + scene.word_jitter[1] * unit)
    return x, y, mask.width, mask.height


def render_scene(scene: Scene, image_size: int = DEFAULT_IMAGE_SIZE) -> Image.Image:
    """Draw ``scene`` as an RGB image of ``image_size`` x ``image_size`` pixels (pure and deterministic)."""
    image = Image.new("RGB", (image_size, image_size), BACKGROUND_RGB)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        kind, coords = _object_polygon(obj, image_size)
        getattr(draw, kind)(coords, fill=COLOR_RGB[obj.color])
    box = word_box(scene, image_size)
    if box is not None:
        x, y, width, height = box
        image.paste(TEXT_RGB, (x, y, x + width, y + height), _word_mask(scene.word, image_size))
    return image


def encode_image(image: Image.Image, fmt: str) -> bytes:
    """Encode deterministically: PNG without metadata, or baseline JPEG (quality 95, no chroma subsampling).

    Args:
        image: The image.
        fmt: ``"png"`` or ``"jpg"``.

    Returns:
        The encoded bytes.
    """
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG", optimize=False, compress_level=6)
    elif fmt in ("jpg", "jpeg"):
        image.save(buffer, format="JPEG", quality=95, subsampling=0, optimize=False)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buffer.getvalue()
