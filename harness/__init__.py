"""harness: decide whether a fine-tuned checkpoint beats the one it came from.

Importing the package is cheap: engines (torch, vllm, lm-eval) are imported
only inside the stage or backend that needs them.
"""

__version__ = "0.1.0"
