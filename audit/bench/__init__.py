"""The guidance-curve benchmark: sample a generator along guidance schedules x scales, score every cell
with one feature pass, and conclude (Pareto front, paired differences to static, verdict).

``from audit.bench import BenchConfig, run_bench``.
"""

from audit.bench.config import BenchConfig, parse_schedule
from audit.bench.run import run_bench

__all__ = ["BenchConfig", "parse_schedule", "run_bench"]
