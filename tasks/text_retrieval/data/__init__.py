"""Loaders, format checks and synthetic writers of the text-based person retrieval datasets."""
