"""`segstudio info FILE`: what a file holds, from its headers alone (size, levels, tiles, pixel size...)."""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("info", help="show what an image or slide file holds")
    parser.add_argument("files", nargs="+", help="image or whole-slide files")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from segstudio.core.imageio import ImageReadError

    failed = 0
    for index, name in enumerate(args.files):
        if index:
            print()
        try:
            print("\n".join(describe(name)))
        except ImageReadError as err:
            print(err, file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def describe(name: str) -> list[str]:
    """The lines `segstudio info` prints for one file."""
    from segstudio.core.imageio import is_whole_slide, probe_image, slide_info
    from segstudio.core.text import printable

    if not is_whole_slide(name):
        meta = probe_image(name)
        return [f"file:        {printable(meta.path)}",
                f"kind:        image ({meta.format.upper()})",
                f"size:        {meta.width:,} x {meta.height:,} pixels",
                f"channels:    {meta.channels} ({meta.bit_depth}-bit {meta.dtype})",
                f"pages:       {meta.pages}",
                "reader:      segstudio (" + ("tifffile" if meta.format == "tiff" else "OpenCV") + ")"]
    info = slide_info(name)
    lines = [f"file:        {printable(info.path)}",
             f"kind:        whole-slide image ({info.vendor})",
             f"size:        {info.width:,} x {info.height:,} pixels",
             f"levels:      {len(info.levels)}"]
    for index, level in enumerate(info.levels):
        lines.append(f"  level {index}:   {level.width:,} x {level.height:,}  downsample {level.downsample:g}  "
                     f"tiles {level.tile_width} x {level.tile_height}")
    level0 = info.levels[0]
    lines.append(f"tile size:   {level0.tile_width} x {level0.tile_height}")
    if info.mpp is None:
        lines.append("pixel size:  not recorded in the file")
    else:
        lines.append(f"pixel size:  {info.mpp[0]:.4g} x {info.mpp[1]:.4g} µm")
    lines.append("magnification: " + (f"{info.magnification:g}x" if info.magnification else "not recorded"))
    lines.append(f"channels:    {info.channels} ({info.dtype})")
    if info.associated:
        shown = ", ".join(f"{name} ({w} x {h})" for name, (w, h) in info.associated.items())
        lines.append(f"associated images: {shown}")
    else:
        lines.append("associated images: none")
    lines.append(f"reader:      {info.reader}")
    return lines
