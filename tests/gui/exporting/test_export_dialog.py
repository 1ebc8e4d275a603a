"""File > Export to Dataset: the dialog, what lands in the dataset folder, and per-image failures."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from segstudio.core.document import ImageStatus


@pytest.fixture(autouse=True)
def private_qsettings(tmp_path):
    """Remembered folders go to a per-test settings file, not the user's."""
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    yield


def blob_image(rng, size=40):
    yy, xx = np.mgrid[:size, :size]
    mask = np.zeros((size, size), np.uint8)
    for _ in range(3):
        cy, cx = rng.integers(6, size - 6, size=2)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(3, 7) ** 2] = 1
    pixels = np.clip(rng.normal(300, 50, mask.shape) + mask * 1000.0, 0, 65535).astype(np.uint16)
    return pixels, mask


@pytest.fixture
def labelled(tmp_path, rng):
    """Three 16-bit images on disk with their true masks, and hand maps covering a corner."""
    items = []
    for i in range(3):
        pixels, mask = blob_image(rng)
        path = tmp_path / f"slide_{i}.tif"
        tifffile.imwrite(path, pixels)
        hand = np.zeros(mask.shape, bool)
        hand[: 5 + i, :7] = True
        items.append((path, pixels, mask, hand))
    return items


def open_labelled(window, labelled, statuses):
    docs = window.open_paths([p for p, *_ in labelled])
    for doc, (_, _, mask, hand), status in zip(docs, labelled, statuses):
        if status != ImageStatus.NEW:
            doc.replace_mask(mask.copy(), hand.copy())
            doc.set_status(status)
    return docs


def run_export(window, qtbot, folder, *, all_images=True, nnunet_root=None):
    window.actions.export_dataset.trigger()
    dialog = window.exporting.dialog
    assert dialog is not None and dialog.isVisible()
    dialog.folder_edit.setText(str(folder))
    (dialog.all_radio if all_images else dialog.current_radio).setChecked(True)
    dialog.nnunet_check.setChecked(nnunet_root is not None)
    if nnunet_root is not None:
        dialog.nnunet_folder_edit.setText(str(nnunet_root))
    with qtbot.waitSignal(window.exporting.export_finished, timeout=30000) as blocker:
        dialog.accept()
    return blocker.args[0]


def visible_errors(window):
    return [b for b in window.findChildren(QMessageBox) if b.isVisible() and b.objectName() == "errorDialog"]


def test_action_is_enabled_only_while_an_image_is_open(window, labelled):
    assert not window.actions.export_dataset.isEnabled()
    docs = window.open_paths([labelled[0][0]])
    assert window.actions.export_dataset.isEnabled()
    window.close_document(docs[0])
    assert not window.actions.export_dataset.isEnabled()


def test_export_writes_the_dataset_layout_and_marks_documents_exported(window, qtbot, tmp_path, labelled):
    from segstudio.core.dataset import load_entry, load_manifest

    docs = open_labelled(window, labelled, [ImageStatus.EDITED, ImageStatus.PREDICTED, ImageStatus.NEW])
    docs[1].model_version = "nuclei-unet/v3"
    for doc in docs:
        doc.classes.rename(1, "cell")
    folder = tmp_path / "dataset"
    report = run_export(window, qtbot, folder, nnunet_root=tmp_path / "nnUNet_raw")

    assert report.error is None and not report.failed
    assert report.exported == docs[:2]  # the untouched NEW image is not among "edited or predicted"
    manifest = load_manifest(folder)
    by_source = {e["source"]: e for e in manifest["entries"]}
    assert set(by_source) == {str(labelled[0][0].resolve()), str(labelled[1][0].resolve())}
    for doc, (path, pixels, mask, hand) in zip(docs[:2], labelled[:2]):
        entry = by_source[str(path.resolve())]
        stored_pixels, stored_mask, stored_hand = load_entry(folder, entry)
        np.testing.assert_array_equal(stored_pixels[..., 0], pixels)
        np.testing.assert_array_equal(stored_mask, mask)
        np.testing.assert_array_equal(stored_hand, hand)
        assert (folder / entry["image"]).is_file() and (folder / entry["mask"]).is_file()
        assert entry["hand_fraction"] == pytest.approx(hand.mean())
        assert doc.status == ImageStatus.EXPORTED
    assert by_source[str(labelled[1][0].resolve())]["model_version"] == "nuclei-unet/v3"
    assert by_source[str(labelled[0][0].resolve())]["model_version"] is None
    assert manifest["classes"] == json.loads(json.dumps(docs[0].classes.to_list()))
    assert manifest["classes"][1]["name"] == "cell"
    assert docs[2].status == ImageStatus.NEW

    nnunet = tmp_path / "nnUNet_raw" / "Dataset501_segstudio"
    assert report.nnunet_path == nnunet
    assert json.loads((nnunet / "dataset.json").read_text())["numTraining"] == 2
    assert len(list((nnunet / "imagesTr").iterdir())) == 2 and len(list((nnunet / "labelsTr").iterdir())) == 2
    assert not visible_errors(window)
    assert "Exported 2 images" in window.statusBar().currentMessage()

    # The folder is remembered for the next export (and offered to Fine-tune).
    window.actions.export_dataset.trigger()
    assert window.exporting.dialog.folder_edit.text() == str(folder.resolve())
    assert "Existing dataset with 2 images" in window.exporting.dialog.folder_info.text()
    window.exporting.dialog.reject()


