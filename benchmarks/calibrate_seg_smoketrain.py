"""Calibrate the segmentation smoke-train verdict: right masks against masks mirrored
or shifted (by half the width) against their pictures, over several seeds.

Writes the three data sets (tests/seg_records.write_scenes: 48 train and 16 val
photo-like 128x96 JPEGs with VOC-like void borders), runs `cocoprep.train.smoketrain`
on each (InceptionV3, random init, 128 px, batch 8, STEPS per phase), each run in its
own process, and prints one row per run: the verdict, the z of the whole-run loss
fall, the excess term (last-window mean, its noise SE, z below 0), the pixel-blind
loss and the share of it removed (last window), and validation mIoU beside the
predict-the-majority-class baseline. No timing figures.

    python benchmarks/calibrate_seg_smoketrain.py --seeds 0 1 2 3 --steps 60 --work /tmp/cal
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONDITIONS = ("right", "mirror", "shift")


def write_data(work: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from seg_records import write_scenes

    for cond in CONDITIONS:
        out = work / cond
        if not (out / "manifest.json").is_file():
            write_scenes(out, corrupt="" if cond == "right" else cond)


def run_one(work: Path, cond: str, seed: int, steps: int, lr: float) -> dict:
    run_dir = work / f"run_{cond}_{seed}"
    code = (
        "from cocoprep.train import smoketrain\n"
        f"smoketrain({str(work / cond)!r}, {str(run_dir)!r}, weights='none', image_size=128,"
        f" steps={steps}, batch_size=8, seed={seed}, lr={lr})\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, "-c", code], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((run_dir / "metrics.json").read_text())


def row(cond: str, seed: int, m: dict) -> str:
    checks = {c["term"]: c for c in m["judgement"]["checks"]}
    loss, excess, val = checks["loss"], checks["excess"], m["val"] or {}
    k = excess["window_steps"]
    se = excess["noise_sigma"] / max(1, k) ** 0.5
    blind = sum(m["term_losses"]["blind"][-k:]) / k
    return (f"{cond:6} {seed:4} {m['result']:4} {loss['z']:8.1f} {excess['last_mean']:+9.3f} "
            f"{se:7.3f} {excess['z']:8.1f} {blind:6.3f} {-excess['last_mean'] / blind:6.2f} "
            f"{val.get('miou', float('nan')):6.3f} {val.get('majority_miou', float('nan')):6.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--work", type=Path, default=Path("seg_calibration"))
    args = parser.parse_args()
    write_data(args.work)
    print("cond   seed verdict  loss z  excess   exc SE  exc z  blind  share   mIoU  major")
    for seed in args.seeds:
        for cond in CONDITIONS:
            print(row(cond, seed, run_one(args.work, cond, seed, args.steps, args.lr)),
                  flush=True)


if __name__ == "__main__":
    main()
