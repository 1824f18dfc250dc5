"""What runs inside a user's training: ``recorder`` (``siamdiag.Recorder``, for a loop of your
own) and ``lightning`` (the Lightning callback, public as ``siamdiag.lightning``). Needs torch."""
