"""Scoring rules for generated answers: VQA accuracy, exact match, relaxed match.

Pure functions of strings, as the benchmarks score them:

- :func:`normalize_answer`: the answer normalisation of the official VQA evaluation script
  (Antol et al. 2015; ``vqaEval.py`` of the VQA API, used for VQAv2 by Goyal et al. 2017):
  newlines and tabs to spaces, punctuation removed (or replaced by a space), periods dropped
  unless in a decimal number, commas inside numbers dropped, lower case, number words to digits
  (``"two"`` -> ``"2"``), articles (``a``, ``an``, ``the``) removed, contractions restored to
  their apostrophe form (``"dont"`` -> ``"don't"``);
- :func:`vqa_accuracy`: ``min(1, #humans who gave the answer / 3)``, averaged over the 10
  leave-one-annotator-out subsets of 9 as the official script does, or without the averaging;
- :func:`exact_match`: the normalised answer equals a normalised reference (COCO-QA accuracy);
- :func:`relaxed_match`: numbers within 5% of a numeric reference, other answers equal
  ignoring case (ChartQA's relaxed accuracy, Masry et al. 2022).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["exact_match", "normalize_answer", "relaxed_match", "vqa_accuracy"]

_NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
_PUNCTUATION = tuple(';/[]"{}()=+\\_-><@`,?!')
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_IN_NUMBER = re.compile(r"(\d)(,)(\d)")

# The contraction table of the official script: the apostrophe-less spellings people type, each
# mapped to its apostrophe form.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # fmt: skip


def _strip_punctuation(text: str) -> str:
    out = text
    for mark in _PUNCTUATION:
        if f"{mark} " in text or f" {mark}" in text or _COMMA_IN_NUMBER.search(text) is not None:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out)


def normalize_answer(answer: str) -> str:
    """Normalise an answer as the official VQA evaluation script does.

    Parameters
    ----------
    answer : str
        A predicted or reference answer.

    Returns
    -------
    str
        The normalised answer: punctuation handled as in ``processPunctuation`` of the script (a
        mark next to a space, or any mark in a text holding a number with a thousands comma, is
        deleted; other marks become spaces; periods not followed by a digit are deleted), then
        ``processDigitArticle`` (lower case, number words ``zero``..``ten`` and ``none`` to
        digits, articles dropped, apostrophe-less contractions restored), words joined by single
        spaces.

    References
    ----------
    Antol et al., "VQA: Visual Question Answering", ICCV 2015, and the evaluation code of the VQA
    API (``vqaEval.py``: ``processPunctuation``, ``processDigitArticle``).

    Examples
    --------
    >>> normalize_answer("Two dogs.")
    '2 dogs'
    >>> normalize_answer("  the Red-ish one ")
    'red ish 1'
    >>> normalize_answer("dont know")
    "don't know"
    """
    if not isinstance(answer, str):
        raise TypeError(f"an answer must be a str; got {type(answer).__name__}.")
    text = _strip_punctuation(answer.replace("\n", " ").replace("\t", " ").strip())
    words = [_NUMBERS.get(word, word) for word in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def _references(references: Sequence[str]) -> list[str]:
    if isinstance(references, str) or not isinstance(references, Sequence) or not references:
        raise ValueError("references must be a non-empty sequence of strings (not one string).")
    return [normalize_answer(r) for r in references]


def vqa_accuracy(
    prediction: str, references: Sequence[str], *, leave_one_out: bool = True
) -> float:
    """VQA accuracy of a predicted answer against the human answers of one question.

    ``min(1, n / 3)`` where ``n`` is the number of human answers equal to the prediction, after
    :func:`normalize_answer` on both sides.

    Parameters
    ----------
    prediction : str
        The model's answer.
    references : sequence of str
        The human answers (10 per question in VQAv2; duplicates count as agreeing humans).
    leave_one_out : bool, default=True
        Average ``min(1, n / 3)`` over the subsets of all answers but one (the 10 subsets of 9 in
        VQAv2), as the official script does, so that the score of a human answer measured against
        the other humans is comparable with the machine's; with a single reference there is no
        such subset and the plain rule is used. False: ``min(1, n / 3)`` over all references (the
        rule as the VQA paper states it, and the study's own scorer).

    Returns
    -------
    float
        In ``{0, 1/3, 2/3, 1}`` without the averaging; with it, for 10 references of which
        ``n`` agree: 0, 0.3, 0.6, 0.9, 1 for ``n`` = 0, 1, 2, 3, >= 4.

    Notes
    -----
    The official script normalises the answers only when the humans disagree (its reference
    answers were normalised when collected); here both sides are always normalised, as the
    LLaVA and lmms-eval evaluations do, so a prediction ``"Two"`` scores against a unanimous
    ``"2"`` (the official script gives it 0).

    References
    ----------
    Antol et al., "VQA: Visual Question Answering", ICCV 2015; Goyal et al., "Making the V in VQA
    Matter", CVPR 2017; the VQA API's ``vqaEval.py``.

    Examples
    --------
    >>> vqa_accuracy("2", ["2", "2", "2"] + ["3"] * 7)
    0.9
    >>> vqa_accuracy("two", ["2", "2", "3"], leave_one_out=False)
    0.6666666666666666
    """
    refs = _references(references)
    answer = normalize_answer(prediction)
    hits = [ref == answer for ref in refs]
    if not leave_one_out or len(refs) == 1:
        return min(1.0, sum(hits) / 3.0)
    total = sum(hits)
    return sum(min(1.0, (total - hit) / 3.0) for hit in hits) / len(refs)


def exact_match(prediction: str, references: Sequence[str], *, normalize: bool = True) -> float:
    """1.0 if the prediction equals one of the references, else 0.0.

    Parameters
    ----------
    prediction : str
        The model's answer.
    references : sequence of str
        Accepted answers (COCO-QA has one per question).
    normalize : bool, default=True
        Compare after :func:`normalize_answer` (articles, punctuation, number words, case);
        False compares the stripped strings as they are.

    Examples
    --------
    >>> exact_match("The cat.", ["cat"])
    1.0
    >>> exact_match("The cat.", ["cat"], normalize=False)
    0.0
    """
    if normalize:
        return float(normalize_answer(prediction) in _references(references))
    if isinstance(references, str) or not references:
        raise ValueError("references must be a non-empty sequence of strings (not one string).")
    return float(prediction.strip() in {r.strip() for r in references})


def _number(text: str) -> float | None:
    try:
        if text.endswith("%"):
            return float(text[:-1]) / 100.0
        return float(text)
    except ValueError:
        return None


def relaxed_match(prediction: str, references: Sequence[str], *, tolerance: float = 0.05) -> float:
    """Relaxed accuracy: numbers within a relative ``tolerance``, other answers equal.

    For each reference: if both it and the prediction parse as numbers (a trailing ``%`` divides
    by 100) and the reference is non-zero, the prediction is right when ``|p - r| / |r| <=
    tolerance``; otherwise when both strings are equal ignoring case and surrounding spaces. The
    score is 1.0 if any reference accepts the prediction.

    Parameters
    ----------
    prediction : str
        The model's answer.
    references : sequence of str
        Accepted answers.
    tolerance : float, default=0.05
        Largest relative error of a numeric answer (ChartQA: 5%).

    References
    ----------
    Masry et al., "ChartQA", Findings of ACL 2022 (relaxed accuracy; the ``relaxed_correctness``
    of Pix2Struct's evaluation code).

    Examples
    --------
    >>> relaxed_match("10.4", ["10"])
    1.0
    >>> relaxed_match("12%", ["0.1"])
    0.0
    >>> relaxed_match("Blue", ["blue"])
    1.0
    """
    if isinstance(references, str) or not references:
        raise ValueError("references must be a non-empty sequence of strings (not one string).")
    if not 0.0 <= float(tolerance):
        raise ValueError(f"tolerance must be non-negative; got {tolerance!r}.")
    guess = prediction.strip()
    value = _number(guess)
    for reference in references:
        target = reference.strip()
        number = _number(target)
        if value is not None and number:
            if abs(value - number) / abs(number) <= tolerance:
                return 1.0
        elif guess.lower() == target.lower():
            return 1.0
    return 0.0
