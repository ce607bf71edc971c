"""Count the inputs that make ``TransactionPipeline.process`` raise (not a test; a census).

``python -m tests.unit.fuzz_census MODEL --examples N --per-example K`` draws N lists of K
messages from the property test's strategies (deterministically), processes each message as
its own batch through one pipeline per list, and prints how many inputs raised, by exception
class. Short lists keep hypothesis from discarding oversized examples.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.fuzz_strategies import MESSAGES
from tests.unit.pipeline_support import Message, make_pipeline


def census(model_path: Path, examples: int, per_example: int = 10) -> tuple[int, Counter[str]]:
    """Return the number of inputs processed and the exceptions raised, by class."""
    crashes: Counter[str] = Counter()
    total = 0

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(values=st.lists(MESSAGES, min_size=per_example, max_size=per_example))
    def draw(values: list[bytes]) -> None:
        nonlocal total
        pipeline, _, _ = make_pipeline(model_path)
        topic = pipeline.settings.topic_repartition

        async def go() -> None:
            nonlocal total
            for offset, value in enumerate(values):
                total += 1
                try:
                    await pipeline.process([Message(topic, offset % 4, offset, None, value)])
                except Exception as exc:
                    crashes[type(exc).__name__] += 1

        asyncio.run(go())

    draw()
    return total, crashes


def main() -> None:
    """Print the census of one run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path, help="a trained model artifact")
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--per-example", type=int, default=10)
    args = parser.parse_args()
    total, crashes = census(args.model, args.examples, args.per_example)
    print(f"inputs: {total}, raised: {sum(crashes.values())}")
    for name, n in crashes.most_common():
        print(f"  {name}: {n}")


if __name__ == "__main__":
    main()
