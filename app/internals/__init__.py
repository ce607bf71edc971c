"""Every private attribute, private hook and copied private routine of a pinned library.

Faust, mode, aiokafka, Faust's RocksDB store and asyncio keep some of what Vigil's fast paths
need private. Each such name is touched only here, once, behind an accessor function or a
hook class with a public name, and listed in its module's ``INTERNALS``. ``REGISTRY`` joins
them; ``tests/unit/app/internals/test_internals_contract.py`` checks each one on the pinned
versions, so a library upgrade fails there first, naming the module to revisit.
"""

from __future__ import annotations

from app.internals import (
    aiokafka_client,
    faust_channel,
    faust_consumer,
    faust_monitor,
    faust_tables,
    faust_transport,
)
from app.internals.registry import Internal

#: The modules that touch internals (each exports ``INTERNALS``).
MODULES = (
    aiokafka_client,
    faust_channel,
    faust_consumer,
    faust_monitor,
    faust_tables,
    faust_transport,
)
REGISTRY: tuple[Internal, ...] = tuple(entry for module in MODULES for entry in module.INTERNALS)

__all__ = ["MODULES", "REGISTRY", "Internal"]
