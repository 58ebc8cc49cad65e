"""brandvote: a public catalog of work brands with choose-at-most-ten votes."""

__version__ = "0.1.0"
