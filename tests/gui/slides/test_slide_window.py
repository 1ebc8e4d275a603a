"""A whole slide opens from File > Open in its own window at once, streams only the tiles in view at the
level that fits the zoom, and takes brush strokes at any zoom into full-resolution label chunks."""
import threading

import numpy as np
import pytest
import shiboken6
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication

from segstudio.core.imageio import Slide
from segstudio.core.label_store import LabelStore
from segstudio.gui.slides.document import labels_folder
from segstudio.synth.slides import write_pyramid_ome, write_svs_like


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory):
    # 8192 x 6144, levels 1, 4, 16, 64; 0.25 µm pixels (40x)
    return write_pyramid_ome(tmp_path_factory.mktemp("slide") / "tissue.ome.tif", 6144, 8192, levels=4,
                             compression="zlib")


def open_slide(window, path, qtbot, monkeypatch, height: int = 700, fit: bool = True):
    """File > Open on a whole slide, answered with `path`; returns its slide window, shown 1000 px wide."""
    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getOpenFileNames", lambda *a, **k: ([str(path)], ""))
    window.actions.open.trigger()
    assert window.opening.slide_windows, "the slide should open in a slide window"
    slide_window = window.opening.slide_windows[-1]
    slide_window.resize(1000, height)
    qtbot.waitExposed(slide_window)
    if fit:
        slide_window.canvas.fit_to_window()
    return slide_window


@pytest.fixture
def slide_window(window, pyramid, qtbot, monkeypatch):
    slide_window = open_slide(window, pyramid, qtbot, monkeypatch)
    assert window.current is None  # not among the ordinary images
    yield slide_window
    _close_all(window)


def _close_all(window):
    for opened in list(window.opening.slide_windows):
        if shiboken6.isValid(opened):
            opened.close()
    QApplication.processEvents()


def _paint(slide_window):
    slide_window.canvas.viewport().repaint()
    slide_window.image_tiles.settle()
    slide_window.canvas.viewport().repaint()


def _visible(slide_window, level):
    canvas = slide_window.canvas
    rect = canvas.mapToScene(canvas.viewport().rect()).boundingRect()
    return set(slide_window.image_tiles.levels.visible(level, rect))


def _drag(canvas, points):
    viewport = canvas.viewport()
    from PySide6.QtTest import QTest

    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[0])
    for point in points[1:]:
        QTest.mouseMove(viewport, point)
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[-1])


def test_fitted_to_the_window_the_coarse_level_is_drawn_and_only_its_tiles_are_read(slide_window):
    _paint(slide_window)
    tiles = slide_window.image_tiles
    # 8192 pixels into ~1000 screen pixels: 8 slide pixels per screen pixel, so the level of every 4th
    # pixel (every 16th would be blurred up)
    assert 6 < 1 / slide_window.canvas.zoom() < 12
    assert tiles.last_level == 1
    assert set(tiles.requested) <= _visible(slide_window, 1)
    assert all(key in tiles.cache for key in _visible(slide_window, 1))


@pytest.mark.parametrize(("power", "level"), [(40, 0), (20, 0), (10, 1), (5, 1), (1, 2)])
def test_each_magnification_shortcut_draws_the_level_that_fits_and_reads_only_visible_tiles(
        slide_window, qtbot, power, level):
    _paint(slide_window)
    slide_window.canvas.setFocus()
    key = dict([(1, Qt.Key.Key_1), (5, Qt.Key.Key_5), (10, Qt.Key.Key_0), (20, Qt.Key.Key_2), (40, Qt.Key.Key_4)])
    slide_window.image_tiles.requested.clear()
    qtbot.keyClick(slide_window.canvas, key[power])
    assert slide_window.canvas.zoom() == pytest.approx(power / 40)
    _paint(slide_window)
    assert slide_window.image_tiles.last_level == level
    assert _visible(slide_window, level) <= set(slide_window.image_tiles.cache)  # all in view were read
    assert {k for k in slide_window.image_tiles.requested if k[0] == level} <= _visible(slide_window, level)


