"""Populations whose truth is known: Gaussian paired views, flat tori, planted layer profiles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["GaussianViews", "LayeredViews", "torus"]


def _sq_frobenius(M: np.ndarray) -> float:
    return float(np.sum(M * M))


@dataclass(frozen=True)
class GaussianViews:
    r"""Paired Gaussian views ``X = Z A``, ``Y = W B + noise E`` with a closed-form linear CKA.

    ``Z`` (n, k) holds the latent factors of the samples and ``E`` (n, q) independent noise, all
    standard normal. With ``shared=True`` the second view reads the same factors (``W = Z``); with
    ``shared=False`` it reads independent ones and the views are independent (the null).

    Attributes
    ----------
    A : numpy.ndarray of shape (k, p)
        Loadings of the first view.
    B : numpy.ndarray of shape (k, q)
        Loadings of the second view.
    noise : float
        Standard deviation of the second view's noise.
    shared : bool
        Whether both views read the same latent factors.

    Notes
    -----
    The population covariances are :math:`\Sigma_{XX} = A^T A`, :math:`\Sigma_{YY} = B^T B +
    s^2 I` and :math:`\Sigma_{XY} = A^T B` (0 when not shared), so linear CKA, biased or
    debiased, converges as n grows to

    .. math:: \mathrm{CKA} = \frac{\|A^T B\|_F^2}{\|A^T A\|_F \, \|B^T B + s^2 I\|_F}.
    """

    A: np.ndarray
    B: np.ndarray
    noise: float = 0.0
    shared: bool = True

    @classmethod
    def random(
        cls,
        *,
        n_latent: int,
        n_features_x: int,
        n_features_y: int,
        linear_cka: float | None = None,
        noise: float = 0.0,
        random_state: int | np.random.Generator | None = None,
    ) -> GaussianViews:
        """Random standard-normal loadings; ``linear_cka`` (0 = independent views) sets the noise.

        A target in (0, 1) is reached by bisection on the noise level (the population CKA falls
        as the noise grows); it must lie below the noise-free value.
        """
        rng = np.random.default_rng(random_state)
        A = rng.standard_normal((n_latent, n_features_x))
        B = rng.standard_normal((n_latent, n_features_y))
        if linear_cka is None:
            return cls(A, B, noise)
        if linear_cka == 0:
            return cls(A, B, noise, shared=False)
        top = cls(A, B, 0.0).linear_cka
        if not 0 < linear_cka < top:
            raise ValueError(
                f"linear_cka must lie in [0, {top:.4g}) for these loadings (the noise-free "
                f"value); got {linear_cka!r}."
            )
        low, high = 0.0, 1.0
        while cls(A, B, high).linear_cka > linear_cka:
            high *= 2
        for _ in range(80):
            mid = (low + high) / 2
            low, high = (mid, high) if cls(A, B, mid).linear_cka > linear_cka else (low, mid)
        return cls(A, B, (low + high) / 2)

    @property
    def linear_cka(self) -> float:
        """The population linear CKA (see Notes)."""
        if not self.shared:
            return 0.0
        q = self.B.shape[1]
        yy = self.B.T @ self.B + self.noise**2 * np.eye(q)
        xy = _sq_frobenius(self.A.T @ self.B)
        return xy / np.sqrt(_sq_frobenius(self.A.T @ self.A) * _sq_frobenius(yy))

    def sample(
        self,
        n_samples: int,
        rng: np.random.Generator,
        *,
        latent: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(X, Y)`` of ``n_samples`` rows; ``latent = (Z, W)`` reuses given factors (n, k)."""
        k = self.A.shape[0]
        if latent is None:
            Z = rng.standard_normal((n_samples, k))
            W = Z if self.shared else rng.standard_normal((n_samples, k))
        else:
            Z, W = latent
            W = Z if self.shared else W
        Y = W @ self.B + self.noise * rng.standard_normal((n_samples, self.B.shape[1]))
        return Z @ self.A, Y


@dataclass(frozen=True)
class LayeredViews:
    """One :class:`GaussianViews` per layer, all reading the same latent factors of each sample.

    The layers of a curve are therefore dependent, as the layers of a network are (each layer
    reads the same inputs): this is the case multiple-comparison corrections must handle.

    Attributes
    ----------
    layers : tuple of GaussianViews
        The population of each layer; all with the same number of latent factors.
    """

    layers: tuple[GaussianViews, ...]

    @classmethod
    def planted(
        cls,
        profile: Sequence[float],
        *,
        n_latent: int,
        n_features_x: int,
        n_features_y: int,
        random_state: int | np.random.Generator | None = None,
    ) -> LayeredViews:
        """Layers whose population linear CKA is ``profile`` (0 = independent views there)."""
        rng = np.random.default_rng(random_state)
        return cls(
            tuple(
                GaussianViews.random(
                    n_latent=n_latent,
                    n_features_x=n_features_x,
                    n_features_y=n_features_y,
                    linear_cka=float(value),
                    random_state=rng,
                )
                for value in profile
            )
        )

    @property
    def profile(self) -> np.ndarray:
        """Population linear CKA per layer."""
        return np.array([layer.linear_cka for layer in self.layers])

    def sample(
        self,
        n_samples: int,
        rng: np.random.Generator,
        *,
        latent: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per-layer lists ``(Xs, Ys)`` for ``n_samples`` samples sharing their factors;
        ``latent = (Z, W)`` reuses given factors (n, k), e.g. for a second checkpoint that sees
        the same samples."""
        k = self.layers[0].A.shape[0]
        if latent is None:
            latent = (rng.standard_normal((n_samples, k)), rng.standard_normal((n_samples, k)))
        pairs = [layer.sample(n_samples, rng, latent=latent) for layer in self.layers]
        return [x for x, _ in pairs], [y for _, y in pairs]


def torus(
    n_samples: int,
    dimension: int,
    rng: np.random.Generator,
    *,
    n_features: int | None = None,
    noise: float = 0.0,
) -> np.ndarray:
    """Uniform samples of the flat ``dimension``-torus, whose intrinsic dimension is known.

    Each angle is mapped to ``(cos, sin)``, giving a flat torus in ``2 * dimension`` coordinates
    (no boundary, constant density, no curvature at the scale of nearest neighbours); a random
    rotation then embeds it in ``n_features`` coordinates (default ``2 * dimension``), and
    isotropic Gaussian ``noise`` may be added.

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_features)

    Examples
    --------
    >>> torus(5, 3, np.random.default_rng(0), n_features=10).shape
    (5, 10)
    """
    angles = rng.uniform(0, 2 * np.pi, size=(n_samples, dimension))
    flat = np.concatenate([np.cos(angles), np.sin(angles)], axis=1)
    width = n_features or 2 * dimension
    if width < 2 * dimension:
        raise ValueError(f"n_features must be >= 2 * dimension = {2 * dimension}; got {width}.")
    rotation, _ = np.linalg.qr(rng.standard_normal((width, width)))
    X = flat @ rotation[: 2 * dimension]
    if noise:
        X = X + noise * rng.standard_normal(X.shape)
    return X
