"""A synthetic "shapes" world: images of coloured shapes with captions, labels and questions.

Every sample is drawn offline and deterministically from ``(random_state, index)``, so the world
is a controlled stimulus set whose ground truth (the colour, shape, size and position of each
object, the relation between two objects) is known exactly. Tests, the demo and the built-in
testbed of small VLMs use it; the extractors consume it like any other
:class:`~geomalign.data.PairedDataset`.

Grammar
-------
A scene holds one or two objects. Each object has a colour (:data:`COLOURS`), a shape
(:data:`SHAPES`), a size (:data:`SIZES`) and a coarse region of the image (:data:`REGIONS`).
The two objects of a scene always differ in both colour and shape, so that every question below has
exactly one answer. Two objects sit side by side (regions ``left``/``right``) or one above the other
(``top``/``bottom``); the caption names object 0 first and relates it to object 1 with one of
:data:`RELATIONS`::

    a small red circle on the left
    a large blue square above a small yellow triangle

Questions (each answer is a single word)::

    what colour is the circle?        -> red          (kind "colour")
    what shape is the red object?     -> circle       (kind "shape")
    what size is the circle?          -> small        (kind "size")
    where is the circle?              -> left         (kind "position")
    how many shapes are there?        -> one | two    (kind "count")
    is the square above the triangle? -> yes | no     (kind "relation", two objects only)

Relation questions ask about the true relation half of the time, so ``yes`` and ``no`` are balanced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from geomalign.data._pairs import PairedDataset

__all__ = [
    "COLOURS",
    "LABEL_COLUMNS",
    "REGIONS",
    "RELATIONS",
    "SHAPES",
    "SIZES",
    "Question",
    "Scene",
    "ShapeObject",
    "ShapesWorld",
    "make_shapes",
    "render_scene",
    "shapes_vocabulary",
]

#: Colour names and their nominal RGB values (each drawn object gets a slightly jittered shade).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
#: Size names and the object's radius as a fraction of the image side.
SIZES: dict[str, float] = {"small": 0.12, "large": 0.2}
#: Region names and the nominal centre (x, y) as fractions of the image side.
REGIONS: dict[str, tuple[float, float]] = {
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "centre": (0.5, 0.5),
}
#: Relation of object 0 to object 1 -> (region of object 0, region of object 1).
RELATIONS: dict[str, tuple[str, str]] = {
    "left of": ("left", "right"),
    "right of": ("right", "left"),
    "above": ("top", "bottom"),
    "below": ("bottom", "top"),
}
_LOCATION_PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the centre",
}
_COUNTS = ("one", "two")
_BACKGROUND = (30, 30, 30)
_JITTER = 0.04  # centre jitter, fraction of the image side
_SHADE = 18  # colour jitter, RGB units
_SUPERSAMPLE = 2  # draw at twice the size, then downsample: cheap anti-aliasing

#: Label columns of the paired dataset; absent objects and relations are ``"none"``.
LABEL_COLUMNS: tuple[str, ...] = (
    "n_objects",
    "colour_0",
    "shape_0",
    "size_0",
    "region_0",
    "colour_1",
    "shape_1",
    "size_1",
    "region_1",
    "relation",
)


@dataclass(frozen=True)
class ShapeObject:
    """One drawn object: its attributes and its exact geometry.

    ``centre`` (x, y) and ``radius`` are fractions of the image side; ``rgb`` is the drawn colour.
    """

    colour: str
    shape: str
    size: str
    region: str
    centre: tuple[float, float]
    radius: float
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """One image's content: one or two objects and, for two, how object 0 relates to object 1."""

    objects: tuple[ShapeObject, ...]
    relation: str | None

    @property
    def caption(self) -> str:
        """The compositional caption, naming object 0 first."""
        first = _noun_phrase(self.objects[0])
        if self.relation is None:
            return f"{first} {_LOCATION_PHRASES[self.objects[0].region]}"
        return f"{first} {self.relation} {_noun_phrase(self.objects[1])}"


@dataclass(frozen=True)
class Question:
    """A question about one image with its one-word answer."""

    index: int
    sample_id: str
    question: str
    answer: str
    kind: str


