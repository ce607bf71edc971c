"""The rules and lists a worker serves, re-read when their files change (no restart).

:meth:`AmlRuntime.poll` (called by a Faust timer every ``VIGIL_LISTS_RELOAD_S``) compares each
file's modification time and size with what was loaded; a changed file is loaded and checked
in full, then swapped in with one attribute assignment, so a micro-batch sees either the old
or the new version, never a mix. A broken file keeps the previous version and logs an error
naming the file, the rule or entry, and the field (once per bad version of the file, and
counted by the caller's ``on_reload``). At start a broken file is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from models.aml.engine import FanInEngine, RuleEngine
from models.aml.lists import IdList, Lists, Suppression, load_id_list, load_suppressions
from models.aml.rulebook import Rulebook, RulebookError, load_rulebook, short_repr
from models.artifact import Stamp, file_stamp

log = logging.getLogger(__name__)
T = TypeVar("T")


class Watched(Generic[T]):
    """A value loaded from a file, reloaded by :meth:`poll` when the file changes.

    A version of the file that cannot be loaded (or the file gone) is reported once, by one
    ERROR line and one call of ``on_reload(name, False)``, not at every poll; the last good
    value stays in place until a new version loads, which calls ``on_reload(name, True)``.
    :attr:`refusing` tells whether the file on disk is one the worker refused.
    """

    def __init__(
        self,
        name: str,
        path: Path | None,
        loader: Callable[[Path], T],
        empty: T,
        on_reload: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self._loader = loader
        self._on_reload = on_reload
        self.value = empty
        self._stamp: Stamp | None = None
        self._failed_stamp: Stamp | None = None
        self._gone = False
        if path is not None:
            self._stamp = file_stamp(path)
            self.value = loader(path)  # raises at start: a broken file is an error

    def poll(self) -> bool:
        """Reload if the file changed; return whether a new version was swapped in."""
        if self.path is None:
            return False
        stamp = file_stamp(self.path)
        if stamp is None:
            if not self._gone:
                self._gone = True
                self._failed(f"{self.path}: file is gone or cannot be read")
            return False
        if self._gone:
            self._gone = False
            if stamp == self._stamp:  # the served version is back
                self._report(True)
                return False
        if stamp == self._stamp or stamp == self._failed_stamp:
            return False
        try:
            value = self._loader(self.path)
        except RulebookError as exc:
            self._failed_stamp = stamp
            self._failed(str(exc))
            return False
        except Exception as exc:  # a loader bug must not stop every worker polling the file
            self._failed_stamp = stamp
            self._failed(f"{self.path}: {type(exc).__name__}: {short_repr(str(exc))}")
            return False
        self.value = value
        self._stamp = stamp
        self._failed_stamp = None
        log.info("AML %s file reloaded: %s", self.name, self.path)
        self._report(True)
        return True

    @property
    def refusing(self) -> bool:
        """Tell whether the file on disk is gone or a version that could not be loaded."""
        return self._gone or self._failed_stamp is not None

    def _failed(self, problem: str) -> None:
        log.error("AML %s file not reloaded, keeping the previous version: %s", self.name, problem)
        self._report(False)

    def _report(self, loaded: bool) -> None:
        if self._on_reload is not None:
            self._on_reload(self.name, loaded)


@dataclass(frozen=True, slots=True)
class AmlSnapshot:
    """Everything a micro-batch needs, consistent: swapped as a whole on reload."""

    engine: RuleEngine
    fanin: FanInEngine
    lists: Lists

    @classmethod
    def of(cls, rulebook: Rulebook, lists: Lists | None = None) -> AmlSnapshot:
        """Build a snapshot from a rulebook (and lists), e.g. for a backtest."""
        return cls(RuleEngine(rulebook), FanInEngine(rulebook), lists or Lists())


class AmlRuntime:
    """The worker's rules and lists, with reload on change."""

    def __init__(
        self,
        rules_path: Path,
        allowlist_path: Path | None = None,
        denylist_path: Path | None = None,
        suppressions_path: Path | None = None,
        on_reload: Callable[[str, bool], None] | None = None,
    ) -> None:
        fail = on_reload
        self._rules = Watched("rules", rules_path, load_rulebook, Rulebook(), fail)
        self._allow = Watched("allowlist", allowlist_path, load_id_list, IdList(), fail)
        empty_deny = IdList()
        self._deny = Watched("denylist", denylist_path, load_id_list, empty_deny, fail)
        no_sup: dict[str, Suppression] = {}
        self._sup = Watched("suppressions", suppressions_path, load_suppressions, no_sup, fail)
        self.snapshot = self._build(rebuild_rules=True)
        log.info(
            "AML rules loaded from %s: %s",
            rules_path,
            ", ".join(r.id for r in self._rules.value.rules),
        )

    @classmethod
    def from_settings(
        cls, settings: Any, on_reload: Callable[[str, bool], None] | None = None
    ) -> AmlRuntime:
        """Load the files named in ``app.settings.Settings`` (not imported: it pulls in Faust).

        ``on_reload(kind, False)`` is called once per version of a file that cannot be
        loaded on reload, ``on_reload(kind, True)`` when a new version loads (``kind``:
        rules, allowlist, denylist or suppressions).
        """
        return cls(
            settings.rules_path,
            settings.allowlist_path,
            settings.denylist_path,
            settings.suppressions_path,
            on_reload,
        )

    def _build(self, rebuild_rules: bool) -> AmlSnapshot:
        lists = Lists(self._allow.value, self._deny.value, self._sup.value)
        if rebuild_rules:
            return AmlSnapshot.of(self._rules.value, lists)
        old = self.snapshot
        return AmlSnapshot(old.engine, old.fanin, lists)

    def poll(self) -> bool:
        """Reload changed files; return whether the snapshot changed."""
        rules = self._rules.poll()
        lists = [w.poll() for w in (self._allow, self._deny, self._sup)]
        if rules or any(lists):
            self.snapshot = self._build(rebuild_rules=rules)
            return True
        return False

    def describe(self) -> dict[str, Any]:
        """Return a summary for logs and views."""
        snap = self.snapshot
        return {
            "rules": [r.id for r in snap.engine.rulebook.rules],
            "allow": len(snap.lists.allow.accounts) + len(snap.lists.allow.counterparties),
            "deny": len(snap.lists.deny.accounts) + len(snap.lists.deny.counterparties),
            "suppressions": len(snap.lists.suppressions),
        }
