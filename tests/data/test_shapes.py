"""The shapes world: determinism, and agreement of images, captions, labels and questions."""

import numpy as np
import pytest

from geomalign.data import PairedDataset
from geomalign.data.shapes import (
    COLOURS,
    LABEL_COLUMNS,
    RELATIONS,
    SIZES,
    make_shapes,
    render_scene,
    shapes_vocabulary,
)


@pytest.fixture(scope="module")
def world():
    return make_shapes(300, random_state=3)


def test_same_seed_same_world_and_other_seed_differs(world):
    again = make_shapes(300, random_state=3)
    assert again.pairs.captions == world.pairs.captions
    assert again.questions == world.questions
    np.testing.assert_array_equal(again.images([0, 7, 299]), world.images([0, 7, 299]))
    other = make_shapes(300, random_state=4)
    assert other.pairs.captions != world.pairs.captions


def test_prefix_of_a_larger_world_is_the_smaller_world(world):
    small = make_shapes(50, random_state=3)
    assert small.pairs.captions == world.pairs.captions[:50]
    assert small.questions == tuple(q for q in world.questions if q.index < 50)
    np.testing.assert_array_equal(small.images(), world.images(range(50)))


def test_image_is_redrawn_identically_and_is_rgb(world):
    first, second = world.pairs.image(11), world.pairs.image(11)
    assert first.mode == "RGB"
    assert first.size == (32, 32)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))


def test_pairs_are_a_paired_dataset_with_documented_columns(world):
    assert isinstance(world.pairs, PairedDataset)
    assert world.pairs.ids[:2] == ["shapes-000000", "shapes-000001"]
    assert tuple(world.pairs.labels) == LABEL_COLUMNS
    pair = world.pairs[5]
    assert pair.caption == world.scenes[5].caption
    assert pair.labels["n_objects"] == len(world.scenes[5].objects)


def test_captions_agree_with_labels(world):
    labels = world.pairs.labels
    for i, caption in enumerate(world.pairs.captions):
        first = f"a {labels['size_0'][i]} {labels['colour_0'][i]} {labels['shape_0'][i]}"
        assert caption.startswith(first)
        if labels["n_objects"][i] == 2:
            second = f"a {labels['size_1'][i]} {labels['colour_1'][i]} {labels['shape_1'][i]}"
            assert caption == f"{first} {labels['relation'][i]} {second}"
            regions = (labels["region_0"][i], labels["region_1"][i])
            assert regions == RELATIONS[labels["relation"][i]]
        else:
            assert labels["relation"][i] == "none"
            assert labels["colour_1"][i] == "none"
            assert labels["region_0"][i] in caption


def test_two_objects_differ_in_colour_and_shape_and_both_kinds_occur(world):
    counts = world.pairs.labels["n_objects"]
    assert set(counts.tolist()) == {1, 2}
    two = counts == 2
    assert np.all(world.pairs.labels["colour_0"][two] != world.pairs.labels["colour_1"][two])
    assert np.all(world.pairs.labels["shape_0"][two] != world.pairs.labels["shape_1"][two])


def test_questions_are_answered_by_the_labels(world):
    labels = world.pairs.labels
    for q in world.questions:
        assert world.pairs.ids[q.index] == q.sample_id
        objects = world.scenes[q.index].objects
        if q.kind == "colour":
            (obj,) = [o for o in objects if q.question == f"what colour is the {o.shape}?"]
            assert q.answer == obj.colour
        elif q.kind == "shape":
            (obj,) = [o for o in objects if o.colour in q.question]
            assert q.answer == obj.shape
        elif q.kind == "size":
            (obj,) = [o for o in objects if o.shape in q.question]
            assert q.answer == obj.size
        elif q.kind == "position":
            (obj,) = [o for o in objects if o.shape in q.question]
            assert q.answer == obj.region
        elif q.kind == "count":
            assert q.answer == ("one", "two")[labels["n_objects"][q.index] - 1]
        else:
            assert q.kind == "relation"
            relation = labels["relation"][q.index]
            truth = f"is the {objects[0].shape} {relation} the {objects[1].shape}?"
            assert q.answer == ("yes" if q.question == truth else "no")


def test_relation_answers_are_roughly_balanced(world):
    answers = [q.answer for q in world.questions if q.kind == "relation"]
    assert 0.35 < answers.count("yes") / len(answers) < 0.65


def test_every_word_is_in_the_vocabulary(world):
    vocabulary = set(shapes_vocabulary())
    texts = list(world.pairs.captions)
    texts += [f"{q.question} {q.answer}" for q in world.questions]
    words = {w for text in texts for w in text.replace("?", " ? ").split()}
    assert words <= vocabulary


def test_object_centres_show_their_colour(world):
    images = world.images()
    size = world.image_size
    for i, scene in enumerate(world.scenes):
        for obj in scene.objects:
            x, y = (int(c * size) for c in obj.centre)
            pixel = images[i, y, x].astype(float)
            nearest = min(COLOURS, key=lambda c: np.sum((np.asarray(COLOURS[c]) - pixel) ** 2))
            assert nearest == obj.colour, (i, obj)


def test_large_objects_cover_more_pixels_than_small_ones():
    world = make_shapes(200, random_state=0, noise=0.0, two_object_fraction=0.0)
    images = world.images()
    area = (images.max(axis=-1) > 80).sum(axis=(1, 2))
    sizes, shapes = world.pairs.labels["size_0"], world.pairs.labels["shape_0"]
    for shape in np.unique(shapes):
        small, large = (
            area[(shapes == shape) & (sizes == "small")],
            area[(shapes == shape) & (sizes == "large")],
        )
        assert small.max() < large.min(), shape
    assert SIZES["small"] < SIZES["large"]


def test_noise_free_render_and_image_size():
    world = make_shapes(3, random_state=1, image_size=64, noise=0.0)
    image = np.asarray(world.pairs.image(0))
    assert image.shape == (64, 64, 3)
    np.testing.assert_array_equal(image, render_scene(world.scenes[0], 64))
    assert image[0, 0].tolist() == [30, 30, 30]


def test_subset_reindexes_questions(world):
    part = world.subset([5, 2])
    assert part.pairs.ids == ["shapes-000005", "shapes-000002"]
    assert {q.index for q in part.questions} == {0, 1}
    assert [q.question for q in part.questions if q.index == 0] == [
        q.question for q in world.questions if q.index == 5
    ]
    np.testing.assert_array_equal(part.images([1]), world.images([2]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0}, ValueError, "n must be >= 1"),
        ({"n": 2.5}, TypeError, "n must be an integer"),
        ({"n": 3, "random_state": -1}, ValueError, "random_state must be >= 0"),
        ({"n": 3, "image_size": 8}, ValueError, "image_size must be >= 16"),
        ({"n": 3, "two_object_fraction": 1.5}, ValueError, "two_object_fraction"),
        ({"n": 3, "noise": -0.1}, ValueError, "noise must be a non-negative"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_shapes(**kwargs)
