"""The Fine-tuning Finished window: a model with a border output shows how well its borders were drawn."""
from __future__ import annotations

from segstudio.gui.training.process import TrainingOutcome
from segstudio.gui.training.summary import TrainingSummaryDialog


def _rows(dialog) -> dict[str, tuple[str, str]]:
    table = dialog.table
    return {table.verticalHeaderItem(r).text(): (table.item(r, 0).text(), table.item(r, 1).text())
            for r in range(table.rowCount())}


def _outcome(parent: dict, child: dict) -> TrainingOutcome:
    return TrainingOutcome("done", "", version="nuclei/v2", promoted=True, parent="nuclei/v1",
                           parent_metrics=parent, child_metrics=child)


def test_the_border_score_is_shown_beside_the_class_scores(qtbot):
    base = {"mean_iou": 0.8, "iou": {"background": 0.9, "nucleus": 0.7}, "mean_dice": 0.85, "loss": 0.3}
    dialog = TrainingSummaryDialog(_outcome({**base, "border_dice": 0.412}, {**base, "border_dice": 0.538}))
    qtbot.addWidget(dialog)
    assert _rows(dialog)["Borders between objects (Dice)"] == ("0.412", "0.538")


def test_a_model_without_borders_gets_no_border_row(qtbot):
    base = {"mean_iou": 0.8, "iou": {"background": 0.9, "nucleus": 0.7}, "mean_dice": 0.85, "loss": 0.3}
    dialog = TrainingSummaryDialog(_outcome(base, base))
    qtbot.addWidget(dialog)
    assert not any("Border" in name for name in _rows(dialog))
