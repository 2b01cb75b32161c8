"""Code shared by the Lambda functions: observability (Logger, Tracer, Metrics)."""
