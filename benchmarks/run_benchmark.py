"""Benchmark RecBole models, reference rules and generators under one config, in one or more evaluation spaces.

Each model is trained once (same data split, same epoch budget, checkpoint chosen on the validation
split) and its best-validation checkpoint is then tested, on the test split, in every content setting
(--content: rendered cards, real posters) and every evaluation space (--spaces: the item encoder fitted
on that catalog against item texts, "identity", or against fields many items share, "semantic").
Generators (GenRec) are tested under --sampling_seeds sampling seeds and reported as mean (sd).
Every model runs in a subprocess of its own, so the peak memory reported is that model's.

    python benchmarks/run_benchmark.py --dataset ml-100k --models SASRec GRU4Rec BERT4Rec GenRec --references \
        --epochs 8 --content posters=../shared/data/ml-100k-posters/images --spaces identity semantic \
        --sampling_seeds 5 --out docs/benchmark_ml-100k.md

Reference rows need no training: RandomItem (chance), PopItem (popularity), LastItem (repetition) and
TargetItem, which cheats by showing each user their own next item: what a metric gives a perfect row.
Models that generate also get a tokenizer-ceiling row (every user shown the reconstruction of their
own next item). --reuse takes a model's result from an earlier run with the same settings;
--reevaluate also takes one whose settings differ only in how a trained model is scored (new metrics,
near-copy thresholds, or no per-user TargetSim kept) and re-scores its checkpoint, keeping its training
record. Each generator's summary compares its TargetSim with the best other row's and SASRec's user by
user (benchmarks/paired.py): the mean difference and its 95% bootstrap interval over users.

GenRec's later stages are rows of their own, built on the GenRec row's checkpoint of the same run:
``GenRec+bestof`` shows the best of ``rl_group_size`` samples by the reranker (no training),
``GenRec+rl`` trains the RL stage from it (--rl_set KEY=JSON configures that row alone, e.g.
``--rl_set 'rl_algorithm="dpo"' rl_epochs=1``). ``GenRec+diffusion`` trains GenRec with the diffusion
generator (``generator: diffusion``) from scratch, under the same budget as the GenRec row. Every generator row reports its copies (CopyShare, and
TargetSim over novel generations); --near_copy_thresholds sets each space's threshold (chosen on
validation with benchmarks/copy_threshold.py).
"""

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time

import torch

REFERENCES = ["RandomItem", "PopItem", "LastItem", "TargetItem"]
CHEATS = {"TargetItem"}
COLUMNS = ["recall@10", "ndcg@10", "targetsim", "personallift", "historysim", "genrecall@10", "novelty", "diversity",
           "fd", "catalogfd", "copyshare", "codecopyshare", "nearcopyshare", "noveltargetsim",
           # pixel fidelity at the tokenizer's size (recbole_gen.evaluator.image_quality): generators and the ceiling
           "blurratio", "tokenizer.psnr", "tokenizer.ssim", "tokenizer.ms_ssim"]
