"""A project: the images a user works on, their masks, the class table, the model and the view, in one folder.

The folder holds ``segstudio-project.json`` (the manifest), the masks the project saved (``masks/``,
``hand/``, and ``objects/``: instance TIFFs, which Fiji and QuPath open too, for images whose objects
were found) and each whole slide's chunked labels (``slides/<name>.zarr``, ``slides/<name>.hand.zarr``).
Images are listed by a path relative to the folder where one exists, so a folder moved to another machine
together with its images opens there, and by the absolute path as a fallback for images that stayed where
they were. The same manifest, without mask files, records the last session: the images and slides that
were open when segstudio quit (their masks and labels are in the autosave).

Writing is atomic (the manifest is replaced whole, after the masks it names are written); reading
validates every field and raises one ProjectError naming the file and what is wrong with it.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from segstudio.core.edits import Diff
from segstudio.core.labels import ClassTable
from segstudio.core.storage import atomic_write_json, load_mask_png, save_error, save_mask_png

FORMAT = "segstudio-project"
VERSION = 1
MANIFEST_NAME = "segstudio-project.json"
MASKS_FOLDER = "masks"
HAND_FOLDER = "hand"
SLIDES_FOLDER = "slides"
OBJECTS_FOLDER = "objects"


class ProjectError(ValueError):
    """A manifest that cannot be used. str(e) names the file and the reason in plain words."""

    def __init__(self, path: os.PathLike | str, reason: str) -> None:
        super().__init__(reason)
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"Cannot open project {self.path}: {self.reason}"


@dataclass
class ProjectImage:
    """One page of one image file, and where its saved mask lies (relative to the project folder)."""

    path: Path  # absolute once read; where the image is looked for first (see Project.locate)
    page: int = 0
    channels: tuple[int, ...] | None = None  # the channels shown; None: the default
    shown: bool = True  # the page shown of its file (other pages were open, not shown)
    status: str | None = None
    mask: str | None = None  # e.g. "masks/slide.png"; None when the mask is elsewhere (the autosave)
    hand: str | None = None
    absolute: Path | None = None  # where the image was when the project was saved
    objects: str | None = None  # e.g. "objects/slide.tif", the instance map; None when none was found
    # What the user chose to feed the model from this image: {"channels": [..] or None, "stain": "" or "he"};
    # None: the default the Model panel works out.
    model_input: dict | None = None


@dataclass
class ViewState:
    zoom: float
    centre: tuple[float, float]  # image x, y at the centre of the view


@dataclass
class ProjectSlide:
    """A whole slide open in its own window, its view, and where the project keeps its labels."""

    path: Path
    view: ViewState | None = None
    labels: str | None = None  # e.g. "slides/tissue.zarr"; None: the labels are in the autosave
    hand: str | None = None
    absolute: Path | None = None


@dataclass
class Project:
    images: list[ProjectImage] = field(default_factory=list)
    classes: ClassTable = field(default_factory=ClassTable.default)
    model: str | None = None
    current: int | None = None  # index into images of the image shown
    view: ViewState | None = None
    saved_at: datetime | None = None
    slides: list[ProjectSlide] = field(default_factory=list)

    def locate(self, image: ProjectImage | ProjectSlide) -> Path:
        """Where the image is now: beside the project as it was, else where it was; the first if neither."""
        if image.path.exists() or image.absolute is None:
            return image.path
        return image.absolute if image.absolute.exists() else image.path


def manifest_path(location: os.PathLike | str) -> Path:
    """The manifest of a project folder (or the manifest file itself)."""
    location = Path(location)
    return location if location.suffix.lower() == ".json" else location / MANIFEST_NAME


# --- writing -------------------------------------------------------------------------------------------
def write_manifest(path: os.PathLike | str, project: Project, *, relative: bool = True) -> Path:
    """Write the manifest atomically; image paths relative to its folder when ``relative`` and possible."""
    path = manifest_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise save_error(path.parent, exc) from exc
    folder = path.parent.resolve()
    record = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": datetime.now(timezone.utc).isoformat(),
        "classes": project.classes.to_list(),
        "model": project.model,
        "current": project.current,
        "view": None if project.view is None else {"zoom": project.view.zoom, "centre": list(project.view.centre)},
        "images": [_image_record(image, folder if relative else None) for image in project.images],
        "slides": [_slide_record(slide, folder if relative else None) for slide in project.slides],
    }
    atomic_write_json(path, record)
    return path


def _where(path: Path, folder: Path | None) -> tuple[str, str]:
    """The path written (relative to ``folder`` where one exists) and the absolute path."""
    absolute = Path(path).resolve()
    shown_path = str(absolute)
    if folder is not None:
        try:
            shown_path = PurePosixPath(*Path(os.path.relpath(absolute, folder)).parts).as_posix()
        except ValueError:  # another drive on Windows: no relative path exists
            pass
    return shown_path, str(absolute)


def _slide_record(slide: ProjectSlide, folder: Path | None) -> dict[str, Any]:
    shown_path, absolute = _where(slide.path, folder)
    view = None if slide.view is None else {"zoom": slide.view.zoom, "centre": list(slide.view.centre)}
    return {"path": shown_path, "absolute": absolute, "view": view, "labels": slide.labels, "hand": slide.hand}


def _image_record(image: ProjectImage, folder: Path | None) -> dict[str, Any]:
    shown_path, absolute = _where(image.path, folder)
    return {
        "path": shown_path,
        "absolute": absolute,
        "page": int(image.page),
        "channels": None if image.channels is None else [int(c) for c in image.channels],
        "shown": bool(image.shown),
        "status": image.status,
        "mask": image.mask,
        "hand": image.hand,
        "objects": image.objects,
        "model_input": image.model_input,
    }


def mask_file_names(images: list[tuple[Path, int]]) -> list[str]:
    """A distinct file name per (image, page) for its mask in the project folder: ``stem[.pN].png``."""
    names: list[str] = []
    taken: set[str] = set()
    for path, page in images:
        base = Path(path).stem + (f".p{page + 1}" if page else "")
        name, number = base, 2
        while name.casefold() in taken:
            name, number = f"{base}-{number}", number + 1
        taken.add(name.casefold())
        names.append(f"{name}.png")
    return names


def save_project(folder: os.PathLike | str, project: Project, work: list[tuple],
                 slide_labels: list[tuple[Path, Path]] = ()) -> Path:
    """Write each image's (mask, hand map[, instance map or None]) from ``work`` and each slide's label
    folders from ``slide_labels`` (its labels and hand map as saved, copied) into the folder, then the
    manifest naming them.

    The manifest goes last, so a save that fails part-way leaves the previous manifest, which names only
    masks that exist. Raises SaveError (an OSError naming the file) when a file cannot be written.
    """
    folder = Path(folder)
    names = mask_file_names([(slide.path, 0) for slide in project.slides])
    for slide, name, sources in zip(project.slides, names, slide_labels):
        stem = name.removesuffix(".png")
        slide.labels, slide.hand = f"{SLIDES_FOLDER}/{stem}.zarr", f"{SLIDES_FOLDER}/{stem}.hand.zarr"
        for source, target in zip(sources, (slide.labels, slide.hand)):
            _copy_folder(Path(source), folder / target)
    if len(work) != len(project.images):
        raise ValueError(f"{len(work)} masks for {len(project.images)} images")
    names = mask_file_names([(image.path, image.page) for image in project.images])
    for image, name, (mask, hand, *objects) in zip(project.images, names, work):
        ids = objects[0] if objects else None
        image.mask, image.hand = f"{MASKS_FOLDER}/{name}", f"{HAND_FOLDER}/{name}"
        image.objects = None if ids is None else f"{OBJECTS_FOLDER}/{Path(name).stem}.tif"
        for sub in (MASKS_FOLDER, HAND_FOLDER) + ((OBJECTS_FOLDER,) if ids is not None else ()):
            try:
                (folder / sub).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise save_error(folder / sub, exc) from exc
        save_mask_png(folder / image.mask, mask)
        save_mask_png(folder / image.hand, np.asarray(hand, dtype=bool))
        if ids is not None:
            from segstudio.core.objects.formats import layer_from_mask, tiff

            tiff.write(folder / image.objects, layer_from_mask(ids, mask, project.classes))
    return write_manifest(folder, project)


def _copy_folder(source: Path, target: Path) -> None:
    """Copy a folder of chunks over ``target`` whole: beside it first, then swapped in by renames."""
    partial, old = target.with_name(target.name + ".partial"), target.with_name(target.name + ".old")
    try:
        for leftover in (partial, old):
            shutil.rmtree(leftover, ignore_errors=True)
        if source.is_dir():
            shutil.copytree(source, partial)
        else:
            partial.mkdir(parents=True)  # nothing painted yet: an empty store
        if target.exists():
            target.rename(old)
        partial.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise save_error(target, exc) from exc


def load_saved_mask(folder: os.PathLike | str, image: ProjectImage) -> tuple[np.ndarray, np.ndarray] | None:
    """The (mask, hand map) the project saved for an image; None when it saved none. ProjectError if unreadable."""
    if image.mask is None:
        return None
    from segstudio.core.imageio import ImageReadError

    folder = Path(folder)
    try:
        mask = load_mask_png(folder / image.mask)
        hand = load_mask_png(folder / image.hand).astype(bool) if image.hand else np.zeros(mask.shape, bool)
    except ImageReadError as exc:
        raise ProjectError(manifest_path(folder), f"the mask of {image.path.name} cannot be read: {exc}") from None
    if hand.shape != mask.shape:
        raise ProjectError(manifest_path(folder), f"the mask and hand-painted map of {image.path.name} differ in size")
    return mask, hand


def load_saved_objects(folder: os.PathLike | str, image: ProjectImage, shape: tuple[int, int]) -> np.ndarray | None:
    """The instance map the project saved for an image; None when it saved none. ProjectError if unusable."""
    if image.objects is None:
        return None
    from segstudio.core.objects.formats import ObjectFileError, tiff

    try:
        ids = tiff.read(Path(folder) / image.objects).ids
    except ObjectFileError as exc:
        raise ProjectError(manifest_path(folder), f"the objects of {image.path.name} cannot be read: "
                                                  f"{exc.reason}") from None
    if ids.shape != tuple(shape):
        raise ProjectError(manifest_path(folder), f"the objects of {image.path.name} are {ids.shape[1]} x "
                                                  f"{ids.shape[0]} pixels, the image {shape[1]} x {shape[0]}")
    return ids


# --- reading -------------------------------------------------------------------------------------------
def read_manifest(location: os.PathLike | str) -> Project:
    """Read and check a manifest; raises ProjectError naming the file and the problem."""
    path = manifest_path(location)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProjectError(path, "there is no project file here") from None
    except OSError as exc:
        raise ProjectError(path, exc.strerror or str(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(path, f"the file is damaged (not valid JSON: {exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ProjectError(path, "this is not a segstudio project file")
    version = record.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise ProjectError(path, f"it was written by a newer segstudio (format version {version}); update segstudio")
    try:
        return _project_from(record, path.parent)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProjectError(path, str(exc) if isinstance(exc, ValueError) else f"a field is missing or wrong: {exc}")\
            from None


def _project_from(record: dict, folder: Path) -> Project:
    images = [_image_from(entry, position, folder) for position, entry in enumerate(_list(record, "images"))]
    current = record.get("current")
    if current is not None and (not isinstance(current, int) or not 0 <= current < len(images)):
        raise ValueError(f"'current' is {current!r}, but the project lists {len(images)} image(s)")
    try:
        classes = ClassTable.from_list(_list(record, "classes"))
    except ValueError as exc:
        raise ValueError(f"the class table is invalid: {exc}") from None
    model = record.get("model")
    if model is not None and not isinstance(model, str):
        raise ValueError(f"'model' must be a model name, not {model!r}")
    saved_at = record.get("saved_at")
    try:
        saved = datetime.fromisoformat(saved_at) if isinstance(saved_at, str) else None
    except ValueError:
        saved = None
    slides = [_slide_from(entry, position, folder) for position, entry in enumerate(record.get("slides") or [])]
    return Project(images, classes, model, current, _view_from(record.get("view")), saved, slides)


def _list(record: dict, key: str) -> list:
    value = record.get(key)
    if not isinstance(value, list):
        raise ValueError(f"'{key}' must be a list")
    return value


def _image_from(entry: Any, position: int, folder: Path) -> ProjectImage:
    where = f"image {position + 1}"
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        raise ValueError(f"{where} has no path")
    page = entry.get("page", 0)
    if not isinstance(page, int) or isinstance(page, bool) or page < 0:
        raise ValueError(f"{where} ({entry['path']}) has page {page!r}; pages are numbered from 0")
    channels = entry.get("channels")
    if channels is not None:
        if not isinstance(channels, list) or not channels or not all(
                isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in channels):
            raise ValueError(f"{where} ({entry['path']}) lists channels {channels!r}; expected channel numbers")
        channels = tuple(channels)
    absolute = entry.get("absolute")
    return ProjectImage(
        path=(folder / entry["path"]).resolve(),
        page=page,
        channels=channels,
        shown=bool(entry.get("shown", True)),
        status=entry.get("status") if isinstance(entry.get("status"), str) else None,
        mask=_inside(entry.get("mask"), f"{where}'s mask"),
        hand=_inside(entry.get("hand"), f"{where}'s hand-painted map"),
        objects=_inside(entry.get("objects"), f"{where}'s objects"),
        absolute=Path(absolute) if isinstance(absolute, str) and absolute else None,
        model_input=_model_input_from(entry.get("model_input"), f"{where} ({entry['path']})"),
    )


def _model_input_from(value: Any, where: str) -> dict | None:
    """The model-input choice of an image, checked: channel numbers (or none) and a known stain."""
    if value is None:
        return None
    channels = value.get("channels") if isinstance(value, dict) else "?"
    stain = value.get("stain", "") if isinstance(value, dict) else "?"
    if channels is not None and not (isinstance(channels, list) and channels and all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in channels)):
        raise ValueError(f"{where}: the model's input lists channels {channels!r}; expected channel numbers")
    if stain not in ("", "he"):
        raise ValueError(f"{where}: the model's input names stain {stain!r}; expected 'he' or none")
    return {"channels": None if channels is None else [int(c) for c in channels], "stain": stain}


def _slide_from(entry: Any, position: int, folder: Path) -> ProjectSlide:
    where = f"slide {position + 1}"
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        raise ValueError(f"{where} has no path")
    absolute = entry.get("absolute")
    return ProjectSlide(
        path=(folder / entry["path"]).resolve(),
        view=_view_from(entry.get("view")),
        labels=_inside(entry.get("labels"), f"{where}'s labels"),
        hand=_inside(entry.get("hand"), f"{where}'s hand-painted map"),
        absolute=Path(absolute) if isinstance(absolute, str) and absolute else None,
    )


def _inside(name: Any, what: str) -> str | None:
    """A file name inside the project folder; the manifest may not point the mask reader elsewhere."""
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a file name in the project folder")
    parts = PurePosixPath(name).parts
    if PurePosixPath(name).is_absolute() or Path(name).is_absolute() or ".." in parts:
        raise ValueError(f"{what} ({name}) must lie inside the project folder")
    return name


def _view_from(view: Any) -> ViewState | None:
    if view is None:
        return None
    try:
        zoom = float(view["zoom"])
        x, y = (float(v) for v in view["centre"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"'view' must hold a zoom and a centre, not {view!r}") from None
    if not np.isfinite([zoom, x, y]).all() or zoom <= 0:
        raise ValueError(f"'view' holds an impossible zoom or centre: {view!r}")
    return ViewState(zoom, (x, y))


# --- bringing a saved mask back ------------------------------------------------------------------------
def mask_change(mask: np.ndarray, hand: np.ndarray, new_mask: np.ndarray, new_hand: np.ndarray) -> Diff | None:
    """The edit that turns (mask, hand) into (new_mask, new_hand), over the box of pixels that differ.

    Opening a project makes this one undo step, so work the image held before (its autosave) is one
    Undo away rather than overwritten. None when nothing differs.
    """
    if new_mask.shape != mask.shape or new_hand.shape != hand.shape:
        raise ValueError(f"the saved mask is {new_mask.shape[1]} x {new_mask.shape[0]} pixels, "
                         f"the image {mask.shape[1]} x {mask.shape[0]}")
    if new_mask.size and int(new_mask.max()) > np.iinfo(mask.dtype).max:
        raise ValueError(f"the saved mask holds class ids up to {int(new_mask.max())}, more than this mask can")
    new_mask = new_mask.astype(mask.dtype, copy=False)
    changed = (mask != new_mask) | (hand != new_hand)
    rows = np.flatnonzero(changed.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(changed.any(axis=0))
    region = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
    return Diff(int(rows[0]), int(cols[0]), mask[region].copy(), new_mask[region].copy(),
                hand[region].copy(), new_hand[region].astype(bool))
