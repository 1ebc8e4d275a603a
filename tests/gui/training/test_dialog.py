"""Model > Fine-tune...: the form, what it remembers, and the `segstudio train` options it produces."""
from __future__ import annotations

import argparse
import dataclasses

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
