"""Sluice infrastructure: one construct module per component, thin stacks that compose them."""
