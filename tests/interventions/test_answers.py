"""Scoring rules: known answers of the VQA normalisation and accuracy, exact and relaxed match,
CIDEr-D (against values computed with pycocoevalcap 1.2's ``CiderScorer`` on the same tokens)."""

from __future__ import annotations

import numpy as np
import pytest

from geomalign.interventions.answers import (
    exact_match,
    normalize_answer,
    relaxed_match,
    vqa_accuracy,
)
from geomalign.interventions.cider import cider_d, tokenize_caption


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Two", "2"),
        ("none", "0"),
        ("The dog.", "dog"),
        ("an apple", "apple"),
        ("yes!", "yes"),
        ("3.5", "3.5"),  # a decimal point stays
        ("1,000", "1000"),  # a thousands comma goes, with the other marks of that text
        ("black-and-white", "black and white"),  # a mark between letters becomes a space
        ("left , right", "left right"),  # a mark next to a space is deleted
        ("isnt it", "isn't it"),
        ("dont", "don't"),
        ("Tennis\tracket\n", "tennis racket"),
        ("a  b", "b"),
    ],
)
def test_normalize_answer_follows_the_official_script(raw, normalised):
    assert normalize_answer(raw) == normalised


@pytest.mark.parametrize(
    ("n_agree", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0)]
)
def test_vqa_accuracy_averages_over_the_ten_subsets_of_nine(n_agree, expected):
    references = ["2"] * n_agree + ["3"] * (10 - n_agree)
    assert vqa_accuracy("two", references) == pytest.approx(expected)
    plain = vqa_accuracy("two", references, leave_one_out=False)
    assert plain == pytest.approx(min(1.0, n_agree / 3))


def test_vqa_accuracy_edge_cases():
    assert vqa_accuracy("Yes", ["yes"]) == pytest.approx(1 / 3)  # one reference: the plain rule
    assert vqa_accuracy("the cat", ["cat"] * 10) == 1.0
    with pytest.raises(ValueError, match="not one string"):
        vqa_accuracy("cat", "cat")
    with pytest.raises(ValueError, match="non-empty"):
        vqa_accuracy("cat", [])


def test_exact_and_relaxed_match():
    assert exact_match("Two.", ["2"]) == 1.0
    assert exact_match("Two.", ["2"], normalize=False) == 0.0
    assert exact_match("red", ["blue", "red"]) == 1.0
    assert exact_match("reddish", ["red"]) == 0.0
    assert relaxed_match("10.4", ["10"]) == 1.0
    assert relaxed_match("10.6", ["10"]) == 0.0
    assert relaxed_match("5%", ["0.05"]) == 1.0
    assert relaxed_match("0", ["0"]) == 1.0  # a zero reference is compared as a string
    assert relaxed_match("0.0", ["0"]) == 0.0
    assert relaxed_match(" Blue ", ["red", "blue"]) == 1.0
    assert relaxed_match("11", ["10"], tolerance=0.1) == 1.0


def test_tokenize_caption_drops_punctuation_and_case():
    assert tokenize_caption("A man, riding a horse.") == ["a", "man", "riding", "a", "horse"]


REFERENCES = [
    [
        "a man riding a horse on a beach",
        "a person rides a brown horse",
        "man on horse near the ocean",
    ],
    ["two dogs play in the snow", "a pair of dogs playing in snow"],
    ["a plate of food with broccoli", "broccoli and rice on a white plate", "a meal on a plate"],
]
CANDIDATES = [
    "a man riding a horse",
    "dogs dogs dogs dogs playing in the snow",
    "a white plate with rice and broccoli on it today",
]


def test_cider_d_matches_pycocoevalcap():
    # CiderScorer(n=4, sigma=6.0) of pycocoevalcap 1.2 on the same captions
    scores = cider_d(CANDIDATES, REFERENCES)
    np.testing.assert_allclose(scores, [2.901563586207812, 1.8478783134110444, 1.422487356891814])
    assert scores.mean() == pytest.approx(2.0573097521702235)
    two = cider_d(
        ["a cat on a mat", "a dog"],
        [["a cat on a mat", "a cat sits on the mat"], ["a dog runs", "a brown dog runs"]],
    )
    np.testing.assert_allclose(two, [6.23054420388179, 2.4260717922798865])


def test_cider_d_properties():
    # document frequencies come from the references only: candidates never change them
    first = cider_d(CANDIDATES, REFERENCES)[0]
    other = cider_d([CANDIDATES[0], "zebra zebra", "x"], REFERENCES)[0]
    assert first == pytest.approx(other)
    # clipping: repeating a matched word gains nothing over saying it once at the same length
    repeated = cider_d(["dogs dogs dogs dogs dogs dogs"], [["dogs in snow"]], sigma=1e6)[0]
    assert repeated == 0.0  # one item: every n-gram is in all its references, log(1) - log(1) = 0
    refs = REFERENCES[:2]
    once = cider_d([CANDIDATES[0], "dogs playing in snow"], refs)[1]
    many = cider_d([CANDIDATES[0], "dogs dogs dogs dogs"], refs)[1]
    assert once > 0
    assert many < once
    # the length penalty: a longer copy of a reference scores lower than the reference
    exact = cider_d([REFERENCES[0][0], CANDIDATES[1]], refs)[0]
    padded = cider_d([REFERENCES[0][0] + " on a sunny day today", CANDIDATES[1]], refs)[0]
    assert padded < exact
    with pytest.raises(ValueError, match="one list per candidate"):
        cider_d(["a"], REFERENCES)
    with pytest.raises(ValueError, match="item 0"):
        cider_d(["a"], ["a dog"])
