"""Packaging files agree with the package: the desktop entry launches the installed command, the AppStream
data describes it, the PyInstaller spec bundles the resources and every lazily imported module, and the
icon renders exist at the sizes desktops ask for."""
import ast
import configparser
import importlib
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
ICONS = ROOT / "resources" / "icons"
ICON_SIZES = (48, 128, 256)


@pytest.fixture(scope="module")
def project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


@pytest.fixture(scope="module")
def command(project):
    """The console command pyproject installs for the program's main entry point."""
    scripts = project["scripts"]
    names = [name for name, target in scripts.items() if target == "segstudio.cli:main"]
    assert len(names) == 1, f"expected one script for segstudio.cli:main in {scripts}"
    return names[0]


@pytest.fixture(scope="module")
def desktop():
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # desktop-entry keys are case-sensitive
    parser.read(PACKAGING / "segstudio.desktop", encoding="utf-8")
    return parser["Desktop Entry"]


@pytest.fixture(scope="module")
def spec():
    """Run the spec as PyInstaller would, with recorders in place of its build steps."""
    source = (PACKAGING / "segstudio.spec").read_text(encoding="utf-8")
    ast.parse(source, filename="segstudio.spec")
    calls = {}
    namespace = {name: _Recorder(name, calls) for name in ("Analysis", "PYZ", "EXE", "COLLECT")}
    namespace["SPECPATH"] = str(PACKAGING)
    exec(compile(source, str(PACKAGING / "segstudio.spec"), "exec"), namespace)
    calls["namespace"] = namespace
    return calls


class _Recorder:
    """Stands in for one PyInstaller build step; what it returns answers attributes such as a.pure."""

    def __init__(self, kind, calls):
        self.kind, self.calls = kind, calls

    def __call__(self, *args, **kwargs):
        self.calls[self.kind] = (args, kwargs)
        return self

    def __getattr__(self, name):
        return []  # a.pure, a.binaries, ...: empty lists of what the analysis found


def _package_imports():
    """Top-level modules and PySide6 sub-modules that segstudio's own code imports."""
    found = set()
    for path in (ROOT / "segstudio").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                if node.module == "PySide6":
                    found.update(f"PySide6.{alias.name}" for alias in node.names)
    return found


# --- desktop entry ---------------------------------------------------------------------------------
def test_desktop_entry_launches_the_installed_command_with_files(desktop, command):
    assert desktop["Type"] == "Application"
    program, *arguments = desktop["Exec"].split()
    assert program == command
    assert arguments == ["%F"]  # the command opens several images or folders at once
    assert desktop.get("Terminal", "false") == "false"
    entry = importlib.import_module("segstudio.cli").main
    assert callable(entry)


def test_desktop_entry_icon_is_the_shipped_icon(desktop):
    assert desktop["Icon"] == "segstudio"
    assert (ICONS / f"{desktop['Icon']}.svg").is_file()


def test_desktop_entry_declares_the_image_types_and_menu_categories(desktop):
    assert desktop["MimeType"].endswith(";") and desktop["Categories"].endswith(";")
    mime_types = set(filter(None, desktop["MimeType"].split(";")))
    assert {"image/tiff", "image/png", "image/jpeg", "image/bmp"} <= mime_types
    categories = set(filter(None, desktop["Categories"].split(";")))
    assert {"Science", "Biology", "Graphics"} <= categories
    for key in ("Name", "Comment"):
        assert desktop[key].strip()


# --- AppStream metainfo ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def metainfo():
    return ET.parse(PACKAGING / "io.github.segstudio.metainfo.xml").getroot()


def test_metainfo_identifies_and_describes_the_application(metainfo, project):
    assert metainfo.tag == "component" and metainfo.get("type") == "desktop-application"
    # The file name is how software centres find the component.
    assert metainfo.findtext("id") == "io.github.segstudio"
    assert metainfo.findtext("name") == project["name"]
    assert metainfo.findtext("summary").strip()
    assert metainfo.findtext("metadata_license") and metainfo.findtext("project_license")
    paragraphs = metainfo.findall("description/p")
    assert paragraphs and all(p.text and p.text.strip() for p in paragraphs)


def test_metainfo_points_at_the_desktop_entry_and_the_command(metainfo, command):
    launchable = metainfo.find("launchable")
    assert launchable.get("type") == "desktop-id"
    assert (PACKAGING / launchable.text).is_file()
    assert [b.text for b in metainfo.findall("provides/binary")] == [command]


def test_metainfo_has_content_rating_screenshot_and_current_release(metainfo, project):
    rating = metainfo.find("content_rating")
    assert rating is not None and rating.get("type", "").startswith("oars-")
    images = [img.text for img in metainfo.findall("screenshots/screenshot/image")]
    assert images and images[0].startswith("https://") and images[0].endswith("/docs/screenshot.png")
    versions = [r.get("version") for r in metainfo.findall("releases/release")]
    assert project["version"] in versions  # a release without an entry here shows stale notes


