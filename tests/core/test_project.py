"""The project manifest: masks, classes, model and view round-trip; a moved folder still finds its images;
a bad manifest is refused with the file and the reason named."""
import json
import shutil

import numpy as np
import pytest

from segstudio.core.labels import ClassTable
from segstudio.core.project import (
    MANIFEST_NAME,
    Project,
    ProjectError,
    ProjectImage,
    ProjectSlide,
    ViewState,
    load_saved_mask,
    load_saved_objects,
    mask_change,
    mask_file_names,
    read_manifest,
    save_project,
    write_manifest,
)


def _images(root):
    (root / "images").mkdir(parents=True)
    paths = [root / "images" / "slide.tif", root / "images" / "other.png"]
    for path in paths:
        path.write_bytes(b"stand-in")
    return paths


def test_project_round_trips_and_opens_after_the_folder_moves(tmp_path, rng):
    work = tmp_path / "work"
    slide, other = _images(work)
    classes = ClassTable.default()
    classes.add("stroma", (0, 200, 100))
    masks = [(rng.integers(0, 3, (6, 8)).astype(np.uint8), rng.random((6, 8)) > 0.5) for _ in range(3)]
    project = Project(
        images=[ProjectImage(slide, page=0, channels=(0, 2)), ProjectImage(slide, page=2, shown=False),
                ProjectImage(other, status="edited")],
        classes=classes, model="nuclei-unet/v2", current=2, view=ViewState(2.5, (10.0, 4.5)),
    )
    manifest = save_project(work / "project", project, masks)
    record = json.loads(manifest.read_text())
    assert manifest.name == MANIFEST_NAME
    assert record["images"][0]["path"] == "../images/slide.tif"  # relative where possible

    moved = tmp_path / "elsewhere" / "work"
    shutil.move(str(work), str(moved))
    loaded = read_manifest(moved / "project")
    assert [loaded.locate(image) for image in loaded.images] == [
        (moved / "images" / "slide.tif").resolve(), (moved / "images" / "slide.tif").resolve(),
        (moved / "images" / "other.png").resolve()]
    assert [(i.page, i.channels, i.shown, i.status) for i in loaded.images] == [
        (0, (0, 2), True, None), (2, None, False, None), (0, None, True, "edited")]
    assert loaded.classes == classes and loaded.model == "nuclei-unet/v2" and loaded.current == 2
    assert loaded.view == ViewState(2.5, (10.0, 4.5))
    for image, (mask, hand) in zip(loaded.images, masks):
        saved_mask, saved_hand = load_saved_mask(moved / "project", image)
        np.testing.assert_array_equal(saved_mask, mask)
        np.testing.assert_array_equal(saved_hand, hand)


def test_an_image_left_in_place_is_found_by_its_old_absolute_path(tmp_path):
    (slide,) = _images(tmp_path / "data")[:1]
    write_manifest(tmp_path / "project" / MANIFEST_NAME, Project(images=[ProjectImage(slide)]))
    shutil.move(str(tmp_path / "project"), str(tmp_path / "moved"))  # the images stay behind
    loaded = read_manifest(tmp_path / "moved")
    assert loaded.locate(loaded.images[0]) == slide.resolve()


def test_session_manifest_lists_absolute_paths_and_no_masks(tmp_path):
    (slide,) = _images(tmp_path / "data")[:1]
    path = write_manifest(tmp_path / "session.json", Project(images=[ProjectImage(slide)]), relative=False)
    assert json.loads(path.read_text())["images"][0]["path"] == str(slide.resolve())
    assert load_saved_mask(tmp_path, read_manifest(path).images[0]) is None


def test_mask_file_names_are_distinct_per_page_and_per_stem():
    assert mask_file_names([("a/slide.tif", 0), ("a/slide.tif", 2), ("b/slide.png", 0), ("b/Slide.tif", 0)]) == [
        "slide.png", "slide.p3.png", "slide-2.png", "Slide-3.png"]


