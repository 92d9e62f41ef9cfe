"""Coverage-guided fuzzing (atheris, libFuzzer) of the three adapters and the intake.

    .venv/bin/python fuzz/fuzz.py csv|json|xml|intake|mutate [libFuzzer options] [CORPUS_DIR ...]

See fuzz/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

with atheris.instrument_imports(include=["gateway"]):
    import targets


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(targets.TARGETS)}}} [libFuzzer options] [CORPUS_DIR ...]")
    target = sys.argv.pop(1)
    if target in ("intake", "mutate"):
        targets._intake_client()  # the app and its PKI before fuzzing starts, not inside the first input
    atheris.Setup(sys.argv, lambda data: targets.run(target, data))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
