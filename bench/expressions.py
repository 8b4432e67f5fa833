"""Benchmark of the expression language: a lead-scoring expression over 100,000 records.

Compares Jimu's compiled closures with simpleeval re-parsing the text per record, simpleeval
parsing once, and Python's native ``eval`` of a compiled code object (the ceiling). Prints the
median evaluations per second of several runs and the ratios. Run by hand:

    python bench/expressions.py
"""
from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simpleeval  # noqa: E402

from engines.expressions import NUMBER, TEXT, EvalContext, FieldSig, compile_expression  # noqa: E402

TEXT_EXPR = ("(20 if source == 'website' else 0) + (30 if industry in ['manufacturing', 'retail'] else 0)"
             " + MIN(visits, 10) * 3")
RECORDS = 100_000
RUNS = 5


def make_records(n: int) -> list[dict]:
    rnd = random.Random(42)
    return [{"source": rnd.choice(["website", "referral", "ad", None]),
             "industry": rnd.choice(["manufacturing", "retail", "it", "finance"]),
             "visits": rnd.randint(0, 30)} for _ in range(n)]


def timed(label: str, run) -> tuple[str, float, object]:
    rates, result = [], None
    for _ in range(RUNS):
        start = time.perf_counter()
        result = run()
        rates.append(RECORDS / (time.perf_counter() - start))
    return label, statistics.median(rates), result


def main() -> None:
    records = make_records(RECORDS)
    env = {"source": FieldSig(TEXT), "industry": FieldSig(TEXT), "visits": FieldSig(NUMBER)}
    ctx = EvalContext(now=datetime.now(UTC), tz=ZoneInfo("Asia/Shanghai"))
    compiled = compile_expression(TEXT_EXPR, env, expect=NUMBER)

    def jimu():
        evaluate = compiled.evaluate
        return sum(evaluate(r, ctx) for r in records)

    reparse = simpleeval.EvalWithCompoundTypes(functions={"MIN": min})

    def simpleeval_reparse():
        total = 0
        for r in records:
            reparse.names = r
            total += reparse.eval(TEXT_EXPR)
        return total

    once = simpleeval.EvalWithCompoundTypes(functions={"MIN": min})
    parsed = once.parse(TEXT_EXPR)

    def simpleeval_parse_once():
        total = 0
        for r in records:
            once.names = r
            total += once.eval(TEXT_EXPR, previously_parsed=parsed)
        return total

    code = compile(TEXT_EXPR, "<expression>", "eval")
    globals_ = {"__builtins__": {}, "MIN": min}

    def native():
        return sum(eval(code, globals_, r) for r in records)  # noqa: S307 - the ceiling we compare with

    results = [timed("compiled closures", jimu), timed("simpleeval re-parse per call", simpleeval_reparse),
               timed("simpleeval parse once", simpleeval_parse_once), timed("native eval of a code object", native)]
    if len({r[2] for r in results}) != 1:
        raise SystemExit(f"engines disagree: {[r[2] for r in results]}")

    print(f"expression: {TEXT_EXPR}")
    print(f"{RECORDS:,} records, median of {RUNS} runs, Python {sys.version.split()[0]}, "
          f"simpleeval {metadata.version('simpleeval')}\n")
    for label, rate, _ in results:
        print(f"  {label:<32} {rate:>12,.0f} evals/s")
    rate = {label: r for label, r, _ in results}
    ours = rate["compiled closures"]
    print()
    print(f"  compiled / simpleeval re-parse  {ours / rate['simpleeval re-parse per call']:6.1f}x   (target >= 10x)")
    print(f"  compiled / simpleeval parse once {ours / rate['simpleeval parse once']:5.1f}x")
    print(f"  native / compiled               {rate['native eval of a code object'] / ours:6.2f}x   (target <= 4x)")


if __name__ == "__main__":
    main()
