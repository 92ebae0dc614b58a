"""Train and evaluate any RecBole or recbole_gen model, with generative metrics; no ray needed."""

import logging
import sys
from logging import getLogger

from recbole.data import create_dataset, data_preparation
from recbole.utils import get_environment, init_logger, init_seed, set_color

from recbole_gen.compat import load_checkpoint
from recbole_gen.config import Config
from recbole_gen.utils import get_model, get_trainer


def format_result(result):
    """A two-column table of metric values, for logs and terminals."""
    width = max(len(name) for name in result)
    return "\n".join(f"  {name:<{width}}  {value:.4f}" for name, value in result.items())


def _train_and_test(config, train_data, valid_data, test_data, saved, verbose=True):
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger = getLogger()
    logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, verbose=verbose, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "trainer": trainer,
    }


def run_recbole_gen(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True):
    """Train ``model`` on ``dataset`` and test it, as ``recbole.quick_start.run_recbole`` does.

    Returns a dict with ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``,
    ``test_result`` and the ``trainer`` (whose ``saved_model_file`` is the checkpoint).
    """
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)

    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    result = _train_and_test(config, train_data, valid_data, test_data, saved)

    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    logger.info(set_color("best valid ", "yellow") + f": {result['best_valid_result']}")
    logger.info(set_color("test result", "yellow") + f":\n{format_result(result['test_result'])}")
    return result


def objective_function(config_dict=None, config_file_list=None, saved=True):
    """The objective for hyper-parameter search (e.g. RecBole's HyperTuning): train, validate, test."""
    config = Config(config_dict=config_dict, config_file_list=config_file_list)
    init_seed(config["seed"], config["reproducibility"])
    logging.basicConfig(level=logging.ERROR)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    result = _train_and_test(config, train_data, valid_data, test_data, saved, verbose=False)
    result.pop("trainer")
    return {"model": config["model"], **result}


def load_data_and_model(model_file):
    """Rebuild the config, dataset, dataloaders and trained model from a recbole_gen checkpoint.

    Returns ``(config, model, dataset, train_data, valid_data, test_data)``, as RecBole's does.
    """
    checkpoint = load_checkpoint(model_file)
    saved = checkpoint["config"]
    config = Config(model=saved["model"], dataset=saved["dataset"], config_dict=saved["config_dict"])
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    return config, model, dataset, train_data, valid_data, test_data
