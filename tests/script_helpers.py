"""Loads one of the repository's scripts (examples/, benchmarks/, tflite/arm/) into the tests.

The scripts are programs, not a library: pytest's path holds only tests/.
A test that calls a script's functions in-process loads that one file with
`load_script("examples/frontier.py")`; a test of its command line runs it as
a subprocess, as a user would.
"""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_script(path):
    """The script at `path` (relative to the repository) as a module named after its file.

    As `python path` would have it, the script's directory goes first on
    sys.path (and stays there), so the siblings it imports, at import time or
    later inside its functions, are found. Loaded once per process: the module
    is in sys.modules under its file's name, where a sibling's
    `import <name>` finds the same module, and a second call returns it.
    """
    file = (REPO / path).resolve()
    name = file.stem
    module = sys.modules.get(name)
    if module is not None:
        if Path(getattr(module, "__file__", None) or "").resolve() != file:
            raise ImportError(f"{path}: the module name {name!r} is taken by {module!r}")
        return module
    if not file.is_file():
        raise FileNotFoundError(file)
    directory = str(file.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
