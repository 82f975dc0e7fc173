"""CIDEr-D of generated captions against reference captions (Vedantam et al. 2015).

The rule, as in ``CiderD`` of the COCO caption evaluation code (pycocoevalcap's
``cider_scorer.py``):

- n-grams of length 1..4 of each (tokenised) caption, counted;
- each n-gram weighted by TF-IDF: its count in the caption times ``log(N) - log(max(1, df))``,
  where ``N`` is the number of items (images) and ``df`` the number of items whose reference
  captions contain it -- document frequencies come from the *reference* set of the evaluated
  items, so they stay fixed whatever produced the candidates;
- per length n, the similarity of candidate and reference vectors is
  ``sum_g min(c_g, r_g) * r_g / (|c| |r|)`` (the candidate's weights clipped at the
  reference's: repeating an n-gram gains nothing), times the Gaussian length penalty
  ``exp(-(len_c - len_r)^2 / (2 sigma^2))`` with ``sigma = 6`` (lengths in words);
- averaged over n = 1..4 and over the references, times 10.

An item's score is that value; the corpus score is the mean over items. Tokenisation: lower case,
the punctuation that the COCO tokenizer (Stanford PTB) removes is removed, split on whitespace.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

__all__ = ["cider_d", "tokenize_caption"]

_MAX_N = 4
_SIGMA = 6.0
# pycocoevalcap's PTBTokenizer drops these tokens after Stanford tokenisation.
_PUNCTUATION = re.compile(r"""[''"`\-,.?!:;()\[\]{}_/\\@#$%^&*+=<>|~]""")


def tokenize_caption(caption: str) -> list[str]:
    """Lower-cased words of ``caption`` with punctuation removed.

    Examples
    --------
    >>> tokenize_caption("A man, riding a horse.")
    ['a', 'man', 'riding', 'a', 'horse']
    """
    if not isinstance(caption, str):
        raise TypeError(f"a caption must be a str; got {type(caption).__name__}.")
    return _PUNCTUATION.sub(" ", caption.lower()).split()


def _ngrams(words: list[str]) -> Counter[tuple[str, ...]]:
    return Counter(
        tuple(words[i : i + n]) for n in range(1, _MAX_N + 1) for i in range(len(words) - n + 1)
    )


def _vector(
    counts: Counter[tuple[str, ...]], df: Counter[tuple[str, ...]], log_n: float
) -> tuple[list[dict[tuple[str, ...], float]], np.ndarray]:
    vec: list[dict[tuple[str, ...], float]] = [{} for _ in range(_MAX_N)]
    norms = np.zeros(_MAX_N)
    for gram, count in counts.items():
        n = len(gram) - 1
        weight = float(count) * (log_n - math.log(max(1.0, float(df[gram]))))
        vec[n][gram] = weight
        norms[n] += weight * weight
    return vec, np.sqrt(norms)


def cider_d(
    candidates: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    sigma: float = _SIGMA,
) -> np.ndarray:
    """Per-item CIDEr-D of ``candidates`` against their reference captions.

    Parameters
    ----------
    candidates : sequence of str
        One generated caption per item.
    references : sequence of sequence of str
        The reference captions of each item (COCO: 5 per image); they also give the document
        frequencies.
    sigma : float, default=6.0
        Width of the Gaussian length penalty, in words.

    Returns
    -------
    scores : numpy.ndarray of shape (n_items,), float64
        Each item's CIDEr-D (10x scale); their mean is the corpus CIDEr-D that
        ``pycocoevalcap.cider.Cider`` reports.

    References
    ----------
    Vedantam, Zitnick and Parikh, "CIDEr: Consensus-based Image Description Evaluation",
    CVPR 2015 (CIDEr-D: clipping, length penalty, no stemming); the COCO caption evaluation code.

    Examples
    --------
    >>> refs = [["a cat on a mat", "a cat sits on the mat"], ["a dog runs", "a brown dog runs"]]
    >>> cider_d(["a cat on a mat", "a dog"], refs).round(3).tolist()
    [6.231, 2.426]
    """
    if len(candidates) != len(references):
        raise ValueError(
            f"got {len(candidates)} candidates but {len(references)} reference lists; need one "
            "list per candidate."
        )
    if not candidates:
        raise ValueError("cider_d needs at least one item.")
    if not float(sigma) > 0:
        raise ValueError(f"sigma must be positive; got {sigma!r}.")
    ref_counts: list[list[tuple[Counter[tuple[str, ...]], int]]] = []
    for item, captions in enumerate(references):
        if isinstance(captions, str) or not captions:
            raise ValueError(f"item {item}: references must be a non-empty list of captions.")
        ref_counts.append([(_ngrams(w), len(w)) for w in map(tokenize_caption, captions)])
    df: Counter[tuple[str, ...]] = Counter()
    for counted in ref_counts:
        df.update(set().union(*(counts for counts, _ in counted)))
    log_n = math.log(float(len(references)))
    scores = np.zeros(len(candidates))
    for item, (candidate, refs) in enumerate(zip(candidates, ref_counts, strict=True)):
        words = tokenize_caption(candidate)
        vec, norm = _vector(_ngrams(words), df, log_n)
        total = np.zeros(_MAX_N)
        for counts, length in refs:
            ref_vec, ref_norm = _vector(counts, df, log_n)
            penalty = math.exp(-((len(words) - length) ** 2) / (2.0 * float(sigma) ** 2))
            for n in range(_MAX_N):
                value = sum(
                    min(weight, ref_vec[n].get(gram, 0.0)) * ref_vec[n].get(gram, 0.0)
                    for gram, weight in vec[n].items()
                )
                if norm[n] != 0 and ref_norm[n] != 0:
                    value /= norm[n] * ref_norm[n]
                total[n] += value * penalty
        scores[item] = 10.0 * total.mean() / len(refs)
    return scores
