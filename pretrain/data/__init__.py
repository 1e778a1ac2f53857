"""Pretraining data: the LUP (LUPerson-style) crop folder format and the pretraining dataset."""
