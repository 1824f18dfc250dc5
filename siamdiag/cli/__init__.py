"""The command line, the only package that prints or exits: ``main`` (the commands and the
exit-code contract), ``options`` (shared flags), ``settings`` (layered configuration),
``train_command`` (`siamdiag train`), ``watch`` (following a growing log).

BLAS threads are pinned here, before anything loads numpy: a multithreaded BLAS on a busy 2-core
CI runner is 30-50x slower for these small least-squares problems (research notes §3.2)."""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
             "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