def test_current_image_only(window, qtbot, tmp_path, labelled):
    from segstudio.core.dataset import load_manifest

    docs = open_labelled(window, labelled, [ImageStatus.EDITED] * 3)
    window.set_current(docs[2])
    report = run_export(window, qtbot, tmp_path / "ds", all_images=False)
    assert report.exported == [docs[2]]
    assert [e["source"] for e in load_manifest(tmp_path / "ds")["entries"]] == [str(labelled[2][0].resolve())]
    assert [d.status for d in docs] == [ImageStatus.EDITED, ImageStatus.EDITED, ImageStatus.EXPORTED]


def test_a_failing_image_is_named_and_the_others_are_exported(window, qtbot, tmp_path, labelled):
    from segstudio.core.dataset import load_manifest

    docs = open_labelled(window, labelled, [ImageStatus.EDITED] * 3)
    docs[1].mask[3, 3] = 9  # a class id the image's class table does not have
    folder = tmp_path / "dataset"
    report = run_export(window, qtbot, folder)

    assert report.exported == [docs[0], docs[2]]
    assert [d for d, _ in report.failed] == [docs[1]]
    assert "9" in report.failed[0][1]
    sources = {e["source"] for e in load_manifest(folder)["entries"]}
    assert sources == {str(labelled[0][0].resolve()), str(labelled[2][0].resolve())}
    assert [d.status for d in docs] == [ImageStatus.EXPORTED, ImageStatus.EDITED, ImageStatus.EXPORTED]
    boxes = visible_errors(window)
    assert boxes and "slide_1.tif" in boxes[0].text() and "class ids [9]" in boxes[0].text()
    assert "slide_0.tif" not in window.last_error.split("\n\n", 1)[1]


def test_an_unusable_folder_is_refused_in_the_dialog(window, tmp_path, labelled):
    open_labelled(window, labelled, [ImageStatus.EDITED] * 3)
    folder = tmp_path / "not-a-dataset"
    folder.mkdir()
    (folder / "dataset.json").write_text('{"format": "something-else"}')
    window.actions.export_dataset.trigger()
    dialog = window.exporting.dialog
    dialog.folder_edit.setText(str(folder))
    assert not dialog.export_button.isEnabled()
    assert "not a segstudio dataset" in dialog.hint.text()
    dialog.accept()  # refused: stays open, nothing written
    assert dialog.isVisible() and not (folder / "images").exists()
    dialog.folder_edit.setText("")
    assert not dialog.export_button.isEnabled() and "Choose the dataset folder" in dialog.hint.text()
    dialog.reject()


def test_painting_during_an_export_keeps_the_image_marked_unexported(window, qtbot, tmp_path, labelled):
    from segstudio.core.dataset import load_entry, load_manifest
    from segstudio.core.edits import paint_disk
    from segstudio.gui.documents.commands import MaskEditCommand

    docs = open_labelled(window, labelled[:1], [ImageStatus.EDITED])
    doc = docs[0]
    exported_mask = doc.mask.copy()
    with qtbot.waitSignal(window.exporting.export_finished, timeout=30000):
        window.exporting.start(tmp_path / "ds", [doc])
        # A stroke made before the export reports back: the dataset has the mask as it was at the start.
        y, x = np.argwhere(exported_mask == 0)[0]
        diff = paint_disk(doc.mask, int(y), int(x), 2, 1, hand=doc.hand)
        doc.undo_stack.push(MaskEditCommand(doc, diff, "Brush"))
    entry = load_manifest(tmp_path / "ds")["entries"][0]
    np.testing.assert_array_equal(load_entry(tmp_path / "ds", entry)[1], exported_mask)
    assert doc.status == ImageStatus.EDITED


def test_the_note_reads_as_normal_text_and_a_single_image_is_counted_in_the_singular(window, qtbot, tmp_path,
                                                                                     labelled):
    from PySide6.QtWidgets import QLabel

    open_labelled(window, labelled[:1], [ImageStatus.EDITED])
    window.actions.export_dataset.trigger()
    note = window.exporting.dialog.findChild(QLabel, "exportNote")
    assert note.isEnabled() and "pixels painted by hand" in note.text()
    assert note.palette().color(note.foregroundRole()) == window.palette().color(window.foregroundRole())
    window.exporting.dialog.reject()
    run_export(window, qtbot, tmp_path / "one")
    assert "Exported 1 image to" in window.statusBar().currentMessage()
    assert "now holds 1 image." in window.statusBar().currentMessage()
