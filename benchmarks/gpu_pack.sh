#!/usr/bin/env bash
# Packs what benchmarks/gpu_check.sh needs on a GPU machine that has PyTorch but no internet access:
#   .gpu/site.tar.xz     segstudio's Python packages beyond PyTorch's image, unpacked onto PYTHONPATH there
#   .gpu/syslibs.tar.xz  the system libraries Qt's offscreen platform links (used there only where missing)
#
#   bash benchmarks/gpu_pack.sh [PYTHON_VERSION]     # default 3.12, the GPU image's Python
#
# Run it on a Linux x86-64 machine with pip access; it needs only python3, unzip, tar and xz. PySide6 is cut
# down to QtCore/QtGui/QtWidgets/QtTest and the offscreen platform, and imagecodecs to the TIFF codecs
# segstudio uses, so that both archives and the repository fit the 64 MiB a GPU call carries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${1:-3.12}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p .gpu "$WORK/wheels" "$WORK/site" "$WORK/syslibs"

download() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
        --platform manylinux_2_39_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_31_x86_64 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WORK/wheels" "$@"
}
# The versions this repository is tested with (pyproject.toml); the GPU image brings torch, numpy, scipy,
# scikit-image, opencv, safetensors, pillow, fsspec and pytest.
download shiboken6==6.11.3 PySide6_Essentials==6.11.3 pytest-qt==4.5.0 tiffslide==3.0.1 zarr==3.1.6 \
    numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 imagecodecs==2026.3.6 roifile==2026.2.10 \
    monai==1.6.1 tifffile==2026.3.3

cd "$WORK"
for wheel in wheels/*.whl; do
    case $(basename "$wheel") in
        pyside6_essentials-*|PySide6_Essentials-*) unzip -q "$wheel" -d full ;;
        imagecodecs-*) unzip -q "$wheel" -d codecs ;;
        *) unzip -q -o "$wheel" -d site ;;
    esac
done

# PySide6: the four modules segstudio imports, their Qt libraries, ICU, and the offscreen/minimal platforms.
mkdir -p site/PySide6/Qt/lib site/PySide6/Qt/plugins/platforms
cp -r full/PySide6/__init__.py full/PySide6/_config.py full/PySide6/_git_pyside_version.py full/PySide6/support \
    full/PySide6/py.typed site/PySide6/
cp full/PySide6/Qt{Core,Gui,Widgets,Test,DBus}.abi3.so full/PySide6/libpyside6.abi3.so.* site/PySide6/
cp full/PySide6/Qt/lib/libQt6{Core,Gui,Widgets,Test,DBus}.so.6 full/PySide6/Qt/lib/libicu*.so.* site/PySide6/Qt/lib/
cp full/PySide6/Qt/plugins/platforms/lib{qoffscreen,qminimal}.so site/PySide6/Qt/plugins/platforms/
cp -r full/PySide6/Qt/plugins/imageformats site/PySide6/Qt/plugins/
cp -r full/PySide6_Essentials-*.dist-info site/ 2>/dev/null || true

# imagecodecs: the Python part and the codecs TIFF files use (JPEG, deflate/zlib, zstd, PNG, LZ4).
mkdir -p site/imagecodecs site/imagecodecs.libs
cp codecs/imagecodecs/*.py site/imagecodecs/
for module in _imcd _shared _shared_cython _jpeg8 _zlib _deflate _zstd _png _lz4; do
    cp codecs/imagecodecs/$module.*so site/imagecodecs/
done
for lib in libjpeg libdeflate libzstd libpng16 liblz4; do cp codecs/imagecodecs.libs/$lib-* site/imagecodecs.libs/; done
# (no dist-info: its entry points would offer numcodecs the codecs left out)

rm -rf site/monai/csrc site/numcodecs/tests
find site -name __pycache__ -prune -exec rm -rf {} +
tar -cJf "$OLDPWD/.gpu/site.tar.xz" -C site .

# System libraries the Qt libraries above link, from this machine (an older glibc than the GPU image's is
# fine), and a font, so that text is measured and drawn there too.
LIBDIR=/lib/x86_64-linux-gnu
for lib in libEGL.so.1 libGL.so.1 libGLX.so.0 libGLdispatch.so.0 libX11-xcb.so.1 libX11.so.6 libXau.so.6 \
        libXdmcp.so.6 libbrotlicommon.so.1 libbrotlidec.so.1 libbsd.so.0 libdbus-1.so.3 libexpat.so.1 \
        libfontconfig.so.1 libfreetype.so.6 libglib-2.0.so.0 libgthread-2.0.so.0 libmd.so.0 libpcre2-8.so.0 \
        libpng16.so.16 libxcb.so.1 libxkbcommon.so.0 libxcb-xkb.so.1 libxkbcommon-x11.so.0 libffi.so.8 \
        libcap.so.2 libgcrypt.so.20 libgpg-error.so.0 liblz4.so.1 libsystemd.so.0 liblzma.so.5; do
    if [ -e "$LIBDIR/$lib" ]; then cp -L "$LIBDIR/$lib" syslibs/; else echo "not on this machine: $lib" >&2; fi
done
mkdir -p syslibs/fonts
cp -L /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf syslibs/fonts/ 2>/dev/null || echo "no DejaVu font here" >&2
[ -d /etc/fonts ] && cp -r /etc/fonts syslibs/etc-fonts
tar -cJf "$OLDPWD/.gpu/syslibs.tar.xz" -C syslibs .
cd "$OLDPWD"
ls -l .gpu
echo "Keep .gpu out of git (echo /.gpu/ >> .git/info/exclude) and carry it: run(carry=['.gpu'])."
