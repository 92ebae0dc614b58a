"""Time and peak memory of the generative metrics as the catalog and the users grow, blocked vs the code before.

    OMP_NUM_THREADS=1 python benchmarks/eval_scaling.py --out docs/eval_scaling.md --plot docs/img/eval_scaling.png

Synthetic inputs: random unit embeddings (``--dim``), one random target per user, k shown items per user.
The grid runs the catalog sizes ``--items`` with ``--base_users`` users and the user counts ``--users`` with
``--base_items`` items, each for every k in ``--shown``, plus the ``--corner`` (1M x 1M). Each (size, k, code)
runs in a fresh subprocess that builds the inputs once and then runs each metric; a metric's peak memory is
that process's peak RSS while it ran (Linux VmHWM, reset before each metric), so it counts torch's
allocations; the table also gives the peak minus the RSS just before the metric (its own memory). Metrics:

- genrecall: ``target_ranks`` (GenRecall and GenNDCG share it), users x k x catalog similarities;
- novelty: ``nearest_catalog_sim`` (Novelty, CopyShare's near copies, NovelTargetSim), the same count;
- personallift: PersonalLift with ``personal_lift_samples`` = ``--lift_samples`` sampled others and its bootstrap;
- diversity: O(users x d) in both versions;
- randomitem: RandomItem's scores for every user, in RecBole's full-sort batches (``--eval_batch_size``
  scores per batch); the old version kept a users x items table.

The old code is ``recbole_gen/evaluator/metrics.py`` at ``--old_rev`` (read with ``git show``), run only where
its largest matrix, estimated beforehand, stays under ``--old_max_gib``. Work is capped so the run ends in
minutes (``--max_sims``, ``--max_scores``, ``--max_lift_users``); a capped cell says what it would cost.
Measured cells are kept in ``--cache``, so the grid can be measured in parts (e.g. ``--users 10000 --corner 0 0``
for the catalog axis, then ``--items 10000`` for the users axis); the report covers every cached cell.
"""

import argparse
import datetime
import gc
import importlib
import importlib.util
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import torch
from tqdm import tqdm

from plots import line_panel, sheet  # this folder's PIL charts (matplotlib is not a dependency)
from recbole_gen.fitting import atomic_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ["genrecall", "novelty", "personallift", "diversity", "randomitem"]
# Metrics that k does not enter beyond the users' mean shown item (or at all): run at the smallest k only.
K_FREE = {"personallift", "randomitem"}
GIB = 2**30


# -- the worker: one subprocess per (items, users, k, code) --------------------------------------------------

def _memory_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def _reset_peak():
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (the peak RSS) to the current RSS