# GenRec's variants (see the module docstring); those in BUILT_ON_GENREC start from the GenRec row's checkpoint.
VARIANTS = ("bestof", "rl", "diffusion")
BUILT_ON_GENREC = {"bestof", "rl"}
# Settings that change how a trained model is scored, not how it trains: --reevaluate re-scores a result
# that differs from the current settings only in these.
EVALUATION_KEYS = {"metrics", "near_copy_threshold", "eval_best_of"}
# Keys of parts added after a result ran, by prefix: a result that lacks them matches while the part is
# off in the current settings (its run behaved as the part being off).
LATER_PARTS = {
    "rl_": lambda config: not config.get("rl_init_checkpoint"),
    "rl_expectation_contrast": lambda config: not config.get("rl_expectation_contrast"),
    "rl_expectation_nearest_item": lambda config: not config.get("rl_expectation_nearest_item"),
    "rl_expectation_top_items": lambda config: config.get("rl_expectation_top_items", 10) == 10,
    "rl_reference_refresh": lambda config: not config.get("rl_reference_refresh"),
    "rl_dpo_sft_weight": lambda config: not config.get("rl_dpo_sft_weight"),
    # one reward fit, as before ensembles (the prefix covers the aggregate: one member's is its own reward)
    "rl_reward_ensemble": lambda config: config.get("rl_reward_ensemble", 1) == 1,
    "rl_entropy_weight": lambda config: not config.get("rl_entropy_weight"),
    "rl_advantage_scale": lambda config: config.get("rl_advantage_scale", "group") == "group",
    "generator": lambda config: config.get("generator") == "autoregressive",
    "diffusion_": lambda config: config.get("generator") != "diffusion",
    "n_instruction_tokens": lambda config: not config.get("n_instruction_tokens"),
    "instruction_": lambda config: not config.get("n_instruction_tokens"),
    # requests only (recbole_gen.generate): an evaluation neither gives feedback nor edits nor asks the instructor
    "feedback_": lambda config: True,
    "instructor_": lambda config: True,
    "editor_": lambda config: True,
    "fidelity_": lambda config: not config.get("eval_fidelity"),
    "eval_fidelity": lambda config: not config.get("eval_fidelity"),
    # the metrics' block size bounds memory, never values (tests/evaluator/test_metrics_blocks.py)
    "eval_block_size": lambda config: True,
    # a --set gen_* key (e.g. gen_max_positions=128, the value before it was derived) shapes GenRec alone
    "gen_": lambda config: config.get("model") != "GenRec",
}
SPACES = {"identity": {}, "semantic": None}  # semantic: {"encoder_fit_text_fields": --semantic_fields}
SEMANTIC_FIELDS = ["class", "release_year"]  # ml-100k's genres and release years (decades)
# Settings a reused result must share with the current command.
SETTING_KEYS = ("dataset", "epochs", "seed", "content", "spaces", "semantic_fields", "sampling_seeds", "set", "rl_set",
                "config_files", "near_copy_thresholds")
EVALUATION_SETTINGS = {"near_copy_thresholds"}
# Settings that only add config: a reused result is checked on the effective config they make, not on their text.
CONFIG_SETTINGS = {"set", "rl_set"}


def parse_content(specs):
    """'cards' or 'NAME=IMAGE_DIR' -> {name: image_dir or None}."""
    content = {}
    for spec in specs:
        name, _, image_dir = spec.partition("=")
        if image_dir and not os.path.isdir(image_dir):
            raise SystemExit(f"--content {spec}: image folder not found: {image_dir}")
        content[name] = image_dir or None
    return content


def parse_spaces(specs, semantic_fields):
    """'identity', 'semantic' or 'NAME=JSON' (config overrides of the item encoder) -> {name: overrides}."""
    spaces = {}
    for spec in specs:
        name, _, overrides = spec.partition("=")
        if overrides:
            spaces[name] = json.loads(overrides)
        elif name == "semantic":
            spaces[name] = {"encoder_fit_text_fields": semantic_fields}
        elif name in SPACES:
            spaces[name] = SPACES[name]
        else:
            raise SystemExit(f"--spaces {spec}: not 'identity', 'semantic' or NAME=JSON")
    return spaces


def split_model(model):
    """'GenRec+rl' -> ('GenRec', 'rl'); 'SASRec' -> ('SASRec', None)."""
    base, _, variant = model.partition("+")
    if variant and (base != "GenRec" or variant not in VARIANTS):
        raise SystemExit(f"--models {model}: variants are GenRec+{' and GenRec+'.join(VARIANTS)}")
    return base, variant or None


def parse_thresholds(specs):
    """'SPACE=VALUE' -> {space: {"near_copy_threshold": value}}."""
    thresholds = {}
    for spec in specs:
        space, _, value = spec.partition("=")
        thresholds[space] = {"near_copy_threshold": float(value)}
    return thresholds


