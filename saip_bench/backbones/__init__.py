"""SAIP backbones (placeholder; owned by the backbone helper)."""
