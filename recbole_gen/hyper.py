"""Hyper-parameter search for any RecBole or recbole_gen model, choosing by the validation score.

    python -m recbole_gen.hyper --model GenRec --dataset ml-100k --space properties/hyper/GenRec.yaml \
        --algo random --max_evals 8 [--tool hyperopt|ray] [--output FILE] [--config_files a.yaml b.yaml] [--epochs=2]

The search space is a YAML file, one entry per setting (docs/hyper_search.md)::

    learning_rate: {loguniform: [0.0001, 0.01]}   # the bounds themselves, not their logs
    gen_top_k: {choice: [10, 20, 50]}
    guidance_scale: {uniform: [1.0, 3.0]}
    gen_hidden_size: {quniform: [64, 256, 64]}    # integer bounds and step: integer values

It is read with a safe YAML loader, checked (:func:`load_space`) and handed to RecBole's ``HyperTuning``
as a ``params_dict``, whose path builds hyperopt expressions without evaluating anything (its
``params_file`` path calls ``eval`` on the file's text, so it is never used). Each trial is
:func:`recbole_gen.quick_start.objective_function` with the trial's values over the fixed settings; the
search minimises or maximises ``best_valid_score`` (the ``valid_metric`` on the validation split). The
test result each trial reports is written beside it, labelled, and never used to choose.

``--tool ray`` runs the same trials as ray tune trials (random: tune's own sampling; exhaustive: a grid;
bayes: ray's ``HyperOptSearch`` over the same hyperopt space). Both tools write the same result file,
after every trial, atomically.
"""

import argparse
import difflib
import importlib
import json
import math
import os

import numpy as np
import yaml
from recbole.trainer import HyperTuning

from recbole_gen.config import Config, SafeYamlLoader, known_keys, literal
from recbole_gen.fitting import atomic_file
from recbole_gen.quick_start import objective_function

SPACE_KINDS = {
    "choice": "{choice: [value, ...]} (a non-empty list)",
    "uniform": "{uniform: [low, high]}",
    "loguniform": "{loguniform: [low, high]} with 0 < low (the bounds themselves, not their logs)",
    "quniform": "{quniform: [low, high, q]} with q > 0 (integer bounds and q give integer values)",
}
ALGOS = ("exhaustive", "random", "bayes")
TOOLS = ("hyperopt", "ray")
TEST_KEY = "test_result_not_used_for_selection"


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_param(name, spec, source):
    accepted = "; ".join(SPACE_KINDS.values())
    where = f"{source}: parameter '{name}'"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SPACE_KINDS:
        raise ValueError(f"{where} is {spec!r}; accepted: {accepted}")
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ValueError(f"{where}: choice needs a non-empty list of values, got {args!r}")
        return
    size = 3 if kind == "quniform" else 2
    if not isinstance(args, list) or len(args) != size or not all(_is_number(arg) for arg in args):
        raise ValueError(f"{where}: {kind} needs {size} numbers, as {SPACE_KINDS[kind]}; got {args!r}")
    low, high = args[:2]
    if not low < high:
        raise ValueError(f"{where}: {kind} needs low < high, got {args!r}")
    if kind == "loguniform" and low <= 0:
        raise ValueError(f"{where}: loguniform needs 0 < low (the bounds are values, not logs), got {args!r}")
    if kind == "quniform" and args[2] <= 0:
        raise ValueError(f"{where}: quniform needs a step q > 0, got {args!r}")


