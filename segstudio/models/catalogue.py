"""The networks a user can make a new model from: what each is good at, its default size and what it costs.

Torch-free, so the New Model dialog and `segstudio models new --help` open at once. The default sizes are
chosen for a laptop CPU (a few million weights each); "ImageNet" starts use the published widths, because
ImageNet weights exist only for those. The parameter counts below are checked against the built networks
by tests/models/test_catalogue.py; the tile times are measured figures, with the machine and date they
were measured on (scripts/compare_networks.py --measure prints them again for this computer).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NetworkChoice:
    arch: str
    title: str            # as the dialog lists it
    good_at: str          # one line, plain words
    config: dict          # the default (CPU-friendly) size
    imagenet_config: dict | None  # the published size that ImageNet weights fit; None: no ImageNet start
    parameters: int       # of `config` with 1 input channel and 2 classes
    imagenet_parameters: int | None = None
    tile_seconds: float | None = None  # measured: one 512 x 512 tile on the CPU (see MEASURED_ON)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def cost(self, *, imagenet: bool = False, measured: float | None = None) -> str:
        """ "1.9 M weights (7.8 MB), about 0.4 s per 512 x 512 tile on this computer's CPU": `measured` is the
        time measured here (engine.new_model.tile_seconds); without it, the catalogue's, with where it is from."""
        count = self.imagenet_parameters if imagenet and self.imagenet_parameters else self.parameters
        text = f"{count / 1e6:.1f} M weights ({count * 4 / 1e6:.0f} MB)"
        if imagenet:
            return text
        if measured is not None:
            return text + f", about {measured:.1f} s per 512 x 512 tile on this computer's CPU"
        if self.tile_seconds is not None:
            text += f", about {self.tile_seconds:.1f} s per 512 x 512 tile on a {MEASURED_CPU}'s CPU"
        return text


# Making a model (random weights for every layer, then the file written) takes time in proportion to its
# weights: FCN-8s at its published size (134 M) was built and saved in 11 s, DeconvNet (252 M) in 18 s, on the
# machine below while it was busy; the catalogue's default sizes take well under a second.
MAKE_SECONDS_PER_MILLION = 0.08


def make_seconds(parameters: int) -> float:
    """About how long building and saving a network of `parameters` weights takes (see above)."""
    return parameters / 1e6 * MAKE_SECONDS_PER_MILLION


MEASURED_CPU = "2-core VM"  # the tile times' machine in a word (MEASURED_ON in full)
# Where and when the tile times were measured (scripts/compare_networks.py --measure).
MEASURED_ON = ("2-core Linux VM shared with other work (x86-64, torch 2.14, 2 threads), 2026-11-26, "
               "scripts/compare_networks.py --measure")

_VGG_SMALL = {"width": 0.25, "fc_channels": 256}
_VGG_FULL = {"width": 1.0, "fc_channels": 4096}

NETWORKS: tuple[NetworkChoice, ...] = (
    NetworkChoice("unet", "U-Net", "Sharp outlines from few images; the usual choice for cells and nuclei.",
                  {"base_channels": 16, "depth": 4}, None, 1_942_306, None, 1.41),
    NetworkChoice("fcn8s", "FCN-8s", "Fast, fuses coarse and fine class scores; outlines a little soft.",
                  dict(_VGG_SMALL), dict(_VGG_FULL), 2_594_230, 134_270_278, 0.86),
    NetworkChoice("fcn16s", "FCN-16s", "Like FCN-8s with one fewer fine level: blurrier outlines.",
                  dict(_VGG_SMALL), dict(_VGG_FULL), 2_597_108, 134_272_772, 0.82),
    NetworkChoice("fcn32s", "FCN-32s", "Coarsest FCN: finds where things are, outlines blocky. For teaching.",
                  dict(_VGG_SMALL), dict(_VGG_FULL), 2_609_074, 134_283_970, 0.76),
    NetworkChoice("deconvnet", "DeconvNet", "Unpools to the exact positions it pooled from: crisp, slow.",
                  dict(_VGG_SMALL), dict(_VGG_FULL), 5_124_210, 251_790_786, 1.67),
    NetworkChoice("pspnet", "PSPNet", "Pools context over the whole tile: good for tissue regions, not small objects.",
                  {"backbone": "resnet18", "width": 0.5}, {"backbone": "resnet50", "width": 1.0}, 4_042_402,
                  46_576_066, 1.53),
    NetworkChoice("deeplabv3plus", "DeepLabv3+", "Context at several distances plus a detail skip: regions "
                  "of mixed sizes.", {"backbone": "resnet18", "width": 0.5},
                  {"backbone": "resnet50", "width": 1.0}, 3_091_866, 26_684_722, 1.74),
)

_BY_ARCH = {n.arch: n for n in NETWORKS}


def network(arch: str) -> NetworkChoice:
    """The catalogue entry of `arch`; ValueError naming the choices for an unknown one."""
    try:
        return _BY_ARCH[arch]
    except KeyError:
        raise ValueError(f"Unknown network {arch!r}; choose one of {', '.join(_BY_ARCH)}") from None


def arch_names() -> list[str]:
    return [n.arch for n in NETWORKS]
