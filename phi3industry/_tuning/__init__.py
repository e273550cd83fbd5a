"""Internals of :mod:`phi3industry.tuner`: metrics (perplexity, domain vocabulary), export."""
