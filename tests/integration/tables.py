"""Read a stopped worker's RocksDB account tables straight from its data directory."""

from __future__ import annotations

from pathlib import Path

from rocksdict import AccessType, Options, Rdict

from models.features import AccountState

FAUST_OFFSET_KEY = b"__faust\x00offset__"


def read_accounts(data_dir: Path) -> dict[str, AccountState]:
    """Return every account state found in ``data_dir``'s accounts-*.db partitions."""
    states: dict[str, AccountState] = {}
    for db_path in sorted((data_dir / "v1" / "tables").glob("accounts-*.db")):
        db = Rdict(str(db_path), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            for key, value in db.items():
                assert isinstance(key, bytes) and isinstance(value, bytes)
                if key == FAUST_OFFSET_KEY:
                    continue
                account = key.decode()
                assert account not in states, f"{account} is in two partitions"
                states[account] = AccountState.from_bytes(value)
        finally:
            db.close()
    return states
