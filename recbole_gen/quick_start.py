"""Train and evaluate any RecBole or recbole_gen model, with generative metrics; no ray needed.

:func:`run` also runs one distributed over several processes (RecBole's DDP, see docs/distributed.md).
"""

import logging
import os
import sys
from logging import getLogger

import torch
import torch.multiprocessing as mp
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_environment, init_logger, init_seed, set_color

from recbole_gen.compat import load_checkpoint
from recbole_gen.config import Config
from recbole_gen.data.item_content import forget_item_content
from recbole_gen.fitting import rank_zero_first
from recbole_gen.trainer import get_trainer
from recbole_gen.utils import get_model


def format_result(result):
    """A two-column table of metric values, for logs and terminals."""
    width = max(len(name) for name in result)
    return "\n".join(f"  {name:<{width}}  {value:.4f}" for name, value in result.items())


def _start_logging(config):
    """RecBole's logger (a log file per process); the first process creates the log folders, which RecBole
    does check-then-create, a race between the processes of a distributed run."""
    with rank_zero_first():
        init_logger(config)


def build_model(config, dataset, checkpoint=None):
    """The model ``config`` names, on ``config["device"]``. With a ``checkpoint`` (as ``load_checkpoint``
    returns it), the model is built to receive its weights (a model class may define
    ``from_checkpoint(config, dataset, checkpoint)`` to skip fitting and pretrained loads) and loaded."""
    model_class = get_model(config["model"])
    start = getattr(model_class, "start_checkpoint", lambda config: None)(config)
    if checkpoint is None and start:
        checkpoint = load_start_checkpoint(config, start)
    if checkpoint is None:
        return model_class(config, dataset).to(config["device"])
    from_checkpoint = getattr(model_class, "from_checkpoint", None)
    model = from_checkpoint(config, dataset, checkpoint) if from_checkpoint else model_class(config, dataset)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"the checkpoint does not fit {config['model']} as configured (set the settings it was "
                         f"trained with: {checkpoint['config']['external']}): {err}") from err
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return model.to(config["device"])


def load_start_checkpoint(config, path):
    """The checkpoint a later training stage starts from (e.g. GenRec's ``rl_init_checkpoint``), checked to
    hold the same model on the same dataset."""
    checkpoint = load_checkpoint(path)
    saved = checkpoint["config"]
    if (saved["model"], saved["dataset"]) != (config["model"], config["dataset"]):
        raise ValueError(f"{path} is a {saved['model']} run on {saved['dataset']}, not {config['model']} on {config['dataset']}")
    getLogger().info(f"Starting from {path}")
    return checkpoint


def _train_and_test(config, train_data, valid_data, test_data, saved, verbose=True, resume=None):
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = build_model(config, train_data._dataset)
    logger = getLogger()
    logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"], config)(config, model)
    try:
        if resume:
            trainer.resume_checkpoint(resume)
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, verbose=verbose, saved=saved, show_progress=config["show_progress"]
        )
        test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    finally:  # RecBole leaves its tensorboard writer's thread running; a later write reopens it
        trainer.tensorboard.close()
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "trainer": trainer,
    }


def run_recbole_gen(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, resume=None):
    """Train ``model`` on ``dataset`` and test it, as ``recbole.quick_start.run_recbole`` does.

    ``resume``: the checkpoint (or its ``-resume.pth`` state) of an interrupted run of the same settings;
    training continues after its last validated epoch and ends as the uninterrupted run would.
    Returns a dict with ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``,
    ``test_result`` and the ``trainer`` (whose ``saved_model_file`` is the checkpoint).
    """
    forget_item_content()
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    _start_logging(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)

    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    result = _train_and_test(config, train_data, valid_data, test_data, saved, resume=resume)

    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    logger.info(set_color("best valid ", "yellow") + f": {result['best_valid_result']}")
    logger.info(set_color("test result", "yellow") + f":\n{format_result(result['test_result'])}")
    if not config["single_spec"]:  # Config joined the distributed run
        torch.distributed.destroy_process_group()
    return result


