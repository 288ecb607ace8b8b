"""Labels as outputs: ``--labels labels.txt --classifier-output NAME``.

Core ML gets a real classifier (``ClassifierConfig``: a ``classLabel`` string and a probabilities
dictionary, a softmax added first when the output is logits, stated in the record); TFLite gets the
labels file associated with the output tensor in its metadata (``TENSOR_AXIS_LABELS``), as Android's
TFLite Support library and ML Model Binding read it. Parity compares the Core ML probability
dictionary with the source's output (after the same softmax), class by class in label order.
"""
