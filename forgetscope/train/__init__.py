"""Training: tiny models and tokenizers, the synthetic suite, and the training loop."""
