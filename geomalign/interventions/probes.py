"""Linear probes on representations, and cross-modal probe transfer.

A probe is a standardised multinomial logistic regression scored by stratified K-fold
cross-validation: it asks how linearly decodable a label (colour, shape, count, ...) is from one
layer's representations. Transfer trains the probe on one view (e.g. caption representations) and
tests it on another view of the same samples (image representations of the same layer): the share of
the textual label geometry that the visual inputs reuse.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from geomalign import stats
from geomalign._validation import check_paired, check_representations

__all__ = ["ProbeResult", "probe_accuracy", "transfer_accuracy"]


@dataclass(frozen=True)
class ProbeResult:
    """Cross-validated accuracy of a linear probe.

    Attributes
    ----------
    accuracy : float
        Mean test accuracy over the folds.
    fold_accuracies : numpy.ndarray of shape (n_splits,)
        Test accuracy of each fold.
    chance : float
        Accuracy of always predicting the most frequent class.
    null_mean : float or None
        Mean accuracy over label permutations (``None`` without permutations).
    p_value : float or None
        Permutation p-value, ``(1 + #{null >= accuracy}) / (1 + n_permutations)``
        (:func:`geomalign.stats.p_value`, ``alternative="greater"``).
    n_samples, n_classes : int
        Number of samples and of distinct labels.
    n_permutations : int, default=0
        Label permutations behind ``null_mean`` and ``p_value`` (0 without them).
    """

    accuracy: float
    fold_accuracies: np.ndarray
    chance: float
    null_mean: float | None
    p_value: float | None
    n_samples: int
    n_classes: int
    n_permutations: int = 0


def _check_labels(y: object, n_samples: int, n_splits: int) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != n_samples:
        raise ValueError(
            f"y must be a 1-D array with one label per sample ({n_samples}); got shape "
            f"{labels.shape}."
        )
    classes, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if classes.size < 2:
        raise ValueError(
            f"y must hold at least 2 distinct labels to probe; got {classes.tolist()}."
        )
    rare = classes[counts < n_splits]
    if rare.size:
        raise ValueError(
            f"every label needs at least n_splits={n_splits} samples for stratified "
            f"cross-validation; labels {rare.tolist()[:10]} have fewer (counts "
            f"{counts[counts < n_splits].tolist()[:10]})."
        )
    return codes


def _check_options(n_splits: int, C: float, n_permutations: int) -> None:
    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 2:
        raise ValueError(f"n_splits must be an int >= 2; got {n_splits!r}.")
    if not isinstance(C, int | float) or isinstance(C, bool) or not C > 0:
        raise ValueError(f"C must be a positive float; got {C!r}.")
    if (
        isinstance(n_permutations, bool)
        or not isinstance(n_permutations, int)
        or n_permutations < 0
    ):
        raise ValueError(f"n_permutations must be a non-negative int; got {n_permutations!r}.")


def _fold_accuracies(
    X_source: np.ndarray, X_target: np.ndarray, codes: np.ndarray, folds: list, C: float
) -> np.ndarray:
    """Train on the source view of each training fold, test on the target view of its test fold.

    Each view is standardised with the mean and scale of its own training rows (no labels used),
    so that a constant offset or scale between the views (the modality gap) does not count
    against transfer.
    """
    scores = np.empty(len(folds))
    for k, (train, test) in enumerate(folds):
        source_scaler = StandardScaler().fit(X_source[train])
        clf = LogisticRegression(C=C, max_iter=5000)
        clf.fit(source_scaler.transform(X_source[train]), codes[train])
        if X_target is X_source:
            target_test = source_scaler.transform(X_target[test])
        else:
            target_test = StandardScaler().fit(X_target[train]).transform(X_target[test])
        scores[k] = np.mean(clf.predict(target_test) == codes[test])
    return scores


def _probe(
    X_source: object,
    X_target: object | None,
    y: object,
    *,
    n_splits: int,
    C: float,
    n_permutations: int,
    random_state: int,
) -> ProbeResult:
    _check_options(n_splits, C, n_permutations)
    Xs = np.asarray(check_representations(X_source, name="X_source", allow_torch=False))
    if X_target is None:
        Xt = Xs
    else:
        Xt = np.asarray(check_representations(X_target, name="X_target", allow_torch=False))
        check_paired(Xs, Xt, x_name="X_source", y_name="X_target")
        if Xs.shape[1] != Xt.shape[1]:
            raise ValueError(
                "X_source and X_target must have the same number of features to share a probe; "
                f"got X_source.shape={Xs.shape}, X_target.shape={Xt.shape}."
            )
    codes = _check_labels(y, Xs.shape[0], n_splits)
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    folds = list(splitter.split(Xs, codes))
    scores = _fold_accuracies(Xs, Xt, codes, folds, C)
    accuracy = float(scores.mean())
    null_mean = p_value = None
    if n_permutations:
        rng = np.random.default_rng(random_state)
        null = stats.permutation_null(
            lambda perm: float(_fold_accuracies(Xs, Xt, codes[perm], folds, C).mean()),
            codes.size,
            n_permutations,
            rng,
        )
        null_mean = float(null.mean())
        p_value = stats.p_value(null, accuracy, alternative="greater")
    counts = np.bincount(codes)
    return ProbeResult(
        accuracy=accuracy,
        fold_accuracies=scores,
        chance=float(counts.max() / counts.sum()),
        null_mean=null_mean,
        p_value=p_value,
        n_samples=int(Xs.shape[0]),
        n_classes=int(counts.size),
        n_permutations=n_permutations,
    )


def probe_accuracy(
    X: object,
    y: object,
    *,
    n_splits: int = 5,
    C: float = 1.0,
    n_permutations: int = 0,
    random_state: int = 0,
) -> ProbeResult:
    """Cross-validated accuracy of a standardised linear probe predicting ``y`` from ``X``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Representations (one layer of one view).
    y : array-like of shape (n_samples,)
        Labels (any hashable values); every label needs at least ``n_splits`` samples.
    n_splits : int, default=5
        Folds of the stratified cross-validation (shuffled with ``random_state``).
    C : float, default=1.0
        Inverse L2 regularisation strength of the logistic regression.
    n_permutations : int, default=0
        Label permutations for the null distribution (same folds); 0 skips it.
    random_state : int, default=0
        Seed of the folds and of the permutations.

    Returns
    -------
    ProbeResult

    Examples
    --------
    >>> X = np.r_[np.zeros((10, 2)), np.ones((10, 2))]
    >>> probe_accuracy(X, [0] * 10 + [1] * 10).accuracy
    1.0
    """
    return _probe(
        X, None, y, n_splits=n_splits, C=C, n_permutations=n_permutations, random_state=random_state
    )


def transfer_accuracy(
    X_source: object,
    X_target: object,
    y: object,
    *,
    n_splits: int = 5,
    C: float = 1.0,
    n_permutations: int = 0,
    random_state: int = 0,
) -> ProbeResult:
    """Accuracy of a probe trained on one view and tested on another view of the same samples.

    The probe is cross-fitted: in each fold it is trained on the training rows of ``X_source``
    and tested on the held-out rows of ``X_target``, so no sample is seen in both roles. Each view
    is standardised with its own training-row statistics (label-free), which removes a constant
    offset between the views (the modality gap) but not a rotation.

    Parameters
    ----------
    X_source : array-like of shape (n_samples, n_features)
        View the probe is trained on (e.g. caption representations of one layer).
    X_target : array-like of shape (n_samples, n_features)
        View it is tested on (e.g. image representations of the same layer), same rows, same
        width.
    y : array-like of shape (n_samples,)
        Labels shared by both views.
    n_splits, C, n_permutations, random_state
        As in :func:`probe_accuracy`.

    Returns
    -------
    ProbeResult
    """
    return _probe(
        X_source,
        X_target,
        y,
        n_splits=n_splits,
        C=C,
        n_permutations=n_permutations,
        random_state=random_state,
    )
