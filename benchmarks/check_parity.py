"""Check that a RecBole model scores the same through recbole_gen as through plain RecBole.

    python benchmarks/check_parity.py --model SASRec --dataset ml-100k --epochs 1

Both runs use one config and seed and test the final model (saved=False: plain RecBole 1.2.1 cannot
reload its own checkpoint on torch >= 2.6, RUCAIBox/RecBole#2212). Exits non-zero on any difference.
"""

import argparse
import sys
import time

from recbole.quick_start import run_recbole

from recbole_gen.quick_start import run_recbole_gen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config also reads the command line
    config = {"epochs": args.epochs, "metrics": ["Recall", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
              "train_neg_sample_args": None, "show_progress": False}
    results = {}
    for name, run in (("RecBole", run_recbole), ("recbole_gen", run_recbole_gen)):
        start = time.perf_counter()
        results[name] = run(model=args.model, dataset=args.dataset, config_dict=dict(config), saved=False)["test_result"]
        print(f"{name:12s} {dict(results[name])}  ({time.perf_counter() - start:.0f} s)")
    same = dict(results["RecBole"]) == dict(results["recbole_gen"])
    print("identical" if same else "DIFFERENT")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