@dataclass(frozen=True)
class ShapesWorld:
    """A generated shapes world: the paired dataset, its scenes and its questions.

    Attributes
    ----------
    pairs : PairedDataset
        Ids ``"shapes-000123"``, captions, lazily drawn RGB images and the label columns
        :data:`LABEL_COLUMNS`.
    scenes : tuple of Scene
        The ground truth of each sample, in the order of ``pairs``.
    questions : tuple of Question
        Every question of every sample, grouped by sample in the order of ``pairs``; ``index`` is
        the sample's row in ``pairs``.
    image_size : int
        Side of the square images, in pixels.
    """

    pairs: PairedDataset
    scenes: tuple[Scene, ...]
    questions: tuple[Question, ...]
    image_size: int

    def __len__(self) -> int:
        return len(self.pairs)

    def images(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Draw the images of ``indices`` (default all): uint8 array of shape (n, size, size, 3)."""
        picked = range(len(self)) if indices is None else indices
        out = np.empty((len(picked), self.image_size, self.image_size, 3), dtype=np.uint8)
        for row, index in enumerate(picked):
            out[row] = np.asarray(self.pairs.image(int(index)))
        return out

    def subset(self, indices: Sequence[int]) -> ShapesWorld:
        """Return the samples at ``indices`` (in that order) with their questions re-indexed."""
        picked = [int(i) for i in indices]
        by_index: dict[int, list[Question]] = {}
        for question in self.questions:
            by_index.setdefault(question.index, []).append(question)
        questions = tuple(
            Question(new, q.sample_id, q.question, q.answer, q.kind)
            for new, old in enumerate(picked)
            for q in by_index.get(old, ())
        )
        return ShapesWorld(
            pairs=self.pairs.subset(picked),
            scenes=tuple(self.scenes[i] for i in picked),
            questions=questions,
            image_size=self.image_size,
        )


def make_shapes(
    n: int,
    *,
    random_state: int = 0,
    image_size: int = 32,
    two_object_fraction: float = 0.5,
    noise: float = 0.03,
) -> ShapesWorld:
    """Generate ``n`` samples of the shapes world.

    Sample ``i`` depends only on ``(random_state, i)``: the first ``k`` samples of
    ``make_shapes(n)`` equal ``make_shapes(k)`` for ``k <= n``, and each image is redrawn
    identically every time it is loaded.

    Parameters
    ----------
    n : int
        Number of samples (>= 1).
    random_state : int, default=0
        Seed of the world (a non-negative integer).
    image_size : int, default=32
        Side of the square RGB images in pixels (>= 16).
    two_object_fraction : float, default=0.5
        Probability that a scene holds two objects rather than one, in [0, 1].
    noise : float, default=0.03
        Standard deviation of the Gaussian pixel noise, as a fraction of 255 (>= 0). Noise keeps
        images of identical scenes distinct, as real photographs are.

    Returns
    -------
    ShapesWorld
        The paired dataset (source ``"shapes(random_state=...)"``), the scenes and the questions.

    Examples
    --------
    >>> world = make_shapes(4, random_state=0)
    >>> world.pairs.ids[0], len(world.pairs.labels)
    ('shapes-000000', 10)
    """
    n = _check_int(n, "n", minimum=1)
    random_state = _check_int(random_state, "random_state", minimum=0)
    image_size = _check_int(image_size, "image_size", minimum=16)
    if not 0.0 <= float(two_object_fraction) <= 1.0:
        raise ValueError(f"two_object_fraction must lie in [0, 1]; got {two_object_fraction!r}.")
    if not float(noise) >= 0.0:
        raise ValueError(f"noise must be a non-negative float; got {noise!r}.")

    scenes = tuple(
        _sample_scene(np.random.default_rng([random_state, i, 0]), float(two_object_fraction))
        for i in range(n)
    )
    ids = [f"shapes-{i:06d}" for i in range(n)]
    labels = _label_columns(scenes)
    questions = tuple(
        question
        for i, scene in enumerate(scenes)
        for question in _questions(scene, i, ids[i], np.random.default_rng([random_state, i, 2]))
    )

    def load_image(i: int) -> Image.Image:
        rng = np.random.default_rng([random_state, i, 1])
        return Image.fromarray(render_scene(scenes[i], image_size, noise=float(noise), rng=rng))

    pairs = PairedDataset(
        ids,
        [scene.caption for scene in scenes],
        load_image,
        labels=labels,
        source=f"shapes(random_state={random_state})",
    )
    return ShapesWorld(pairs=pairs, scenes=scenes, questions=questions, image_size=image_size)


def render_scene(
    scene: Scene, image_size: int, *, noise: float = 0.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Draw ``scene`` as a uint8 RGB array of shape (image_size, image_size, 3).

    Shapes are drawn at twice the resolution and box-downsampled (anti-aliasing). ``noise`` is the
    standard deviation of added Gaussian pixel noise as a fraction of 255, drawn from ``rng``.
    """
    side = image_size * _SUPERSAMPLE
    canvas = Image.new("RGB", (side, side), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        cx, cy, r = obj.centre[0] * side, obj.centre[1] * side, obj.radius * side
        if obj.shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=obj.rgb)
        elif obj.shape == "square":
            h = 0.85 * r  # half side: about the circle's area, so size reads the same
            draw.rectangle((cx - h, cy - h, cx + h, cy + h), fill=obj.rgb)
        elif obj.shape == "triangle":
            draw.polygon(
                [(cx, cy - r), (cx + 0.866 * r, cy + 0.5 * r), (cx - 0.866 * r, cy + 0.5 * r)],
                fill=obj.rgb,
            )
        else:  # diamond
            draw.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=obj.rgb)
    image = np.asarray(canvas.resize((image_size, image_size), Image.Resampling.BOX))
    if noise > 0.0:
        generator = rng if rng is not None else np.random.default_rng(0)
        noisy = image + generator.normal(0.0, noise * 255.0, size=image.shape)
        image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return image


