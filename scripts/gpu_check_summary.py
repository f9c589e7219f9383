#!/usr/bin/env python3
"""Writes scripts/gpu-check's summary: OUTDIR/summary.json, summary.md and bench.json.

Reads what gpu-check left in its work folder: steps.tsv (step, exit code, seconds),
gpu.csv (nvidia-smi query), commit, logs/environment.txt, memcheck/*.txt and
bench/*.json (Google Benchmark output, possibly cut short by a timeout), plus the JUnit
files CTest wrote into OUTDIR.
"""
import argparse
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

GPU_FIELDS = ["name", "driver", "memory", "compute_capability", "max_sm_clock", "max_mem_clock"]
# Google Benchmark's own fields; any other number in an entry is a user counter.
BENCH_STANDARD = {"name", "run_name", "run_type", "repetitions", "repetition_index", "threads",
                  "iterations", "real_time", "cpu_time", "time_unit", "family_index",
                  "per_family_instance_index", "aggregate_name", "aggregate_unit", "label"}


def read_steps(work):
    steps = []
    path = work / "steps.tsv"
    for line in path.read_text().splitlines() if path.exists() else []:
        name, rc, seconds = line.split("\t")
        rc = int(rc)
        status = {-1: "skipped (out of time)", -2: "skipped (tool not found)", 0: "ok",
                  124: "timed out", 137: "timed out"}.get(rc, f"failed (exit {rc})")
        steps.append({"step": name, "exit_code": rc, "seconds": int(seconds), "status": status})
    return steps


def read_gpu(work):
    path = work / "gpu.csv"
    if not path.exists() or not path.read_text().strip():
        return {"name": "no GPU found (nvidia-smi failed)"}
    values = [v.strip() for v in path.read_text().splitlines()[0].split(",")]
    return dict(zip(GPU_FIELDS, values))


def read_junit(path):
    if not path.exists():
        return None
    cases = list(ET.parse(path).getroot().iter("testcase"))
    failed = [c.get("name") for c in cases if c.get("status") == "fail"]
    skipped = [c.get("name") for c in cases if c.get("status") in ("notrun", "disabled")]
    return {"total": len(cases), "passed": len(cases) - len(failed) - len(skipped),
            "failed": len(failed), "skipped": len(skipped), "failed_tests": failed}


def read_memcheck(work):
    results = []
    for path in sorted((work / "memcheck").glob("*.txt")):
        match = re.search(r"ERROR SUMMARY: (\d+) error", path.read_text(errors="replace"))
        results.append({"program": path.stem,
                        "errors": int(match.group(1)) if match else None,
                        "finished": match is not None})
    return results


def load_partial_json(text):
    """Parses Google Benchmark JSON; when a timeout cut it, keeps the complete entries."""
    try:
        return json.loads(text), True
    except json.JSONDecodeError:
        pass
    for cut in reversed([m.start() for m in re.finditer(r"\}", text)][-200:]):
        try:
            return json.loads(text[:cut + 1] + "]}"), False
        except json.JSONDecodeError:
            continue
    return {"benchmarks": []}, False


def bench_rows(doc):
    rows = []
    for entry in doc.get("benchmarks", []):
        if entry.get("run_type") == "aggregate" and entry.get("aggregate_name") != "median":
            continue
        counters = {k: v for k, v in entry.items() if k not in BENCH_STANDARD
                    and isinstance(v, (int, float)) and not isinstance(v, bool)}
        rows.append({"name": entry.get("name"), "real_time": entry.get("real_time"),
                     "time_unit": entry.get("time_unit"), "iterations": entry.get("iterations"),
                     "counters": counters, "error": entry.get("error_message")
                     if entry.get("error_occurred") else None})
    return rows


def read_benchmarks(work):
    raw, figures = {}, {}
    for path in sorted((work / "bench").glob("*.json")):
        doc, complete = load_partial_json(path.read_text(errors="replace"))
        raw[path.stem] = doc
        figures[path.stem] = {"complete": complete, "rows": bench_rows(doc)}
    return raw, figures


