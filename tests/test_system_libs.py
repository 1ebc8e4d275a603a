"""`make run` installs the X11 libraries Qt's window needs on a fresh Linux, or says exactly how."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_system_libs", ROOT / "scripts" / "check_system_libs.py")
check = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = check  # dataclasses look their module up there
_spec.loader.exec_module(check)

# What ldd printed for PySide6's xcb plugin on a minimal Debian 12 (two libraries absent).
LDD_MINIMAL_DEBIAN = """\
/x/PySide6/Qt/plugins/platforms/libqxcb.so:
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /x/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
/x/PySide6/Qt/lib/libQt6XcbQpa.so.6:
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb1.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
"""


def test_missing_libraries_are_read_from_ldd_once_each():
    assert check.missing_libraries(LDD_MINIMAL_DEBIAN) == [
        "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"]
    assert check.missing_libraries("\tlibc.so.6 => /lib/libc.so.6 (0x1)\n") == []


def test_root_installs_debian_packages_directly():
    plan = check.plan_install(check.missing_libraries(LDD_MINIMAL_DEBIAN), manager="apt-get",
                              is_root=True, has_sudo=False)
    assert plan.command == ("apt-get", "install", "-y", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0")
    assert plan.unknown == ()


def test_a_normal_user_goes_through_sudo_and_fedora_names_differ():
    plan = check.plan_install(["libxcb-cursor.so.0", "libxcb-icccm.so.4"], manager="dnf", is_root=False,
                              has_sudo=True)
    assert plan.command == ("sudo", "dnf", "install", "-y", "xcb-util-cursor", "xcb-util-wm")


def test_unknown_libraries_and_unknown_systems_get_no_command():
    plan = check.plan_install(["libweird.so.9"], manager="apt-get", is_root=True, has_sudo=False)
    assert plan.command is None and plan.unknown == ("libweird.so.9",)
    plan = check.plan_install(["libxcb-cursor.so.0"], manager=None, is_root=True, has_sudo=False)
    assert plan.command is None and plan.packages == ("libxcb-cursor0",)


def test_without_permission_to_install_it_prints_the_command_and_fails(monkeypatch, capsys):
    monkeypatch.setattr(check.platform, "system", lambda: "Linux")
    monkeypatch.setattr(check, "xcb_plugin_files", lambda: [Path("/x/libqxcb.so")])
    monkeypatch.setattr(check, "run_ldd", lambda files: LDD_MINIMAL_DEBIAN)
    monkeypatch.setattr(check, "package_manager", lambda: "apt-get")
    monkeypatch.setenv("SEGSTUDIO_NO_SYSTEM_INSTALL", "1")
    ran = []
    monkeypatch.setattr(check.subprocess, "run", lambda *a, **k: ran.append(a))
    assert check.main() == 1
    out = capsys.readouterr().out
    assert "libxcb-cursor.so.0" in out
    assert "apt-get install -y libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0" in out
    assert ran == []  # asked not to install: nothing was run


def test_it_installs_then_checks_again(monkeypatch, capsys):
    monkeypatch.setattr(check.platform, "system", lambda: "Linux")
    monkeypatch.setattr(check, "xcb_plugin_files", lambda: [Path("/x/libqxcb.so")])
    outputs = iter([LDD_MINIMAL_DEBIAN, ""])  # before and after the installation
    monkeypatch.setattr(check, "run_ldd", lambda files: next(outputs))
    monkeypatch.setattr(check, "package_manager", lambda: "apt-get")
    monkeypatch.setattr(check.os, "geteuid", lambda: 0)
    monkeypatch.delenv("SEGSTUDIO_NO_SYSTEM_INSTALL", raising=False)
    ran = []
    monkeypatch.setattr(check.subprocess, "run",
                        lambda cmd, check=False: (ran.append(tuple(cmd)), subprocess.CompletedProcess(cmd, 0))[1])
    assert check.main() == 0
    assert ran == [("apt-get", "install", "-y", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0")]
    assert "done" in capsys.readouterr().out


def test_make_run_checks_the_system_before_starting_the_window():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()[1:]]
    assert lines.index("$(VENV)/bin/python scripts/check_system_libs.py") < lines.index(
        "$(VENV)/bin/segstudio --sample")


@pytest.mark.skipif(not check.xcb_plugin_files(), reason="PySide6's xcb plugin is not installed here")
def test_the_real_plugin_is_found_and_ldd_reads_it():
    output = check.run_ldd(check.xcb_plugin_files())
    assert "libQt6XcbQpa" in output or "libxcb" in output
