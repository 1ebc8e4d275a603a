"""Make sure the system libraries Qt needs to open a window on X11 are installed, before the first run.

PySide6's wheels carry Qt itself but not the small X11 helper libraries its xcb platform plugin links to. A
minimal Debian or Ubuntu lacks several of them (libxcb-cursor0 since Qt 6.5, libxcb-icccm4, libxcb-keysyms1),
and Qt then stops with "This application failed to start because no Qt platform plugin could be
initialized. Reinstalling the application may fix this problem", which sends people the wrong way.

This script asks the dynamic linker (`ldd`) which libraries of the xcb plugin are missing, names the
distribution packages that provide them, and installs them with the system's package manager (through
sudo when not root), saying what it runs. With SEGSTUDIO_NO_SYSTEM_INSTALL=1, or where it cannot install,
it stops with the exact command to run instead. It does nothing on other systems than Linux.

Exit status: 0 when nothing is missing (or it was installed), 1 when something is still missing.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# soname -> (Debian/Ubuntu package, Fedora package). The libraries Qt 6's xcb plugin links to that are not
# part of a base X11 system; the package names come from each distribution's package index.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


@dataclass(frozen=True)
class Plan:
    """What is missing and how to install it."""

    missing: tuple[str, ...]  # sonames the linker cannot find
    packages: tuple[str, ...]  # distribution packages that provide them
    unknown: tuple[str, ...]  # sonames with no package in the table
    command: tuple[str, ...] | None  # the install command, None where no known package manager exists


def missing_libraries(ldd_output: str) -> list[str]:
    """Sonames `ldd` reports as "not found", each once, in the order seen."""
    found: list[str] = []
    for line in ldd_output.splitlines():
        match = _NOT_FOUND.match(line)
        if match and match.group(1) not in found:
            found.append(match.group(1))
    return found


def plan_install(missing: list[str], *, manager: str | None, is_root: bool, has_sudo: bool) -> Plan:
    """The packages for `missing` and the command that installs them with `manager` ("apt-get" or "dnf")."""
    column = 1 if manager == "dnf" else 0
    packages: list[str] = []
    unknown: list[str] = []
    for soname in missing:
        names = PACKAGES.get(soname)
        if names is None:
            unknown.append(soname)
        elif names[column] not in packages:
            packages.append(names[column])
    command: tuple[str, ...] | None = None
    if manager and packages:
        command = (manager, "install", "-y", *packages)
        if not is_root and has_sudo:
            command = ("sudo", *command)
    return Plan(tuple(missing), tuple(packages), tuple(unknown), command)


def xcb_plugin_files() -> list[Path]:
    """Qt's xcb platform plugin and the Qt library that implements it, from the installed PySide6."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    qt = Path(next(iter(spec.submodule_search_locations))) / "Qt"
    candidates = [qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*"))]
    return [path for path in candidates if path.is_file()]


def run_ldd(files: list[Path]) -> str:
    if not files or shutil.which("ldd") is None:
        return ""
    result = subprocess.run(["ldd", *map(str, files)], capture_output=True, text=True, check=False)
    return result.stdout


def package_manager() -> str | None:
    for manager in ("apt-get", "dnf"):
        if shutil.which(manager):
            return manager
    return None


def _say(text: str) -> None:
    print(f"segstudio set-up: {text}", flush=True)


def _install(plan: Plan) -> bool:
    assert plan.command is not None
    _say("installing them now: " + " ".join(plan.command))
    if subprocess.run(plan.command, check=False).returncode == 0:
        return True
    if "apt-get" in plan.command:
        # A fresh system often has no package lists yet; fetch them once and try again.
        update = (*plan.command[: plan.command.index("apt-get") + 1], "update")
        _say("refreshing the package lists: " + " ".join(update))
        subprocess.run(update, check=False)
        return subprocess.run(plan.command, check=False).returncode == 0
    return False


def main() -> int:
    if platform.system() != "Linux":
        return 0
    files = xcb_plugin_files()
    if not files:
        _say("PySide6 is not installed in this Python yet; nothing to check")
        return 0
    missing = missing_libraries(run_ldd(files))
    if not missing:
        return 0
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    plan = plan_install(missing, manager=package_manager(), is_root=is_root, has_sudo=shutil.which("sudo") is not None)
    _say("Qt needs system libraries to open a window that this system lacks: " + ", ".join(plan.missing))
    if plan.unknown:
        _say("no known package provides " + ", ".join(plan.unknown) + "; install it with your package manager")
    if plan.command is None:
        _say("install these with your system's package manager: " + ", ".join(plan.packages or plan.missing))
        return 1
    allowed = os.environ.get("SEGSTUDIO_NO_SYSTEM_INSTALL", "") not in ("1", "true", "yes")
    can_run = is_root or plan.command[0] == "sudo"
    if not (allowed and can_run):
        _say("run this, then start again: " + " ".join(plan.command))
        return 1
    if not _install(plan):
        _say("the installation did not succeed; run this, then start again: " + " ".join(plan.command))
        return 1
    still = missing_libraries(run_ldd(files))
    if still:
        _say("still missing after the installation: " + ", ".join(still))
        return 1
    _say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
