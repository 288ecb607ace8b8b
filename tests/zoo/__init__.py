"""Small real models built in code (nothing can be downloaded): the same architectures in PyTorch and Keras."""
