"""Detection dataset formats: each module provides check, write_synth and its loader."""
