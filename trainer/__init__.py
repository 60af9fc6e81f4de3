"""Offline training (TensorFlow) and ONNX export of every model kind.

Run ``python -m trainer --help``. Importing this package does not import TensorFlow; each kind's
module does, when it is used.
"""
