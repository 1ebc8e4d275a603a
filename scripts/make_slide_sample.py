"""Write the whole-slide sample, resources/samples/tissue_slide.ome.tif: a generated pyramidal OME-TIFF.

6144 x 4608 pixels at 0.5 µm per pixel (a 20x scan), four levels (downsample 1, 4, 16, 64), 256-pixel
JPEG tiles, five patches of stained tissue on glass; about 2.6 MB. Run from the repository root:

    python scripts/make_slide_sample.py
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segstudio.synth.slides import write_pyramid_ome  # noqa: E402

TARGET = ROOT / "resources" / "samples" / "tissue_slide.ome.tif"


def main() -> int:
    write_pyramid_ome(TARGET, 4608, 6144, levels=4, tile=256, mpp=0.5, compression="jpeg", seed=3)
    print(f"{TARGET.relative_to(ROOT)}: {TARGET.stat().st_size / 2**20:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
