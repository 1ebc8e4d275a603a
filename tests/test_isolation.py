"""The test suite never writes the real user's settings or data."""
from pathlib import Path

from PySide6.QtCore import QSettings


def test_window_settings_go_to_the_test_folder(make_window, tmp_path):
    win = make_window()
    win.close()  # closing saves the window geometry and dock layout
    settings = QSettings()
    settings.sync()
    path = Path(settings.fileName())
    assert path.is_relative_to(tmp_path), f"settings written to {path}, outside the test's folder"
    assert path.is_file()
    assert settings.value("window/geometry") is not None


def test_xdg_folders_point_away_from_home():
    import os

    home = Path.home()
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        assert not Path(os.environ[var]).is_relative_to(home), var
