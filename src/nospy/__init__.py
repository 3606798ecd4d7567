"""nospy: check no-spy, no-backdoor agreements between equipment vendors and their customers."""

__version__ = "0.1.0"