def settings_of(args, model):
    keys = [key for key in SETTING_KEYS if key != "rl_set" or split_model(model)[1] == "rl"]  # --rl_set shapes the RL row only
    return {"model": model, **{key: getattr(args, key) for key in keys}}


def model_config(args, model, content_name=None, space_name=None):
    """The Config ``model`` runs with in a content setting and space (default: the first of each)."""
    from recbole_gen.config import Config

    content = parse_content(args.content)
    spaces = parse_spaces(args.spaces, args.semantic_fields)
    content_name, space_name = content_name or next(iter(content)), space_name or next(iter(spaces))
    base = {"epochs": args.epochs, "seed": args.seed, "show_progress": False, "stopping_step": args.epochs}
    name, variant = split_model(model)
    for pair in args.set + ((args.rl_set or []) if variant == "rl" else []):
        key, _, value = pair.partition("=")
        base[key] = json.loads(value)
    if variant == "rl":
        base["rl_init_checkpoint"] = args.base_checkpoint
    if variant == "diffusion":
        base["generator"] = "diffusion"
    config = Config(model=name, dataset=args.dataset, config_file_list=args.config_files, read_command_line=False,
                    config_dict={**base, "image_dir": content[content_name], **spaces[space_name],
                                 **parse_thresholds(args.near_copy_thresholds).get(space_name, {})})
    if variant == "bestof":
        config["eval_best_of"] = config["rl_group_size"]
    return config


def effective_config(config):
    """Every plain value of a Config but those that describe the machine: what a reused result must share."""
    from recbole_gen.compat import plain_final_config
    from recbole_gen.config import MACHINE_KEYS

    return {key: value for key, value in plain_final_config(config).items() if key not in MACHINE_KEYS}