def parse_space(raw, source="the search space"):
    """The checked search space ``{name: {kind: args}}`` of a mapping read from YAML (``source`` names it in
    errors). Values stay the plain YAML values they are: a string is never evaluated."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{source}: a search space is a non-empty mapping of setting names to "
                         f"one of {'; '.join(SPACE_KINDS.values())}; got {raw!r}")
    for name, spec in raw.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{source}: parameter names are setting names (strings), got {name!r}")
        _check_param(name, spec, source)
    return raw


def load_space(path):
    """The checked search space in the YAML file ``path`` (see :func:`parse_space`)."""
    with open(path, encoding="utf-8") as f:
        try:
            raw = yaml.load(f, Loader=SafeYamlLoader)
        except yaml.YAMLError as err:
            raise ValueError(f"search space {path}: not plain YAML (tags that build Python objects are refused): {err}") from None
    return parse_space(raw, source=f"search space {path}")


def _integer_steps(args):
    return all(isinstance(arg, int) for arg in args)


def typed_params(params, space):
    """A trial's values as settings: hyperopt and ray draw quniform values as floats (64.0), which an
    integer setting such as gen_hidden_size refuses, so integer steps give ints."""
    typed = dict(params)
    for name, spec in space.items():
        if "quniform" in spec and _integer_steps(spec["quniform"]):
            typed[name] = int(round(typed[name]))
    return typed


def hyperopt_params(space):
    """The space as HyperTuning's ``params_dict`` ({kind: {name: args}}); hyperopt's loguniform takes the
    logs of the bounds."""
    params = {}
    for name, spec in space.items():
        kind, args = next(iter(spec.items()))
        params.setdefault(kind, {})[name] = [math.log(arg) for arg in args] if kind == "loguniform" else list(args)
    return params


def space_size(space, algo):
    """The number of combinations an exhaustive search runs (every parameter must be a choice)."""
    ranged = sorted(name for name, spec in space.items() if "choice" not in spec)
    if ranged:
        raise ValueError(f"--algo {algo} tries every combination and needs a choice for every parameter; "
                         f"{ranged} are ranges: use --algo random or bayes, or list their values as choices")
    return math.prod(len(spec["choice"]) for spec in space.values())


def _representatives(spec):
    """The values of a parameter a preflight config is built with: every choice, or both bounds."""
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        return args
    if kind == "quniform" and _integer_steps(args):
        return [int(args[0]), int(args[1])]
    return args[:2]


def preflight(model, dataset, fixed, config_file_list, space):
    """The config of the fixed settings, after checking that every searched name is a setting and every
    value (each choice, both bounds of a range) builds a valid config, before anything trains."""
    base = {**fixed, **({"model": model} if model else {}), **({"dataset": dataset} if dataset else {})}
    config = Config(config_dict=base, config_file_list=config_file_list, read_command_line=False)
    known = known_keys() | set(config.internal_config_dict)
    for name in space:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"search space parameter '{name}' is not a RecBole or recbole_gen setting{hint}")
    for name, spec in space.items():
        for value in _representatives(spec):
            try:
                Config(config_dict={**base, name: value}, config_file_list=config_file_list, read_command_line=False)
            except (TypeError, ValueError, KeyError, NotImplementedError) as err:
                raise ValueError(f"search space parameter '{name}' = {value!r} is not a valid setting: {err}") from err
    return config


def run_trial(params, base_config, config_file_list, space):
    """One trial: train with ``params`` over ``base_config``, validate, test (objective_function's result)."""
    return objective_function({**base_config, **typed_params(params, space)}, config_file_list)


def trial_record(number, params, result):
    return {"trial": number, "params": params, "valid_score": result["best_valid_score"],
            "best_valid_result": dict(result["best_valid_result"]), TEST_KEY: dict(result["test_result"])}


def best_trial(records, bigger):
    """The record with the best validation score. Chosen here because HyperTuning's own best treats a
    score of 0 as none yet (``if not self.best_score``)."""
    if not records:
        return None
    choose = max if bigger else min
    return choose(records, key=lambda record: record["valid_score"])


class SearchLog:
    """The result file: the search's settings, every finished trial (its parameters, validation score and
    result, and the test result objective_function reported, labelled), failures and the best trial,
    rewritten atomically after each trial so an interrupted search keeps what it finished."""

    def __init__(self, path, header, space, bigger):
        self.path, self.header, self.space, self.bigger = path, header, space, bigger
        self.trials, self.failed = [], []

    def add(self, params, result):
        self.trials.append(trial_record(len(self.trials) + len(self.failed) + 1, typed_params(params, self.space), result))
        self.write(finished=False)

    def add_failure(self, params, error):
        self.failed.append({"trial": len(self.trials) + len(self.failed) + 1,
                            "params": typed_params(params, self.space), "error": error})
        self.write(finished=False)

    def write(self, finished):
        best = best_trial(self.trials, self.bigger)
        content = {**self.header, "finished": finished, "trials": self.trials, "failed": self.failed,
                   "best": best and {key: best[key] for key in ("trial", "params", "valid_score")}}
        with atomic_file(self.path) as staging, open(staging, "w", encoding="utf-8") as f:
            json.dump(content, f, indent=2)
        return content


def format_trials(result):
    """A table of a search's trials (as :func:`hyper_search` returns them), the best marked."""
    best = (result["best"] or {}).get("trial")
    lines = [f"{'':2}{'trial':>5}  {result['valid_metric'] + ' (valid)':>18}  params"]
    for record in result["trials"]:
        mark = "*" if record["trial"] == best else ""
        lines.append(f"{mark:2}{record['trial']:>5}  {record['valid_score']:>18.4f}  {record['params']}")
    lines += [f"  {failure['trial']:>5}  {'failed':>18}  {failure['params']}" for failure in result["failed"]]
    return "\n".join(lines)


class RecordingObjective:
    """The objective HyperTuning calls with ``(params, fixed_config_file_list)``: one trial, recorded."""

    def __init__(self, log, base_config, space):
        self.log, self.base_config, self.space = log, base_config, space

    def __call__(self, params, config_file_list=None):
        try:
            result = run_trial(params, self.base_config, config_file_list, self.space)
        except Exception as err:
            self.log.add_failure(params, f"{type(err).__name__}: {err}")
            raise
        self.log.add(params, result)
        return result


def _require(modules, option):
    """Fail before anything trains when ``option`` cannot import what it needs."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise RuntimeError(f"{option} needs {module}, which cannot be imported ({err}): "
                               "pip install -e '.[hyper]' (see docs/hyper_search.md)") from err


class SeededHyperTuning(HyperTuning):
    """RecBole's HyperTuning, whose ``run`` draws trials from an unseeded generator, seeded."""

    def __init__(self, *args, seed, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed

    def run(self):
        from hyperopt import fmin

        fmin(self.trial, self.space, algo=self.algo, max_evals=self.max_evals, early_stop_fn=self.early_stop_fn,
             rstate=np.random.RandomState(self.seed))


def search_hyperopt(log, base_config, config_file_list, space, algo, max_evals, seed, early_stop):
    _require(["hyperopt"], "--tool hyperopt")  # HyperTuning imports it lazily
    tuning = SeededHyperTuning(RecordingObjective(log, base_config, space), params_dict=hyperopt_params(space),
                               fixed_config_file_list=config_file_list, algo=algo, max_evals=max_evals,
                               early_stop=early_stop or max_evals, seed=seed)
    tuning.run()


def _ray_trial(params, base_config, config_file_list, space):
    """A ray tune function trainable: its returned dict is the trial's one (final) result."""
    result = run_trial(params, base_config, config_file_list, space)
    return {"valid_score": result["best_valid_score"], "best_valid_result": dict(result["best_valid_result"]),
            "test_result": dict(result["test_result"])}


def tune_space(space, algo):
    from ray import tune

    def domain(spec):
        kind, args = next(iter(spec.items()))
        if kind == "choice":
            return tune.grid_search(args) if algo == "exhaustive" else tune.choice(args)
        return {"uniform": tune.uniform, "loguniform": tune.loguniform, "quniform": tune.quniform}[kind](*args)

    return {name: domain(spec) for name, spec in space.items()}


def search_ray(log, base_config, config_file_list, space, algo, max_evals, seed, gpus_per_trial):
    # ray 2.6.3's tune.run reads its results back with pyarrow, only after every trial has run.
    _require(["ray.tune", "pyarrow", "hyperopt" if algo == "bayes" else "ray"], "--tool ray")
    import ray
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    mode = "max" if log.bigger else "min"
    if algo == "bayes":
        from ray.tune.search.hyperopt import HyperOptSearch

        search_alg = HyperOptSearch(HyperTuning._build_space_from_dict(hyperopt_params(space)), metric="valid_score",
                                    mode=mode, random_state_seed=seed)
        config, num_samples = None, max_evals
    else:
        search_alg = BasicVariantGenerator(random_state=seed)
        config, num_samples = tune_space(space, algo), 1 if algo == "exhaustive" else max_evals
    # Workers import the recbole_gen this process runs, not another installed copy ray's own path would find first.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pythonpath = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    ray.init(include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": pythonpath}})
    try:
        analysis = tune.run(
            tune.with_parameters(_ray_trial, base_config=base_config, config_file_list=config_file_list, space=space),
            config=config, num_samples=num_samples, search_alg=search_alg, metric="valid_score", mode=mode,
            resources_per_trial={"cpu": 1, "gpu": gpus_per_trial},
            storage_path=os.path.join(os.path.dirname(os.path.abspath(log.path)), "ray_results"),
            # Relative paths in the settings (data_path, saved/) are from where the search started.
            chdir_to_trial_dir=False, raise_on_failed_trial=False, verbose=1,
        )
    finally:
        ray.shutdown()
    for trial in analysis.trials:
        if trial.status == "TERMINATED" and "valid_score" in (trial.last_result or {}):
            result = trial.last_result
            log.add(trial.config, {"best_valid_score": result["valid_score"], "best_valid_result": result["best_valid_result"],
                                   "test_result": result["test_result"]})
        else:
            log.add_failure(trial.config, f"ray trial {trial.trial_id} ended {trial.status}; see {trial.error_file}")
    if log.failed:
        log.write(finished=True)
        raise RuntimeError(f"{len(log.failed)} of {len(analysis.trials)} ray trials failed; see {log.path}")


def hyper_search(space, model=None, dataset=None, fixed=None, config_file_list=None, algo="random", max_evals=None,
                 tool="hyperopt", output=None, seed=2020, early_stop=None, space_file=None):
    """Search ``space`` (see :func:`parse_space`) for the settings with the best validation score.

    ``fixed``: settings every trial shares; ``algo``: exhaustive (every combination of choices), random or
    bayes (hyperopt's TPE); ``max_evals``: trials (exhaustive: at most the number of combinations, which
    is the default); ``seed``: the search's own seed (trials train with the config's ``seed``);
    ``early_stop``: stop after this many trials without improvement (hyperopt only; default: never).
    Writes ``output`` (default ``<checkpoint_dir>/hyper-<model>-<dataset>-<algo>.json``); returns its path
    and its content.
    """
    if algo not in ALGOS:
        raise ValueError(f"--algo must be one of {ALGOS}, got {algo!r}")
    if tool not in TOOLS:
        raise ValueError(f"--tool must be one of {TOOLS}, got {tool!r}")
    fixed = dict(fixed or {})
    both = sorted(set(fixed) & set(space))
    if both:
        raise ValueError(f"{both} are both searched (in the space) and fixed (--key=value or fixed): remove one")
    if algo == "exhaustive":
        size = space_size(space, algo)
        if max_evals is not None and max_evals < size:
            raise ValueError(f"--algo exhaustive runs all {size} combinations; --max_evals {max_evals} would cut it "
                             "short at random: use --algo random for a sample")
        max_evals = size
    elif not isinstance(max_evals, int) or max_evals < 1:
        raise ValueError(f"--algo {algo} needs --max_evals N (N >= 1 trials), got {max_evals!r}")
    config = preflight(model, dataset, fixed, config_file_list, space)
    base_config = {**fixed, "model": config["model"], "dataset": config["dataset"]}
    output = output or os.path.join(config["checkpoint_dir"], f"hyper-{config['model']}-{config['dataset']}-{algo}.json")
    header = {"model": config["model"], "dataset": config["dataset"], "tool": tool, "algo": algo, "max_evals": max_evals,
              "search_seed": seed, "space_file": space_file, "space": space, "fixed": fixed,
              "config_files": config_file_list, "valid_metric": config["valid_metric"],
              "valid_score_bigger": config["valid_metric_bigger"],
              "selection": f"best = the trial with the {'highest' if config['valid_metric_bigger'] else 'lowest'} "
                           f"validation {config['valid_metric']}; {TEST_KEY} is what objective_function reported "
                           "and is never used to choose"}
    log = SearchLog(output, header, space, config["valid_metric_bigger"])
    if tool == "hyperopt":
        search_hyperopt(log, base_config, config_file_list, space, algo, max_evals, seed, early_stop)
    else:
        if early_stop:
            raise ValueError("--early_stop is a hyperopt option; ray tune runs every trial")
        gpus = 1 if config["device"].type == "cuda" else 0
        search_ray(log, base_config, config_file_list, space, algo, max_evals, seed, gpus)
    return output, log.write(finished=True)


def parse_overrides(args):
    """``--key=value`` arguments as settings (values read as Config reads them: literals, never code)."""
    overrides = {}
    for arg in args:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not key or not sep:
            raise ValueError(f"unrecognised argument {arg!r}: settings are given as --key=value")
        overrides[key] = literal(value)
    return overrides


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--model", "-m", default=None, help="model name (RecBole or recbole_gen)")
    parser.add_argument("--dataset", "-d", default=None, help="dataset name")
    parser.add_argument("--space", required=True, help="search space YAML file (docs/hyper_search.md)")
    parser.add_argument("--algo", choices=ALGOS, default="random")
    parser.add_argument("--max_evals", type=int, default=None, help="number of trials (exhaustive: every combination)")
    parser.add_argument("--tool", choices=TOOLS, default="hyperopt")
    parser.add_argument("--output", default=None, help="result JSON (default <checkpoint_dir>/hyper-MODEL-DATASET-ALGO.json)")
    parser.add_argument("--config_files", nargs="+", default=None, help="config files every trial uses")
    parser.add_argument("--search_seed", type=int, default=2020, help="the search's own seed (trials use the config's seed)")
    parser.add_argument("--early_stop", type=int, default=None, help="hyperopt: stop after N trials without improvement")
    args, rest = parser.parse_known_args(argv)
    try:
        fixed = parse_overrides(rest)
    except ValueError as err:
        parser.error(str(err))
    output, result = hyper_search(load_space(args.space), args.model, args.dataset, fixed, args.config_files, args.algo,
                                  args.max_evals, args.tool, args.output, args.search_seed, args.early_stop, args.space)
    print(format_trials(result))
    best = result["best"]
    print(f"best trial {best['trial']}: {best['params']} (validation {result['valid_metric']} {best['valid_score']:.4f}); "
          f"every trial in {output}")


if __name__ == "__main__":
    main()
