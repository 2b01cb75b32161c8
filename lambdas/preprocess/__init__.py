"""Ingestion: validate an upload against its dataset spec, mask PII, curate it to Parquet.

The modules here know nothing of Lambda: ``pipeline.process_file`` is the one entry point, used by
the CLI (``python -m lambdas.preprocess``), the Lambda handler and the SageMaker Processing job.
"""

__version__ = "1.0.0"
