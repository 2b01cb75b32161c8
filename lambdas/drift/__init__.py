"""The drift monitor: PSI of each dataset's captured traffic against its model's baseline."""
