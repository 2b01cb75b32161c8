"""SageMaker emulation: jobs that run, endpoints that serve."""
