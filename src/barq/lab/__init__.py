"""The strategy lab (issue 15): live experiments, ``strategy=auto``, replay, report.

Sans-IO where it can be: assignment (:mod:`.experiments`), statistics (:mod:`.stats`),
the bandit (:mod:`.bandit`), the experiments report (:mod:`.summary`), replay scoring
(:mod:`.replay`) and the charts (:mod:`.report`) work on records read from the store by
:mod:`barq.store._lab`. The plugin and the ``barq`` tools only feed them.
"""

from barq.lab.bandit import AUTO, AutoChoice, BanditConfig, choose_auto
from barq.lab.experiments import Experiment, assign, bucket_of, parse_experiments
from barq.lab.stats import compare, summarize, wilson
from barq.lab.summary import experiments_report, format_report

__all__ = [
    "AUTO",
    "AutoChoice",
    "BanditConfig",
    "Experiment",
    "assign",
    "bucket_of",
    "choose_auto",
    "compare",
    "experiments_report",
    "format_report",
    "parse_experiments",
    "summarize",
    "wilson",
]
