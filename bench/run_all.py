"""Run every benchmark in turn (``make bench``); each prints its own figures and baselines."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in ("validate.py", "trust.py", "translate.py", "pipeline.py"):
    print(f"\n=== bench/{script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
