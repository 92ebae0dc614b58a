"""Train and evaluate a model with recbole_gen: python run_recbole_gen.py --model=SASRec --dataset=ml-100k

Any other --key=value is a RecBole/recbole_gen setting (e.g. --epochs=5 --image_dir=path/to/images).
"""

import argparse

from recbole_gen.quick_start import run_recbole_gen

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", "-m", type=str, default="SASRec", help="model name (RecBole or recbole_gen)")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated config files")
    args, _ = parser.parse_known_args()
    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    run_recbole_gen(model=args.model, dataset=args.dataset, config_file_list=config_file_list)
