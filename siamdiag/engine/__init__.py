"""Stage 2, one run from series to verdict: ``prepare`` (order, window, block means), ``checks``
(one frozen result per check, on ``numerics`` and the ``stattests`` adapter), ``decide`` (the
verdict, a pure function), ``analysis`` (one run end to end, with reasons). ``synthetic`` holds
series whose true verdict is known by construction. Imports only from ``siamdiag.logs``."""
