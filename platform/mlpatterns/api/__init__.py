"""The resource models: ModelService spec and status, the CRD schemas generated from them,
validation with clear messages. Imports no sibling room.
"""
