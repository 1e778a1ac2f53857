"""Campaign files (saip bench): the paper's 12-dataset table to copy and edit."""