def git_commit():
    """The commit of the code that runs, '+uncommitted' if its code or defaults were changed since."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = ["recbole_gen", "properties", "benchmarks", "setup.py"]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=here).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *code], capture_output=True, text=True,
                               cwd=os.path.dirname(here)).stdout.strip()
        return commit + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_model(model, args):
    """Train ``model`` and test it in every content setting and space; returns a JSON-able result."""
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_logger, init_seed

    from paired import recording, scored, seed_mean  # this folder's paired comparisons
    from recbole_gen.compat import load_checkpoint
    from recbole_gen.quick_start import build_model
    from recbole_gen.trainer import get_trainer

    source = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": git_commit()}  # of the code this run starts with
    content = parse_content(args.content)
    spaces = parse_spaces(args.spaces, args.semantic_fields)
    config = model_config(args, model)
    settings = effective_config(config)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    base_name, variant = split_model(model)
    # A trained checkpoint to score as it is: --evaluate_checkpoint (re-scoring), or the GenRec row's for +bestof.
    trained = args.evaluate_checkpoint or (args.base_checkpoint if variant == "bestof" else None)
    start = time.perf_counter()  # GenRec fits (or loads) its image tokenizer here
    recommender = build_model(config, train_data._dataset, load_checkpoint(trained) if trained else None)
    setup_seconds = time.perf_counter() - start
    trainer = get_trainer(config["MODEL_TYPE"], base_name, config)(config, recommender)

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
    fit_seconds = None
    if trained:
        checkpoint = trained
    else:
        start = time.perf_counter()
        trainer.fit(train_data, valid_data, saved=True, show_progress=False)  # reference rules: one validation
        fit_seconds = time.perf_counter() - start
        checkpoint = trainer.saved_model_file
    generates = hasattr(recommender, "generate")
    seeds = [args.seed + i for i in range(args.sampling_seeds)] if generates else [args.seed]
    results = {}
    for name in content:
        results[name] = {}
        for space in spaces:
            space_config = model_config(args, model, name, space)
            space_config["gallery_users"] = 0
            tester = recording(get_trainer(config["MODEL_TYPE"], base_name)(space_config, recommender))
            tester.prepare_catalog(test_data._dataset)  # the one-off encoder fit is not evaluation time
            tests, seconds, per_user = [], [], []
            for seed in seeds:
                space_config["eval_seed"] = seed
                start = time.perf_counter()
                test, users = scored(tester, lambda: tester.evaluate(test_data, load_best_model=True, model_file=checkpoint))
                seconds.append(time.perf_counter() - start)
                tests.append({k: float(v) for k, v in test.items()})
                per_user.append(users)
            targets, sims = seed_mean(per_user, model)
            entry = {"test": tests, "eval_seconds": statistics.mean(seconds), "eval_seeds": seeds,
                     "per_user_targetsim": {"targets": targets.tolist(), "sims": sims.tolist()}}
            if getattr(tester, "ceiling_result", None):
                entry["ceiling"] = {k: float(v) for k, v in tester.ceiling_result.items()}
            results[name][space] = entry
    generation = time_generation(recommender, test_data, config["seed"]) if generates else None
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.cuda.is_available():
        peak_mib = max(peak_mib, torch.cuda.max_memory_allocated() / 2**20)
    return {"model": model, "settings": settings_of(args, model), "config": settings, "source": source, "checkpoint": checkpoint,
            "trained": bool(epoch_seconds), "epoch_seconds": epoch_seconds, "fit_seconds": fit_seconds, "valid_curve": curve, "results": results,
            "peak_mib": peak_mib, "valid_metric": config["valid_metric"].lower(), "valid_metric_bigger": config["valid_metric_bigger"],
            "eval_samples": config["eval_samples"] if generates else None, "setup_seconds": setup_seconds, "generation": generation}


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


def mean_sd(tests, key):
    """Mean and sample sd over sampling seeds of ``key`` (sd None for a single seed); None if absent."""
    values = [test[key] for test in tests if key in test]
    if not values:
        return None, None
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None


def cell(tests, key):
    mean, sd = mean_sd(tests, key)
    if mean is None:
        return "-"
    return _fmt(mean) + (f" ({sd:.4f})" if sd is not None else "")


def lift_cell(tests):
    mean, sd = mean_sd(tests, "personallift")
    if mean is None:
        return "-"
    low, _ = mean_sd(tests, "personallift_ci95_low")
    high, _ = mean_sd(tests, "personallift_ci95_high")
    return cell(tests, "personallift") + (f" [{_fmt(low)}, {_fmt(high)}]" if low is not None else "")


def convergence(result):
    """Best validation epoch and the last epoch's change of the validation metric, in the metric's direction."""
    values = [epoch[result["valid_metric"]] for epoch in result["valid_curve"]]
    if not result["trained"] or not values:
        return "no training"
    better = max if result.get("valid_metric_bigger", True) else min
    best = better(range(len(values)), key=values.__getitem__) + 1
    last_change = values[-1] - values[-2] if len(values) > 1 else float("nan")
    state = "still improving" if best == len(values) else f"best at epoch {best} of {len(values)}"
    return f"{result['valid_metric']} {state}; last-epoch change {last_change:+.4f}"


def mean_epoch_seconds(result):
    """A model's mean training-epoch time, or None for a model that was not trained."""
    seconds = result["epoch_seconds"]
    return sum(seconds) / len(seconds) if seconds else None


