import os

# Powertools reads these when the handler module is imported
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SluiceTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "preprocess")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
