"""Training, validation and held-out photos, and the patch pools cut from them.

Three disjoint sets:
  held out    scikit-image's `chelsea` and `coffee` (HELD_OUT): read only by evaluate.py, once, at the end.
  validation  the photos.tsv rows with split `val` (Debian wallpaper photos): every choice made while
              training (stage 2's checkpoint, the model's tile) is made on them.
  training    the photos.tsv rows with split `train` (Debian wallpaper photos, fetched by package name,
              photos.py) and scikit-image's other bundled photos (inside its 0.26 wheel, no download;
              licences as their `skimage.data` docstrings state them):
      colour  astronaut (NASA, public domain), rocket (SpaceX, public domain), hubble_deep_field (NASA,
              public domain), retina (Mikael Haggstrom, CC0), immunohistochemistry (CMMI, no known
              copyright restrictions)
      grey    camera (Lav Varshney, CC0), coins (Brooklyn Museum, no known copyright restrictions), brick
              (CC0Textures, CC0), grass (linolafett, CC0), gravel (CC0Textures, CC0), text (Wikipedia,
              public domain), cell (Paul Mueller et al., CC0); replicated to RGB
    Samples whose docstring states no licence (moon, page, colorwheel, logo) and the motion-blurred clock
    are not used.

Scales: a wallpaper (1-5k px wide, soft at the pixel level) is resized (Pillow LANCZOS, once) so that its
long side is each of LONG_SIDES, bringing its detail density near a phone photo's at the sizes the
held-out photos have; scikit-image's photos (already small) are kept at each of SCALES. Every photo is
drawn with the same probability (grey ones at GREY_WEIGHT), then one of its scales, then a random crop with
a random flip / 90-degree rotation; crops with almost no texture (std under MIN_STD levels) are redrawn,
and a crop is kept with probability min(1, detail / DETAIL_REF) (detail: mean absolute difference of
neighbouring grey levels), so that patches are drawn in proportion to their detail up to DETAIL_REF and
the soft regions of the wallpapers (most of them soft at the pixel level) stop dominating.
The LR of each HR patch is degrade.training_lr (the clean downscale or the Real-ESRGAN-style degradation).
Pools are cached under OUT/pools/ (keyed by their inputs), so a resumed run does not rebuild them.
"""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import skimage
import skimage.data
from PIL import Image

import photos as wallpapers
from degrade import SCALE, clean, degrade, training_lr

HELD_OUT = ("chelsea", "coffee")
SKIMAGE_COLOUR = ("astronaut", "rocket", "hubble_deep_field", "retina", "immunohistochemistry")
SKIMAGE_GREY = ("camera", "coins", "brick", "grass", "gravel", "text", "cell")
GREY_WEIGHT = 0.5
MIN_STD = 6.0  # u8 levels; reject flat crops
DETAIL_REF = 8.0  # u8 levels; crops with at least this mean absolute gradient are always kept
SCALES = (1.0, 0.85, 0.7, 0.55)
LONG_SIDES = (1280, 896, 640)
HERE = Path(__file__).resolve().parent


def load_skimage(name):
    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    assert img.dtype == np.uint8 and img.shape[2] == 3, (name, img.shape, img.dtype)
    return np.ascontiguousarray(img)


def resized(img, f):
    h, w = img.shape[:2]
    return img if f == 1.0 else np.asarray(Image.fromarray(img).resize((round(w * f), round(h * f)), Image.LANCZOS))


def wallpaper_photos(split, cache):
    """[(id, [uint8 HxWx3 per LONG_SIDES])] of `split`: from the photo cache folder (fetched by package
    name, photos.py; each scale resized from the original), or from an archive made by `export_photos`
    (a .npz, for the GPU machine: JPEG-compressed, the smaller scales resized from the largest one)."""
    if Path(cache).suffix == ".npz":
        with np.load(cache) as z:
            big = [(str(i), np.asarray(Image.open(io.BytesIO(z[f"jpg_{i}"].tobytes())).convert("RGB")))
                   for i, sp in zip(z["ids"], z["splits"]) if sp == split]
        return [(i, [resized(img, s / LONG_SIDES[0]) for s in LONG_SIDES]) for i, img in big]
    return [(row["id"], [resized(img, s / max(img.shape[:2])) for s in LONG_SIDES])
            for row in wallpapers.fetch(cache) if row["split"] == split for img in [wallpapers.load(row)]]


def export_photos(cache, dst):
    """Every wallpaper photo at LONG_SIDES[0], as JPEG bytes (quality 95, no chroma subsampling: ~10 MB, where
    lossless PNGs would not fit the 64 MiB the GPU machine receives) in one .npz: what
    scripts/gpu-train.sh carries to the GPU machine, which cannot fetch Debian packages."""
    arrays, ids, splits = {}, [], []
    for split in ("train", "val"):
        for i, imgs in wallpaper_photos(split, cache):
            buf = io.BytesIO()
            Image.fromarray(imgs[0]).save(buf, format="JPEG", quality=95, subsampling=0)
            arrays[f"jpg_{i}"] = np.frombuffer(buf.getvalue(), np.uint8)
            ids.append(i)
            splits.append(split)
    np.savez(dst, ids=np.array(ids), splits=np.array(splits), **arrays)


def photo_set(split, cache):
    """[(id, [uint8 HxWx3 per scale], weight)] of `split` ("train" or "val"); never a held-out photo."""
    out = []
    if split == "train":
        assert not set(HELD_OUT) & set(SKIMAGE_COLOUR + SKIMAGE_GREY)
        for n in SKIMAGE_COLOUR + SKIMAGE_GREY:
            img = load_skimage(n)
            out.append((n, [resized(img, f) for f in SCALES], GREY_WEIGHT if n in SKIMAGE_GREY else 1.0))
    return out + [(i, imgs, 1.0) for i, imgs in wallpaper_photos(split, cache)]


