"""siamdiag: has this Siamese / metric-learning run's loss settled? A diagnostic and CI gate."""
__version__ = "0.1.0"
