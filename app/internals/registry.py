"""The shape of one library internal Vigil relies on, as the contract test checks it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: ``attribute``: set on instances (or the class); ``method``: called or overridden, with
#: ``params``; ``module_attribute``: a module-level name; ``routine``: a method whose body
#: Vigil copied or depends on, pinned by ``source_sha256`` (and ``params``).
Kind = Literal["attribute", "method", "module_attribute", "routine"]


@dataclass(frozen=True)
class Internal:
    """One private name of a pinned library, named once in the ``app.internals`` module ``home``.

    ``owner`` is ``"module:Class"`` (or ``"module"`` for a module attribute).
    """

    library: str
    owner: str
    name: str
    kind: Kind
    why: str
    home: str
    params: tuple[str, ...] = ()
    source_sha256: str = ""
    #: Public methods of ``owner`` whose source must still call this internal.
    called_from: tuple[str, ...] = ()

    def __str__(self) -> str:
        owner = self.owner.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
        return f"{self.library} {owner}.{self.name}"
