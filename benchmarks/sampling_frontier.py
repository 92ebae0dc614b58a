"""Where a sampling generator can land on TargetSim and FD: GenRec against a perfect sampler of a recommender.

    python benchmarks/sampling_frontier.py --recommender saved/SASRec-....pth --genrec saved/GenRec-....pth \
        --seeds 5 --out docs/sampling_frontier_ml-100k.md --plot docs/img/sampling_frontier_ml-100k.png

The supervised stage trains GenRec to *sample* the image of the next item from p(item | user). This
script asks what the best such sampler could score. A "perfect sampler" shows each test user a
catalog item drawn from the recommender's own predicted distribution softmax(scores / T): it is a
generator that reproduces a trained recommender's beliefs exactly, with perfect images. Sweeping T
traces the TargetSim-FD frontier such samplers reach. Next to it: the recommender's top-1 (T -> 0),
PopItem, the catalog item nearest the mean of the recommender's top-10 (a real image chosen for being
central, not sampled), the expected embedding softmax(scores) @ catalog (not an image: the point a
similarity-maximising, e.g. RL-tuned, generator aims at) and, with ``--expected_top_items``, the same over
the top K items alone (the RL stage's ``rl_expectation_top_items``) with the catalog item nearest it, and
GenRec under several sampling settings; ``--genrec LABEL=PATH ...`` adds more checkpoints (RL runs next to
their supervised start), ``--best_of N ...`` the first one as the best of N samples (the benchmark's
GenRec+bestof reranker), and ``--fd_target recommender`` draws the RL issue's FD bar (the recommender
top-1's) instead of the supervised one's.

All points are scored by the real evaluation path (RecBole's evaluate loop, GenerativeCollector, the
generative metrics, the cached item encoder) on the validation split (``--split test`` only for final
figures); sampled points are averaged over ``--seeds`` seeds. Both checkpoints must come from the same
dataset and seed (same split, same encoder). FD is to the users' next items. Each point's TargetSim is
also compared with PopItem's and the recommender top-1's user by user (:mod:`paired`): a point meets the
TargetSim target when both paired intervals lie above 0, not by its mean alone. Every generator point also
reports its copies by codes (``codecopyshare``), so a point that wins by copying catalog images says so.
"""

import argparse
import math
import os
import shlex
import sys
import time

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from eval_seeds import load_genrec, mean_sd, score_seeds  # this folder's seed-spread script
from paired import paired_difference, recording, scored, seed_mean
from recbole.data.interaction import Interaction

from recbole_gen.compat import load_checkpoint
from recbole_gen.evaluator.collector import SHOWN_FIELD
from recbole_gen.model.sequential_recommender.popitem import PopItem
from recbole_gen.quick_start import load_data_and_model
from recbole_gen.rl.reranker import top_items_mean
from recbole_gen.trainer import get_trainer

SPACE_PREFIXES = ("image_", "encoder_fit_", "eval_encoder")  # the settings that make the evaluation space
SHOWN = ["targetsim", "personallift", "personallift_ci95_low", "personallift_ci95_high", "fd", "fd_mean", "codecopyshare"]
FD_TOLERANCE = 1.5  # the GenRec issue's target: FD within 1.5x the tokenizer ceiling's


def evaluation_space(saved_config):
    """The dataset and the content and item-encoder settings of a checkpoint's ``config`` entry: the space its
    generative metrics are computed in (where a cache lies, ``*_cache_dir``, is not part of it)."""
    final = saved_config["final"]
    return {"dataset": saved_config["dataset"], **{key: final[key] for key in final if key.startswith(SPACE_PREFIXES)}}