def generator_summary(results, name, space):
    """Speed, memory and quality against the tokenizer ceiling, for every model that generates."""
    lines = []
    by_model = {r["model"]: r for r in results}
    sasrec = by_model.get("SASRec")
    for result in results:
        if not result.get("generation"):
            continue
        entry = result["results"][name][space]
        tests, ceiling = entry["test"], entry.get("ceiling", {})
        per_epoch = mean_epoch_seconds(result)
        lines.append(f"{result['model']} ({name}, {space} space; test split, {len(tests)} sampling seeds, "
                     f"{result['eval_samples']} images per user each):")
        sasrec_epoch = mean_epoch_seconds(sasrec) if sasrec else None
        if sasrec_epoch and per_epoch:
            lines.append(f"- training epoch {per_epoch:.1f} s = {per_epoch / sasrec_epoch:.2f}x SASRec's {sasrec_epoch:.1f} s")
        generation = result["generation"]
        lines.append(f"- one image for each of {generation['users']} test users: {generation['seconds']:.1f} s")
        lines.append(f"- setup (model construction, incl. image tokenizer fit or cache load): {result['setup_seconds']:.1f} s")
        lines.append(f"- peak memory {result['peak_mib'] / 1024:.2f} GiB")
        fd, _ = mean_sd(tests, "fd")
        if fd is not None and ceiling.get("fd"):
            lines.append(f"- FD to the users' next items {fd:.4f}; the tokenizer ceiling's {ceiling['fd']:.4f}; "
                         f"the estimator's floor {ceiling.get('fd_floor', float('nan')):.4f}")
        lift, _ = mean_sd(tests, "personallift")
        if lift is not None:
            lows = sum(test["personallift_ci95_low"] > 0 for test in tests)
            lines.append(f"- PersonalLift {cell(tests, 'personallift')}; its 95% interval excludes 0 on {lows} of {len(tests)} seeds")
        ours, _ = mean_sd(tests, "targetsim")
        others = {r["model"]: mean_sd(r["results"][name][space]["test"], "targetsim")[0] for r in results
                  if r is not result and r["model"] not in CHEATS}
        if ours is not None and others:
            best = max(others, key=lambda m: others[m])
            lines.append(f"- TargetSim {cell(tests, 'targetsim')}; best other (non-cheating) row {best} {others[best]:.4f}")
            for other in dict.fromkeys(model for model in (best, "SASRec") if model in others):
                lines.append(f"- TargetSim minus {other}'s, paired over users: {paired_cell(entry, by_model[other]['results'][name][space])}")
        lines.append("")
    return lines


def paired_cell(entry, other):
    """The mean of one result entry's per-user TargetSim minus ``other``'s and its 95% bootstrap interval over
    users (benchmarks/paired.py), or why there is none."""
    from paired import paired_difference  # this folder's paired comparisons

    per_user = [result.get("per_user_targetsim") for result in (entry, other)]
    if None in per_user:
        return "not paired (a result from before per-user values were kept; --reevaluate re-scores it)"
    difference = paired_difference(*[(torch.tensor(values["targets"]), torch.tensor(values["sims"], dtype=torch.double))
                                     for values in per_user])
    if difference is None:
        return "not paired (scored on other users or targets)"
    mean, low, high = difference
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]" + (" (resolved)" if low > 0 or high < 0 else " (the interval includes 0)")


def valid_metrics(results):
    """'ndcg@10' when every trained model selects its checkpoint by it, else 'ndcg@10; GenRec: targetsim'."""
    trained = [r for r in results if r["trained"]] or results
    common = statistics.mode([r["valid_metric"] for r in trained]) if trained else "-"
    others = [f"{r['model']}: {r['valid_metric']}" for r in trained if r["valid_metric"] != common]
    return "; ".join([common] + others)