def shapes_vocabulary() -> tuple[str, ...]:
    """Every word a caption, question or answer of the shapes world can contain, sorted.

    Punctuation (``?``) is included as its own word. Word-level tokenizers built from this list
    cover the whole world.
    """
    words = {"a", "the", "?", "what", "is", "colour", "shape", "size", "where", "object"}
    words |= {"how", "many", "shapes", "are", "there", "yes", "no", *_COUNTS}
    words |= set(COLOURS) | set(SHAPES) | set(SIZES) | set(REGIONS)
    for phrase in (*RELATIONS, *_LOCATION_PHRASES.values()):
        words |= set(phrase.split())
    return tuple(sorted(words))


def _noun_phrase(obj: ShapeObject) -> str:
    return f"a {obj.size} {obj.colour} {obj.shape}"


def _sample_scene(rng: np.random.Generator, two_object_fraction: float) -> Scene:
    colour_names = list(COLOURS)
    if rng.random() < two_object_fraction:
        colours = rng.choice(len(colour_names), size=2, replace=False)
        shapes = rng.choice(len(SHAPES), size=2, replace=False)
        relation = list(RELATIONS)[rng.integers(len(RELATIONS))]
        regions = RELATIONS[relation]
        objects = tuple(
            _sample_object(rng, colour_names[c], SHAPES[s], regions[k])
            for k, (c, s) in enumerate(zip(colours, shapes, strict=True))
        )
        return Scene(objects=objects, relation=relation)
    colour = colour_names[rng.integers(len(colour_names))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    region = list(REGIONS)[rng.integers(len(REGIONS))]
    return Scene(objects=(_sample_object(rng, colour, shape, region),), relation=None)


def _sample_object(rng: np.random.Generator, colour: str, shape: str, region: str) -> ShapeObject:
    size = list(SIZES)[rng.integers(len(SIZES))]
    x, y = REGIONS[region]
    dx, dy = rng.uniform(-_JITTER, _JITTER, size=2)
    shade = rng.integers(-_SHADE, _SHADE + 1, size=3)
    rgb = tuple(int(v) for v in np.clip(np.asarray(COLOURS[colour]) + shade, 0, 255))
    return ShapeObject(
        colour=colour,
        shape=shape,
        size=size,
        region=region,
        centre=(float(x + dx), float(y + dy)),
        radius=SIZES[size],
        rgb=rgb,  # type: ignore[arg-type]
    )


def _questions(
    scene: Scene, index: int, sample_id: str, rng: np.random.Generator
) -> list[Question]:
    def ask(question: str, answer: str, kind: str) -> Question:
        return Question(index, sample_id, question, answer, kind)

    out = []
    for obj in scene.objects:
        out.append(ask(f"what colour is the {obj.shape}?", obj.colour, "colour"))
        out.append(ask(f"what shape is the {obj.colour} object?", obj.shape, "shape"))
        out.append(ask(f"what size is the {obj.shape}?", obj.size, "size"))
        out.append(ask(f"where is the {obj.shape}?", obj.region, "position"))
    out.append(ask("how many shapes are there?", _COUNTS[len(scene.objects) - 1], "count"))
    if scene.relation is not None:
        others = [r for r in RELATIONS if r != scene.relation]
        truthful = rng.random() < 0.5
        asked = scene.relation if truthful else others[rng.integers(len(others))]
        first, second = scene.objects[0].shape, scene.objects[1].shape
        answer = "yes" if truthful else "no"
        out.append(ask(f"is the {first} {asked} the {second}?", answer, "relation"))
    return out


def _label_columns(scenes: Sequence[Scene]) -> dict[str, np.ndarray]:
    columns: dict[str, list[object]] = {name: [] for name in LABEL_COLUMNS}
    for scene in scenes:
        columns["n_objects"].append(len(scene.objects))
        for k in range(2):
            obj = scene.objects[k] if k < len(scene.objects) else None
            for attribute in ("colour", "shape", "size", "region"):
                value = "none" if obj is None else getattr(obj, attribute)
                columns[f"{attribute}_{k}"].append(value)
        columns["relation"].append(scene.relation or "none")
    return {
        name: np.asarray(values, dtype=np.int64 if name == "n_objects" else str)
        for name, values in columns.items()
    }


def _check_int(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")
    return int(value)
