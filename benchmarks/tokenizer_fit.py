"""Fit GenRec's image tokenizer once on a dataset's catalog with given settings; print its fit log's figures.

    python benchmarks/tokenizer_fit.py --dataset ml-100k --set tokenizer_fit_epochs=27 tokenizer_fit_restart_codes=true
    python benchmarks/tokenizer_fit.py --dataset ml-100k --image_dir ../shared/data/ml-100k-posters/images
    python benchmarks/tokenizer_fit.py --dataset ml-100k --config_files properties/presets/quick_start.yaml --set seed=2021
    python benchmarks/tokenizer_fit.py --dataset ml-100k --anomaly_detection   # timed as every run fitted it before 2026-11-27

Fits into a temporary folder (never the tokenizer cache) and prints one JSON line: the settings, the fit's
wall time, the reconstruction MSE (uint8 scale), PSNR / SSIM / MS-SSIM and codebook usage
(docs/tokenizer_fit.md).
"""

import argparse
import json
import os
import tempfile
import time

import torch
import yaml
from recbole.data import create_dataset
from recbole.utils import init_seed

from recbole_gen.config import Config
from recbole_gen.data.item_content import item_content
from recbole_gen.model.image_tokenizer import FIT_LOG, fit_tokenizer


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--image_dir", default=None)
    parser.add_argument("--config_files", nargs="*", default=None, help="YAML files, e.g. a preset")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="tokenizer settings (YAML values)")
    parser.add_argument("--anomaly_detection", action="store_true",
                        help="fit with autograd's anomaly detection on, as every run had it while RecBole's sine.py "
                             "left it on (recbole_gen.compat turns it back off): the time such a fit took")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    config = Config(model="GenRec", dataset=args.dataset, config_file_list=args.config_files,
                    config_dict={"image_dir": args.image_dir, "show_progress": False, **overrides})
    content = item_content(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])  # the model's initial weights, as a RecBole run seeds them
    with tempfile.TemporaryDirectory() as folder, torch.autograd.set_detect_anomaly(args.anomaly_detection):
        start = time.time()
        fit_tokenizer(config, content, folder)
        seconds = time.time() - start
        with open(os.path.join(folder, FIT_LOG)) as f:
            log = json.load(f)
    print(json.dumps({"settings": overrides, "config_files": args.config_files, "image_dir": args.image_dir,
                      "anomaly_detection": args.anomaly_detection, "seconds": round(seconds, 1),
                      "mse": log["reconstruction_mse_uint8"], "codebook_usage": log["codebook_usage"], **log["reconstruction"]}))


if __name__ == "__main__":
    main()
