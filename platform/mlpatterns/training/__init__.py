"""Datasets, validation, training, evaluation, ONNX export and parameter search: plain
functions that kfp components call.
"""
