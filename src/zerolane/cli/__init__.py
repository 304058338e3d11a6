"""The ``zerolane`` command line: one module per noun."""
