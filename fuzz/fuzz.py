"""Coverage-guided fuzzing (atheris, libFuzzer) of the three adapters and the intake.

    .venv/bin/python fuzz/fuzz.py csv|json|xml|intake|mutate [libFuzzer options] [CORPUS_DIR ...]

See fuzz/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    # atheris instruments only what is imported inside this block, and the gateway imports most of its
    # modules on first use (readers, mappings, the app, the standard): the targets module and the
    # target's seeds run here, so that all of them are, and coverage guides the fuzzer through them.
    with atheris.instrument_imports(include=["gateway"]):
        import targets

        if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
            sys.exit(f"usage: {sys.argv[0]} {{{','.join(targets.TARGETS)}}} [libFuzzer options] [CORPUS_DIR ...]")
        target = sys.argv.pop(1)
        for seed in sorted((Path(__file__).resolve().parent / "seeds" / target).iterdir()):
            targets.run(target, seed.read_bytes())
    atheris.Setup(sys.argv, lambda data: targets.run(target, data))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
