"""The training pipeline's functions: prepare a run, register its model, resolve a deploy,
record outcomes (ledger + notifications), and tear down what runs created.

One package, several functions: each is deployed with ``PIPELINE_STEP`` naming the one step it
serves (and a role for that step only); ``handler.py`` routes to it.
"""
