"""forgetscope: which benchmark items did a model forget or newly learn between checkpoints?"""

__version__ = "0.1.0"
