"""Powertools settings for every unit suite, before any test module is imported.

``lambdas.shared.observability`` creates the one ``Metrics`` object of a process when it is
first imported, and reads its namespace from the environment then; the unit suites share one
process, so whichever suite's modules import it first must already find a namespace."""

import os

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SluiceTest")
