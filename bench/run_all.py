"""Run every benchmark in turn (``make bench``); each prints its own figures and baselines."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in ("validate.py", "trust.py", "translate.py", "pipeline.py", "faults.py", "accept_linkage.py",
               "linkage.py", "linkage_index.py", "console.py", "limits.py", "audit.py"):
    print(f"\n=== bench/{script}", flush=True)
    # A benchmark that exits non-zero has reported a missed goal (or failed): say so and go on to the next.
    code = subprocess.run([sys.executable, str(HERE / script)]).returncode
    if code:
        print(f"=== bench/{script} exited {code}", flush=True)
