"""A candidate against the shipped model on the validation photos, photo by photo, from two tile checks.

    python3 calib/train/compare_val.py calib/train/out/choose_tile30.json 256/64 \\
        calib/train/out/choose_tile29.json 128/64

(plain Python, no torch: it reads the JSON files choose_tile.py writes). For each LR kind it prints the
candidate's PSNR-Y and GMSD minus the reference's, per validation photo and on the mean, how many photos
the candidate is ahead on, and the verdict of the choice rules:
  mean       (rounds 26-30) mean PSNR-Y over both LR kinds higher, and GMSD no worse in both kinds
  most       the above, and PSNR-Y ahead on more than half of the photos in each LR kind: run 7's
             realistic-LR lead on the mean came from one photo of six (docs/demo-model.md, Run 7).
             Written 2026-12-05 after run 7's held-out result, so for the candidates after run 7,
             not for run 7 itself
  draws      (with --draws) realistic LR from draw_spread.py's JSONs, clean LR from the tile checks: with
             realistic LR, PSNR-Y margin over bicubic ahead on more than half of the photos (each photo's
             mean over its draws) and the GMSD margin no worse on the mean; with clean LR (no draws), mean
             PSNR-Y and GMSD no worse. Proposed 2026-12-06 (docs/demo-model.md, "What the validation photos
             say"), after the tile check's mean was found to be one photo's; not yet applied to a candidate
  targets    (with --draws; round 38's rule, written 2026-12-06 before its candidates were built) the issue's
             targets on the validation photos: with realistic LR, over the photos other than the facade (which
             alone carries the mean: TYPICAL_LEFT_OUT), the mean of each photo's margin over its draws at least TARGET dB
             on PSNR-Y and better than bicubic on SSIM-Y and GMSD, and the PSNR-Y margin ahead of the
             reference's on more than half of all the photos; with clean LR, on the same typical photos of the
             tile check, the mean margin at least TARGET dB on PSNR-Y, and SSIM-Y and GMSD better than bicubic's
The held-out photos are never read here.
"""

import argparse
import json
import statistics
from pathlib import Path

CONDS = ("realistic", "clean")
TARGET = 0.5  # dB of PSNR-Y over bicubic: the issue's
TYPICAL_LEFT_OUT = ("plasma-facade-01",)  # +3.5 to +4.0 dB for every model: one photo that makes the mean


def load(path, setting):
    results = json.loads(Path(path).read_text())["results"]
    if setting not in results[CONDS[0]]:
        raise SystemExit(f"{path}: no setting {setting!r} (has {', '.join(results[CONDS[0]])})")
    return {c: results[c][setting] for c in CONDS}


def compare(cand, ref):
    """{cond: {"photos": {name: (dPSNR, dGMSD)}, "mean": (dPSNR, dGMSD), "ahead": n}} and the two verdicts."""
    out = {}
    for c in CONDS:
        names = [n for n in ref[c] if n != "mean"]
        missing = [n for n in names if n not in cand[c]]
        if missing:
            raise SystemExit(f"the candidate's tile check lacks {missing}: not the same validation photos")
        photos = {n: (cand[c][n][0] - ref[c][n][0], cand[c][n][2] - ref[c][n][2]) for n in names}
        out[c] = dict(photos=photos, ahead=sum(d > 0 for d, _ in photos.values()),
                      mean=(cand[c]["mean"][0] - ref[c]["mean"][0], cand[c]["mean"][2] - ref[c]["mean"][2]))
    mean_rule = (sum(out[c]["mean"][0] for c in CONDS) > 0 and all(out[c]["mean"][1] <= 0 for c in CONDS))
    most_rule = mean_rule and all(2 * out[c]["ahead"] > len(out[c]["photos"]) for c in CONDS)
    return out, mean_rule, most_rule


def same_draws(cand, ref):
    """The photos of two draw_spread.py results, which must be of the same photos and draws."""
    if cand["draws"] != ref["draws"] or set(cand["margins"]) != set(ref["margins"]):
        raise SystemExit("the draw_spread results are not of the same photos and draws")
    return list(ref["margins"])