def test_until_a_fine_tile_arrives_the_coarser_one_stands_in(slide_window, qtbot):
    _paint(slide_window)  # the overview level is cached
    tiles = slide_window.image_tiles
    tiles.pool.setMaxThreadCount(1)
    qtbot.keyClick(slide_window.canvas, Qt.Key.Key_4)
    image = slide_window.canvas.viewport().grab().toImage()  # drawn before any fine tile is back
    centre = image.pixelColor(image.width() // 2, image.height() // 2)
    assert (centre.red(), centre.green(), centre.blue()) != (40, 40, 44)  # not the empty background
    tiles.settle()


def test_the_overview_jumps_where_it_is_clicked(slide_window, qtbot):
    qtbot.keyClick(slide_window.canvas, Qt.Key.Key_2)
    navigator = slide_window.navigator
    target = QPoint(navigator.width() // 4, navigator.height() * 3 // 4)
    qtbot.mouseClick(navigator, Qt.MouseButton.LeftButton, pos=target)
    centre = slide_window.canvas.mapToScene(slide_window.canvas.viewport().rect().center())
    expected = navigator.slide_point(QPointF(target))
    assert abs(centre.x() - expected.x()) < 20 and abs(centre.y() - expected.y()) < 20
    assert navigator.view_rect().contains(QPointF(target))


def test_the_scale_bar_reads_in_micrometres(slide_window):
    from segstudio.gui.canvas.scale_bar import bar_label, nice_length_um

    assert slide_window.canvas.pixel_size_um() == pytest.approx(0.25)
    assert nice_length_um(0.25) == 20 and bar_label(20) == "20 µm" and bar_label(2000) == "2 mm"
    _paint(slide_window)
    image = slide_window.canvas.viewport().grab().toImage()
    bar = image.pixelColor(30, image.height() - 22)
    assert (bar.red(), bar.green(), bar.blue()) == (255, 255, 255)


def test_brush_at_overview_and_at_full_resolution_writes_full_resolution_chunks_undo_and_autosave(
        slide_window, qtbot, pyramid):
    canvas, doc = slide_window.canvas, slide_window.doc
    slide_window.tools["brush"].trigger()
    slide_window.radius.setValue(5)
    _paint(slide_window)
    zoom = canvas.zoom()
    # At overview: a 5-pixel screen brush is 5 / zoom full-resolution pixels across the slide.
    start, end = QPoint(300, 300), QPoint(500, 300)
    _drag(canvas, [start, QPoint(400, 300), end])
    doc.wait_painted()  # the full-resolution pixels are painted in the background
    a, b = canvas.mapToScene(start), canvas.mapToScene(end)
    row = doc.store.read(int(a.y()), int(a.x()), 1, int(b.x() - a.x()))
    assert np.all(row == 1)  # every full-resolution pixel along the stroke
    assert doc.store.read(int(a.y() + 5 / zoom + 20), int(a.x()), 1, 10).max() == 0
    # Zoomed to full resolution, a small stroke elsewhere.
    qtbot.keyClick(canvas, Qt.Key.Key_4)
    canvas.centerOn(QPointF(6000, 5000))
    _drag(canvas, [QPoint(480, 320), QPoint(520, 320)])
    p = canvas.mapToScene(QPoint(500, 320))
    assert doc.store.read(int(p.y()), int(p.x()), 1, 1)[0, 0] == 1
    assert doc.undo_stack.count() == 2
    # Undo takes the last stroke back exactly; autosave writes the first.
    slide_window.undo_action.trigger()
    assert doc.store.read(int(p.y()), int(p.x()), 1, 1)[0, 0] == 0
    assert doc.save_and_wait() > 0
    reopened = LabelStore(doc.slide.height, doc.slide.width, labels_folder(pyramid))
    assert np.array_equal(reopened.read(int(a.y()), int(a.x()), 1, int(b.x() - a.x())), row)
    assert reopened.read(int(p.y()), int(p.x()), 1, 1)[0, 0] == 0


def test_an_overview_stroke_shows_at_once_is_painted_at_full_resolution_behind_and_undoes_exactly(
        slide_window, qtbot):
    canvas, doc = slide_window.canvas, slide_window.doc
    slide_window.tools["brush"].trigger()
    _paint(slide_window)
    store = doc.store
    _drag(canvas, [QPoint(300, 300), QPoint(420, 320)])  # a stroke the eraser then crosses
    doc.wait_painted()
    before = [store.read(0, 0, grid.height, grid.width, level=k).copy() for k, grid in enumerate(store.levels)]
    shown = slide_window.label_tiles.levels.best(1 / canvas.zoom())
    ds = store.downsample(shown)
    assert shown > 0
    gate = threading.Event()
    doc.jobs.submit(lambda: gate.wait(10))  # hold the background painting back
    qtbot.keyClick(canvas, Qt.Key.Key_E)
    start, end = QPoint(360, 260), QPoint(360, 360)
    _drag(canvas, [start, QPoint(360, 310), end])
    p = canvas.mapToScene(QPoint(360, 310))
    try:
        # What the screen shows has the stroke at once; the full-resolution pixels are still to come.
        assert store.read(round(p.y() / ds), round(p.x() / ds), 1, 1, level=shown)[0, 0] == 0
        assert store.read(round(p.y()), round(p.x()), 1, 1)[0, 0] == 1
        assert doc.undo_stack.count() == 2
    finally:
        gate.set()
    doc.wait_painted()
    assert store.read(round(p.y()), round(p.x()), 1, 1)[0, 0] == 0
    assert store.read(round(p.y()) + 1, round(p.x()) - 3, 1, 1)[0, 0] == 0
    slide_window.undo_action.trigger()
    after = [store.read(0, 0, grid.height, grid.width, level=k) for k, grid in enumerate(store.levels)]
    assert all(np.array_equal(x, y) for x, y in zip(before, after))  # every level, every pixel
    slide_window.redo_action.trigger()
    assert store.read(round(p.y()), round(p.x()), 1, 1)[0, 0] == 0


def test_label_tiles_are_made_off_the_gui_thread_and_the_old_tile_shows_until_the_new_one_arrives(
        slide_window, qtbot):
    canvas, tiles = slide_window.canvas, slide_window.label_tiles
    made_on, real_load = [], tiles.load

    def load(key):
        made_on.append(threading.current_thread())
        return real_load(key)

    tiles.load = load
    slide_window.tools["brush"].trigger()
    qtbot.keyClick(canvas, Qt.Key.Key_4)  # full resolution
    canvas.centerOn(QPointF(3000, 3000))
    _drag(canvas, [QPoint(480, 320), QPoint(520, 320)])
    canvas.viewport().repaint()
    qtbot.waitUntil(lambda: tiles.settle(100) and any(image is not None for image in tiles.cache.values()))
    painted = next(key for key, image in tiles.cache.items() if image is not None)
    # A second stroke over the same tile: until the new tile arrives the old one is drawn, not a hole.
    gate = threading.Event()
    tiles.load = lambda key: (gate.wait(10), load(key))[1]
    _drag(canvas, [QPoint(480, 340), QPoint(520, 340)])
    canvas.viewport().repaint()
    try:
        assert painted not in tiles.cache and tiles.stale.get(painted) is not None
    finally:
        gate.set()
    canvas.viewport().repaint()
    qtbot.waitUntil(lambda: tiles.settle(100) and tiles.cache.get(painted) is not None)
    assert painted not in tiles.stale
    assert made_on and threading.main_thread() not in made_on


def test_undo_right_after_an_overview_stroke_waits_for_it_and_takes_it_back(slide_window, qtbot):
    canvas, doc = slide_window.canvas, slide_window.doc
    slide_window.tools["brush"].trigger()
    _paint(slide_window)
    gate, entered, diff_since = threading.Event(), threading.Event(), doc.store.diff_since
    # the stroke's pixels are all painted, its undo step comes late
    doc.store.diff_since = lambda record: (entered.set(), gate.wait(10), diff_since(record))[2]
    _drag(canvas, [QPoint(300, 300), QPoint(400, 300)])
    p = canvas.mapToScene(QPoint(350, 300))
    assert entered.wait(10)
    threading.Timer(0.3, gate.set).start()  # the background work ends while undo waits for it
    slide_window.undo_action.trigger()
    assert doc.store.read(round(p.y()), round(p.x()), 1, 1)[0, 0] == 0
    slide_window.redo_action.trigger()
    assert doc.store.read(round(p.y()), round(p.x()), 1, 1)[0, 0] == 1


def test_autosave_runs_by_itself_and_reopening_the_slide_shows_the_labels(window, slide_window, qtbot, pyramid):
    slide_window.tools["brush"].trigger()
    _paint(slide_window)
    _drag(slide_window.canvas, [QPoint(200, 200), QPoint(260, 240)])
    doc = slide_window.doc
    assert slide_window.isWindowModified()
    qtbot.waitUntil(lambda: not slide_window.isWindowModified(), timeout=5000)
    assert not doc.jobs.busy and not doc.store.unsaved
    assert not slide_window.isWindowModified()
    p = slide_window.canvas.mapToScene(QPoint(230, 220))
    slide_window.close()
    again = window.opening.open_slide(Slide(pyramid))
    assert again.doc.store.read(int(p.y()), int(p.x()), 1, 1)[0, 0] == 1


def test_an_svs_files_associated_images_are_in_their_own_menu_not_pages(window, tmp_path, qtbot):
    path = write_svs_like(tmp_path / "scan.svs", 1536, 2048)
    window.open_paths([path])
    slide_window = window.opening.slide_windows[-1]
    menus = {a.text().replace("&", ""): a.menu() for a in slide_window.menuBar().actions()}
    names = [a.text() for a in menus["Associated Images"].actions()]
    assert names == ["Thumbnail", "Label", "Macro"]
    _close_all(window)


def test_file_open_sample_offers_the_slide_and_opens_it_in_a_slide_window(window):
    samples = window.menus["samples"]
    action = next(a for a in samples.actions() if a.text() == "tissue_slide.ome.tif")
    action.trigger()
    slide_window = window.opening.slide_windows[-1]
    assert slide_window.doc.slide.mpp == pytest.approx(0.5)
    assert len(slide_window.doc.slide.levels) == 4
    assert all(a.isEnabled() for a in slide_window.magnification_actions.values())
    _close_all(window)


def test_a_slide_with_much_saved_work_opens_before_its_labels_are_in_the_overview(window, tmp_path, qtbot,
                                                                                  monkeypatch):
    # Reading every saved chunk to make the overview's labels took seconds on a slide predicted whole; the
    # window now opens at once and the labels show at low zoom once their part of the pyramid is made.
    path = write_pyramid_ome(tmp_path / "worked.ome.tif", 6144, 8192, levels=4, compression="zlib")
    saved = LabelStore(6144, 8192, labels_folder(path))
    saved.put(0, 0, np.ones((3072, 4096), np.uint8))  # the top-left quarter: 24 chunks of class 1
    assert saved.save() == 48
    gate = threading.Event()
    build = LabelStore.build_pyramid

    def held(store, *args, **kwargs):
        gate.wait(20)
        return build(store, *args, **kwargs)

    monkeypatch.setattr(LabelStore, "build_pyramid", held)
    slide_window = open_slide(window, path, qtbot, monkeypatch)
    try:
        doc = slide_window.doc
        assert not doc.store.pyramid_built  # opened and shown while the pyramid is still to be made
        _paint(slide_window)
        spot = slide_window.canvas.mapFromScene(QPointF(1000, 800))
        before = slide_window.canvas.viewport().grab().toImage().pixelColor(spot)
        gate.set()
        assert doc.pyramid_jobs.wait(20) and doc.store.pyramid_built
        QApplication.processEvents()  # the built boxes reach the window: their label tiles are made again
        _paint(slide_window)
        assert slide_window.label_tiles.settle()
        _paint(slide_window)
        after = slide_window.canvas.viewport().grab().toImage().pixelColor(spot)
        colour = doc.classes.lut_rgba()[1][:3].astype(int)
        shift = np.array([after.red() - before.red(), after.green() - before.green(), after.blue() - before.blue()])
        assert np.abs(shift).sum() > 40
        assert np.dot(shift, colour - np.array([before.red(), before.green(), before.blue()])) > 0
        assert slide_window.label_tiles.last_level > 0  # drawn from the label pyramid, not full resolution
    finally:
        gate.set()
        _close_all(window)
