"""The window must appear before torch has loaded: importing torch takes seconds on a cold start."""
import subprocess
import sys
import textwrap


def test_building_and_showing_the_window_does_not_import_torch(tmp_path):
    script = textwrap.dedent("""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        import builtins
        import threading
        real_import = builtins.__import__
        def guarded(name, *args, **kwargs):
            # The engine's background import thread may load torch; the GUI thread must not.
            if name.split(".")[0] == "torch" and threading.current_thread() is threading.main_thread():
                raise SystemExit("torch imported on the GUI thread while building the window")
            return real_import(name, *args, **kwargs)
        builtins.__import__ = guarded
        from segstudio.gui.app import create_application
        from segstudio.gui.main_window import MainWindow
        app = create_application()
        window = MainWindow()
        window.show()
        app.processEvents()
        print("shown")
        window.close()  # stops the worker threads as quitting does
    """)
    env = {**__import__("os").environ, "SEGSTUDIO_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shown" in result.stdout