# --- PyInstaller spec --------------------------------------------------------------------------------
def test_spec_bundles_resources_where_the_frozen_app_looks(spec):
    _, kwargs = spec["Analysis"]
    bundled = {dest: Path(src) for src, dest in kwargs["datas"]}
    # segstudio.core.paths.resources_dir() reads sys._MEIPASS / "resources" when frozen.
    assert bundled.get("resources") == ROOT / "resources"


def test_spec_builds_the_command_from_the_package_entry(spec, command):
    args, _ = spec["Analysis"]
    assert [Path(p) for p in args[0]] == [ROOT / "segstudio" / "__main__.py"]
    assert spec["EXE"][1]["name"] == command
    assert spec["COLLECT"][1]["name"] == command  # one folder: dist/<command>/<command>


def test_spec_lists_every_package_module_for_lazy_imports(spec):
    hidden = set(spec["Analysis"][1]["hiddenimports"])
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "segstudio").rglob("*.py")
    }
    assert modules and modules <= hidden
    assert "segstudio.gui.app" in hidden and "segstudio.cli" in hidden
    assert "torchvision" in hidden


def test_spec_bundles_torchvision_compiled_operators(spec):
    folder = Path(next(iter(importlib.util.find_spec("torchvision").submodule_search_locations)))
    compiled = {p.name for p in folder.iterdir() if p.suffix in (".so", ".pyd", ".dylib")}
    bundled = {Path(src).name for src, dest in spec["Analysis"][1]["binaries"] if dest == "torchvision"}
    # torchvision finds these by path next to its modules; without them its operators do not exist.
    assert compiled and compiled <= bundled


def test_spec_excludes_nothing_the_package_imports(spec):
    excludes = set(spec["Analysis"][1]["excludes"])
    imported = _package_imports()
    clashes = {m for m in imported for e in excludes if m == e or m.startswith(e + ".")}
    assert not clashes, f"excluded from the bundle but imported by segstudio: {sorted(clashes)}"
    assert "PySide6.QtWebEngineCore" in excludes and "tkinter" in excludes


def test_spec_drops_only_the_qt_files_a_widgets_app_does_not_load(spec):
    is_needed = spec["namespace"]["is_needed_binary"]
    for needed in (
        "PySide6/Qt/lib/libQt6Widgets.so.6",
        "PySide6/Qt/lib/libQt6Svg.so.6",
        "PySide6/Qt/plugins/imageformats/libqsvg.so",
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "PySide6/Qt/plugins/imageformats/libqtiff.so",
        "torch/lib/libtorch_cuda.so",
        "PySide6/qsvg.dll",
    ):
        assert is_needed(needed), needed
    for unused in (
        "PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so",
        "PySide6/Qt/plugins/imageformats/libqpdf.so",
        "PySide6/Qt/lib/libQt6Quick.so.6",
        "PySide6/Qt6Qml.dll",
    ):
        assert not is_needed(unused), unused


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash on this system")
def test_build_script_runs_as_a_command_and_parses():
    script = PACKAGING / "build.sh"
    assert os.access(script, os.X_OK), "packaging/build.sh lost its executable bit"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "segstudio.spec" in script.read_text(encoding="utf-8")


# --- icon --------------------------------------------------------------------------------------------
def test_icon_svg_is_square_svg():
    root = ET.parse(ICONS / "segstudio.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    _, _, width, height = (float(v) for v in root.get("viewBox").split())
    assert width == height


def _png_header(path: Path):
    data = path.read_bytes()[:26]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path.name} is not a PNG"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


@pytest.mark.parametrize("size", ICON_SIZES)
def test_icon_png_renders_have_their_size_and_transparency(size):
    width, height, depth, colour = _png_header(ICONS / f"segstudio-{size}.png")
    assert (width, height) == (size, size)
    assert colour == 6 and depth == 8  # RGBA: the rounded corners stay transparent


def test_icon_png_renders_are_up_to_date_with_the_svg(tmp_path, qapp):
    import numpy as np
    from PySide6.QtGui import QImage

    sys.path.insert(0, str(PACKAGING))
    try:
        render_icons = importlib.import_module("render_icons")
    finally:
        sys.path.remove(str(PACKAGING))
    fresh = render_icons.render(ICONS / "segstudio.svg", [48], tmp_path)[0]

    def pixels(path):
        image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGBA8888)
        return np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes()).reshape(48, 48, 4).astype(int)

    committed, rendered = pixels(ICONS / "segstudio-48.png"), pixels(fresh)
    assert committed[0, 0, 3] == 0 and committed[24, 24, 3] == 255
    # Small anti-aliasing differences between Qt versions are fine; an edited SVG is not.
    assert np.abs(committed - rendered).mean() < 2.0, "re-run packaging/render_icons.py after editing the SVG"