def _old_metrics(rev):
    """The metrics module as it was at ``rev``, imported from a temporary file."""
    source = subprocess.run(["git", "-C", REPO, "show", f"{rev}:recbole_gen/evaluator/metrics.py"], check=True,
                            capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "old_metrics.py")
        with open(path, "w") as f:
            f.write(source)
        spec = importlib.util.spec_from_file_location("old_metrics", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


def _random_item_scores(code, n_users, n_items, batch_users, seed=0):
    """Every user's RandomItem scores, a RecBole full-sort batch at a time (each batch dropped after use)."""
    from recbole_gen.model.sequential_recommender.randomitem import RandomItem  # imported already: not timed

    if code == "old":  # the old RandomItem's buffer, indexed per batch
        table = torch.rand(n_users, n_items, generator=torch.Generator().manual_seed(seed))
        score = lambda users: table[users]
    else:
        model = argparse.Namespace(seed=seed, n_items=n_items, USER_ID="user_id")  # all full_sort_predict reads
        score = lambda users: RandomItem.full_sort_predict(model, {"user_id": users})
    for start in range(0, n_users, batch_users):
        score(torch.arange(start, min(start + batch_users, n_users)))


def worker(args):
    metrics = _old_metrics(args.old_rev) if args.code == "old" else importlib.import_module("recbole_gen.evaluator.metrics")
    if "randomitem" in args.metrics:
        # Its package imports GenRec (transformers, diffusers: ~10 s, ~0.3 GiB): before the inputs, for both
        # codes, so neither the time nor the memory of a metric counts it.
        importlib.import_module("recbole_gen.model.sequential_recommender.randomitem")
    block_size = {"block_size": metrics.DEFAULT_BLOCK_SIZE} if args.code == "new" else {}
    generator = torch.Generator().manual_seed(0)
    shown = torch.randn(args.n_users, args.k, args.dim, generator=generator)
    catalog = torch.randn(args.n_items + 1, args.dim, generator=generator)
    target = torch.stack([torch.arange(args.n_users), torch.randint(1, args.n_items + 1, (args.n_users,), generator=generator)], dim=1)
    inputs = metrics.ContentInputs.build(shown, catalog, torch.ones(args.n_items + 1, dtype=torch.bool), target)
    del shown, catalog
    config = {"seed": 0, "metric_decimal_place": 6, "personal_lift_samples": args.lift_samples}
    runs = {
        "genrecall": lambda: metrics.per_user_mean((metrics.target_ranks(inputs) <= 10).double().mean(dim=1), inputs.target[:, 0], args.n_users),
        "novelty": lambda: metrics.novelty(inputs),
        "personallift": lambda: metrics.PersonalLift(config).lift(inputs),
        "diversity": lambda: metrics.diversity(inputs),
        "randomitem": lambda: _random_item_scores(args.code, args.n_users, args.n_items, max(1, args.eval_batch_size // args.n_items)),
    }
    for name in args.metrics:
        _reset_peak()
        before = _memory_kib("VmRSS")
        start = time.perf_counter()
        try:
            runs[name]()
            result = {"seconds": time.perf_counter() - start, "peak_mib": _memory_kib("VmHWM") / 1024}
        except (RuntimeError, MemoryError) as err:  # RLIMIT_AS: an allocation beyond the memory limit
            result = {"error": f"out of memory under the limit: {str(err).splitlines()[0][:80]}"}
        print(json.dumps({"metric": name, "before_mib": before / 1024, **block_size, **result}), flush=True)


# -- the driver ----------------------------------------------------------------------------------------------

def old_peak_bytes(metric, n_items, n_users, k, lift_samples):
    """The old code's largest simultaneous matrices, from its shapes (float64 = 8 bytes, bool = 1)."""
    return {
        "genrecall": min(4096, n_users) * k * n_items * 9,  # 4096-pair chunk x k x catalog sims + comparison
        "novelty": n_users * k * n_items * 8,
        "personallift": n_users * n_users * 8 + n_users * lift_samples * 16 + 2000 * n_users * 16,
        "diversity": 0,
        "randomitem": n_users * n_items * 4,
    }[metric]


def work_cap(metric, n_items, n_users, k, args):
    """Why a cell is not run (its work would take too long for this run), or None."""
    sims = n_users * k * n_items
    if metric in ("genrecall", "novelty") and sims > (args.max_sims if k == min(args.shown) else args.max_sims_k):
        return f"{sims:.0e} similarities > --max_sims{'' if k == min(args.shown) else '_k'}"
    if metric == "randomitem" and n_users * n_items > args.max_scores:
        return f"{n_users * n_items:.0e} scores > --max_scores"
    if metric == "personallift" and n_users > args.max_lift_users:
        return f"{n_users:.0e} users: a randperm of all users per user, O(users^2) draws, > --max_lift_users"
    return None


def grid(args):
    sizes = [(n_items, args.base_users) for n_items in args.items] + [(args.base_items, n_users) for n_users in args.users]
    return list(dict.fromkeys(sizes + [tuple(args.corner)] if args.corner else sizes))


def plan(args):
    """``[(n_items, n_users, k, code, {metric: None to run, or why it is not run})]``."""
    cells = []
    for n_items, n_users in grid(args):
        for k in args.shown:
            wanted = [m for m in args.metrics if m not in K_FREE or k == min(args.shown)]
            new = {m: work_cap(m, n_items, n_users, k, args) for m in wanted}
            old = {m: new[m] or ("unchanged code" if m == "diversity" else None) for m in wanted}
            for m in wanted:
                need = old_peak_bytes(m, n_items, n_users, k, args.lift_samples)
                if not old[m] and need > args.old_max_gib * GIB:
                    old[m] = f"needs ~{need / GIB:.1f} GiB > --old_max_gib"
            cells += [(n_items, n_users, k, "new", new), (n_items, n_users, k, "old", old)]
    return cells


def run_child(n_items, n_users, k, code, metrics, args):
    """``{metric: result}`` of one subprocess; metrics it did not reach say why."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--code", code, "--n_items", str(n_items),
               "--n_users", str(n_users), "--k", str(k), "--dim", str(args.dim), "--old_rev", args.old_rev,
               "--lift_samples", str(args.lift_samples), "--eval_batch_size", str(args.eval_batch_size), "--metrics", *metrics]
    limit = int(args.memory_limit_gib * GIB)
    # The subprocess measures this checkout's recbole_gen, whatever an installed one is.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env,
                               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    try:
        output, _ = process.communicate(timeout=args.timeout)
        why = f"exit code {process.returncode}"
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        why = f"not finished in --timeout {args.timeout} s"
    results = {line["metric"]: line for line in map(json.loads, filter(str.strip, output.splitlines()))}
    return {metric: results.get(metric, {"error": why}) for metric in metrics}


def load_cache(path):
    if path and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"runs": [], "rows": []}


def save_cache(cache, path):
    if path:
        with atomic_file(path) as staging, open(staging, "w") as f:
            json.dump(cache, f, indent=1)


def measure(args, cache):
    """Run every planned cell that ``cache`` does not hold yet, saving the cache after each subprocess; how many
    subprocesses ran."""
    key = lambda row: (row["items"], row["users"], row["k"], row["code"], row["metric"])
    done = {key(r) for r in cache["rows"] if not r.get("error", "").startswith("not run")}  # caps may have changed
    ran = 0
    for n_items, n_users, k, code, metrics in tqdm(plan(args), desc="configurations"):
        todo = {m: why for m, why in metrics.items() if (n_items, n_users, k, code, m) not in done}
        to_run = [m for m, why in todo.items() if why is None]
        results = run_child(n_items, n_users, k, code, to_run, args) if to_run else {}
        ran += bool(to_run)
        results.update({m: {"error": f"not run: {why}"} for m, why in todo.items() if why})
        new_rows = [{"items": n_items, "users": n_users, "k": k, "code": code, "metric": m, **r} for m, r in results.items()]
        cache["rows"] = [r for r in cache["rows"] if key(r) not in set(map(key, new_rows))] + new_rows
        save_cache(cache, args.cache)
    return ran


def work(metric, n_items, n_users, k):
    """What a metric's time grows with: similarities, scores, or PersonalLift's users^2 draws."""
    return {"genrecall": n_users * k * n_items, "novelty": n_users * k * n_items, "personallift": n_users**2,
            "diversity": n_users * k, "randomitem": n_users * n_items}[metric]


def seconds_per_work(rows):
    """``{metric: seconds per unit of work}`` of the new code's largest measured cell."""
    largest = {}
    for r in rows:
        if r["code"] == "new" and "seconds" in r:
            amount = work(r["metric"], r["items"], r["users"], r["k"])
            if amount > largest.get(r["metric"], (0, 0))[0]:
                largest[r["metric"]] = (amount, r["seconds"] / amount)
    return {metric: rate for metric, (_, rate) in largest.items()}


def _cell(row, rates):
    if row is None:
        return "", ""
    if "error" in row:
        capped = "> --max" in row["error"] and row["metric"] in rates
        estimate = f" (~{work(row['metric'], row['items'], row['users'], row['k']) * rates[row['metric']]:,.0f} s new)" if capped else ""
        return row["error"] + estimate, ""
    return f"{row['seconds']:.2f}", f"{row['peak_mib']:.0f} (+{row['peak_mib'] - row['before_mib']:.0f})"


def report(cache, args):
    rows = cache["rows"]
    find = lambda **key: next((r for r in rows if all(r[name] == value for name, value in key.items())), None)
    sizes = sorted({(r["items"], r["users"], r["k"]) for r in rows}, key=lambda s: (s[2], s[1], s[0]))
    block_size = next((r["block_size"] for r in rows if "block_size" in r), None)
    rates = seconds_per_work(rows)
    widest = max(r["items"] for r in rows)
    peak_at_widest = max((r["peak_mib"] for r in rows if r["code"] == "new" and r["items"] == widest and "peak_mib" in r), default=float("nan"))
    with open("/proc/meminfo") as f:
        memory_gib = int(f.readline().split()[1]) / 2**20
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    lines = ["# Evaluation memory and time at scale", "", "Commands (each measures the cells the cache does not hold yet):", ""]
    lines += [f"- `{run['command']}`{run.get('note', '')}: {run['started']} UTC, load average {run['load'][0]:.1f} at the "
              f"start, {run['load'][1]:.1f} at the end" for run in cache["runs"]]
    lines += [
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB. OMP_NUM_THREADS=1: one thread per metric. "
        f"Other jobs shared the {os.cpu_count()} cores (the load averages above), so times are inflated and noisy; "
        f"memory is not affected. New code: this checkout, `eval_block_size` = {block_size:,} elements (the default); "
        f"old code: `metrics.py` at {args.old_rev} (RandomItem: its users x items table).",
        "",
        f"Synthetic inputs: random unit embeddings, d = {args.dim}, one target per user, k shown items per user. "
        "Peak = the process's peak RSS while the metric ran: it includes torch and the libraries (about 0.7 GiB; "
        "1 GiB where RandomItem's package, which imports GenRec, is loaded too) and the inputs; (+ own) = the peak "
        "minus the RSS just before the metric, its own memory. Each (size, k, code) is a fresh subprocess running "
        "the metrics one after the other. A cell that was not run says why; one skipped for its work gives the new "
        "code's time extrapolated from its largest measured cell (work: similarities users x k x items, scores users "
        "x items, PersonalLift's draws users^2).",
        "",
        f"At {widest:,} catalog items the new code's largest peak RSS is {peak_at_widest:,.0f} MiB "
        f"({peak_at_widest / 1024:.1f} GiB, inputs and libraries included), under the 8 GiB target.",
        "",
    ]
    for metric in METRICS:
        lines += [f"## {metric}", "", "| items | users | k | new s | new peak MiB (+ own) | old s | old peak MiB (+ own) |",
                  "|---|---|---|---|---|---|---|"]
        for n_items, n_users, k in sizes:
            new, old = (find(items=n_items, users=n_users, k=k, code=code, metric=metric) for code in ("new", "old"))
            if new is None and old is None:
                continue
            lines.append(f"| {n_items:,} | {n_users:,} | {k} | " + " | ".join([*_cell(new, rates), *_cell(old, rates)]) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(rows, args, path):
    """log10 time and log10 peak memory against log10 catalog size and log10 users, at the smallest k."""
    k = min(args.shown)
    panels = []
    for axis, (fixed, at), label, chosen in (("items", ("users", args.base_users), "log10 catalog items", ("genrecall", "novelty", "randomitem")),
                                             ("users", ("items", args.base_items), "log10 users", ("genrecall", "personallift", "randomitem"))):
        for value, title in (("seconds", "log10 seconds"), ("peak_mib", "log10 peak RSS (MiB)")):
            series = {}
            for metric in chosen:
                for code in ("new", "old"):
                    points = sorted((r[axis], r[value]) for r in rows if r["metric"] == metric and r["code"] == code
                                    and r["k"] == k and r[fixed] == at and value in r)
                    if points:
                        series[f"{metric} {code}"] = ([math.log10(x) for x, _ in points], [math.log10(y) for _, y in points])
            panels.append(line_panel(series, f"{title}, {fixed} = {at:,}, k = {k}", label, size=(520, 300)))
    with atomic_file(path) as staging:
        sheet(panels).save(staging, format="PNG")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="*", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--users", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--base_users", type=int, default=10_000, help="users along the catalog axis")
    parser.add_argument("--base_items", type=int, default=10_000, help="items along the users axis")
    parser.add_argument("--corner", type=int, nargs=2, default=[1_000_000, 1_000_000], metavar=("ITEMS", "USERS"),
                        help="one more size; --corner 0 0 for none")
    parser.add_argument("--shown", type=int, nargs="+", default=[1, 4], help="k, shown items per user")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--metrics", nargs="+", choices=METRICS, default=METRICS)
    parser.add_argument("--lift_samples", type=int, default=100, help="personal_lift_samples (its default)")
    parser.add_argument("--eval_batch_size", type=int, default=4096, help="RecBole's: a full-sort batch holds this many scores")
    parser.add_argument("--old_rev", default="59c3228", help="git revision of the metrics before blocking")
    parser.add_argument("--old_max_gib", type=float, default=6.0, help="run the old code only where its matrices fit in this")
    parser.add_argument("--memory_limit_gib", type=float, default=14.0, help="address-space limit of each subprocess")
    parser.add_argument("--max_sims", type=float, default=1e10, help="most users x k x items similarities a cell computes at the smallest k")
    parser.add_argument("--max_sims_k", type=float, default=4e9, help="the same at the larger k")
    parser.add_argument("--max_scores", type=float, default=1e9, help="most users x items RandomItem scores a cell hashes")
    parser.add_argument("--max_lift_users", type=int, default=100_000, help="most users PersonalLift samples for")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per subprocess")
    parser.add_argument("--cache", default="saved/eval_scaling_rows.json", help="measured cells; a rerun measures only the others")
    parser.add_argument("--out", default=None, help="markdown file for the tables")
    parser.add_argument("--plot", default=None, help="png file for the log-log plot")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", choices=["new", "old"], help=argparse.SUPPRESS)
    parser.add_argument("--n_items", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--n_users", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--k", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    args.corner = args.corner if all(args.corner) else None
    cache = load_cache(args.cache)
    started, load = datetime.datetime.now(datetime.timezone.utc), os.getloadavg()[0]
    if measure(args, cache):
        cache["runs"].append({"command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python benchmarks/eval_scaling.py "
                                         + " ".join(sys.argv[1:]), "started": f"{started:%Y-%m-%d %H:%M}", "load": [load, os.getloadavg()[0]]})
        save_cache(cache, args.cache)
    text = report(cache, args)
    print(text)
    if args.out:
        with atomic_file(args.out) as staging, open(staging, "w") as f:
            f.write(text)
    if args.plot:
        plot(cache["rows"], args, args.plot)


if __name__ == "__main__":
    main()
