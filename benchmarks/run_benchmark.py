"""Benchmark RecBole sequential models and reference rules under one config and one item encoder.

Each model is trained once (same data split, same epoch budget) and its best-validation checkpoint is
then tested in every content setting given by --content (e.g. rendered cards and real posters), each
scored with its own frozen item encoder. Every model runs in a subprocess of its own, so the peak
memory reported is that model's. Writes one markdown table per content setting plus the validation
curves.

    python benchmarks/run_benchmark.py --dataset ml-100k --models SASRec GRU4Rec BERT4Rec \
        --references --epochs 5 --content cards posters=../shared/data/ml-100k-posters/images \
        --out docs/benchmark_ml-100k.md

Models that generate (GenRec) also get a tokenizer-ceiling row (every user shown the reconstruction of
their own next item) and a summary of the generator targets: epoch time against SASRec's, time to
generate one image per test user, peak memory, FD against the ceiling's, PersonalLift's interval.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch

REFERENCES = ["RandomItem", "PopItem", "LastItem"]
CONTENT_METRICS = ["targetsim", "historysim", "personallift", "genrecall@10", "genndcg@10", "novelty", "diversity", "fd"]
RANKING_METRICS = ["recall@10", "ndcg@10"]


def parse_content(specs):
    """'cards' or 'NAME=IMAGE_DIR' -> {name: image_dir or None}."""
    content = {}
    for spec in specs:
        name, _, image_dir = spec.partition("=")
        if image_dir and not os.path.isdir(image_dir):
            raise SystemExit(f"--content {spec}: image folder not found: {image_dir}")
        content[name] = image_dir or None
    return content


def run_model(model, args):
    """Train ``model`` and test it in every content setting; returns a JSON-able result."""
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_logger, init_seed

    from recbole_gen.config import Config
    from recbole_gen.utils import get_model, get_trainer

    content = parse_content(args.content)
    first = next(iter(content))
    base = {"epochs": args.epochs, "seed": args.seed, "show_progress": False, "stopping_step": args.epochs}
    for pair in args.set:
        key, _, value = pair.partition("=")
        base[key] = json.loads(value)

    def config_for(name):
        return Config(model=model, dataset=args.dataset, config_file_list=args.config_files,
                      config_dict={**base, "image_dir": content[name]})

    config = config_for(first)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    start = time.perf_counter()  # GenRec fits (or loads) its image tokenizer here
    recommender = get_model(model)(config, train_data._dataset).to(config["device"])
    setup_seconds = time.perf_counter() - start
    trainer = get_trainer(config["MODEL_TYPE"], model)(config, recommender)

    epoch_seconds, curve = [], []
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def timed_train_epoch(*a, **kw):
        start = time.perf_counter()
        loss = train_epoch(*a, **kw)
        epoch_seconds.append(time.perf_counter() - start)
        return loss

    def recorded_valid_epoch(*a, **kw):
        score, result = valid_epoch(*a, **kw)
        curve.append({k: float(v) for k, v in result.items()})
        return score, result

    trainer._train_epoch, trainer._valid_epoch = timed_train_epoch, recorded_valid_epoch
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)  # reference rules: one validation
    checkpoint = trainer.saved_model_file
    results = {}
    for name in content:
        if name != first:  # a fresh trainer scores in this setting's encoder space
            trainer = get_trainer(config["MODEL_TYPE"], model)(config_for(name), recommender)
        trainer.prepare_catalog(test_data._dataset)  # the one-off encoder fit is not evaluation time
        start = time.perf_counter()
        test = trainer.evaluate(test_data, load_best_model=True, model_file=checkpoint)
        results[name] = {"test": {k: float(v) for k, v in test.items()}, "eval_seconds": time.perf_counter() - start}
        if getattr(trainer, "ceiling_result", None):
            results[name]["ceiling"] = {k: float(v) for k, v in trainer.ceiling_result.items()}
    generation = time_generation(recommender, test_data, config["seed"]) if hasattr(recommender, "generate") else None
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        peak_mib = max(peak_mib, torch.cuda.max_memory_allocated() / 2**20)
    return {"model": model, "trained": bool(epoch_seconds), "epoch_seconds": epoch_seconds, "valid_curve": curve,
            "results": results, "peak_mib": peak_mib, "valid_metric": config["valid_metric"].lower(),
            "setup_seconds": setup_seconds, "generation": generation}


def time_generation(model, test_data, seed):
    """Seconds to generate one image for every test user, in evaluation-sized batches."""
    model.eval()
    users = 0
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for interaction, _, _, _ in test_data:
        model.generate(interaction.to(model.device), num_samples=1, seed=seed)
        users += len(interaction)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return {"users": users, "seconds": time.perf_counter() - start}


def machine_description():
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU only"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device}; "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def _fmt(value, digits=4):
    return "-" if value is None else f"{value + 0.0:.{digits}f}"  # + 0.0: no "-0.0000"


def convergence(result):
    """Best validation epoch and the last epoch's change of the validation metric."""
    values = [epoch[result["valid_metric"]] for epoch in result["valid_curve"]]
    if not result["trained"] or not values:
        return "no training"
    best = max(range(len(values)), key=values.__getitem__) + 1
    last_gain = values[-1] - values[-2] if len(values) > 1 else float("nan")
    state = "still improving" if best == len(values) else f"peaked at epoch {best}"
    return f"{state}; last-epoch change {last_gain:+.4f}"


