"""Render resources/icons/segstudio.svg to the PNG sizes desktops and installers ask for.

Run from anywhere: python packaging/render_icons.py [--sizes 48 128 256]
Uses Qt's own SVG renderer so the PNGs match what the running app draws from the SVG.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
DEFAULT_SIZES = (48, 128, 256)


def png_path(size: int, folder: Path = ICONS) -> Path:
    return folder / f"segstudio-{size}.png"


def render(svg: Path, sizes, folder: Path) -> list[Path]:
    # A headless machine has no display; the offscreen platform is enough to rasterise.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (keeps Qt alive)
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"Cannot render {svg}: Qt's SVG renderer rejected it")
    written = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        out = png_path(size, folder)
        if not image.save(str(out), "PNG"):
            raise SystemExit(f"Cannot write {out}")
        written.append(out)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--svg", type=Path, default=ICONS / "segstudio.svg")
    parser.add_argument("--out", type=Path, default=ICONS, help="folder for the PNGs")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in render(args.svg, args.sizes, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
