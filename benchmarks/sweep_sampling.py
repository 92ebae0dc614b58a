"""Train GenRec once, then test it under several sampling settings (temperature, top-k, guidance).

    python benchmarks/sweep_sampling.py --dataset ml-100k --epochs 10 --set image_dir='"PATH"'

Prints one line of test metrics per setting, to choose GenRec.yaml's sampling defaults.
"""

import argparse
import itertools
import json

from recbole.data import create_dataset, data_preparation
from recbole.utils import init_logger, init_seed

from recbole_gen.config import Config
from recbole_gen.utils import get_model, get_trainer

SHOWN = ["ndcg@10", "targetsim", "personallift", "personallift_ci95_low", "fd", "diversity"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.7, 0.4])
    parser.add_argument("--top_ks", type=int, nargs="+", default=[100, 10])
    parser.add_argument("--guidance_scales", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON")
    args = parser.parse_args()
    config_dict = {"epochs": args.epochs, "show_progress": False, "gallery_users": 0}
    config_dict.update({key: json.loads(value) for key, value in (pair.split("=", 1) for pair in args.set)})
    config = Config(model="GenRec", dataset=args.dataset, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = get_model("GenRec")(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], "GenRec")(config, model)
    trainer.fit(train_data, valid_data, show_progress=False)
    trainer.evaluate(test_data, load_best_model=True)  # loads the best checkpoint, reports the ceiling
    print("ceiling", {k: trainer.ceiling_result[k] for k in SHOWN})
    for temperature, top_k, scale in itertools.product(args.temperatures, args.top_ks, args.guidance_scales):
        model.generation_config.update(temperature=temperature, top_k=top_k, guidance_scale=scale)
        result = trainer.evaluate(test_data, load_best_model=False)
        print(f"T={temperature} top_k={top_k} guidance={scale}", {k: result[k] for k in SHOWN}, flush=True)


if __name__ == "__main__":
    main()
