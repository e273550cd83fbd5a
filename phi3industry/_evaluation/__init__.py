"""Parts of :mod:`phi3industry.evaluation`: metrics, QA sets and the report."""
