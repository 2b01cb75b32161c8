"""The prediction API's function: envelope checks, the dataset's endpoint, the error contract,
capture. The modules here know nothing of Lambda but ``handler.py``."""

__version__ = "1.0.0"
