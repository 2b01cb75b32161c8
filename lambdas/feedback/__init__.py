"""Ground truth: label files joined with captured predictions; model quality on live traffic."""