def run(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, resume=None,
        nproc=1, world_size=-1, ip="localhost", port=5678, offset=0):
    """:func:`run_recbole_gen`, in one process or distributed as RecBole's ``run``.

    ``nproc``: processes started on this machine, one per GPU of ``gpu_id`` (or on the CPU with gloo where
    there is no GPU or ``gpu_id`` is ''). ``world_size``: processes of the run on all machines (default
    ``nproc``); each machine runs this with its own ``nproc``, ``offset`` (the global rank of its first
    process) and the ``ip`` and free ``port`` of the machine with rank 0. A process started by torchrun joins
    torchrun's run instead (leave ``nproc`` etc. out). A distributed run returns, from its first process,
    run_recbole_gen's dict without the trainer and with the checkpoint path, ``saved_model_file``.
    """
    kwargs = {"model": model, "dataset": dataset, "config_file_list": config_file_list, "config_dict": dict(config_dict or {}),
              "saved": saved, "resume": resume}
    launched = torchrun_launch()
    if launched:
        if nproc != 1 or world_size > 0:
            raise ValueError(f"torchrun started this process as one of {launched['world_size']}: leave out nproc and world_size")
        kwargs["config_dict"].update(launched)
        return _without_trainer(run_recbole_gen(**kwargs))
    if nproc == 1 and world_size <= 0:
        return run_recbole_gen(**kwargs)
    kwargs["config_dict"].update(nproc=nproc, world_size=nproc if world_size <= 0 else world_size, ip=ip, port=port, offset=offset)
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_run_process, args=(queue, kwargs), nprocs=nproc, join=True)
    return None if queue.empty() else queue.get()


def torchrun_launch():
    """This process's place in a torchrun launch as RecBole's config keys, or None when torchrun did not start it."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return None
    local_rank = int(os.environ["LOCAL_RANK"])
    return {"local_rank": local_rank, "nproc": int(os.environ["LOCAL_WORLD_SIZE"]), "world_size": int(os.environ["WORLD_SIZE"]),
            "offset": int(os.environ["RANK"]) - local_rank, "ip": os.environ["MASTER_ADDR"], "port": int(os.environ["MASTER_PORT"])}


def _run_process(local_rank, queue, kwargs):
    result = run_recbole_gen(**{**kwargs, "config_dict": {**kwargs["config_dict"], "local_rank": local_rank}})
    if local_rank == 0:
        queue.put(_without_trainer(result))


def _without_trainer(result):
    """What another process can receive of run_recbole_gen's result: the trainer (a model) stays behind."""
    return {**{key: value for key, value in result.items() if key != "trainer"}, "saved_model_file": result["trainer"].saved_model_file}


def objective_function(config_dict=None, config_file_list=None, saved=True):
    """The objective for hyper-parameter search (e.g. RecBole's HyperTuning): train, validate, test."""
    forget_item_content()
    # Not the command line: a search's trial values must win, and a ray worker's argv holds ray's own flags.
    config = Config(config_dict=config_dict, config_file_list=config_file_list, read_command_line=False)
    init_seed(config["seed"], config["reproducibility"])
    logging.basicConfig(level=logging.ERROR)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    result = _train_and_test(config, train_data, valid_data, test_data, saved, verbose=False)
    result.pop("trainer")
    return {"model": config["model"], **result}


def load_data_and_model(model_file, overrides=None):
    """Rebuild the config, dataset, dataloaders and trained model from a recbole_gen checkpoint.

    Nothing in the checkpoint is evaluated and the command line is not read; ``overrides`` (a dict of
    settings, e.g. ``{"use_gpu": False}``) win over the checkpoint's. Returns ``(config, model, dataset,
    train_data, valid_data, test_data)``, as RecBole's does.
    """
    forget_item_content()
    checkpoint = load_checkpoint(model_file)
    config = Config.from_checkpoint(checkpoint["config"], overrides)
    init_seed(config["seed"], config["reproducibility"])
    _start_logging(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = build_model(config, train_data._dataset, checkpoint)
    return config, model, dataset, train_data, valid_data, test_data
