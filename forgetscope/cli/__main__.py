"""`python -m forgetscope.cli ...`: the same as the `forgetscope` command."""

from . import main

main()