def fmt_counter(key, value):
    if key == "bytes_per_second":
        return f"{value / 1e9:.1f} GB/s"
    if key == "items_per_second":
        return f"{value / 1e9:.3f} G items/s"
    return f"{key}={value:.4g}"


def markdown(summary, failure_tail):
    lines = ["# gpu-check", ""]
    gpu = summary["gpu"]
    lines.append(f"- card: {gpu.get('name')}, {gpu.get('memory', '?')}, "
                 f"compute capability {gpu.get('compute_capability', '?')}")
    lines.append(f"- driver: {gpu.get('driver', '?')}; commit: {summary['commit']}")
    lines += [f"- {line}" for line in summary["environment"]]
    lines += ["", "| step | status | seconds |", "| --- | --- | --- |"]
    lines += [f"| {s['step']} | {s['status']} | {s['seconds']} |" for s in summary["steps"]]
    for label in ("gpu", "cpu"):
        t = summary["tests"].get(label)
        if t:
            lines += ["", f"tests -L {label}: {t['passed']} passed, {t['failed']} failed, "
                          f"{t['skipped']} skipped of {t['total']}"]
            lines += [f"  - FAILED {name}" for name in t["failed_tests"]]
    if summary["memcheck"]:
        lines += ["", "compute-sanitizer memcheck:"]
        for m in summary["memcheck"]:
            state = f"{m['errors']} errors" if m["finished"] else "did not finish"
            lines.append(f"  - {m['program']}: {state}")
    for program, bench in summary["benchmarks"].items():
        cut = "" if bench["complete"] else " (cut short by the time limit)"
        lines += ["", f"benchmarks {program}{cut}:", "",
                  "| benchmark | time | figures |", "| --- | --- | --- |"]
        for r in bench["rows"]:
            if r["error"] is not None:
                lines.append(f"| {r['name']} | - | skipped: {r['error']} |")
                continue
            figs = ", ".join(fmt_counter(k, v) for k, v in r["counters"].items())
            lines.append(f"| {r['name']} | {r['real_time']:.4g} {r['time_unit']} | {figs} |")
    if failure_tail:
        lines += ["", "```", *failure_tail, "```"]
    lines.append(f"\nresult: {summary['result']}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    steps = read_steps(args.work)
    tests = {label: read_junit(args.out / f"junit-{label}.xml") for label in ("gpu", "cpu")}
    tests = {k: v for k, v in tests.items() if v is not None}
    memcheck = read_memcheck(args.work)
    raw_bench, figures = read_benchmarks(args.work)
    env_path = args.work / "logs" / "environment.txt"
    commit_path = args.work / "commit"

    ok = all(s["exit_code"] == 0 for s in steps if s["step"] != "memcheck") \
        and all(m["errors"] == 0 for m in memcheck) and any(s["step"] == "build" for s in steps)
    summary = {
        "gpu": read_gpu(args.work),
        "commit": " ".join(commit_path.read_text().split()) if commit_path.exists() else "unknown",
        "environment": env_path.read_text().splitlines() if env_path.exists() else [],
        "steps": steps, "tests": tests, "memcheck": memcheck, "benchmarks": figures,
        "result": "pass" if ok else "FAIL",
    }
    # When the build didn't get through, the end of the first failing step's log says why.
    failed_setup = [s["step"] for s in steps
                    if s["step"] in ("unpack", "configure", "build") and s["exit_code"] != 0]
    failure_tail = []
    if failed_setup:
        log = args.work / "logs" / f"{failed_setup[0]}.log"
        if log.exists():
            failure_tail = [f"{failed_setup[0]}.log:"] + \
                log.read_text(errors="replace").splitlines()[-40:]

    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "bench.json").write_text(json.dumps(raw_bench, indent=1) + "\n")
    (args.out / "summary.md").write_text(markdown(summary, failure_tail))


if __name__ == "__main__":
    main()