def markdown(results, args, command, reused):
    content = parse_content(args.content)
    spaces = parse_spaces(args.spaces, args.semantic_fields)
    lines = [f"# Benchmark: {args.dataset}", "", f"Command: `{command}`", "",
             f"Machine: {machine_description()}. Date: {time.strftime('%Y-%m-%d')}.", "",
             f"Budget: {args.epochs} training epochs per model (early stopping off), training seed {args.seed}. "
             f"Checkpoint: each model's best epoch on the **validation** split (metric: {valid_metrics(results)}; "
             f"GenRec's in the first space, {next(iter(spaces))}). Every table row below is on the **test** split. "
             f"Generators: mean (sd) over {args.sampling_seeds} sampling seeds ({args.seed}..{args.seed + args.sampling_seeds - 1}), "
             "each averaging its own images per user; other rows are deterministic. PersonalLift's brackets: its 95% bootstrap "
             "interval over users (the mean of the seeds' bounds for generators). TargetItem cheats (it shows each user their own "
             "next item): it marks the best value each metric can take.", ""]
    for model, source in reused.items():
        if source["how"] == "reused":
            lines.append(f"- {model}: reused from `{source['file']}` (run {source['date']}, commit {source['commit']}; same settings)")
        else:
            lines.append(f"- {model}: trained by the run of {source['date']} (commit {source['commit']}, same training settings); "
                         "its checkpoint re-scored by this run (new metrics, thresholds or per-user values)")
    if reused:
        lines.append("")
    header = "| model | " + " | ".join(COLUMNS) + " | fd floor | train s/epoch | epochs | eval s | peak MiB |"
    for name, image_dir in content.items():
        for space, overrides in spaces.items():
            described = json.dumps(overrides) if overrides else "item texts"
            lines += [f"## {name}" + (f" (`image_dir={image_dir}`)" if image_dir else " (rendered metadata cards)")
                      + f", {space} space (encoder fitted against {described})", "", header, "|---" * (len(COLUMNS) + 6) + "|"]
            for result in results:
                entry = result["results"][name][space]
                tests = entry["test"]
                cells = [lift_cell(tests) if column == "personallift" else cell(tests, column) for column in COLUMNS]
                label = result["model"] + (" (cheats)" if result["model"] in CHEATS else "")
                lines.append(f"| {label} | " + " | ".join(cells) + f" | {cell(tests, 'fd_floor')}"
                             + f" | {_fmt(mean_epoch_seconds(result), 1)} | {len(result['epoch_seconds'])} | {_fmt(entry['eval_seconds'], 1)}"
                             + f" | {result['peak_mib']:.0f} |")
                ceiling = entry.get("ceiling")
                if ceiling:
                    cells = [lift_cell([ceiling]) if column == "personallift" else cell([ceiling], column) for column in COLUMNS]
                    lines.append(f"| {result['model']}: tokenizer ceiling | " + " | ".join(cells) + f" | {cell([ceiling], 'fd_floor')} | - | - | - | - |")
            lines.append("")
            lines += generator_summary(results, name, space)
    trained = [r for r in results if r["trained"]]
    if trained:
        metrics = sorted({r["valid_metric"] for r in trained})
        epochs = max(len(r["valid_curve"]) for r in trained)
        for metric in metrics:
            lines += [f"## Validation curves ({metric}, validation split, {next(iter(content))}, {next(iter(spaces))} space)", "",
                      "| epoch | " + " | ".join(r["model"] for r in trained) + " |", "|---" * (len(trained) + 1) + "|"]
            for epoch in range(epochs):
                values = [r["valid_curve"][epoch].get(metric) if epoch < len(r["valid_curve"]) else None for r in trained]
                lines.append(f"| {epoch + 1} | " + " | ".join(_fmt(value) for value in values) + " |")
            lines.append("")
        lines += ["Distance from convergence (each model's own validation metric): "
                  + "; ".join(f"{r['model']}: {convergence(r)}" for r in trained) + ".", ""]
    return "\n".join(lines)


def _later_part_off(key, saved, wanted):
    """Whether ``key`` belongs to a part added after the saved result ran that is off in ``wanted`` (for the
    tokenizer fit's later settings: at the value that fits as before them, ``LATER_FIT_KEYS``)."""
    from recbole_gen.model.image_tokenizer import LATER_FIT_KEYS

    if key in saved:
        return False
    if key in LATER_FIT_KEYS:
        return wanted.get(key) == LATER_FIT_KEYS[key]
    return any(key.startswith(prefix) and off(wanted) for prefix, off in LATER_PARTS.items())


