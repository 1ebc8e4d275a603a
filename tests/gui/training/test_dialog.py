"""Model > Fine-tune...: the form, what it remembers, and the `segstudio train` options it produces."""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest

from segstudio.engine.training.config import TrainConfig
from segstudio.gui.training.process import train_arguments
from tests.gui.training.fixtures import save_tiny_unet, write_dataset


def _train_parser() -> argparse.ArgumentParser:
    from segstudio.cli import train

    subparsers = argparse.ArgumentParser(prog="segstudio").add_subparsers()
    train.register(subparsers)
    return subparsers.choices["train"]


def test_dialog_defaults_and_arguments_match_the_train_command(window, tiny_setup, tmp_path):
    base, data = tiny_setup
    assert window.actions.fine_tune.isEnabled()
    window.actions.fine_tune.trigger()
    dialog = window.training.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.datasets() == [str(data.resolve())]  # the last export folder
    assert "8 images" in dialog.dataset_list.item(0).text()
    assert dialog.base_combo.currentData() == base
    assert dialog.start_button.isEnabled()

    not_a_dataset = tmp_path / "empty"
    not_a_dataset.mkdir()
    assert not dialog.add_dataset(not_a_dataset)
    assert "no dataset.json" in dialog.hint.text() and dialog.datasets() == [str(data.resolve())]
    second = write_dataset(tmp_path / "second", n=3, seed=9)
    assert dialog.add_dataset(second)
    dialog.dataset_list.item(1).setSelected(True)
    dialog.remove_selected()
    dialog.dataset_list.item(0).setSelected(True)
    dialog.remove_selected()
    assert dialog.datasets() == [] and not dialog.start_button.isEnabled()
    assert "Add at least one dataset" in dialog.hint.text()
    dialog.add_dataset(data)
    dialog.add_dataset(second)

    dialog.length_unit.setCurrentIndex(dialog.length_unit.findData("steps"))
    dialog.length_spin.setValue(40)
    dialog.lr_spin.setValue(1e-3)
    dialog.batch_spin.setValue(3)
    dialog.crop_spin.setValue(96)
    dialog.freeze_check.setChecked(True)
    dialog.augment_check.setChecked(False)
    dialog.hand_weight_spin.setValue(5.0)
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    chosen = dialog.config()
    dialog.reject()

    parser = _train_parser()
    args = parser.parse_args(train_arguments(chosen))
    config = TrainConfig.from_namespace(args)
    assert config == chosen
    assert (config.base, [str(p) for p in config.data]) == (base, [str(data.resolve()), str(second.resolve())])
    assert (config.steps, config.lr, config.batch_size, config.crop) == (40, pytest.approx(1e-3), 3, 96)
    assert config.freeze_encoder and not config.augment
    assert (config.hand_weight, config.device) == (5.0, "cpu")
    assert args.progress == "jsonl"


def test_dialog_remembers_settings_and_starts_from_the_selected_model(window, tiny_setup):
    other = save_tiny_unet("other", activate=False)
    window.prediction.reload_models(select=other)
    window.actions.fine_tune.trigger()
    dialog = window.training.dialog
    assert dialog.base_combo.currentData() == other
    dialog.length_spin.setValue(7)
    dialog.length_unit.setCurrentIndex(dialog.length_unit.findData("epochs"))
    dialog.lr_spin.lineEdit().setText("2e-05")
    dialog.lr_spin.interpretText()
    assert dialog.lr_spin.value() == pytest.approx(2e-5)
    window.training.start = lambda config: None  # only the dialog is under test here
    dialog.accept()
    window.actions.fine_tune.trigger()
    again = window.training.dialog
    assert (again.length_spin.value(), again.length_unit.currentData()) == (7, "epochs")
    assert again.lr_spin.value() == pytest.approx(2e-5)
    again.reject()


def test_dialog_explains_an_empty_library(window):
    window.prediction.reload_models()
    assert not window.actions.fine_tune.isEnabled()
    dialog = window.training.show_dialog()
    assert not dialog.start_button.isEnabled()
    assert "model library is empty" in dialog.hint.text()
    dialog.reject()




