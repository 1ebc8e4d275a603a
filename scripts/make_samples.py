"""Write the bundled sample images (resources/samples/) with the synthetic nuclei generator.

    python scripts/make_samples.py [--out DIR]

Each sample has a fixed seed and fully specified scene parameters, so the files are reproducible and do not
change when the generator's default ranges are retuned. The exact ground truth of each sample is written to
truth/<stem>.png (uint8, 0 = background, 1 = nucleus) for checking predictions against it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segstudio.synth import SceneParams, generate_nuclei_image  # noqa: E402
from segstudio.synth.he import generate_he_image  # noqa: E402

SAMPLES = {
    # The image the app opens by default: a 12-bit camera stored as 16 bit, dim, uneven illumination.
    "nuclei_16bit.tif": dict(seed=20240611, bit_depth=16, params=SceneParams(
        radius=11.0, radius_spread=0.15, coverage=0.2, cluster_fraction=0.45, touching=0.85, aspect=0.75,
        irregularity=0.07, kidney_fraction=0.1, mitotic_fraction=0.02, brightness_decades=1.2, texture=0.25,
        rim=0.1, dome=0.25, spots=1.5, spot_sign=1.0, background=0.7, cytoplasm=0.04, illumination=0.5,
        haze=0.35, psf_sigma=1.0, defocus=False, photons=250.0, read_noise=2.0, debris=2.0, full_scale=0.05,
        offset_fraction=0.0015)),
    # Higher magnification, 8 bit, clustered and touching nuclei with dark nucleoli.
    "nuclei_8bit.png": dict(seed=7, bit_depth=8, params=SceneParams(
        radius=24.0, radius_spread=0.12, coverage=0.5, cluster_fraction=0.85, touching=0.76, aspect=0.72,
        irregularity=0.08, kidney_fraction=0.15, mitotic_fraction=0.02, brightness_decades=0.8, texture=0.3,
        rim=0.2, dome=0.2, spots=2.0, spot_sign=-1.0, background=0.4, cytoplasm=0.03, illumination=0.3,
        haze=0.15, psf_sigma=1.3, defocus=False, photons=1200.0, read_noise=2.0, debris=1.0,
        full_scale_8bit=0.7, offset_fraction=0.02)),
    # Low magnification, crowded, some mitoses, one corner slightly out of focus.
    "nuclei_crowded_16bit.tif": dict(seed=31337, bit_depth=16, params=SceneParams(
        radius=5.0, radius_spread=0.18, coverage=0.38, cluster_fraction=0.6, touching=0.8, aspect=0.72,
        irregularity=0.05, kidney_fraction=0.05, mitotic_fraction=0.03, brightness_decades=1.0, texture=0.2,
        rim=0.05, dome=0.3, spots=0.0, background=0.4, cytoplasm=0.03, illumination=0.35, haze=0.25,
        psf_sigma=0.8, defocus=True, defocus_sigma=1.6, photons=600.0, read_noise=2.0, debris=3.0,
        full_scale=0.15, offset_fraction=0.0015)),
}
SIZE = (512, 512)
# A generated H&E slide (hematoxylin nuclei on eosin stroma) for the H&E path: small, colour, bright background.
HE_SAMPLE = dict(name="he_nuclei.png", seed=2024, size=(384, 384), params=SceneParams(
    radius=9.0, radius_spread=0.18, coverage=0.3, cluster_fraction=0.5, touching=0.8, aspect=0.72,
    irregularity=0.08, kidney_fraction=0.1, mitotic_fraction=0.02, brightness_decades=0.6, texture=0.35,
    rim=0.15, dome=0.2, spots=1.0, spot_sign=1.0, background=0.2, cytoplasm=0.02, illumination=0.2, haze=0.1,
    psf_sigma=0.9, defocus=False, photons=2000.0, read_noise=2.0, debris=0.5, full_scale=0.1,
    offset_fraction=0.0015))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "resources" / "samples")
    args = parser.parse_args(argv)
    (args.out / "truth").mkdir(parents=True, exist_ok=True)
    for name, spec in SAMPLES.items():
        image, mask, instances = generate_nuclei_image(spec["seed"], height=SIZE[0], width=SIZE[1],
                                                       bit_depth=spec["bit_depth"], params=spec["params"])
        path = args.out / name
        if path.suffix == ".tif":
            tifffile.imwrite(path, image, photometric="minisblack")
        else:
            cv2.imwrite(str(path), image)
        cv2.imwrite(str(args.out / "truth" / f"{path.stem}.png"), mask)
        print(f"{path}: {image.dtype} {image.shape[1]}x{image.shape[0]}, values {image.min()}..{image.max()}, "
              f"{int(instances.max())} nuclei, {path.stat().st_size / 1024:.0f} KiB")
    rgb, mask, instances = generate_he_image(HE_SAMPLE["seed"], height=HE_SAMPLE["size"][0],
                                             width=HE_SAMPLE["size"][1], params=HE_SAMPLE["params"])
    path = args.out / HE_SAMPLE["name"]
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(args.out / "truth" / f"{path.stem}.png"), mask)
    print(f"{path}: H&E RGB {rgb.shape[1]}x{rgb.shape[0]}, {int(instances.max())} nuclei, "
          f"{path.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