def mean_epoch_seconds(result):
    """A model's mean training-epoch time, or None for a model that was not trained."""
    seconds = result["epoch_seconds"]
    return sum(seconds) / len(seconds) if seconds else None


def generator_summary(results, name):
    """The generator targets, for every model that generates: speed, memory, and quality against the ceiling."""
    lines = []
    by_model = {r["model"]: r for r in results}
    sasrec = by_model.get("SASRec")
    for result in results:
        if not result.get("generation"):
            continue
        test = result["results"][name]["test"]
        ceiling = result["results"][name].get("ceiling", {})
        per_epoch = mean_epoch_seconds(result)
        lines.append(f"{result['model']} ({name}):")
        sasrec_epoch = mean_epoch_seconds(sasrec) if sasrec else None
        if sasrec_epoch and per_epoch:
            lines.append(f"- training epoch {per_epoch:.1f} s = {per_epoch / sasrec_epoch:.2f}x SASRec's {sasrec_epoch:.1f} s (target <= 2x)")
        generation = result["generation"]
        lines.append(f"- one image for each of {generation['users']} test users: {generation['seconds']:.1f} s (target <= 60 s)")
        lines.append(f"- setup (model construction, incl. image tokenizer fit or cache load): {result['setup_seconds']:.1f} s")
        lines.append(f"- peak memory {result['peak_mib'] / 1024:.2f} GiB (target < 8 GiB)")
        if "fd" in test and ceiling.get("fd"):
            lines.append(f"- FD {test['fd']:.4f} = {test['fd'] / ceiling['fd']:.2f}x the tokenizer's reconstructions' FD {ceiling['fd']:.4f} (target <= 1.5x)")
        if "personallift_ci95_low" in test:
            lines.append(f"- PersonalLift {test['personallift']:.4f}, 95% bootstrap interval over users "
                         f"[{test['personallift_ci95_low']:.4f}, {test['personallift_ci95_high']:.4f}] (target: excludes 0)")
        others = {r["model"]: r["results"][name]["test"].get("targetsim") for r in results if r is not result}
        if "targetsim" in test and others:
            best = max(others, key=lambda m: others[m])
            lines.append(f"- TargetSim {test['targetsim']:.4f}; best other row {best} {others[best]:.4f} (target: above every other row)")
        lines.append("")
    return lines


def valid_metrics(results):
    """'ndcg@10' when every model selects its checkpoint by it, else 'ndcg@10; GenRec: fd'."""
    common = results[0]["valid_metric"] if results else "-"
    others = [f"{r['model']}: {r['valid_metric']}" for r in results if r["valid_metric"] != common]
    return "; ".join([common] + others)


