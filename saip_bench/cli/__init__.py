"""The ``saip`` command line: thin Typer commands over library functions."""
