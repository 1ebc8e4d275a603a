"""Procedural fluorescence-nuclei images (DAPI/Hoechst-like) with exact ground-truth masks.

The generator trains the bundled default U-Net and makes the sample images, so it has to reproduce what makes
real nuclear stains hard to segment rather than what makes them pretty:

* brightness varies over more than a decade inside one field (cell-cycle stage, stain uptake), so a single
  global threshold loses the dim nuclei or merges the bright ones with their halo;
* nuclei touch and cluster; every pixel still belongs to exactly one nucleus (the nearest one in shape-normalised
  distance, which gives the straight contact lines seen between squeezed nuclei);
* shapes are ellipses bent by smooth low-frequency radial noise, some kidney shaped, a few small bright
  compact mitotic figures;
* chromatin texture (band-passed noise), bright rims, bright chromocentres or dark nucleoli;
* the background is not flat: vignetting and a gradient in the excitation, low-frequency autofluorescence, a
  faint cytoplasmic glow around nuclei, out-of-focus nuclei from other planes (not in the mask) and debris
  specks (not in the mask);
* optics and camera: Gaussian PSF, regions out of focus, Poisson shot noise at a varied photon budget,
  Gaussian read noise, a camera offset, 8- or 16-bit digitisation with the signal using only part of the range
  (as real 12-bit sensors stored as 16-bit do).

The mask boundary sits where the nucleus' unblurred edge profile falls to half its interior value, which is
where a person labelling a sharp image would draw it. Only numpy and OpenCV are used, and everything random is
drawn from one ``numpy.random.Generator`` so an image is a pure function of its seed and parameters.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from segstudio.core.dataset import ExportItem, export_many
from segstudio.core.labels import ClassTable

Range = tuple[float, float]
RngLike = int | np.random.Generator | None


@dataclass(frozen=True)
class SynthParams:
    """Ranges (low, high) from which the scene of each image is drawn by :func:`sample_params`.

    Ranges marked log are sampled log-uniformly because they span more than an order of magnitude.
    The defaults cover the variety the bundled model is meant to handle; narrow them for a sample image.
    """

    radius: Range = (4.0, 30.0)  # log; median equivalent radius (px): magnification
    radius_spread: Range = (0.06, 0.22)  # log-normal sigma of per-nucleus radius
    coverage: Range = (0.08, 0.42)  # fraction of the field covered by nuclei
    cluster_fraction: Range = (0.0, 0.85)  # share of nuclei placed around cluster centres
    touching: Range = (0.72, 0.98)  # smallest centre distance / (r_i + r_j): < 1 lets nuclei squeeze together
    aspect: Range = (0.55, 0.95)  # minor/major axis ratio
    irregularity: Range = (0.02, 0.11)  # amplitude of the low-frequency radial noise
    kidney_fraction: Range = (0.0, 0.25)
    mitotic_fraction: Range = (0.0, 0.06)
    brightness_decades: Range = (0.5, 1.5)  # log10 span between 5th and 95th percentile nucleus brightness
    texture: Range = (0.05, 0.35)  # chromatin contrast
    rim: Range = (0.0, 0.35)  # brighter nuclear rim
    dome: Range = (0.0, 0.5)  # centre brighter than edge (thick nuclei)
    spots: Range = (0.0, 3.0)  # mean chromocentres / nucleoli per nucleus
    background: Range = (0.1, 1.2)  # log; autofluorescence relative to the dimmest tenth of nuclei
    cytoplasm: Range = (0.0, 0.08)  # glow around nuclei relative to their brightness
    illumination: Range = (0.0, 0.55)  # depth of vignetting + gradient
    haze: Range = (0.0, 0.6)  # out-of-focus nuclei from other planes per in-focus nucleus
    psf_sigma: Range = (0.5, 1.6)
    defocus_probability: float = 0.15  # chance that part of the field is out of focus
    defocus_sigma: Range = (2.0, 4.5)
    photons: Range = (80.0, 3000.0)  # log; expected photo-electrons of a bright nucleus
    read_noise: Range = (1.0, 3.5)  # electrons
    debris: Range = (0.0, 6.0)  # mean specks per 256 x 256 px
    full_scale: Range = (0.03, 0.5)  # log; 16-bit: bright-nucleus level as a fraction of the dtype range
    full_scale_8bit: Range = (0.35, 0.95)  # 8-bit images are usually stretched by the acquisition software
    offset_fraction: Range = (0.0, 0.01)  # camera offset as a fraction of the dtype range

    def sample(self, rng: RngLike) -> SceneParams:
        """One image's settings drawn from these ranges (same as ``sample_params(rng, self)``)."""
        return sample_params(rng, self)


