"""Image files behind a paired dataset: paths kept inside the dataset root, an up-front existence
check and a lazy, checked loader."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image, UnidentifiedImageError

# How many offending samples an error message lists before eliding the rest.
_MAX_LISTED = 5


def contained_path(root: Path, name: str, where: str, *, allow_outside_root: bool) -> Path:
    """The file ``name`` (as written in a table) names, refused if it leads outside ``root``.

    Relative paths are resolved against ``root``. Unless ``allow_outside_root``, absolute paths
    and paths that leave ``root`` (through ``..`` or a symbolic link, followed here) raise
    ValueError at ``where``; the returned path is then the resolved one, so that a link changed
    later is not followed again.
    """
    path = Path(name)
    if allow_outside_root:
        return path if path.is_absolute() else root / path
    hint = "pass allow_outside_root=True (--allow-outside-root) if the table is trusted"
    if path.is_absolute():
        raise ValueError(
            f"{where}: image path {name!r} is absolute; image paths must be relative to the "
            f"dataset root {root} ({hint})."
        )
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise ValueError(
            f"{where}: image path {name!r} leads outside the dataset root {root} (to {resolved}; "
            f"{hint})."
        )
    return resolved


def check_files_exist(
    ids: Sequence[str], paths: Sequence[Path], source: str, *, hint: str = ""
) -> None:
    """Raise ValueError naming the samples whose image file does not exist (then ``hint``)."""
    pairs = zip(ids, paths, strict=True)
    missing = [(sample_id, path) for sample_id, path in pairs if not path.is_file()]
    if missing:
        listed = "; ".join(f"sample {i!r}: {p}" for i, p in missing[:_MAX_LISTED])
        more = f" (and {len(missing) - _MAX_LISTED} more)" if len(missing) > _MAX_LISTED else ""
        raise ValueError(
            f"{source}: {len(missing)} of {len(paths)} image files do not exist: {listed}{more}."
            f"{hint}"
        )


def read_rgb(path: Path, sample_id: str, source: str) -> Image.Image:
    """Open an image file as RGB, raising ValueError that names the sample if it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError as exc:
        raise ValueError(
            f"{source}: sample {sample_id!r}: image file {path} does not exist."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(
            f"{source}: sample {sample_id!r}: cannot read image file {path} ({exc})."
        ) from exc


def file_loader(
    ids: Sequence[str], paths: Sequence[Path], source: str
) -> Callable[[int], Image.Image]:
    """Return ``load_image(i)`` that reads sample ``i``'s file on demand."""
    ids, paths = list(ids), list(paths)

    def load_image(i: int) -> Image.Image:
        return read_rgb(paths[i], ids[i], source)

    return load_image
