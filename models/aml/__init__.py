"""AML typology rules, allow / deny lists and suppressions, beside the model (pure code).

No Faust here: the streaming agents and the offline backtest call the same functions with the
state passed in, one transaction at a time in event-time order.

* :class:`RuleEngine` evaluates the account-keyed rules:
  ``engine.evaluate(aml_state, tx, features, replay) -> (hits, new_aml_state)``.
* :class:`FanInEngine` evaluates the counterparty-keyed rules (fan-in):
  ``fanin.evaluate(cp_state, tx, replay) -> (hits, new_cp_state)``.
* :class:`Lists` gives the allow / deny / suppression verdict of a transaction and
  :func:`decide` turns the model tier, the hits and that verdict into the final tier, the
  ``rules`` of the records and whether an alert goes out.
* :func:`evaluate_offline` does all of that for one transaction in one call (backtests), and
  :class:`AmlRuntime` reloads the rules and list files when they change (workers).
"""

from models.aml.engine import FanInEngine, RuleEngine
from models.aml.lists import Lists, ListVerdict, decide
from models.aml.rulebook import Rule, Rulebook, RulebookError, RuleHit, load_rulebook
from models.aml.runtime import AmlRuntime, AmlSnapshot
from models.aml.stage import evaluate_offline

__all__ = [
    "AmlRuntime",
    "AmlSnapshot",
    "FanInEngine",
    "ListVerdict",
    "Lists",
    "Rule",
    "RuleEngine",
    "RuleHit",
    "Rulebook",
    "RulebookError",
    "decide",
    "evaluate_offline",
    "load_rulebook",
]
