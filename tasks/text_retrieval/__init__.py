"""Text-based person retrieval (CUHK-PEDES, ICFG-PEDES): find a person's images from a description."""
