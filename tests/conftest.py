import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ["COLUMNS"] = "140"   # the table fits the terminal: tests read it at one width, whatever runs them

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "sample_runs")
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def interruptible():
    """preexec_fn for a child a test sends Ctrl-C (SIGINT): a test run started in the background
    (`&`, nohup) ignores SIGINT, its children inherit that, and Python then installs no handler."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_csv(path, header, rows, newline="\n"):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(newline.join([",".join(header)] + [",".join(str(v) for v in r) for r in rows]) + newline)
    return str(path)


@pytest.fixture
def stationary_rows():
    rng = np.random.default_rng(7)
    n = 1500
    return [(i, f"{0.3 + 0.02 * rng.standard_normal():.6f}") for i in range(n)]
