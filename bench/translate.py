"""Translation benchmark: records/s and peak memory, beside two baselines in the same run.

    .venv/bin/python bench/translate.py            # the issue's sizes (100k CSV rows, 100k PPNs, 50k concerns)
    .venv/bin/python bench/translate.py --scale 0.1

For each format it generates a fictional file with ``gateway synth`` and
measures, each in its own process so that peak RSS is that process's own:

* **parse**: only reading and parsing the file (csv / ijson / lxml iterparse);
* **translate**: the gateway's whole translation (reader, mapping, Bundle
  building, FHIR validation of every Bundle, NDJSON output), with ``--all``
  so every record goes through the mapping;
* **validate**: only ``model_validate`` of the Bundles that translation wrote
  (JSON decoding not timed).

Goals (from the issue): translation throughput (messages/s) at least 2/3 of
the validate-only baseline; peak RSS under 300 MB; and the RSS at the full
size no more than 1.2x the RSS at a tenth of it (so 10x the input costs no
memory to speak of). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "var" / "bench"
SIZES = {"schoolsafe-csv": 100_000, "ppn-xml": 100_000, "concernhub-json": 50_000}
EXT = {"schoolsafe-csv": "csv", "ppn-xml": "xml", "concernhub-json": "json"}


# -- workers (run in child processes) -----------------------------------------------

def work_parse(fmt: str, path: str) -> dict:
    start = time.perf_counter()
    n = 0
    with open(path, "rb") as f:
        if fmt == "schoolsafe-csv":
            import csv
            import io
            reader = csv.reader(io.TextIOWrapper(f, encoding="utf-8-sig", newline=""))
            next(reader)
            n = sum(1 for _ in reader)
        elif fmt == "concernhub-json":
            import ijson
            n = sum(1 for _ in ijson.items(f, "concerns.item"))
        else:
            from lxml import etree
            tag = "{urn:x-police-uk:ppn:1}PublicProtectionNotice"
            for _, elem in etree.iterparse(f, tag=tag, resolve_entities=False, no_network=True):
                n += 1
                elem.clear()
                while elem.getprevious() is not None:
                    del elem.getparent()[0]
    return {"records": n, "seconds": time.perf_counter() - start}


def work_translate(fmt: str, path: str, out: str) -> dict:
    import datetime as dt

    from gateway.adapters import get_adapter
    from gateway.adapters.cli import _default_validator
    from gateway.adapters.translate import translate_stream

    adapter = get_adapter(fmt)
    validate = _default_validator()
    now = dt.datetime.now(dt.timezone.utc)
    start = time.perf_counter()
    with open(path, "rb") as f, open(out, "w", encoding="utf-8") as o, open(out + ".errors", "w") as e:
        summary = translate_stream(adapter, f, Path(path).name, o, e, now=now, include_all=True,
                                   validator=lambda b: validate(b, now))
    return {"records": summary.records, "messages": summary.messages, "rejected": summary.rejected,
            "skipped": summary.skipped, "seconds": time.perf_counter() - start, "balanced": summary.balanced}


def work_validate(path: str, limit: int) -> dict:
    from gateway.model import validate_resource

    seconds, n = 0.0, 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            bundle = json.loads(line)
            start = time.perf_counter()
            validate_resource(bundle)
            seconds += time.perf_counter() - start
            n += 1
            if n >= limit:
                break
    return {"messages": n, "seconds": seconds}


# -- the driver --------------------------------------------------------------------------

def run_worker(*args: str) -> tuple[dict, float]:
    """Run this file as a worker; return its JSON result and its own peak RSS in MB."""
    proc = subprocess.Popen([sys.executable, __file__, "--worker", *args], stdout=subprocess.PIPE, cwd=ROOT)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if proc.returncode != 0:
        raise SystemExit(f"worker {args} failed with exit code {proc.returncode}")
    return json.loads(output), usage.ru_maxrss / 1024


def synth(fmt: str, count: int) -> Path:
    path = DATA / f"{fmt}-{count}.{EXT[fmt]}"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(Path(sys.executable).parent / "gateway"), "synth", "--format", fmt, "--count",
                        str(count), "--seed", "7", "-o", str(path)], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the issue's sizes (default 1)")
    parser.add_argument("--formats", nargs="*", default=list(SIZES))
    parser.add_argument("--validate-sample", type=int, default=20_000,
                        help="Bundles timed for the validate-only baseline (a sample keeps the run short)")
    args = parser.parse_args()

    rows = []
    for fmt in args.formats:
        full = max(10, int(SIZES[fmt] * args.scale))
        tenth = max(1, full // 10)
        runs = {}
        for count in (tenth, full):
            path = synth(fmt, count)
            out = str(DATA / f"{fmt}-{count}.ndjson")
            parse, parse_rss = run_worker("parse", fmt, str(path))
            tr, tr_rss = run_worker("translate", fmt, str(path), out)
            runs[count] = (path, parse, parse_rss, tr, tr_rss, out)
        path, parse, parse_rss, tr, tr_rss, out = runs[full]
        val, _ = run_worker("validate", out, str(args.validate_sample))
        tenth_rss = runs[tenth][4]
        row = {
            "format": fmt, "records": tr["records"], "messages": tr["messages"],
            "file_mb": round(path.stat().st_size / 1e6, 1),
            "parse_records_s": round(parse["records"] / parse["seconds"]),
            "translate_records_s": round(tr["records"] / tr["seconds"]),
            "translate_messages_s": round(tr["messages"] / tr["seconds"]),
            "validate_messages_s": round(val["messages"] / val["seconds"]),
            "peak_rss_mb": round(tr_rss, 1), "peak_rss_tenth_mb": round(tenth_rss, 1),
            "parse_rss_mb": round(parse_rss, 1), "balanced": tr["balanced"],
        }
        row["throughput_vs_validate"] = round(row["translate_messages_s"] / row["validate_messages_s"], 2)
        row["rss_ratio_10x"] = round(tr_rss / tenth_rss, 2)
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(f"{'format':16} {'records':>8} {'MB':>6} {'parse r/s':>10} {'transl r/s':>10} {'transl m/s':>10} "
          f"{'valid m/s':>10} {'ratio':>6} {'RSS MB':>7} {'RSS/10':>7} {'x10':>5}")
    for r in rows:
        print(f"{r['format']:16} {r['records']:8} {r['file_mb']:6} {r['parse_records_s']:10} "
              f"{r['translate_records_s']:10} {r['translate_messages_s']:10} {r['validate_messages_s']:10} "
              f"{r['throughput_vs_validate']:6} {r['peak_rss_mb']:7} {r['peak_rss_tenth_mb']:7} "
              f"{r['rss_ratio_10x']:5}")
    print("\ngoals: ratio >= 0.67 (translation vs model_validate alone), RSS < 300 MB, x10 <= 1.2; "
          "counts balanced: " + ", ".join(f"{r['format']}={r['balanced']}" for r in rows))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "parse":
            result = work_parse(*rest)
        elif kind == "translate":
            result = work_translate(*rest)
        else:
            result = work_validate(rest[0], int(rest[1]))
        print(json.dumps(result))
    else:
        main()
