#!/usr/bin/env bash
# Build the one-folder app dist/segstudio/ (run it as dist/segstudio/segstudio).
#   packaging/build.sh [extra PyInstaller options]
# PYTHON picks the interpreter whose packages go into the bundle (default: the repository's .venv, then python3).
# The bundle holds that environment's torch: a CUDA torch makes a GPU-capable bundle of several GB, a CPU-only
# torch a much smaller one.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi
fi
echo "building with $PYTHON"

if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
    "$PYTHON" -m pip install "pyinstaller>=6.0"
fi

cd "$ROOT"
# The PNG renders are committed; recreate them only if someone deleted them.
for size in 48 128 256; do
    if [[ ! -f "resources/icons/segstudio-$size.png" ]]; then
        "$PYTHON" packaging/render_icons.py
        break
    fi
done

"$PYTHON" -m PyInstaller --noconfirm --clean \
    --distpath "$ROOT/dist" --workpath "$ROOT/build" \
    "$ROOT/packaging/segstudio.spec" "$@"

# A bundle that cannot even print its version, or lost its resources, is not worth shipping.
"$ROOT/dist/segstudio/segstudio" --version
test -f "$ROOT/dist/segstudio/_internal/resources/icons/segstudio.svg"
du -sh "$ROOT/dist/segstudio"
