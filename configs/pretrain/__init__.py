"""Pretraining recipes (YAML): defaults.yaml names every key; the others override some of them."""