def space_differences(first, second):
    """``['key (a vs b)', ...]`` where two checkpoints' :func:`evaluation_space` differ."""
    a, b = evaluation_space(first), evaluation_space(second)
    return [f"{key} ({a.get(key)!r} vs {b.get(key)!r})" for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def catalog_units(trainer):
    return F.normalize(trainer.eval_collector.data_struct.get("gen.catalog").float(), dim=-1)


def sampled(units, temperature, generator):
    def policy(scores):
        draws = torch.multinomial((scores / temperature).softmax(dim=-1).cpu(), 1, generator=generator).squeeze(1)
        return units[draws]
    return policy


def nearest_item(units, policy):
    """The catalog item (not the padding row) nearest, by cosine, to what ``policy`` shows: a real image for it."""
    def nearest(scores):
        return units[(F.normalize(policy(scores), dim=-1) @ units[1:].T).argmax(dim=1) + 1]
    return nearest


def nearest_to_topk_mean(units, k):
    return nearest_item(units, lambda scores: units[scores.topk(k, dim=1).indices.cpu()].mean(dim=1))


def expected_embedding(units, top_items=None):
    """The score-softmax mean embedding of every catalog item, or of the ``top_items`` best-scored ones (the
    target the RL stage's expectation term gives a generator with ``rl_expectation_top_items``)."""
    def policy(scores):
        if top_items is None:
            return scores.softmax(dim=-1).cpu() @ units
        return top_items_mean(scores, units, top_items)
    return policy


def popular(units, popularity):
    return lambda scores: units[popularity.argmax()].expand(len(scores), -1)


def summarise(name, kind, scored_results, label):
    """Mean (and sd) over ``scored_results`` (:func:`scored` pairs, one per seed) of the SHOWN metrics, and the
    per-user TargetSim averaged over them (``per_user``: target pairs, sims); ``label`` names the point in the plot."""
    results, per_user = zip(*scored_results)
    row = {"name": name, "kind": kind, "label": label, "n": len(results), "per_user": seed_mean(per_user, name)}
    # a policy over catalog embeddings has no codes to count copies by; codecopyshare is off with near_copy_code_share: ~
    for key in [key for key in SHOWN if key in results[0] and (key != "codecopyshare" or kind == "genrec")]:
        row[key], row[key + "_sd"] = mean_sd([float(result[key]) for result in results])
    print(f"{name}: " + ", ".join(f"{key} {row[key]:.4f}" for key in SHOWN if key in row), flush=True)
    return row


def recommender_points(checkpoint, temperatures, seeds, split, expected_top_items=()):
    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(checkpoint)
    data = valid_data if split == "valid" else test_data
    config["gallery_users"] = 0
    trainer = recording(shown_policy_trainer(config, model, dataset))
    model.eval()
    units = catalog_units(trainer)
    popularity = PopItem(config, train_data._dataset).item_popularity
    name = config["model"]

    def run(policy):
        trainer.policy = policy
        return scored(trainer, lambda: trainer.evaluate(data, load_best_model=False))

    rows = [summarise("PopItem", "reference", [run(popular(units, popularity))], "PopItem"),
            summarise(f"{name} top-1 (T -> 0)", "recommender", [run(None)], f"{name} top-1")]
    for temperature in temperatures:
        results = [run(sampled(units, temperature, torch.Generator().manual_seed(seed))) for seed in range(seeds)]
        rows.append(summarise(f"perfect sampler of {name}, T={temperature:g}", "sampler", results, f"T={temperature:g}"))
    rows.append(summarise(f"catalog item nearest the mean of {name}'s top-10", "central", [run(nearest_to_topk_mean(units, 10))],
                           "item nearest top-10 mean"))
    rows.append(summarise(f"expected embedding under {name} (not an image)", "expected", [run(expected_embedding(units))],
                           "expected embedding (no image)"))
    for k in expected_top_items:
        rows.append(summarise(f"expected embedding of {name}'s top-{k} (not an image)", "expected",
                              [run(expected_embedding(units, k))], f"expected, top-{k}"))
        rows.append(summarise(f"catalog item nearest the expected embedding of {name}'s top-{k}", "central",
                              [run(nearest_item(units, expected_embedding(units, k)))], f"item nearest expected top-{k}"))
    return rows


def shown_policy_trainer(config, model, dataset):
    """The model's trainer, made to show each user ``trainer.policy(scores)`` (embeddings) instead of its top-1."""
    base = type(get_trainer(config["MODEL_TYPE"], config["model"])(config, model))

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = base._full_sort_batch_eval(self, batched_data)
        if self.policy is not None:
            interaction.update(Interaction({SHOWN_FIELD: self.policy(scores.float()).unsqueeze(1)}))
        return interaction, scores, positive_u, positive_i

    trainer = type("ShownPolicyTrainer", (base,), {"_full_sort_batch_eval": _full_sort_batch_eval, "policy": None})(config, model)
    trainer.prepare_catalog(dataset)
    return trainer


def genrec_points(checkpoint, settings, seeds, split, label="GenRec", ceiling=True, best_of=()):
    """``(rows, ceiling_fd)`` of one GenRec checkpoint, under each sampling setting and then, at the first
    setting, as the best of each N in ``best_of`` samples (the benchmark's best-of-N reranker, ``eval_best_of``);
    ``ceiling_fd`` (the tokenizer ceiling's FD) is None unless ``ceiling``."""
    config, model, trainer, valid_data, test_data = load_genrec(checkpoint, flag="--genrec")
    recording(trainer)
    data = valid_data if split == "valid" else test_data
    ceiling_fd = float(trainer.tokenizer_ceiling(data)["fd"]) if ceiling else None
    seed_range = range(config["seed"], config["seed"] + seeds)
    rows = []
    for best_of_n, (temperature, guidance) in [(1, setting) for setting in settings] + [(n, settings[0]) for n in best_of]:
        config["eval_best_of"] = best_of_n  # 1: plain sampling, whatever the checkpoint's run evaluated with
        model.generation_config.update(temperature=temperature, guidance_scale=guidance)
        kept = f", best of {best_of_n}" if best_of_n > 1 else ""
        rows.append(summarise(f"{label}{kept}, T={temperature:g}, guidance {guidance:g}", "genrec",
                              [scored(trainer, lambda: score_seeds(trainer, data, split, [seed])[0]) for seed in seed_range],
                              f"{label} best of {best_of_n}" if kept else f"{label} T={temperature:g} g={guidance:g}"))
    return rows, ceiling_fd


def labelled(checkpoints):
    """``[(label, path)]`` of ``LABEL=PATH`` or ``PATH`` arguments (a plain path's label: GenRec, then GenRec 2, ...;
    an argument that names an existing file is a path, whatever it holds; a label may hold ``=`` where the rest
    names an existing file, else the first ``=`` ends the label)."""
    pairs = []
    for number, argument in enumerate(checkpoints, start=1):
        splits = [(argument[:at], argument[at + 1:]) for at, char in enumerate(argument) if char == "="]
        label, path = ("", argument) if os.path.exists(argument) or not splits else next(
            (split for split in splits if os.path.exists(split[1])), splits[0])
        pairs.append((label or ("GenRec" if number == 1 else f"GenRec {number}"), path))
    return pairs


def plot(rows, targetsim_bar, fd_bar, path, fd_rule, size=(880, 540)):
    """TargetSim (y) against FD (x, log scale) for every point; the target region shaded."""
    margin_left, margin_bottom, margin_top, margin_right = 70, 50, 30, 20
    width, height = size
    points = [(row["fd"], row["targetsim"]) for row in rows]
    xs = [math.log10(max(fd, 1e-4)) for fd, _ in points] + [math.log10(fd_bar)]
    x_lo, x_hi = min(xs) - 0.15, max(xs) + 0.15
    ys = [ts for _, ts in points] + [targetsim_bar, 0.0]
    y_lo, y_hi = min(ys) - 0.01, max(ys) + 0.01

    def to_px(fd, ts):
        x = margin_left + (math.log10(max(fd, 1e-4)) - x_lo) / (x_hi - x_lo) * (width - margin_left - margin_right)
        y = height - margin_bottom - (ts - y_lo) / (y_hi - y_lo) * (height - margin_top - margin_bottom)
        return x, y

    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    x0, y0 = to_px(10 ** x_lo, targetsim_bar)
    x1, _ = to_px(fd_bar, targetsim_bar)
    draw.rectangle([x0, margin_top, x1, y0], fill=(220, 245, 220))
    draw.text((x0 + 4, margin_top + 4), f"targets: TargetSim above every ranking row,\nFD at most {fd_rule}", fill=(40, 120, 40), font=font)
    draw.line([margin_left, height - margin_bottom, width - margin_right, height - margin_bottom], fill=(0, 0, 0))
    draw.line([margin_left, margin_top, margin_left, height - margin_bottom], fill=(0, 0, 0))
    for exponent in range(math.ceil(x_lo), math.floor(x_hi) + 1):
        for mantissa in (1, 2, 5):
            value = mantissa * 10 ** exponent
            if x_lo <= math.log10(value) <= x_hi:
                x, _ = to_px(value, y_lo)
                draw.line([x, height - margin_bottom, x, height - margin_bottom + 4], fill=(0, 0, 0))
                draw.text((x - 12, height - margin_bottom + 6), f"{value:g}", fill=(0, 0, 0), font=font)
    tick = 0.02
    value = math.ceil(y_lo / tick) * tick
    while value <= y_hi:
        _, y = to_px(10 ** x_lo, value)
        draw.line([margin_left - 4, y, margin_left, y], fill=(0, 0, 0))
        draw.text((margin_left - 40, y - 6), f"{value:.2f}", fill=(0, 0, 0), font=font)
        value += tick
    draw.text((width // 2 - 130, height - 20), "FD to the users' next items (log scale; lower is better)", fill=(0, 0, 0), font=font)
    draw.text((4, margin_top - 20), "TargetSim (higher is better)", fill=(0, 0, 0), font=font)
    colours = {"reference": (120, 120, 120), "recommender": (30, 90, 200), "sampler": (30, 90, 200),
               "central": (200, 120, 0), "expected": (200, 120, 0), "genrec": (200, 30, 30)}
    sampler_name = next(row["label"] for row in rows if row["kind"] == "recommender").replace(" top-1", "")
    sampler = [to_px(row["fd"], row["targetsim"]) for row in rows if row["kind"] in ("sampler", "recommender")]
    sampler.sort()
    if len(sampler) > 1:
        draw.line(sampler, fill=colours["sampler"], width=1)
    draw.text((width - 330, height - margin_bottom - 40), f"blue: a perfect sampler of {sampler_name}'s beliefs, by T", fill=colours["sampler"], font=font)
    genrec_index, placed = 0, []  # boxes a label must not cover: the points, then the labels drawn so far
    for row in rows:
        x, y = to_px(row["fd"], row["targetsim"])
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colours[row["kind"]])
        placed.append((x - 4, y - 4, x + 4, y + 4))
    for row in rows:
        x, y = to_px(row["fd"], row["targetsim"])
        colour = colours[row["kind"]]
        label = row["label"]
        if row["kind"] == "genrec":  # GenRec's points lie close together: numbered, named in a legend
            genrec_index += 1
            draw.text((width - 330, height - margin_bottom - 40 - 14 * genrec_index), f"{genrec_index}: {label}", fill=colour, font=font)
            label = str(genrec_index)
        for shift in (0, 12, -12, 24, -24, 36, -36):  # the first spot no earlier label covers
            spot = (x + 6, y - 6 + shift)
            box = draw.textbbox(spot, label, font=font)
            if not any(box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3] for other in placed):
                break
        placed.append(box)
        draw.text(spot, label, fill=colour, font=font)
    image.save(path)


def leads(row, rivals):
    """``row``'s paired TargetSim lead over each of ``rivals`` (:func:`paired.paired_difference`: ``(mean, low,
    high)``, or None for the rival itself or a rival scored on other users)."""
    return [None if row is rival else paired_difference(row["per_user"], rival["per_user"]) for rival in rivals]


def compared_rows(rows, names):
    """The rows named ``names`` (``--compare_with``), in that order; refuses a name no row has, listing the names."""
    by_name = {row["name"]: row for row in rows}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise SystemExit(f"--compare_with {missing[0]!r}: no such point; the points are {sorted(by_name)}")
    return [by_name[name] for name in names]


def verdict(row, rivals, paired, fd_bar):
    """Whether ``row`` meets both targets: TargetSim above every one of ``rivals`` (the ranking rows) and FD at
    most ``fd_bar``; and whether its leads (``paired``, from :func:`leads`) are resolved, each interval above 0."""
    if any(row is rival or row["targetsim"] <= rival["targetsim"] for rival in rivals) or row["fd"] > fd_bar:
        return "no"
    if None in paired:
        return "yes (not paired)"
    return "yes" if all(low > 0 for _, low, _ in paired) else "by the mean only: a paired interval includes 0"


def copies_cell(row):
    """The share of ``row``'s shown items that copy a catalog item by codes: counted for a generator, 1 for a
    catalog item, none for an embedding (no image)."""
    if row["kind"] == "genrec":
        return f"{row['codecopyshare']:.3f}" if "codecopyshare" in row else "not counted"
    return "-" if row["kind"] == "expected" else "1 (catalog)"


def markdown(rows, rivals, fd_bar, fd_rule, command, split, compared=()):
    """The table of ``rows``: each one's paired lead over the ``rivals`` (the ranking rows its verdict is about) and
    over the ``compared`` rows (other points it is set against, e.g. best-of-N, outside the verdict)."""
    split_name = {"valid": "Validation", "test": "Test"}[split]
    bar = max(rivals, key=lambda rival: rival["targetsim"])
    lines = [f"Command: `{command}`", "", f"Date: {time.strftime('%Y-%m-%d')}. {split_name} split. FD is to the users' next items; its means part is the squared distance between the two sets' means, the rest comes from their spreads. Sampled rows are means over seeds (sd in brackets); their PersonalLift interval is the mean of each seed's 95% bootstrap bounds.", "",
             f"Targets: TargetSim above {bar['targetsim']:.4f} ({bar['name']}, the best of "
             f"{' and '.join(rival['label'] for rival in rivals)} here), FD at most {fd_bar:.4f} ({fd_rule}). \"minus X\" is a "
             "point's TargetSim minus X's, paired user by user (each user's seeds averaged first), with its 95% bootstrap "
             "interval over users; a lead is resolved when that interval lies above 0, and a point meets the TargetSim "
             "target when its leads over both are.", "",
             "| shown item | seeds | TargetSim | " + " | ".join(f"minus {other['label']} [95%]" for other in [*rivals, *compared])
             + " | PersonalLift [95% interval] | FD | FD's means part | copies by codes | both targets |", "|---" * (8 + len(rivals) + len(compared)) + "|"]
    for row in rows:
        sd = lambda key: f" ({row[key + '_sd']:.4f})" if row["n"] > 1 else ""
        paired = leads(row, rivals)
        versus = ["-" if lead is None else f"{lead[0]:+.4f} [{lead[1]:+.4f}, {lead[2]:+.4f}]" for lead in paired + leads(row, compared)]
        lines.append(f"| {row['name']} | {row['n']} | {row['targetsim']:.4f}{sd('targetsim')} | {' | '.join(versus)} | "
                     f"{row['personallift']:.4f} [{row['personallift_ci95_low']:.4f}, {row['personallift_ci95_high']:.4f}] | "
                     f"{row['fd']:.4f}{sd('fd')} | {row['fd_mean']:.4f} | {copies_cell(row)} | {verdict(row, rivals, paired, fd_bar)} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recommender", required=True, help="a run_recbole_gen checkpoint of a ranking model (e.g. SASRec)")
    parser.add_argument("--genrec", required=True, nargs="+", metavar="[LABEL=]PATH",
                        help="GenRec checkpoints trained on the same dataset and seed (e.g. a supervised one and RL runs from it)")
    parser.add_argument("--fd_target", choices=["ceiling", "recommender"], default="ceiling",
                        help="the FD bar: 1.5x the tokenizer ceiling's (the supervised GenRec issue) or the recommender "
                             "top-1's (the RL issue)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.5, 0.3, 0.2, 0.1])
    parser.add_argument("--genrec_settings", nargs="+", default=["1:1", "0.5:1", "0.5:3"], metavar="T:GUIDANCE")
    parser.add_argument("--expected_top_items", type=int, nargs="*", default=[],
                        help="also the expected embedding of the recommender's top K items alone, for each K")
    parser.add_argument("--best_of", type=int, nargs="*", default=[], metavar="N",
                        help="also the first --genrec checkpoint as the best of N samples by the benchmark's reranker "
                             "(GenRec+bestof), for each N, at the first --genrec_settings")
    parser.add_argument("--compare_with", nargs="*", default=[], metavar="POINT",
                        help="also pair every point with these points, by their name in the table (e.g. 'GenRec, best of 8, "
                             "T=1, guidance 1'); they do not enter the verdict")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--split", choices=["valid", "test"], default="valid", help="test only for final figures")
    parser.add_argument("--out", default=None, help="markdown file to write (default: print)")
    parser.add_argument("--plot", default=None, help="PNG of the frontier")
    args = parser.parse_args()
    settings = [tuple(float(part) for part in setting.split(":")) for setting in args.genrec_settings]
    if any(n < 2 for n in args.best_of):
        parser.error(f"--best_of: each N must be at least 2 (1 is plain sampling); got {args.best_of}")
    recommender_config = load_checkpoint(args.recommender)["config"]
    for _, checkpoint in labelled(args.genrec):
        different = space_differences(recommender_config, load_checkpoint(checkpoint)["config"])
        if different:  # the recommender's rows would be scored with other images or another encoder
            parser.error(f"--recommender {args.recommender} and --genrec {checkpoint} are scored in different evaluation "
                         f"spaces: {', '.join(different)}; train the recommender with the GenRec run's content and encoder "
                         "settings")

    rows = recommender_points(args.recommender, args.temperatures, args.seeds, args.split, args.expected_top_items)
    ceiling_fd = None
    for number, (label, checkpoint) in enumerate(labelled(args.genrec)):
        # the ceiling's FD bar: from the first checkpoint's tokenizer (all share the dataset and seed)
        genrec_rows, fd = genrec_points(checkpoint, settings, args.seeds, args.split, label,
                                        ceiling=number == 0 and args.fd_target == "ceiling",
                                        best_of=args.best_of if number == 0 else ())
        rows += genrec_rows
        if fd is not None:
            ceiling_fd = fd
    rivals = [row for row in rows if row["kind"] in ("reference", "recommender")]  # the rows to beat: PopItem, the top-1
    compared = compared_rows(rows, args.compare_with)
    if args.fd_target == "ceiling":
        fd_bar, fd_rule = FD_TOLERANCE * ceiling_fd, f"1.5x the tokenizer ceiling's {ceiling_fd:.4f}"
    else:
        fd_bar = next(row["fd"] for row in rows if row["kind"] == "recommender")
        fd_rule = "the recommender top-1's"
    text = markdown(rows, rivals, fd_bar, fd_rule, "python " + shlex.join(sys.argv), args.split, compared)
    if args.out:
        with open(args.out, "w") as file:
            file.write(text)
    print(text)
    if args.plot:
        plot(rows, max(rival["targetsim"] for rival in rivals), fd_bar, args.plot, fd_rule)


if __name__ == "__main__":
    main()