@pytest.mark.parametrize("record, reason", [
    ("not json", "damaged"),
    ({"format": "something-else"}, "not a segstudio project"),
    ({"format": "segstudio-project", "version": 99}, "newer segstudio"),
    ({"format": "segstudio-project", "version": 1, "classes": [], "images": [{"page": 0}]}, "image 1 has no path"),
    ({"format": "segstudio-project", "version": 1, "classes": [], "images": [{"path": "a.tif", "page": -1}]},
     r"a.tif\) has page -1"),
    ({"format": "segstudio-project", "version": 1, "classes": [], "images": [{"path": "a.tif", "mask": "../x.png"}]},
     "must lie inside the project folder"),
    ({"format": "segstudio-project", "version": 1, "classes": [], "images": [], "current": 3}, "'current' is 3"),
    ({"format": "segstudio-project", "version": 1, "classes": ClassTable.default().to_list(), "images": [],
      "slides": [{"path": "a.svs", "labels": "/etc/x.zarr"}]}, "slide 1's labels .* inside the project folder"),
    ({"format": "segstudio-project", "version": 1, "classes": [{"id": 0}], "images": []}, "class table is invalid"),
    ({"format": "segstudio-project", "version": 1, "classes": ClassTable.default().to_list(), "images": [],
      "view": {"zoom": 0, "centre": [1, 2]}}, "impossible zoom"),
])
def test_a_bad_manifest_is_refused_naming_the_file_and_the_reason(tmp_path, record, reason):
    path = tmp_path / "project" / MANIFEST_NAME
    path.parent.mkdir()
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    with pytest.raises(ProjectError, match=reason) as caught:
        read_manifest(path.parent)
    assert str(path) in str(caught.value)


def test_a_missing_project_says_so(tmp_path):
    with pytest.raises(ProjectError, match="there is no project file here"):
        read_manifest(tmp_path)


def test_mask_change_covers_only_what_differs_and_refuses_another_size():
    mask, hand = np.zeros((10, 12), np.uint8), np.zeros((10, 12), bool)
    new_mask, new_hand = mask.copy(), hand.copy()
    new_mask[2:4, 5:7] = 1
    new_hand[6, 1] = True
    diff = mask_change(mask, hand, new_mask, new_hand)
    assert (diff.y0, diff.x0, diff.shape) == (2, 1, (5, 6))
    diff.apply(mask, hand)
    np.testing.assert_array_equal(mask, new_mask)
    np.testing.assert_array_equal(hand, new_hand)
    assert mask_change(mask, hand, new_mask, new_hand) is None
    with pytest.raises(ValueError, match="3 x 3 pixels, the image 12 x 10"):
        mask_change(mask, hand, np.zeros((3, 3), np.uint8), np.zeros((3, 3), bool))


def test_a_project_keeps_its_slides_labels_and_opens_them_after_the_folder_moves(tmp_path):
    (slide, _other) = _images(tmp_path / "work")
    labels, hand = tmp_path / "autosave" / "s.zarr", tmp_path / "autosave" / "s.hand.zarr"
    for folder, name in ((labels, "c/0/0"), (hand, "zarr.json")):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"chunk")
    project = Project(slides=[ProjectSlide(slide, ViewState(0.25, (1000.0, 2000.0)))])
    save_project(tmp_path / "work" / "project", project, [], [(labels, hand)])
    (labels / "c" / "0" / "0").write_bytes(b"changed later")
    save_project(tmp_path / "work" / "project", project, [], [(labels, hand)])  # saved over: replaced whole
    shutil.move(tmp_path / "work", tmp_path / "moved")
    read = read_manifest(tmp_path / "moved" / "project")
    (got,) = read.slides
    assert read.locate(got) == (tmp_path / "moved" / "images" / "slide.tif").resolve()
    assert got.view == ViewState(0.25, (1000.0, 2000.0))
    folder = tmp_path / "moved" / "project"
    assert (folder / got.labels / "c" / "0" / "0").read_bytes() == b"changed later"
    assert (folder / got.hand / "zarr.json").read_bytes() == b"chunk"
    assert sorted(p.name for p in (folder / "slides").iterdir()) == ["slide.hand.zarr", "slide.zarr"]


def test_objects_are_saved_as_an_instance_tiff_and_come_back_with_their_numbers(tmp_path):
    work = tmp_path / "work"
    slide, other = _images(work)
    mask = np.zeros((6, 8), np.uint8)
    mask[1:5, 1:7] = 1
    ids = np.zeros((6, 8), np.uint32)
    ids[1:5, 1:4], ids[1:5, 4:7] = 7, 70_000  # numbers as edits left them, one beyond uint16
    project = Project(images=[ProjectImage(slide), ProjectImage(other)])
    save_project(work / "project", project, [(mask, mask > 0, ids), (mask, mask > 0, None)])
    loaded = read_manifest(work / "project")
    assert loaded.images[0].objects == "objects/slide.tif" and loaded.images[1].objects is None
    assert (work / "project" / "objects" / "slide.tif").exists()
    np.testing.assert_array_equal(load_saved_objects(work / "project", loaded.images[0], mask.shape), ids)
    assert load_saved_objects(work / "project", loaded.images[1], mask.shape) is None
    with pytest.raises(ProjectError, match="objects of slide.tif are 8 x 6 pixels"):
        load_saved_objects(work / "project", loaded.images[0], (7, 8))
    (work / "project" / "objects" / "slide.tif").write_bytes(b"not a tiff")
    with pytest.raises(ProjectError, match="objects of slide.tif cannot be read"):
        load_saved_objects(work / "project", loaded.images[0], mask.shape)
