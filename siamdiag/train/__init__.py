"""`siamdiag train`: Siamese training runs that log what a stationarity diagnosis needs.

Needs the `train` extra (torch, scikit-learn); nothing outside this package imports it.
"""