def frontier_plot(results, args):
    """TargetSim against FD (log scale) of every non-cheating row, one panel per evaluation space (test split,
    the first content setting; generators at their mean over seeds)."""
    from plots import scatter_panel, sheet  # this folder's charts

    name = next(iter(parse_content(args.content)))
    panels = []
    for space in parse_spaces(args.spaces, args.semantic_fields):
        points = []
        for result in results:
            if result["model"] in CHEATS:
                continue
            tests = result["results"][name][space]["test"]
            fd, targetsim = mean_sd(tests, "fd")[0], mean_sd(tests, "targetsim")[0]
            base, variant = split_model(result["model"])
            colour = 4 if base in REFERENCES else {None: 0, "bestof": 3, "rl": 2, "diffusion": 5}[variant] if base == "GenRec" else 1
            points.append((result["model"], fd, targetsim, colour))
        panels.append(scatter_panel(points, f"{space} space, test split: TargetSim (up) against FD (right, log)",
                                    "FD to the users' next items", log_x=True))
    return sheet(panels)


def reusable(path, args, model, reevaluate=False):
    """``(result, rescore)``: the saved result at ``path`` if it was made with the current settings, or (with
    ``reevaluate``) with settings that differ only in how a trained model is scored, then ``rescore`` is
    True; a SystemExit naming the differences otherwise."""
    with open(path) as f:
        result = json.load(f)
    wanted, saved = settings_of(args, model), result.get("settings", {})
    different = sorted(key for key in wanted if key not in CONFIG_SETTINGS and saved.get(key) != wanted[key])
    rescore = [key for key in different if reevaluate and key in EVALUATION_SETTINGS]
    different = [key for key in different if key not in rescore]
    if different:
        raise SystemExit(f"--reuse: {path} was made with other settings ({', '.join(f'{k}: {saved.get(k)!r} vs {wanted[k]!r}' for k in different)}); "
                         "run without --reuse or with the same settings")
    if "config" not in result:
        raise SystemExit(f"--reuse: {path} records no effective config (made by an older harness); run {model} again without --reuse")
    wanted, saved = effective_config(model_config(args, model)), result["config"]
    different = sorted(key for key in set(wanted) | set(saved) if saved.get(key) != wanted.get(key) and not _later_part_off(key, saved, wanted))
    rescore += [key for key in different if reevaluate and key in EVALUATION_KEYS]
    different = [key for key in different if key not in rescore]
    if different:
        raise SystemExit(f"--reuse: {path} ran {model} with another effective config (defaults changed since?): "
                         + ", ".join(f"{k}: {saved.get(k)!r} vs {wanted.get(k)!r}" for k in different[:8]))
    if reevaluate and not all("per_user_targetsim" in entry for spaces in result["results"].values() for entry in spaces.values()):
        rescore.append("per_user_targetsim")  # a result from before per-user values were kept: pair it by re-scoring
    if rescore and not result.get("checkpoint"):
        raise SystemExit(f"--reevaluate: {path} records no checkpoint to re-score; run {model} again")
    return result, bool(rescore)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", nargs="+", default=["SASRec", "GRU4Rec", "BERT4Rec"])
    parser.add_argument("--references", action="store_true", help=f"add the reference rows {REFERENCES}")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs per model (the shared budget)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--content", nargs="+", default=["cards"],
                        help="content settings: 'cards' (rendered) or NAME=IMAGE_DIR; models are trained once")
    parser.add_argument("--spaces", nargs="+", default=["identity", "semantic"],
                        help="evaluation spaces: 'identity', 'semantic' or NAME=JSON (item-encoder config overrides)")
    parser.add_argument("--semantic_fields", nargs="+", default=SEMANTIC_FIELDS,
                        help="the .item fields the semantic space contrasts images with (years become decades)")
    parser.add_argument("--sampling_seeds", type=int, default=5, help="sampling seeds per generator test row (at least 5 for a row to publish)")
    parser.add_argument("--config_files", nargs="*", default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON", help="extra config, e.g. eval_samples=4")
    parser.add_argument("--rl_set", nargs="*", default=None, metavar="KEY=JSON",
                        help='extra config of the GenRec+rl row only, e.g. rl_algorithm=\'"dpo"\' rl_epochs=1')
    parser.add_argument("--out", default=None, help="markdown file to write (default: print)")
    parser.add_argument("--plot", default=None, help="PNG of TargetSim against FD for every row, per space")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a model's saved/benchmark-DATASET-MODEL.json from an earlier run with the same settings")
    parser.add_argument("--reevaluate", action="store_true",
                        help="as --reuse, and re-score (not retrain) a result whose settings differ only in how it is scored")
    parser.add_argument("--near_copy_thresholds", nargs="*", default=[], metavar="SPACE=VALUE",
                        help="near-copy threshold per evaluation space (benchmarks/copy_threshold.py chooses them on validation)")
    parser.add_argument("--base_checkpoint", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--evaluate_checkpoint", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker_out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    parse_content(args.content)
    parse_spaces(args.spaces, args.semantic_fields)
    for model in args.models:
        split_model(model)
    return args


def main():
    args = parse_args()

    if args.worker:
        result = run_model(args.worker, args)
        with open(args.worker_out + ".tmp", "w") as f:
            json.dump(result, f)
        os.replace(args.worker_out + ".tmp", args.worker_out)
        return

    models = (REFERENCES if args.references else []) + args.models
    worker_args = [a for a in sys.argv[1:] if a not in ("--reuse", "--reevaluate")]
    command = "python " + shlex.join(a for a in sys.argv if a not in ("--reuse", "--reevaluate"))  # pastes into a shell
    results, reused = [], {}
    for model in models:
        out = os.path.join("saved", f"benchmark-{args.dataset}-{model}.json")
        os.makedirs("saved", exist_ok=True)
        extra = []
        if split_model(model)[1] in BUILT_ON_GENREC:
            base = next((r for r in results if r["model"] == "GenRec"), None)
            if base is None:
                raise SystemExit(f"--models: {model} builds on the GenRec row; list GenRec before it")
            args.base_checkpoint = base["checkpoint"]
            extra = ["--base_checkpoint", base["checkpoint"]]
        if (args.reuse or args.reevaluate) and os.path.isfile(out):
            result, rescore = reusable(out, args, model, args.reevaluate)
            if not rescore:
                print(f"[benchmark] {model}: reusing {out} ({result['source']['date']})", flush=True)
                reused[model] = {"file": out, "how": "reused", **result["source"]}
                results.append(result)
                continue
            print(f"[benchmark] {model}: re-scoring {result['checkpoint']} (trained {result['source']['date']})", flush=True)
            extra += ["--evaluate_checkpoint", result["checkpoint"]]
            reused[model] = {"file": out, "how": "re-scored", **result.get("trained_by", result["source"])}
        print(f"[benchmark] {model} ...", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, *worker_args, *extra, "--worker", model, "--worker_out", out], check=True)
        with open(out) as f:
            new = json.load(f)
        if "--evaluate_checkpoint" in extra:  # keep the record of the run that trained it
            for key in ("trained", "epoch_seconds", "fit_seconds", "valid_curve", "setup_seconds"):
                new[key] = result.get(key)
            new["peak_mib"] = max(new["peak_mib"], result["peak_mib"])
            new["trained_by"] = result.get("trained_by", result["source"])
            with open(out, "w") as f:
                json.dump(new, f)
        results.append(new)
        print(f"[benchmark] {model} done in {time.perf_counter() - start:.0f} s", flush=True)
    text = markdown(results, args, command, reused)
    if args.plot:
        frontier_plot(results, args).save(args.plot)
        print(f"[benchmark] wrote {args.plot}")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        print(f"[benchmark] wrote {args.out}")
    else:
        print(text)


if __name__ == "__main__":
    main()