def markdown(results, args, command):
    content = parse_content(args.content)
    lines = [f"# Benchmark: {args.dataset}", "", f"Command: `{command}`", "",
             f"Machine: {machine_description()}. Date: {time.strftime('%Y-%m-%d')}.", "",
             f"Budget: {args.epochs} training epochs per model (early stopping off), seed {args.seed}, "
             f"test = each model's best-validation checkpoint (valid metric: {valid_metrics(results)}). Item encoder: eval_encoder="
             f"{json.dumps(dict(pair.split('=', 1) for pair in args.set)).strip('{}') or 'fit (default)'}; "
             "each content setting has its own encoder, fitted on that setting's catalog images.", ""]
    columns = RANKING_METRICS + CONTENT_METRICS + ["personallift_ci95_low", "personallift_ci95_high"]
    for name, image_dir in content.items():
        lines += [f"## Content: {name}" + (f" (`image_dir={image_dir}`)" if image_dir else " (rendered metadata cards)"), "",
                  "| model | " + " | ".join(columns) + " | train s/epoch | epochs | eval s | peak MiB |",
                  "|---" * (len(columns) + 5) + "|"]
        for result in results:
            test = result["results"][name]["test"]
            lines.append(f"| {result['model']} | " + " | ".join(_fmt(test.get(c)) for c in columns)
                         + f" | {_fmt(mean_epoch_seconds(result), 1)} | {len(result['epoch_seconds'])} | {_fmt(result['results'][name]['eval_seconds'], 1)}"
                         + f" | {result['peak_mib']:.0f} |")
            ceiling = result["results"][name].get("ceiling")
            if ceiling:
                lines.append(f"| {result['model']}: tokenizer ceiling | " + " | ".join(_fmt(ceiling.get(c)) for c in columns)
                             + " | - | - | - | - |")
        lines.append("")
        lines += generator_summary(results, name)
    trained = [r for r in results if r["trained"]]
    if trained:
        metric = trained[0]["valid_metric"]
        epochs = max(len(r["valid_curve"]) for r in trained)
        lines += [f"## Validation curves ({metric}, content: {next(iter(content))})", "",
                  "| epoch | " + " | ".join(r["model"] for r in trained) + " |", "|---" * (len(trained) + 1) + "|"]
        for epoch in range(epochs):
            cells = [_fmt(r["valid_curve"][epoch][metric]) if epoch < len(r["valid_curve"]) else "-" for r in trained]
            lines.append(f"| {epoch + 1} | " + " | ".join(cells) + " |")
        lines += ["", "Distance from convergence: " + "; ".join(f"{r['model']}: {convergence(r)}" for r in trained) + ".", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", nargs="+", default=["SASRec", "GRU4Rec", "BERT4Rec"])
    parser.add_argument("--references", action="store_true", help=f"add the reference rows {REFERENCES}")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs per model (the shared budget)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--content", nargs="+", default=["cards"],
                        help="content settings: 'cards' (rendered) or NAME=IMAGE_DIR; models are trained once")
    parser.add_argument("--config_files", nargs="*", default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="extra config, e.g. eval_encoder='\"fit\"'")
    parser.add_argument("--out", default=None, help="markdown file to write (default: print)")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a model's saved/benchmark-DATASET-MODEL.json from an earlier run of the same command")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker_out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    parse_content(args.content)

    if args.worker:
        with open(args.worker_out, "w") as f:
            json.dump(run_model(args.worker, args), f)
        return

    models = (REFERENCES if args.references else []) + args.models
    worker_args = [a for a in sys.argv[1:] if a != "--reuse"]
    command = "python " + " ".join(a for a in sys.argv if a != "--reuse")
    results = []
    for model in models:
        out = os.path.join("saved", f"benchmark-{args.dataset}-{model}.json")
        os.makedirs("saved", exist_ok=True)
        if args.reuse and os.path.isfile(out):
            print(f"[benchmark] {model}: reusing {out}", flush=True)
            with open(out) as f:
                results.append(json.load(f))
            continue
        print(f"[benchmark] {model} ...", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, *worker_args, "--worker", model, "--worker_out", out], check=True)
        with open(out) as f:
            results.append(json.load(f))
        print(f"[benchmark] {model} done in {time.perf_counter() - start:.0f} s", flush=True)
    text = markdown(results, args, command)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        print(f"[benchmark] wrote {args.out}")
    else:
        print(text)


if __name__ == "__main__":
    main()
