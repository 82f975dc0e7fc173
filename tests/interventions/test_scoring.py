"""Teacher-forced task scores agree with a direct computation and ignore batching and padding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from geomalign.interventions import TaskData, make_task, score_items, task_from_labels

from .conftest import IMAGE_TOKEN, PAD, forward_logits, make_items, tiny_llava


@pytest.fixture(scope="module")
def model():
    return tiny_llava(1)


def _direct(model, task):
    """Per-item mean target log-probability and greedy exact match, one item at a time."""
    logliks, matches = [], []
    for row in range(len(task)):
        one = task.subset([row])
        logp = torch.log_softmax(forward_logits(model, one)[0].double(), -1)
        positions = torch.nonzero(one.target_mask[0]).flatten()
        tokens = one.input_ids[0, positions]
        logliks.append(float(logp[positions - 1, tokens].mean()))
        matches.append(float(bool((logp[positions - 1].argmax(-1) == tokens).all())))
    return np.array(logliks), np.array(matches)


def test_scores_match_a_direct_computation(model):
    task = make_items(7)
    loglik, match = _direct(model, task)
    np.testing.assert_allclose(score_items(model, task, batch_size=3), loglik, rtol=1e-5)
    exact = dataclasses.replace(task, metric="exact-match")
    np.testing.assert_array_equal(score_items(model, exact, batch_size=4), match)


def test_scores_do_not_depend_on_batch_size_or_padding(model):
    task = make_items(9)
    one_by_one = score_items(model, task, batch_size=1)
    np.testing.assert_allclose(score_items(model, task, batch_size=9), one_by_one, rtol=1e-5)
    # the shortest item, padded to the longest one, scores as when it is alone
    lengths = task.attention_mask.sum(1)
    short = int(lengths.argmin())
    np.testing.assert_allclose(
        score_items(model, task.subset([short])), one_by_one[short], rtol=1e-5
    )


def test_exact_match_is_one_for_the_models_own_greedy_answer(model):
    task = make_items(4)
    prompts, targets = [], []
    for row in range(len(task)):
        prompt = task.input_ids[row][~task.target_mask[row] & task.attention_mask[row].bool()]
        answer = []
        ids = prompt.tolist()
        for _ in range(2):  # greedy decoding of two tokens
            with torch.no_grad():
                logits = model(
                    input_ids=torch.tensor([ids]), pixel_values=task.pixel_values[row : row + 1]
                ).logits
            answer.append(int(logits[0, -1].argmax()))
            ids.append(answer[-1])
        prompts.append(prompt.tolist())
        targets.append(answer)
    greedy = make_task(
        "greedy", prompts, targets, task.pixel_values, metric="exact-match", pad_token_id=PAD
    )
    np.testing.assert_array_equal(score_items(model, greedy), np.ones(len(task)))


def test_shared_images_equal_repeated_images(model):
    task = make_items(6)
    index = torch.tensor([0, 0, 1, 2, 2, 2])
    shared = dataclasses.replace(task, pixel_values=task.pixel_values[:3], image_index=index)
    repeated = dataclasses.replace(task, pixel_values=task.pixel_values[index])
    np.testing.assert_allclose(score_items(model, shared), score_items(model, repeated), rtol=1e-6)
    assert shared.cluster_labels() == ("image 0",) * 2 + ("image 1",) + ("image 2",) * 3
    assert shared.subset([5, 0]).image_index.tolist() == [2, 0]


def test_task_from_labels_scores_the_labelled_tokens(model):
    task = make_items(5)
    labels = torch.where(task.target_mask, task.input_ids, torch.tensor(-100))
    rebuilt = task_from_labels(
        "toy",
        task.input_ids,
        task.attention_mask,
        labels,
        task.pixel_values,
        metric="loglik",
    )
    assert torch.equal(rebuilt.target_mask, task.target_mask)
    np.testing.assert_array_equal(score_items(model, rebuilt), score_items(model, task))
    shifted = labels.roll(1, dims=1)
    with pytest.raises(ValueError, match="labels of item 0 differ from input_ids"):
        task_from_labels(
            "toy", task.input_ids, task.attention_mask, shifted, task.pixel_values, metric="loglik"
        )


def test_model_mode_is_restored(model):
    model.train()
    try:
        score_items(model, make_items(2))
        assert model.training
    finally:
        model.eval()


def test_bad_task_data():
    task = make_items(3)
    with pytest.raises(ValueError, match="metric must be one of"):
        dataclasses.replace(task, metric="accuracy")
    with pytest.raises(ValueError, match="one image per item"):
        dataclasses.replace(task, pixel_values=task.pixel_values[:2])
    with pytest.raises(ValueError, match="image_index must be an int64 tensor"):
        dataclasses.replace(task, image_index=torch.tensor([0, 1, 5]))
    empty = task.target_mask.clone()
    empty[1] = False
    with pytest.raises(ValueError, match=r"item '1' \(row 1\): the target must be"):
        dataclasses.replace(task, target_mask=empty)
    with pytest.raises(ValueError, match="got 2 prompts but 1 targets"):
        make_task("x", [[1], [2]], [[3]], task.pixel_values, metric="loglik", pad_token_id=PAD)
    with pytest.raises(ValueError, match="item 0: prompt and target must be non-empty"):
        make_task(
            "x", [[1, IMAGE_TOKEN]], [[]], task.pixel_values[:1], metric="loglik", pad_token_id=PAD
        )
    with pytest.raises(TypeError, match="task must be a TaskData"):
        score_items(tiny_llava(1), {"input_ids": task.input_ids})
    assert isinstance(task, TaskData)
