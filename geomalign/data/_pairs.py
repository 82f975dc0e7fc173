"""The paired image/caption dataset every loader returns and every extractor consumes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from geomalign.data._tables import check_text

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class Pair:
    """One sample: an image (None if the dataset has captions only), a caption, optional labels."""

    id: str
    image: Image.Image | None
    caption: str
    labels: Mapping[str, object] = field(default_factory=dict)


class PairedDataset(Sequence[Pair]):
    """Images and captions of the same content, aligned by a unique sample id.

    Images are produced on demand by ``load_image(i)`` so that a dataset of files costs no memory
    until a batch is read. Without ``load_image`` the dataset holds captions only (for text models
    and the text views of a vision-language model).

    Parameters
    ----------
    ids : sequence of str
        Unique, stable sample ids; they become the row keys of an activation store.
    captions : sequence of str
        One non-empty caption per sample.
    load_image : callable or None
        ``load_image(i)`` returns sample ``i``'s image as an RGB ``PIL.Image.Image``; None for a
        captions-only dataset.
    labels : mapping of str to array-like, default=None
        Optional label columns, each with one entry per sample.
    source : str, default="memory"
        Where the data came from (a path or a generator name), quoted in error messages.
    """

    def __init__(
        self,
        ids: Sequence[str],
        captions: Sequence[str],
        load_image: Callable[[int], Image.Image] | None = None,
        *,
        labels: Mapping[str, Sequence[object] | np.ndarray] | None = None,
        source: str = "memory",
    ) -> None:
        self.ids = [str(i) for i in ids]
        self.captions = [str(c) for c in captions]
        self.source = source
        self._load_image = load_image
        if len(self.captions) != len(self.ids):
            raise ValueError(
                f"{source}: got {len(self.ids)} ids but {len(self.captions)} captions; "
                "each sample needs exactly one caption."
            )
        seen: dict[str, int] = {}
        for row, sample_id in enumerate(self.ids):
            if sample_id in seen:
                raise ValueError(
                    f"{source}: duplicate sample id {sample_id!r} "
                    f"at rows {seen[sample_id]} and {row}."
                )
            seen[sample_id] = row
        for sample_id, caption in zip(self.ids, self.captions, strict=True):
            check_text(sample_id, f"{source}: sample id {sample_id!r}")
            check_text(caption, f"{source}: sample {sample_id!r}: caption")
            if not caption.strip():
                raise ValueError(f"{source}: sample {sample_id!r} has an empty caption.")
        self.labels: dict[str, np.ndarray] = {}
        for name, column in (labels or {}).items():
            values = np.asarray(column)
            if values.shape[:1] != (len(self.ids),):
                raise ValueError(
                    f"{source}: label column {name!r} has {values.shape[:1]} entries, "
                    f"expected {len(self.ids)} (one per sample)."
                )
            self.labels[name] = values

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Pair:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} samples")
        index %= len(self)
        return Pair(
            id=self.ids[index],
            image=self.image(index) if self.has_images else None,
            caption=self.captions[index],
            labels={name: column[index] for name, column in self.labels.items()},
        )

    def __iter__(self) -> Iterator[Pair]:
        return (self[i] for i in range(len(self)))

    @property
    def has_images(self) -> bool:
        """False for a captions-only dataset."""
        return self._load_image is not None

    def image(self, index: int) -> Image.Image:
        """Return sample ``index``'s image (RGB), loading it now."""
        if self._load_image is None:
            raise ValueError(
                f"{self.source}: a captions-only dataset has no images (asked for sample "
                f"{self.ids[index]!r}); extract its text views only."
            )
        return self._load_image(index)

    def subset(self, indices: Sequence[int]) -> PairedDataset:
        """Return the samples at ``indices`` (in that order) as a new dataset."""
        picked = [int(i) for i in indices]
        load = self._load_image
        return PairedDataset(
            [self.ids[i] for i in picked],
            [self.captions[i] for i in picked],
            None if load is None else lambda j: load(picked[j]),
            labels={name: column[picked] for name, column in self.labels.items()},
            source=self.source,
        )
