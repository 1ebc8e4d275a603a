"""An error inside the export thread ends the job: the progress bar goes, Export is enabled again, and the
user reads why; an interrupted export leaves only what its manifest lists."""
from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from segstudio.core.document import ImageStatus
from tests.gui.exporting.test_export_dialog import blob_image, open_labelled, run_export


@pytest.fixture
def labelled(tmp_path, rng):
    """Three 16-bit images on disk with their masks and a hand-painted corner."""
    import numpy as np
    import tifffile

    items = []
    for i in range(3):
        pixels, mask = blob_image(rng)
        tifffile.imwrite(tmp_path / f"slide_{i}.tif", pixels)
        hand = np.zeros(mask.shape, bool)
        hand[:5, :7] = True
        items.append((tmp_path / f"slide_{i}.tif", pixels, mask, hand))
    return items


def visible_errors(window):
    return [b.text() for b in window.findChildren(QMessageBox) if b.isVisible() and b.objectName() == "errorDialog"]


@pytest.mark.parametrize("error", [KeyError("entries"), OSError(28, "No space left on device")])
def test_an_error_in_the_export_thread_ends_the_job_and_says_why(window, qtbot, tmp_path, labelled, monkeypatch,
                                                                  error):
    from segstudio.core import dataset

    def broken_export(*args, **kwargs):
        raise error

    monkeypatch.setattr(dataset, "export_many", broken_export)
    docs = open_labelled(window, labelled, [ImageStatus.EDITED] * 3)
    report = run_export(window, qtbot, tmp_path / "dataset")

    assert report.error and not report.exported
    assert not window.exporting.busy() and not window.exporting.progress.isVisible()
    assert window.actions.export_dataset.isEnabled()
    (text,) = visible_errors(window)
    assert "Nothing was exported" in text and (("KeyError" in text) if isinstance(error, KeyError)
                                               else "No space left" in text)
    assert all(d.status == ImageStatus.EDITED for d in docs)


def test_an_image_that_cannot_be_prepared_is_named_and_the_others_are_exported(window, qtbot, tmp_path, labelled):
    from segstudio.core.dataset import load_manifest

    docs = open_labelled(window, labelled, [ImageStatus.EDITED] * 3)
    docs[1].display_channels = (0, 5)  # a channel the image does not have
    report = run_export(window, qtbot, tmp_path / "dataset")
    assert report.exported == [docs[0], docs[2]] and [d for d, _ in report.failed] == [docs[1]]
    assert "IndexError" in report.failed[0][1]
    assert len(load_manifest(tmp_path / "dataset")["entries"]) == 2
    assert not window.exporting.progress.isVisible() and window.actions.export_dataset.isEnabled()


def test_a_failing_nnunet_layout_is_reported_after_the_images_are_exported(window, qtbot, tmp_path, labelled,
                                                                           monkeypatch):
    from segstudio.core import nnunet

    monkeypatch.setattr(nnunet, "export_nnunet", lambda *a, **k: {}["numTraining"])
    docs = open_labelled(window, labelled, [ImageStatus.EDITED] * 3)
    report = run_export(window, qtbot, tmp_path / "dataset", nnunet_root=tmp_path / "raw")
    assert report.exported == docs and "KeyError" in report.nnunet_error
    (text,) = visible_errors(window)
    assert "nnU-Net layout" in text and "Exported 3 images" in text
    assert window.actions.export_dataset.isEnabled()


def test_a_cancelled_export_leaves_only_files_its_manifest_lists(window, qtbot, tmp_path, labelled, monkeypatch):
    from segstudio.core import dataset

    docs = open_labelled(window, labelled, [ImageStatus.EDITED] * 3)
    real_write = dataset._write_item
    first_written, pressed = threading.Event(), threading.Event()

    def write_then_wait(*args, **kwargs):
        entry = real_write(*args, **kwargs)
        first_written.set()
        pressed.wait(30)  # the user presses Cancel while the first image is being written
        return entry

    def press_cancel():
        qtbot.waitUntil(first_written.is_set)
        window.exporting.progress.cancel_button.click()
        pressed.set()

    monkeypatch.setattr(dataset, "_write_item", write_then_wait)
    folder = tmp_path / "dataset"
    QTimer.singleShot(0, press_cancel)
    report = run_export(window, qtbot, folder)
    assert report.cancelled and report.exported == docs[:1]
    entries = dataset.load_manifest(folder)["entries"]
    listed = {entry[key] for entry in entries for key in ("image", "mask", "hand", "objects") if entry.get(key)}
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {"dataset.json"}
    assert on_disk == listed
    assert not window.exporting.progress.isVisible() and window.actions.export_dataset.isEnabled()
