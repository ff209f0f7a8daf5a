"""The route table compiled from a ModelService's traffic policy, the Istio renderer and
the local gateway that executes the same table.
"""
