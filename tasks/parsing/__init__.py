"""Human parsing (LIP, CIHP): per-pixel part labels from a segmentation head on the backbone's pyramid."""
