"""Turn pytest-benchmark's JSON into the markdown table `make bench` writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(report: dict) -> str:
    machine = report.get("machine_info", {})
    processor = machine.get("processor") or machine.get("machine", "?")
    cpus = machine.get("cpu", {}).get("count", "?")
    lines = [
        f"Benchmarks on {processor}, {cpus} CPUs, Python {machine.get('python_version', '?')}",
        "",
        "| benchmark | mean (ms) | min (ms) | stddev (ms) | rounds | extra |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for bench in report["benchmarks"]:
        stats = bench["stats"]
        extra = ", ".join(f"{k}={_short(v)}" for k, v in bench.get("extra_info", {}).items())
        lines.append(
            f"| {bench['name']} | {1e3 * stats['mean']:.1f} | {1e3 * stats['min']:.1f} | "
            f"{1e3 * stats['stddev']:.1f} | {stats['rounds']} | {extra} |"
        )
    return "\n".join(lines) + "\n"


def main(json_path: str, markdown_path: str) -> None:
    report = json.loads(Path(json_path).read_text())
    Path(markdown_path).write_text(markdown_table(report))
    print(Path(markdown_path).read_text())


if __name__ == "__main__":
    main(*sys.argv[1:3])
