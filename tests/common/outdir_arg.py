"""The command line of the scripts that write generated models or cases into a folder
(tests/compiler/make_float_models.py, tests/runtime/engine/make_qlinearconv_bench.py,
tests/runtime/engine/gen_cases.py)."""
import os
import sys


def arguments(doc, names):
    """argv's positional arguments, one per name; --help prints `doc` and exits 0, anything else
    exits 2 (an option given by mistake would otherwise become the folder)."""
    if len(sys.argv) == 2 and sys.argv[1] in ("-h", "--help"):
        print(doc.strip())
        sys.exit(0)
    if len(sys.argv) != len(names) + 1 or any(a.startswith("-") for a in sys.argv[1:]):
        expected = "one argument" if len(names) == 1 else f"{len(names)} arguments"
        print(f"{os.path.basename(sys.argv[0])}: expected {expected}, {' '.join(names)} "
              "(--help: usage)", file=sys.stderr)
        sys.exit(2)
    return sys.argv[1:]


def output_dir(doc):
    """argv's one argument OUTDIR (see arguments)."""
    return arguments(doc, ["OUTDIR"])[0]
