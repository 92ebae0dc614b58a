"""Register the generative metrics into RecBole's metric registry, in place.

RecBole's Config, Register and Evaluator imported the registry's dicts by name, so the metrics are
added to those same objects; RecBole's own metrics are untouched.
"""

from recbole.evaluator import register as recbole_register

from recbole_gen.evaluator.metrics import GENERATIVE_METRICS


def register_generative_metrics():
    for metric in GENERATIVE_METRICS:
        name = metric.__name__.lower()
        recbole_register.metrics_dict[name] = metric
        recbole_register.metric_information[name] = metric.metric_need
        recbole_register.metric_types[name] = metric.metric_type
        if metric.smaller and name not in recbole_register.smaller_metrics:
            recbole_register.smaller_metrics.append(name)