def compare_draws(cand, ref, cand_clean, ref_clean):
    """Rule `draws`: (verdict, photos ahead, photos, mean GMSD-margin difference) from two draw_spread.py
    results ({"draws", "margins": {photo: [[dPSNR, dSSIM, dGMSD], ...]}}) and the tile checks' clean LR."""
    mean = statistics.fmean
    names = same_draws(cand, ref)
    ahead = sum(mean([m[0] for m in cand["margins"][n]]) > mean([m[0] for m in ref["margins"][n]]) for n in names)
    gmsd = [mean([m[2] for n in names for m in r["margins"][n]]) for r in (cand, ref)]
    d_gmsd = gmsd[0] - gmsd[1]
    clean_ok = cand_clean["mean"][0] >= ref_clean["mean"][0] and cand_clean["mean"][2] <= ref_clean["mean"][2]
    return 2 * ahead > len(names) and d_gmsd >= 0 and clean_ok, ahead, len(names), d_gmsd


def photo_means(draws, names):
    """{photo: (dPSNR-Y, dSSIM-Y, dGMSD)}: each photo's margins over bicubic, averaged over its draws."""
    return {n: tuple(statistics.fmean(m[i] for m in draws["margins"][n]) for i in range(3)) for n in names}


def targets(cand, ref, cand_clean, bicubic_clean):
    """Rule `targets`: (verdict, lines) from two draw_spread.py results (candidate, reference) and the candidate's
    tile check with clean LR beside its bicubic row."""
    names = same_draws(cand, ref)
    mc, mr = photo_means(cand, names), photo_means(ref, names)
    typical = [n for n in names if n not in TYPICAL_LEFT_OUT]
    five = [statistics.fmean(mc[n][i] for n in typical) for i in range(3)]
    ahead = sum(mc[n][0] > mr[n][0] for n in names)
    clean = [statistics.fmean(cand_clean[n][i] - bicubic_clean[n][i] for n in typical) for i in range(3)]
    checks = [(f"realistic, {len(typical)} typical photos: PSNR-Y margin {five[0]:+.3f} >= {TARGET}", five[0] >= TARGET),
              (f"realistic, {len(typical)} typical photos: SSIM-Y margin {five[1]:+.4f} > 0", five[1] > 0),
              (f"realistic, {len(typical)} typical photos: GMSD margin {five[2]:+.4f} > 0", five[2] > 0),
              (f"realistic: PSNR-Y margin ahead of the reference on {ahead} of {len(names)} photos",
               2 * ahead > len(names)),
              (f"clean, the same photos: PSNR-Y margin {clean[0]:+.3f} >= {TARGET}", clean[0] >= TARGET),
              (f"clean, the same photos: SSIM-Y margin {clean[1]:+.4f} > 0", clean[1] > 0),
              (f"clean, the same photos: GMSD {clean[2]:+.4f} against bicubic's, < 0", clean[2] < 0)]
    return all(ok for _, ok in checks), [f"  {'ok  ' if ok else 'FAIL'} {what}" for what, ok in checks]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("candidate", type=Path, help="the candidate's choose_tile JSON")
    ap.add_argument("candidate_setting", help="its tile / overlap, e.g. 256/64")
    ap.add_argument("reference", type=Path, help="the shipped model's choose_tile JSON")
    ap.add_argument("reference_setting", help="its tile / overlap (the one it ships with)")
    ap.add_argument("--draws", nargs=2, type=Path, metavar=("CANDIDATE", "REFERENCE"),
                    help="draw_spread.py's JSONs of the two models: adds rule 'draws'")
    args = ap.parse_args()
    cand, ref = load(args.candidate, args.candidate_setting), load(args.reference, args.reference_setting)
    out, mean_rule, most_rule = compare(cand, ref)
    for c in CONDS:
        names = list(out[c]["photos"])
        print(f"{c} LR, candidate minus reference: PSNR-Y dB / GMSD")
        print("| " + " | ".join(names) + " | mean |")
        cells = [f"{d:+.3f} / {g:+.4f}" for d, g in (list(out[c]["photos"].values()) + [out[c]["mean"]])]
        print("| " + " | ".join(cells) + " |")
        print(f"ahead on PSNR-Y: {out[c]['ahead']} of {len(names)} photos")
    print(f"rule 'mean': {'passes' if mean_rule else 'fails'}; rule 'most': {'passes' if most_rule else 'fails'}")
    if args.draws:
        draws = [json.loads(f.read_text()) for f in args.draws]
        ok, ahead, n, d_gmsd = compare_draws(*draws, cand["clean"], ref["clean"])
        print(f"realistic LR over the draws: ahead on PSNR-Y on {ahead} of {n} photos, GMSD margin {d_gmsd:+.4f}; "
              f"rule 'draws': {'passes' if ok else 'fails'}")
        ok, lines = targets(*draws, cand["clean"], load(args.candidate, "bicubic")["clean"])
        print("\n".join(lines))
        print(f"rule 'targets': {'passes' if ok else 'fails'}")


if __name__ == "__main__":
    main()
