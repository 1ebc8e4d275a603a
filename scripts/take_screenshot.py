"""Screenshot of the real window for the README: sample image, default model, after clicking Predict.

    xvfb-run -s "-screen 0 1440x900x24" python scripts/take_screenshot.py docs/screenshot.png
    xvfb-run -s "-screen 0 1366x768x24" python scripts/take_screenshot.py out.png "" full   # whole screen
    xvfb-run -s "-screen 0 1366x768x24" python scripts/take_screenshot.py docs/inspector-1366x768.png "" inspector
    xvfb-run -s "-screen 0 1366x768x24" python scripts/take_screenshot.py docs/slide-1366x768.png "" slide

"inspector" fills the screen too and opens the Network Inspector, computed for the view, before the grab;
"objects" fills it and turns on View > Object View (each object in its own colour) after Predict.
"slide" opens the bundled sample slide (or the slide given) in its slide window, filling the screen, and
grabs that window once the tiles in view are in.

It grabs the X screen (what a user sees), not an offscreen rendering.
"""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segstudio.gui.app import create_application, default_sample  # noqa: E402
from segstudio.gui.main_window import MainWindow  # noqa: E402


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.png")
    sample = sys.argv[2] if len(sys.argv) > 2 else None
    mode = sys.argv[3] if len(sys.argv) > 3 else ""
    full_screen = mode in ("full", "inspector", "objects")  # as a maximised window on a laptop screen
    app = create_application()
    window = MainWindow()
    window.resize(1400, 860)
    window.move(0, 0)
    if full_screen:  # Xvfb has no window manager to maximise it: fill the screen by hand
        window.setGeometry(QApplication.primaryScreen().availableGeometry())
    window.show()
    if mode == "slide":
        return _slide(app, window, out, sample)
    window.open_paths([sample or default_sample()])

    def predict_when_ready() -> None:
        if not window.prediction.ready:
            QTimer.singleShot(200, predict_when_ready)
            return
        window.model_host.finished.connect(after_job)
        window.model_host.failed.connect(lambda _job, message: (print(message), app.exit(1)))
        window.prediction.predict(False)

    def after_job(job, _result) -> None:
        if mode == "inspector" and job.kind == "predict":
            window.canvas.fit_to_window()
            window.inspector.show_dock()  # lists the taps, then Compute for view once they are in
        elif mode == "inspector" and job.kind == "describe":
            QTimer.singleShot(300, window.inspector.compute_for_view)
        elif mode == "objects" and job.kind == "predict":
            window.objects.object_view.trigger()  # the menu's own action: finds the objects, shows the table
            QTimer.singleShot(1500, grab)
        elif mode != "inspector" or (job.kind == "inspect" and len(job.tag) == 2):  # the full pass is in
            QTimer.singleShot(800, grab)

    def grab() -> None:
        if mode != "inspector":
            window.canvas.fit_to_window()
        app.processEvents()
        screen = QApplication.primaryScreen()
        image = screen.grabWindow(0, 0, 0, window.frameGeometry().width(), window.frameGeometry().height())
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(out))
        print(f"wrote {out}")
        window.close()
        app.quit()

    QTimer.singleShot(500, predict_when_ready)
    return app.exec()


def _slide(app, window, out: Path, sample: str | None) -> int:
    window.open_paths([Path(sample) if sample else ROOT / "resources" / "samples" / "tissue_slide.ome.tif"])
    if not window.opening.slide_windows:
        print("not a whole slide: give a slide file, or leave the sample empty")
        return 1
    slide_window = window.opening.slide_windows[-1]
    slide_window.setGeometry(QApplication.primaryScreen().availableGeometry())
    slide_window.raise_()

    def grab() -> None:
        slide_window.canvas.fit_to_window()
        app.processEvents()
        slide_window.image_tiles.settle(10000)
        app.processEvents()
        geometry = slide_window.frameGeometry()
        image = QApplication.primaryScreen().grabWindow(0, geometry.x(), geometry.y(), geometry.width(),
                                                         geometry.height())
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(out))
        print(f"wrote {out}")
        slide_window.close()
        window.close()
        app.quit()

    QTimer.singleShot(1200, grab)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
