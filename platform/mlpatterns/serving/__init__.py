"""The ONNX model server, preprocess server, async worker and queue, batch prediction,
prediction log and metrics.
"""