def test_dialog_starts_from_the_training_defaults(window, tiny_setup):
    """The form states no default of its own: untouched, it asks for exactly TrainConfig's defaults."""
    base, data = tiny_setup
    dialog = window.training.show_dialog()
    defaults = TrainConfig(base=base, data=[str(data.resolve())])
    assert (dialog.length_unit.currentData(), dialog.length_spin.value()) == ("epochs", defaults.epochs)
    assert dialog.lr_spin.value() == pytest.approx(defaults.lr)
    assert (dialog.batch_spin.value(), dialog.crop_spin.value()) == (defaults.batch_size, defaults.crop)
    assert dialog.hand_weight_spin.value() == defaults.hand_weight
    assert (dialog.freeze_check.isChecked(), dialog.augment_check.isChecked()) == \
        (defaults.freeze_encoder, defaults.augment)
    assert dialog.config() == dataclasses.replace(defaults, device=dialog.device_combo.currentData())
    assert dialog.config().to_argv()[4:] == ([] if dialog.device_combo.currentData() == defaults.device
                                            else ["--device", dialog.device_combo.currentData()])
    dialog.reject()


def test_presets_say_how_long_and_how_many_images_check_the_model(window, tiny_setup, tmp_path, qtbot):
    """Plain choices first: Quick / Thorough with a time estimate, the split in numbers, Advanced collapsed."""
    from PySide6.QtCore import Qt

    from segstudio.core.dataset import ExportItem, export_many
    from segstudio.core.labels import ClassTable
    from segstudio.engine.training.config import preset
    from segstudio.engine.training.split import plan_for_folders
    from segstudio.gui.training.dialog import remember_step_time

    base, data = tiny_setup
    window.actions.fine_tune.trigger()
    dialog = window.training.dialog
    assert not dialog.advanced_box.isVisible()  # hyperparameters stay out of the way
    quick, thorough = dialog.preset_radios["quick"], dialog.preset_radios["thorough"]
    assert quick.isChecked() and quick.text().startswith("Quick, ") and "minute" in quick.text()
    assert thorough.text().startswith("Thorough, ")
    assert "estimate" in dialog.estimate_label.text() or "guess" in dialog.estimate_label.text()
    plan = plan_for_folders([data])
    assert plan.train_images + plan.check_images == 8 and 1 <= plan.check_images <= 2
    assert dialog.split_label.text().startswith(f"8 images: {plan.train_images} train the new model, "
                                                f"{plan.check_images} ")
    assert dialog.warning_label.text() == ""  # these masks were painted by hand

    from PySide6.QtCore import QPoint

    qtbot.mouseClick(thorough, Qt.MouseButton.LeftButton, pos=QPoint(8, thorough.height() // 2))  # the circle
    assert dialog.config().epochs == preset("thorough").changes["epochs"]
    qtbot.mouseClick(dialog.advanced_button, Qt.MouseButton.LeftButton)
    assert dialog.advanced_box.isVisible()
    dialog.length_spin.setValue(3)
    assert dialog.custom_radio.isChecked()

    # A measured speed replaces the guess: 1 s per pixel makes every run take hours.
    remember_step_time("unet", "auto", 1.0)
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("auto"))
    dialog.length_spin.setValue(4)
    assert "last fine-tune" in dialog.estimate_label.text() and "hours" in dialog.estimate_label.text()

    # Masks exported straight from Predict (nothing painted by hand): said before starting.
    rng = np.random.default_rng(0)
    uncorrected = tmp_path / "uncorrected"
    export_many(uncorrected, [ExportItem(pixels=rng.integers(0, 999, (32, 32)).astype(np.uint16),
                                         mask=np.zeros((32, 32), np.uint8), source=f"/slides/p{i}.tif")
                              for i in range(3)], ClassTable.default())
    for row in range(dialog.dataset_list.count()):
        dialog.dataset_list.item(row).setSelected(True)
    qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert dialog.add_dataset(uncorrected)
    assert "Nobody corrected these masks" in dialog.warning_label.text()
    assert dialog.split_label.text() == "3 images: 2 train the new model, 1 is set aside to check it."
    dialog.reject()
