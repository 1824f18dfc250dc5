"""The command line, the only package that prints or exits: ``main`` (the commands and the
exit-code contract), ``options`` (shared flags), ``settings`` (layered configuration),
``train_command`` (`siamdiag train`), ``watch`` (following a growing log).

BLAS threads are pinned here, before anything loads numpy: a multithreaded BLAS on a busy 2-core
CI runner is 30-50x slower for these small least-squares problems (research notes §3.2). The
cyclic garbage collector is made to wait for more new objects (GC_YOUNG_THRESHOLD)."""
import gc
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
             "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# The collector's first threshold in the command line's process (Python's default: 700 new objects).
# Loading click, pandas and a long log creates objects by the hundred thousand, which Python scans
# again and again as they are made: 57 ms of collections at 3M steps and 12 ms at 100k, against
# 25 ms and none with this threshold (BENCHMARKS.md). A collection still comes every 50,000 new
# objects, so cyclic garbage stays at a few MB, in a long watch or training run as well.
GC_YOUNG_THRESHOLD = 50_000
gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