def held_out_hr(name):
    """The whole held-out photo, cropped (top-left) to multiples of 8 so HR = 4 x LR exactly and the
    engine needs no reflect pad."""
    img = load_skimage(name)
    h, w = img.shape[0] // 8 * 8, img.shape[1] // 8 * 8
    return np.ascontiguousarray(img[:h, :w])


def augment(rng, patch):
    patch = np.rot90(patch, int(rng.integers(4)))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return np.ascontiguousarray(patch)


def detail(patch):
    """Mean absolute difference of horizontally and vertically neighbouring grey levels (uint8 scale)."""
    g = patch.astype(np.float32).mean(axis=2)
    return 0.5 * (np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


def sample_patch(rng, photos, probs, size):
    while True:
        _, imgs, _ = photos[rng.choice(len(photos), p=probs)]
        img = imgs[rng.integers(len(imgs))]
        sh, sw = img.shape[:2]
        if sh < size or sw < size:
            continue
        y = int(rng.integers(0, sh - size + 1))
        x = int(rng.integers(0, sw - size + 1))
        p = img[y:y + size, x:x + size]
        if p.astype(np.float32).std() >= MIN_STD and rng.random() < detail(p) / DETAIL_REF:
            return augment(rng, p)


def make_pool(photos, n, size, seed, lr_fns):
    """n HR patches uint8 [n,size,size,3] and, per entry of lr_fns {name: (hr, rng) -> LR}, their LR
    uint8 [n,size/4,size/4,3]; deterministic in seed."""
    assert size % (2 * SCALE) == 0
    rng = np.random.default_rng(seed)
    w = np.array([p[2] for p in photos], dtype=np.float64)
    probs = w / w.sum()
    hr = np.empty((n, size, size, 3), np.uint8)
    lrs = {k: np.empty((n, size // SCALE, size // SCALE, 3), np.uint8) for k in lr_fns}
    for i in range(n):
        hr[i] = sample_patch(rng, photos, probs, size)
        for k, fn in lr_fns.items():
            lrs[k][i] = fn(hr[i], rng)
    return hr, lrs


def _clean_lr(hr, _rng):
    return clean(hr)


LR_FNS = {"train": training_lr, "realistic": degrade, "clean": _clean_lr}
CHUNKS = 64  # a pool built by several processes: this many parts, each from its own seed (SeedSequence.spawn)
_worker = {}  # a make_pool_parallel worker's photo set


def _worker_init(split, cache):
    import torch

    torch.set_num_threads(1)  # degrade.py's torch ops: one thread per process
    _worker["photos"] = photo_set(split, cache)


def _chunk(args):
    seed, n, size, conds = args
    return make_pool(_worker["photos"], n, size, seed, {c: LR_FNS[c] for c in conds})


def make_pool_parallel(split, cache, n, size, seed, conds, workers):
    """make_pool in CHUNKS parts built by `workers` processes (the GPU machine's 16 cores). Each process loads
    `split`'s photos itself; they are started by "spawn", not "fork", because a fork after torch's thread pool
    has started can hang. Deterministic in seed and independent of `workers`, but not the same pairs as
    make_pool(seed): the parts draw from SeedSequence(seed).spawn(CHUNKS)."""
    import multiprocessing

    sizes = [n // CHUNKS + (k < n % CHUNKS) for k in range(CHUNKS)]
    jobs = [(ss, m, size, conds) for ss, m in zip(np.random.SeedSequence(seed).spawn(CHUNKS), sizes) if m]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_worker_init, initargs=(split, str(cache))) as pool:
        parts = pool.map(_chunk, jobs)
    return (np.concatenate([hr for hr, _ in parts]),
            {c: np.concatenate([lrs[c] for _, lrs in parts]) for c in conds})


def pools(out, spec, cache, workers=1):
    """spec: {name: (split, n, size, seed, conditions)}, conditions from ("train", "realistic", "clean").
    Returns {name: {"hr": ..., <condition>: LR}}, built once and cached in OUT/pools/<key>.npz. With
    `workers` > 1, a training pool not yet built is built by make_pool_parallel (other pairs: its own cache
    key); the validation pool is always make_pool's, the same crops as every other run's."""
    src = [(HERE / f).read_bytes() for f in ("data.py", "degrade.py", "photos.tsv")]
    res, sets = {}, {}
    for name, (split, n, size, seed, conds) in spec.items():
        parallel = workers > 1 and split == "train"
        what = [split, n, size, seed, conds] + ([f"chunks {CHUNKS}"] if parallel else [])
        key = hashlib.sha256(b"".join(src) + json.dumps(what).encode()).hexdigest()[:16]
        path = Path(out) / "pools" / f"{name}-{key}.npz"
        if not path.exists():
            if parallel:
                hr, lrs = make_pool_parallel(split, cache, n, size, seed, conds, workers)
            else:
                if split not in sets:
                    sets[split] = photo_set(split, cache)
                hr, lrs = make_pool(sets[split], n, size, seed, {c: LR_FNS[c] for c in conds})
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path.with_suffix(".tmp.npz"), hr=hr, **lrs)
            path.with_suffix(".tmp.npz").replace(path)
        with np.load(path) as z:
            res[name] = {k: z[k] for k in z.files}
    return res


def to_tensor01(u8, dev=None):
    """uint8 [N,H,W,3] -> float32 [N,3,H,W] in [0, 1] (on `dev`)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(u8))
    if dev is not None:
        t = t.to(dev)
    return t.permute(0, 3, 1, 2).float() / 255


def skimage_version():
    return skimage.__version__