@dataclass(frozen=True)
class SceneParams:
    """The concrete settings of one image (what :func:`sample_params` returns).

    Build one directly, or change a sampled one with ``dataclasses.replace``, to pin a property in a test or a
    sample image.
    """

    radius: float = 10.0
    radius_spread: float = 0.15
    coverage: float = 0.25
    cluster_fraction: float = 0.4
    touching: float = 0.85
    aspect: float = 0.75
    irregularity: float = 0.06
    kidney_fraction: float = 0.1
    mitotic_fraction: float = 0.02
    brightness_decades: float = 1.0
    texture: float = 0.2
    rim: float = 0.1
    dome: float = 0.2
    spots: float = 1.0
    spot_sign: float = 0.0  # +1 bright chromocentres, -1 dark nucleoli, 0 a mix
    background: float = 0.4
    cytoplasm: float = 0.03
    illumination: float = 0.25
    haze: float = 0.2
    psf_sigma: float = 1.0
    defocus: bool = False
    defocus_sigma: float = 3.0
    photons: float = 500.0
    read_noise: float = 2.0
    debris: float = 2.0
    full_scale: float = 0.15
    full_scale_8bit: float = 0.7
    offset_fraction: float = 0.003


def _uniform(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def _log_uniform(rng: np.random.Generator, r: Range) -> float:
    return float(math.exp(rng.uniform(math.log(r[0]), math.log(r[1]))))


_LOG_FIELDS = {"radius", "background", "photons", "full_scale"}


def sample_params(rng: RngLike, ranges: SynthParams | None = None) -> SceneParams:
    """Draw the settings of one image from ``ranges`` (default: :class:`SynthParams`)."""
    rng = _as_rng(rng)
    ranges = ranges or SynthParams()
    values: dict[str, object] = {}
    for field in dataclasses.fields(SceneParams):
        name = field.name
        if name == "defocus":
            values[name] = bool(rng.random() < ranges.defocus_probability)
        elif name == "spot_sign":
            values[name] = float(rng.choice([-1.0, 0.0, 1.0]))
        else:
            r = getattr(ranges, name)
            values[name] = _log_uniform(rng, r) if name in _LOG_FIELDS else _uniform(rng, r)
    return SceneParams(**values)


def _as_rng(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


# --- geometry ----------------------------------------------------------------------------------------------

@dataclass
class _Nuclei:
    cy: np.ndarray
    cx: np.ndarray
    radius: np.ndarray  # equivalent radius: area == pi * radius**2 before the radial noise
    aspect: np.ndarray
    angle: np.ndarray
    mitotic: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.cy)


def _place_nuclei(rng: np.random.Generator, h: int, w: int, p: SceneParams) -> _Nuclei:
    """Cluster centres plus Poisson-distributed members, with a minimum centre distance that lets neighbours
    squeeze against each other but not pile up."""
    area = h * w
    n_target = int(min(3000, round(p.coverage * area / (math.pi * p.radius**2))))
    n_target = max(n_target, 1)
    n_cand = 3 * n_target + 10
    radii = p.radius * np.exp(rng.normal(0.0, p.radius_spread, n_cand))
    mitotic = rng.random(n_cand) < p.mitotic_fraction
    radii[mitotic] *= rng.uniform(0.5, 0.7, int(mitotic.sum()))

    mean_cluster = 3.0 + 10.0 * p.cluster_fraction
    n_clusters = max(1, rng.poisson(max(1.0, n_target * p.cluster_fraction / mean_cluster)))
    centres = np.stack([rng.uniform(0, h, n_clusters), rng.uniform(0, w, n_clusters)], axis=1)
    # A cluster of k nuclei packed at the contact distance fills a disc of about r * sqrt(k).
    spread = p.radius * math.sqrt(mean_cluster) * 0.9
    in_cluster = rng.random(n_cand) < p.cluster_fraction
    which = rng.integers(0, n_clusters, n_cand)
    pos = np.empty((n_cand, 2))
    pos[:, 0] = rng.uniform(-p.radius, h + p.radius, n_cand)
    pos[:, 1] = rng.uniform(-p.radius, w + p.radius, n_cand)
    offsets = rng.normal(0.0, spread, (n_cand, 2))
    pos[in_cluster] = centres[which[in_cluster]] + offsets[in_cluster]

    # Greedy acceptance in candidate order; a grid of cells one contact distance wide means each candidate is
    # checked only against accepted nuclei in the 3 x 3 cells around it.
    cell = 2.0 * p.touching * float(radii.max()) + 1e-6
    grid: dict[tuple[int, int], list[int]] = {}
    ys, xs, rs = pos[:, 0].tolist(), pos[:, 1].tolist(), radii.tolist()
    touching, margin = p.touching, p.radius

    def clashes(y: float, x: float, r: float, gy: int, gx: int) -> bool:
        for cy in (gy - 1, gy, gy + 1):
            for cx in (gx - 1, gx, gx + 1):
                for j in grid.get((cy, cx), ()):
                    lim = touching * (r + rs[j])
                    if (ys[j] - y) ** 2 + (xs[j] - x) ** 2 < lim * lim:
                        return True
        return False

    kept: list[int] = []
    for i in range(n_cand):
        y, x, r = ys[i], xs[i], rs[i]
        if not (-margin < y < h + margin and -margin < x < w + margin):
            continue
        gy, gx = int(y // cell), int(x // cell)
        if clashes(y, x, r, gy, gx):
            continue
        grid.setdefault((gy, gx), []).append(i)
        kept.append(i)
        if len(kept) == n_target:
            break
    idx = np.asarray(kept, dtype=np.int64)
    k = len(idx)
    aspect = np.clip(p.aspect + rng.normal(0.0, 0.08, k), 0.35, 1.0)
    mit = mitotic[idx]
    aspect[mit] = rng.uniform(0.35, 0.65, int(mit.sum()))  # metaphase plates seen edge-on are bars
    return _Nuclei(cy=pos[idx, 0], cx=pos[idx, 1], radius=radii[idx], aspect=aspect,
                   angle=rng.uniform(0.0, math.pi, k), mitotic=mit)


def _render_shapes(rng: np.random.Generator, h: int, w: int, nuc: _Nuclei, p: SceneParams,
                   reach: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the nucleus with the smallest shape-normalised distance f (f == 1 on its outline), and f.

    f is the elliptic distance divided by the perturbed radius function, so the owner of a pixel where two
    nuclei overlap is the one it lies deeper inside: contact lines come out straight, as between squeezed
    nuclei, and each pixel has exactly one label.
    """
    n = len(nuc)
    best = np.full(h * w, 9.0, dtype=np.float32)
    owner = np.zeros(h * w, dtype=np.int32)
    if n == 0:
        return owner.reshape(h, w), best.reshape(h, w)
    n_harm = 4  # radial noise harmonics 2..5: low frequency, smooth outlines
    amp = p.irregularity / (np.arange(2, 2 + n_harm) ** 1.1)
    harm = ((rng.normal(0.0, 1.0, (n, n_harm)) + 1j * rng.normal(0.0, 1.0, (n, n_harm)))
            * amp / math.sqrt(2)).astype(np.complex64)
    harm[nuc.mitotic] *= 0.4
    kidney = (rng.random(n) < p.kidney_fraction) & ~nuc.mitotic
    dent_depth = np.where(kidney, rng.uniform(0.22, 0.42, n), 0.0).astype(np.float32)
    dent_kappa = rng.uniform(2.5, 6.0, n).astype(np.float32)
    dent_dir = rng.uniform(0.0, 2 * math.pi, n)
    dent_phasor = np.exp(-1j * dent_dir).astype(np.complex64)
    semi_a = (nuc.radius / np.sqrt(nuc.aspect)).astype(np.float32)  # semi-axes keep the area of a disc of
    semi_b = (nuc.radius * np.sqrt(nuc.aspect)).astype(np.float32)  # radius r
    cos_t = np.cos(nuc.angle).astype(np.float32)
    sin_t = np.sin(nuc.angle).astype(np.float32)

    # All nuclei are evaluated on same-size square patches at once (in chunks to bound memory), then merged
    # into the image with a scatter-min: far faster than a Python loop over hundreds of small nuclei.
    half = int(math.ceil(float(semi_a.max()) * (1.0 + 2.5 * p.irregularity) * reach)) + 1
    offs = np.arange(-half, half + 1, dtype=np.int64)
    side = offs.size
    chunk = max(1, 1_500_000 // (side * side))
    for s in range(0, n, chunk):
        sl = slice(s, min(n, s + chunk))
        cy = nuc.cy[sl].astype(np.float32)[:, None, None]
        cx = nuc.cx[sl].astype(np.float32)[:, None, None]
        py = np.floor(nuc.cy[sl]).astype(np.int64)[:, None, None] + offs[None, :, None]
        px = np.floor(nuc.cx[sl]).astype(np.int64)[:, None, None] + offs[None, None, :]
        dy = py.astype(np.float32) - cy
        dx = px.astype(np.float32) - cx
        ca, sa = cos_t[sl][:, None, None], sin_t[sl][:, None, None]
        u = dx * ca + dy * sa
        v = dy * ca - dx * sa
        f_ell = np.sqrt((u / semi_a[sl][:, None, None]) ** 2 + (v / semi_b[sl][:, None, None]) ** 2)
        rho = np.sqrt(dx * dx + dy * dy) + np.float32(1e-6)
        z = ((dx + np.complex64(1j) * dy) / rho).astype(np.complex64)  # unit phasor of the polar angle
        zk = z * z
        pert = np.zeros(f_ell.shape, dtype=np.float32)
        for k in range(n_harm):
            pert += (zk * harm[sl, k][:, None, None]).real
            zk = zk * z
        cos_d = (z * dent_phasor[sl][:, None, None]).real
        pert -= dent_depth[sl][:, None, None] * np.exp(dent_kappa[sl][:, None, None] * (cos_d - 1.0))
        f = (f_ell / np.maximum(1.0 + pert, 0.3)).astype(np.float32)
        valid = (py >= 0) & (py < h) & (px >= 0) & (px < w) & (f < 1.5)
        flat = (py * w + px)
        flat = np.broadcast_to(flat, f.shape)[valid]
        vals = f[valid]
        ids = np.broadcast_to(np.arange(sl.start + 1, sl.stop + 1, dtype=np.int32)[:, None, None], f.shape)[valid]
        np.minimum.at(best, flat, vals)
        win = vals == best[flat]
        owner[flat[win]] = ids[win]
    return owner.reshape(h, w), best.reshape(h, w)


# --- smooth fields -----------------------------------------------------------------------------------------

def _low_freq_field(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish smooth random field with about `cells` bumps across the larger side."""
    gh = max(2, int(round(cells * h / max(h, w))) + 1)
    gw = max(2, int(round(cells * w / max(h, w))) + 1)
    grid = rng.normal(0.0, 1.0, (gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0.05:
        return img
    return cv2.GaussianBlur(img, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma),
                            borderType=cv2.BORDER_REFLECT)


def _blur_wide(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur for large sigma, done on a reduced grid: the result is smooth anyway and the kernel
    of a full-resolution blur would cost more than the rest of the image."""
    h, w = img.shape
    factor = int(max(1, min(sigma / 3.0, min(h, w) / 8)))
    if factor == 1:
        return _blur(img, sigma)
    small = cv2.resize(img, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    small = _blur(small, sigma / factor)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _splat(h: int, w: int, ys: np.ndarray, xs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    img = np.zeros((h, w), dtype=np.float32)
    yi = np.clip(np.round(ys).astype(np.int64), 0, h - 1)
    xi = np.clip(np.round(xs).astype(np.int64), 0, w - 1)
    np.add.at(img, (yi, xi), weights.astype(np.float32))
    return img


def _gaussian_blobs(h: int, w: int, ys, xs, peaks, sigma: float, wide: bool = False) -> np.ndarray:
    """Sum of Gaussian blobs of the given peak heights (impulses then one blur)."""
    ys, xs, peaks = np.asarray(ys), np.asarray(xs), np.asarray(peaks, dtype=np.float64)
    inside = (ys > -0.5) & (ys < h - 0.5) & (xs > -0.5) & (xs < w - 0.5)
    img = _splat(h, w, ys[inside], xs[inside], peaks[inside] * 2.0 * math.pi * sigma * sigma)
    return _blur_wide(img, sigma) if wide else _blur(img, sigma)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


# --- the image ---------------------------------------------------------------------------------------------

def generate_nuclei_image(rng_or_seed: RngLike, *, height: int = 256, width: int = 256, bit_depth: int = 16,
                          params: SynthParams | SceneParams | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic nuclear-stain image and its ground truth.

    ``params`` may be a :class:`SceneParams` (used as is), a :class:`SynthParams` (a scene is drawn from its
    ranges) or None (drawn from the default ranges). The same seed and parameters give the same image.

    Returns ``(image, mask, instances)``: image (H, W) uint8 or uint16; mask (H, W) uint8 with 0 = background
    and 1 = nucleus; instances (H, W) int32 with 0 = background and nuclei numbered 1..N.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, not {bit_depth}")
    if height < 8 or width < 8:
        raise ValueError(f"image must be at least 8 x 8 px, not {height} x {width}")
    rng = _as_rng(rng_or_seed)
    p = params if isinstance(params, SceneParams) else sample_params(rng, params)
    h, w = int(height), int(width)

    # The steps below share one generator and draw from it in this order; an image is only reproducible from
    # its seed as long as the order stays the same (tests/synth/test_nuclei_pinned.py holds it).
    nuc = _place_nuclei(rng, h, w, p)
    owner, f = _render_shapes(rng, h, w, nuc, p)
    instances = _number_visible_nuclei(owner, f, len(nuc))
    mask = (instances > 0).astype(np.uint8)

    look = _draw_appearance(rng, nuc, p)
    own_b = look.brightness[owner]
    texture = _chromatin_texture(rng, h, w, nuc, owner, look.texture, p)
    # Factors and layers come back apart and are combined here in a fixed order: float32 products and sums
    # in another order would move the pinned images in the last bit.
    edge, shade = _edge_and_shading(owner, f, look, p)
    nuclei_signal = own_b * edge * shade * texture
    autofluor, glow, haze, debris = _light_outside_nuclei(rng, h, w, nuc, own_b, f, look, p)
    signal = nuclei_signal + autofluor + glow + haze + debris
    signal *= _illumination(rng, h, w, p)
    image = _camera(rng, _optics(rng, signal, p), bit_depth, p)
    return image, mask, instances


def _number_visible_nuclei(owner: np.ndarray, f: np.ndarray, n: int) -> np.ndarray:
    """Instance image numbering 1..N the nuclei that own a pixel inside their outline: a placed nucleus can be
    hidden by deeper neighbours or lie outside the field, and ids stay dense as in a labelled image."""
    instances = np.where(f < 1.0, owner, 0).astype(np.int32)
    present = np.zeros(n + 1, dtype=bool)
    present[instances.ravel()] = True
    present[0] = False
    relabel = np.zeros(n + 1, dtype=np.int32)
    relabel[present] = np.arange(1, int(present.sum()) + 1, dtype=np.int32)
    return relabel[instances]


@dataclass
class _Appearance:
    """Per-nucleus appearance; the arrays are indexed by owner id, with entry 0 for 'no nucleus'."""
    brightness: np.ndarray
    texture: np.ndarray  # chromatin contrast
    rim: np.ndarray
    edge_width: np.ndarray  # of the edge profile, in units of f
    dim: float  # 10th percentile brightness, mitoses included: sets the autofluorescence level
    typical: float  # median brightness before the mitoses were brightened: sets the haze level


def _draw_appearance(rng: np.random.Generator, nuc: _Nuclei, p: SceneParams) -> _Appearance:
    n = len(nuc)
    sigma_b = p.brightness_decades * math.log(10.0) / 3.29  # 5th..95th percentile of a normal: +-1.645 sd
    bright = np.exp(rng.normal(0.0, sigma_b, n))
    if n:
        bright /= np.percentile(bright, 90)
    # Below ~1/25 of the bright ones a nucleus drowns in background and noise: nobody would label it, and a
    # ground truth with invisible nuclei teaches a network to hallucinate.
    bright = np.maximum(bright, 0.04)
    typical = float(np.median(bright)) if n else 0.5
    bright[nuc.mitotic] = rng.uniform(1.8, 3.5, int(nuc.mitotic.sum()))  # condensed chromatin: the brightest
    b = np.concatenate([[0.0], bright]).astype(np.float32)
    tex_amp = np.concatenate([[0.0], p.texture * rng.uniform(0.6, 1.4, n)]).astype(np.float32)
    tex_amp[1:][nuc.mitotic] = 0.5
    rim = np.concatenate([[0.0], p.rim * rng.uniform(0.5, 1.5, n)]).astype(np.float32)
    rim[1:][nuc.mitotic] = 0.0
    edge_w = np.concatenate([[0.12], rng.uniform(0.08, 0.16, n)]).astype(np.float32)
    edge_w[1:][nuc.mitotic] = 0.05
    dim = float(np.percentile(bright, 10)) if n else 0.1
    return _Appearance(brightness=b, texture=tex_amp, rim=rim, edge_width=edge_w, dim=dim, typical=typical)


def _edge_and_shading(owner: np.ndarray, f: np.ndarray, look: _Appearance,
                      p: SceneParams) -> tuple[np.ndarray, np.ndarray]:
    """Edge profile (1 inside, 0.5 on the outline where f == 1, 0 beyond) and dome shading plus the rim."""
    fe = np.minimum(f, 1.5)
    ew = look.edge_width[owner]
    edge = _smoothstep((1.0 + ew - fe) / (2.0 * ew))
    fi = np.minimum(fe, 1.0)
    shade = (1.0 - p.dome) + p.dome * np.sqrt(np.maximum(0.0, 1.0 - fi * fi))
    shade = shade + look.rim[owner] * np.exp(-(((fe - 0.88) / 0.09) ** 2))
    return edge, shade


def _chromatin_texture(rng: np.random.Generator, h: int, w: int, nuc: _Nuclei, owner: np.ndarray,
                       tex_amp: np.ndarray, p: SceneParams) -> np.ndarray:
    """Chromatin: band-passed noise at a scale tied to the nucleus size, plus spots; a factor around 1."""
    fine = max(0.6, p.radius / 9.0)
    noise = rng.normal(0.0, 1.0, (h, w)).astype(np.float32)
    band = _blur(noise, fine) - _blur(noise, 3.0 * fine)
    band /= float(band.std()) + 1e-6
    texture = 1.0 + tex_amp[owner] * band
    n = len(nuc)
    if p.spots > 0 and p.radius >= 6 and n:  # bright chromocentres and/or dark nucleoli, none in mitoses
        counts = rng.poisson(p.spots, n)
        counts[nuc.mitotic] = 0
        m = int(counts.sum())
        if m:
            host = np.repeat(np.arange(n), counts)
            ang = rng.uniform(0, 2 * math.pi, m)
            rr = np.sqrt(rng.uniform(0, 1, m)) * 0.55 * nuc.radius[host]
            sign = np.full(m, p.spot_sign) if p.spot_sign != 0 else rng.choice([-1.0, 1.0], m)
            amp_s = np.where(sign > 0, rng.uniform(0.3, 0.8, m), -rng.uniform(0.25, 0.5, m))
            texture += _gaussian_blobs(h, w, nuc.cy[host] + rr * np.sin(ang), nuc.cx[host] + rr * np.cos(ang),
                                       amp_s, sigma=max(0.8, 0.14 * p.radius))
    return np.maximum(texture, 0.05)


def _light_outside_nuclei(rng: np.random.Generator, h: int, w: int, nuc: _Nuclei, own_b: np.ndarray,
                          f: np.ndarray, look: _Appearance, p: SceneParams
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Light not in the mask: (autofluorescence, cytoplasm glow, out-of-focus nuclei, debris)."""
    n = len(nuc)
    bg_level = p.background * look.dim
    autofluor = bg_level * np.exp(0.35 * _low_freq_field(rng, h, w, cells=3)
                                  + 0.12 * _low_freq_field(rng, h, w, cells=10))
    glow = _blur_wide(own_b * (f < 1.0), 1.6 * p.radius) * p.cytoplasm
    haze = np.zeros((h, w), dtype=np.float32)
    n_haze = int(rng.poisson(p.haze * max(n, 3)))
    if n_haze:
        hs = max(2.0, p.radius * rng.uniform(0.9, 1.6))
        haze = _gaussian_blobs(h, w, rng.uniform(0, h, n_haze), rng.uniform(0, w, n_haze),
                               np.exp(rng.normal(math.log(0.25), 0.6, n_haze)) * look.typical * 0.6,
                               sigma=hs, wide=True)
    debris = np.zeros((h, w), dtype=np.float32)
    n_debris = int(rng.poisson(p.debris * h * w / 65536.0))
    if n_debris:
        debris = _gaussian_blobs(h, w, rng.uniform(0, h, n_debris), rng.uniform(0, w, n_debris),
                                 rng.uniform(0.4, 3.0, n_debris), sigma=float(rng.uniform(0.5, 1.2)))
    return autofluor, glow, haze, debris


def _illumination(rng: np.random.Generator, h: int, w: int, p: SceneParams) -> np.ndarray:
    """Excitation factor: vignetting around an off-centre optical axis and a linear gradient."""
    yy = (np.arange(h, dtype=np.float32)[:, None] - h * rng.uniform(0.3, 0.7)) / max(h, w)
    xx = (np.arange(w, dtype=np.float32)[None, :] - w * rng.uniform(0.3, 0.7)) / max(h, w)
    theta = rng.uniform(0, 2 * math.pi)
    split = rng.uniform(0.2, 0.8)
    illum = (1.0 - p.illumination * split * 2.0 * (yy * yy + xx * xx)) \
        * (1.0 + p.illumination * (1 - split) * (yy * math.sin(theta) + xx * math.cos(theta)))
    return np.clip(illum, 0.25, 1.6)


def _optics(rng: np.random.Generator, signal: np.ndarray, p: SceneParams) -> np.ndarray:
    """PSF, and optionally a smooth region of the field out of focus."""
    sharp = _blur(signal, p.psf_sigma)
    if p.defocus:
        weight = _smoothstep(0.5 + 0.8 * _low_freq_field(rng, *signal.shape, cells=2))
        soft = _blur(signal, p.defocus_sigma)
        sharp = weight * sharp + (1.0 - weight) * soft
    return sharp


def _camera(rng: np.random.Generator, sharp: np.ndarray, bit_depth: int, p: SceneParams) -> np.ndarray:
    """Shot noise, read noise, offset, digitisation with the signal using part of the range."""
    electrons = rng.poisson(np.maximum(sharp, 0.0).astype(np.float64) * p.photons)
    full = 255.0 if bit_depth == 8 else 65535.0
    gain = (p.full_scale_8bit if bit_depth == 8 else p.full_scale) * full / p.photons  # ADU per electron
    adu = electrons * gain + p.offset_fraction * full + rng.normal(0.0, p.read_noise * gain + 0.3, sharp.shape)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return np.clip(np.rint(adu), 0, full).astype(dtype)


# --- baselines and scores ----------------------------------------------------------------------------------

def otsu_baseline(image: np.ndarray, *, smooth_sigma: float = 1.0) -> np.ndarray:
    """Classical baseline: Otsu's threshold on a lightly smoothed image -> uint8 mask (1 = foreground).

    Works on any integer or float dtype (the histogram spans the image's own range, 256 bins); colour or
    multi-channel (H, W, C) input is averaged over channels.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img.mean(axis=2)
    if img.ndim != 2:
        raise ValueError(f"expected a (H, W) or (H, W, C) image, got shape {image.shape}")
    img = _blur(np.ascontiguousarray(img), smooth_sigma)
    lo, hi = float(img.min()), float(img.max())
    if hi <= lo:
        return np.zeros(img.shape, dtype=np.uint8)
    hist, edges = np.histogram(img, bins=256, range=(lo, hi))
    hist = hist.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2.0
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1e-12)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1e-12)
    between = w0 * w1 * (m0 - m1) ** 2
    t = edges[int(np.argmax(between[:-1])) + 1]
    return (img >= t).astype(np.uint8)


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two binary masks (non-zero = foreground); 1.0 when both are empty."""
    p, t = np.asarray(pred) != 0, np.asarray(target) != 0
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch: {p.shape} vs {t.shape}")
    union = int(np.count_nonzero(p | t))
    return 1.0 if union == 0 else int(np.count_nonzero(p & t)) / union


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice coefficient (F1) of two binary masks; 1.0 when both are empty."""
    p, t = np.asarray(pred) != 0, np.asarray(target) != 0
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch: {p.shape} vs {t.shape}")
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(t))
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(p & t)) / total


# --- training sets -----------------------------------------------------------------------------------------

def iter_training_images(n: int, *, seed: int, size: int = 256, params: SynthParams | None = None,
                         bit_depths: tuple[int, ...] = (8, 16)) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(index, image, mask)`` for a reproducible training set; image ``index`` depends only on
    (seed, index), so a set can be extended or regenerated in part."""
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        depth = bit_depths[int(rng.integers(0, len(bit_depths)))]
        image, mask, _ = generate_nuclei_image(rng, height=size, width=size, bit_depth=depth, params=params)
        yield i, image, mask


def make_training_set(out_dir: str | Path, n: int, *, seed: int, size: int = 256,
                      params: SynthParams | None = None) -> Path:
    """Write ``n`` synthetic images with their masks as a segstudio dataset folder (see core.dataset).

    Entries are marked as fully hand-labelled (the ground truth is exact) and their source is a
    ``synthetic:`` name, not a file, so regenerating the same (seed, index) with a changed generator replaces
    the old entry instead of adding a second one.
    """
    out = Path(out_dir)
    items = (ExportItem(pixels=image[:, :, None], mask=mask, hand=np.ones(mask.shape, dtype=bool),
                        source=f"synthetic:nuclei/seed{seed}/{i:05d}")
             for i, image, mask in iter_training_images(n, seed=seed, size=size, params=params))
    export_many(out, items, ClassTable.default())
    return out
